//! The outbox: stanzas accepted over HTTP that the server has not yet acknowledged.
//!
//! It has a fixed capacity (`outbox.capacity`): when full, new messages are refused (HTTP
//! 503), never dropped. An entry leaves only when the server acknowledged it (XEP-0198, or
//! a ping round trip). When the stream breaks, entries keep their sequence numbers until
//! the next stream is online: a resumed session (or a server that still knew how far the
//! old one got) acknowledges what arrived, and the rest is sent again ([`Outbox::restart`]),
//! so a reconnect loses nothing and duplicates nothing the server reported. Without such a
//! report everything unacknowledged is sent again, which may duplicate what the server
//! processed but could not acknowledge.
//!
//! With a spool ([`Spool`]), an entry is on disk before `push` returns and leaves the file
//! when acknowledged, so it survives a crash of the process or of the machine.
//!
//! The daemon runs on one thread, so the state sits in a `RefCell`; no borrow is held
//! across an `.await`.

use crate::log;
use crate::spool::Spool;
use crate::xmpp::stream::SendError;
use crate::xmpp::xml::Element;
use smol::channel::{self, Receiver, Sender};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;

/// Why a stanza was not accepted; the caller should retry later.
#[derive(Debug)]
pub enum PushError {
    /// The outbox is full.
    Full,
    /// xrelay is shutting down.
    Stopping,
    /// The spool could not be written, so the stanza would not survive a crash.
    Spool(std::io::Error),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full => f.write_str("the outbox is full; try again later"),
            PushError::Stopping => f.write_str("xrelay is shutting down; try again later"),
            PushError::Spool(e) => write!(f, "the outbox spool cannot be written: {e}"),
        }
    }
}

impl std::error::Error for PushError {}

/// Notified once the server acknowledged the stanza (for `?wait=1`).
pub type AckWaiter = Receiver<()>;

#[derive(Debug)]
struct Entry {
    stanza: Element,
    /// The stream sequence number, once sent on the current stream.
    seq: Option<u64>,
    waiter: Option<Sender<()>>,
    /// Its number in the spool.
    spooled: Option<u64>,
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Entry>,
    /// `entries[..sent]` are on the current stream, in order.
    sent: usize,
    spool: Option<Spool>,
    /// Refusing new entries (shutting down).
    closed: bool,
}

/// The bounded queue between HTTP and the stream.
#[derive(Debug)]
pub struct Outbox {
    inner: RefCell<Inner>,
    capacity: usize,
    doorbell_tx: Sender<()>,
    doorbell_rx: Receiver<()>,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` stanzas.
    pub fn new(capacity: usize) -> Outbox {
        let (doorbell_tx, doorbell_rx) = channel::bounded(1);
        Outbox {
            inner: RefCell::new(Inner {
                entries: VecDeque::with_capacity(capacity),
                sent: 0,
                spool: None,
                closed: false,
            }),
            capacity,
            doorbell_tx,
            doorbell_rx,
        }
    }

    /// An outbox backed by `spool`, holding what it replayed (`replayed`, oldest first).
    /// Replayed entries are never dropped, even beyond `capacity` (a smaller capacity
    /// than before the restart): new ones are refused until there is room.
    pub fn with_spool(capacity: usize, spool: Spool, replayed: Vec<(u64, Element)>) -> Outbox {
        let o = Outbox::new(capacity);
        {
            let mut inner = o.inner.borrow_mut();
            inner
                .entries
                .extend(replayed.into_iter().map(|(n, stanza)| Entry {
                    stanza,
                    seq: None,
                    waiter: None,
                    spooled: Some(n),
                }));
            inner.spool = Some(spool);
        }
        o
    }

    /// Queue a stanza (on disk first, with a spool). With `wait`, the returned receiver
    /// gets a value once the server acknowledged it.
    pub fn push(&self, stanza: Element, wait: bool) -> Result<Option<AckWaiter>, PushError> {
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Err(PushError::Stopping);
        }
        if inner.entries.len() >= self.capacity {
            return Err(PushError::Full);
        }
        let spooled = match &mut inner.spool {
            Some(spool) => Some(spool.append(&stanza).map_err(PushError::Spool)?),
            None => None,
        };
        let (waiter, rx) = if wait {
            let (tx, rx) = channel::bounded(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        inner.entries.push_back(Entry {
            stanza,
            seq: None,
            waiter,
            spooled,
        });
        drop(inner);
        // A full doorbell already means "work waiting"; one ring is enough.
        let _ = self.doorbell_tx.try_send(());
        Ok(rx)
    }

    /// Stanzas waiting, sent or not.
    pub fn depth(&self) -> usize {
        self.inner.borrow().entries.len()
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Refuse new stanzas from now on (shutting down); what is queued stays.
    pub fn close(&self) {
        self.inner.borrow_mut().closed = true;
    }

    /// Whether a spool keeps the entries across restarts.
    pub fn is_spooled(&self) -> bool {
        self.inner.borrow().spool.is_some()
    }

    /// Hand unsent stanzas to `send` in order until it refuses; returns how many were sent.
    pub fn send_pending(&self, mut send: impl FnMut(&Element) -> Result<u64, SendError>) -> usize {
        let mut inner = self.inner.borrow_mut();
        let start = inner.sent;
        while inner.sent < inner.entries.len() {
            let i = inner.sent;
            match send(&inner.entries[i].stanza) {
                Ok(seq) => {
                    inner.entries[i].seq = Some(seq);
                    inner.sent += 1;
                }
                Err(_) => break,
            }
        }
        inner.sent - start
    }

    /// The server confirmed everything up to stream sequence number `seq`: drop those
    /// entries and wake their waiters. Returns how many left the outbox.
    pub fn ack(&self, seq: u64) -> usize {
        let mut inner = self.inner.borrow_mut();
        let mut n = 0;
        let mut spooled = None;
        while inner.sent > 0
            && inner
                .entries
                .front()
                .and_then(|e| e.seq)
                .is_some_and(|s| s <= seq)
        {
            if let Some(e) = inner.entries.pop_front() {
                if let Some(w) = e.waiter {
                    let _ = w.try_send(());
                }
                spooled = e.spooled.or(spooled);
            }
            inner.sent -= 1;
            n += 1;
        }
        if let (Some(spool), Some(done)) = (&mut inner.spool, spooled) {
            if let Err(e) = spool.done(done) {
                // The entries stay in the file: a restart would send them again.
                log!("outbox spool: cannot record acknowledgements: {e}");
            }
        }
        n
    }

    /// A new stream is online: entries the server confirmed up to `acked` (a resumed
    /// session's, or the old session's as the server still knew it) leave, and everything
    /// else goes out again in order. Returns how many left, and how many of those that
    /// stay had been sent on the old stream.
    pub fn restart(&self, acked: Option<u64>) -> (usize, usize) {
        let confirmed = acked.map_or(0, |seq| self.ack(seq));
        let mut inner = self.inner.borrow_mut();
        let resent = inner.sent;
        for e in inner.entries.iter_mut() {
            e.seq = None;
        }
        inner.sent = 0;
        (confirmed, resent)
    }

    /// Wait until something was pushed since the last call.
    pub async fn pushed(&self) {
        let _ = self.doorbell_rx.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> Element {
        Element::new("message", "jabber:client").attr("id", &n.to_string())
    }

    /// A fake stream that numbers what it is given and can refuse after `room` stanzas.
    struct Stream {
        seq: u64,
        room: usize,
        ids: Vec<String>,
    }

    impl Stream {
        fn send(&mut self, el: &Element) -> Result<u64, SendError> {
            if self.room == 0 {
                return Err(SendError::Full);
            }
            self.room -= 1;
            self.seq += 1;
            self.ids
                .push(el.get_attr("id").unwrap_or_default().to_string());
            Ok(self.seq)
        }
    }

    #[test]
    fn bounded_and_nothing_dropped() {
        let o = Outbox::new(2);
        o.push(msg(1), false).unwrap();
        o.push(msg(2), false).unwrap();
        assert!(matches!(o.push(msg(3), false), Err(PushError::Full)));
        o.ack(0);
        o.close();
        assert!(matches!(o.push(msg(3), false), Err(PushError::Stopping)));
        assert_eq!(o.depth(), 2);
        assert_eq!(o.capacity(), 2);
    }

    #[test]
    fn acked_entries_leave_and_wake_waiters() {
        let o = Outbox::new(8);
        let w1 = o.push(msg(1), true).unwrap().unwrap();
        let w2 = o.push(msg(2), true).unwrap().unwrap();
        let mut s = Stream {
            seq: 10,
            room: 99,
            ids: vec![],
        };
        assert_eq!(o.send_pending(|e| s.send(e)), 2);
        assert_eq!(o.send_pending(|e| s.send(e)), 0, "nothing is sent twice");
        assert_eq!(o.ack(11), 1);
        assert!(w1.try_recv().is_ok());
        assert!(w2.try_recv().is_err());
        assert_eq!(o.ack(11), 0);
        assert_eq!(o.ack(12), 1);
        assert!(w2.try_recv().is_ok());
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn a_lost_stream_resends_everything_unacked_in_order() {
        let o = Outbox::new(8);
        for n in 1..=4 {
            o.push(msg(n), false).unwrap();
        }
        let mut s = Stream {
            seq: 0,
            room: 3,
            ids: vec![],
        };
        assert_eq!(
            o.send_pending(|e| s.send(e)),
            3,
            "stops when the stream pushes back"
        );
        assert_eq!(o.ack(1), 1);
        assert_eq!(o.restart(None), (0, 2));
        let mut s2 = Stream {
            seq: 0,
            room: 99,
            ids: vec![],
        };
        assert_eq!(o.send_pending(|e| s2.send(e)), 3);
        assert_eq!(s2.ids, ["2", "3", "4"]);
        // Acks of the new stream count from its own numbering.
        assert_eq!(o.ack(3), 3);
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn a_resumed_stream_resends_only_what_the_server_did_not_get() {
        let o = Outbox::new(8);
        let waiters: Vec<_> = (1..=4)
            .map(|n| o.push(msg(n), true).unwrap().unwrap())
            .collect();
        let mut s = Stream {
            seq: 10,
            room: 99,
            ids: vec![],
        };
        // Other stanzas (presence, replies) take numbers in between.
        assert_eq!(o.send_pending(|e| s.send(e)), 4);
        assert_eq!(o.ack(11), 1);
        // The link breaks; while it is down, one more is accepted.
        o.push(msg(5), false).unwrap();
        // The resumed session says the server got up to 13 (entries 2 and 3).
        assert_eq!(o.restart(Some(13)), (2, 1));
        assert!(waiters[1].try_recv().is_ok() && waiters[2].try_recv().is_ok());
        assert!(waiters[3].try_recv().is_err());
        let mut s2 = Stream {
            seq: 13,
            room: 99,
            ids: vec![],
        };
        assert_eq!(o.send_pending(|e| s2.send(e)), 2);
        assert_eq!(s2.ids, ["4", "5"]);
        assert_eq!(o.ack(15), 2);
        assert!(waiters[3].try_recv().is_ok());
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn the_spool_holds_what_is_not_acknowledged() {
        let dir = std::env::temp_dir().join(format!("xrelay-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool");
        let (spool, replay) = Spool::open(&path, 65536).unwrap();
        let o = Outbox::with_spool(2, spool, replay.entries);
        assert!(o.is_spooled());
        o.push(msg(1), false).unwrap();
        o.push(msg(2), false).unwrap();
        assert!(matches!(o.push(msg(3), false), Err(PushError::Full)));
        let mut s = Stream {
            seq: 0,
            room: 99,
            ids: vec![],
        };
        o.send_pending(|e| s.send(e));
        assert_eq!(o.ack(1), 1);
        drop(o);
        // Restarted with a smaller capacity: nothing replayed is dropped.
        let (spool, replay) = Spool::open(&path, 65536).unwrap();
        let o = Outbox::with_spool(1, spool, replay.entries);
        assert_eq!(o.depth(), 1);
        assert!(matches!(o.push(msg(4), false), Err(PushError::Full)));
        let mut s = Stream {
            seq: 0,
            room: 99,
            ids: vec![],
        };
        o.send_pending(|e| s.send(e));
        assert_eq!(s.ids, ["2"]);
        o.ack(1);
        drop(o);
        let (_, replay) = Spool::open(&path, 65536).unwrap();
        assert!(replay.entries.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ack_without_sent_entries_is_harmless() {
        let o = Outbox::new(2);
        o.push(msg(1), false).unwrap();
        assert_eq!(o.ack(100), 0);
        assert_eq!(o.depth(), 1);
    }

    #[test]
    fn doorbell_rings_once_per_burst() {
        let o = Outbox::new(4);
        o.push(msg(1), false).unwrap();
        o.push(msg(2), false).unwrap();
        smol::block_on(o.pushed());
        assert!(o.doorbell_rx.try_recv().is_err());
    }
}
