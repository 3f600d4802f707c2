//! The outbox: stanzas accepted over HTTP that the server has not yet acknowledged.
//!
//! It has a fixed capacity (`outbox.capacity`): when full, new messages are refused (HTTP
//! 503), never dropped. An entry leaves only when the server acknowledged it (XEP-0198, or
//! a ping round trip); when the stream breaks, every unacknowledged entry is sent again on
//! the next stream, so a reconnect loses nothing (it may duplicate what the server
//! processed but could not acknowledge).
//!
//! The daemon runs on one thread, so the state sits in a `RefCell`; no borrow is held
//! across an `.await`.

use crate::xmpp::stream::SendError;
use crate::xmpp::xml::Element;
use smol::channel::{self, Receiver, Sender};
use std::cell::RefCell;
use std::collections::VecDeque;

/// The outbox is full; the caller should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Notified once the server acknowledged the stanza (for `?wait=1`).
pub type AckWaiter = Receiver<()>;

#[derive(Debug)]
struct Entry {
    stanza: Element,
    /// The stream sequence number, once sent on the current stream.
    seq: Option<u64>,
    waiter: Option<Sender<()>>,
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Entry>,
    /// `entries[..sent]` are on the current stream, in order.
    sent: usize,
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
            }),
            capacity,
            doorbell_tx,
            doorbell_rx,
        }
    }

    /// Queue a stanza. With `wait`, the returned receiver gets a value once the server
    /// acknowledged it.
    pub fn push(&self, stanza: Element, wait: bool) -> Result<Option<AckWaiter>, Full> {
        let mut inner = self.inner.borrow_mut();
        if inner.entries.len() >= self.capacity {
            return Err(Full);
        }
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
            }
            inner.sent -= 1;
            n += 1;
        }
        n
    }

    /// The stream broke: everything unacknowledged goes out again on the next one.
    pub fn stream_lost(&self) {
        let mut inner = self.inner.borrow_mut();
        for e in inner.entries.iter_mut() {
            e.seq = None;
        }
        inner.sent = 0;
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
        assert!(matches!(o.push(msg(3), false), Err(Full)));
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
        o.stream_lost();
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
