//! The outbox: stanzas accepted over HTTP that the server has not yet acknowledged.
//!
//! It is bounded twice (`outbox.capacity` entries, `outbox.max_bytes` bytes): when full,
//! new messages are refused (HTTP 503), never dropped. Entries hold the serialized stanza,
//! not its element tree, so the byte bound is what they cost. A stanza larger than
//! `xmpp.max_outgoing_bytes` is refused at the door (HTTP 413): the server would end the
//! stream over it. An entry leaves only when the server acknowledged it (XEP-0198, or
//! a ping round trip), or when it proved to be poison (below). When the stream breaks,
//! entries keep their sequence numbers until the next stream is online: a resumed session
//! (or a server that still knew how far the old one got) acknowledges what arrived, and the
//! rest is sent again ([`Outbox::restart`]), so a reconnect loses nothing and duplicates
//! nothing the server reported. Without such a report everything unacknowledged is sent
//! again, which may duplicate what the server processed but could not acknowledge.
//!
//! A message that waited longer than `outbox.stamp_after` goes out with an XEP-0203 delay
//! stamp carrying the time it was accepted.
//!
//! Poison: when the server ends the stream with a stream error while entries are in
//! flight, those entries become suspects and the next stream sends them one at a time,
//! each only after the one before was acknowledged. A suspect that is alone in flight when
//! the server ends the stream again is taken out as failed ([`Outbox::stream_error`]).
//!
//! With a spool ([`Spool`]), an entry is on disk before `push` returns and leaves the file
//! when acknowledged, so it survives a crash of the process or of the machine.
//!
//! The daemon runs on one thread, so the state sits in a `RefCell`; no borrow is held
//! across an `.await`.

use crate::log;
use crate::spool::{Budget, Replayed, Spool};
use crate::timefmt;
use crate::xmpp::stanza::NS_CLIENT;
use crate::xmpp::stream::SendError;
use crate::xmpp::xml::Element;
use smol::channel::{self, Receiver, Sender};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Stream error conditions that say nothing about the stanzas in flight: the server is
/// going away, another session took over, or the link failed (RFC 6120 §4.9.3).
const NOT_ABOUT_STANZAS: &[&str] = &[
    "conflict",
    "connection-timeout",
    "host-gone",
    "host-unknown",
    "not-authorized",
    "remote-connection-failed",
    "reset",
    "resource-constraint",
    "see-other-host",
    "system-shutdown",
];

/// Why a stanza was not accepted.
#[derive(Debug)]
pub enum PushError {
    /// The outbox is full (entries or bytes); retry later.
    Full,
    /// xrelay is shutting down; retry later.
    Stopping,
    /// The spool could not be written, so the stanza would not survive a crash.
    Spool(std::io::Error),
    /// The serialized stanza is larger than `xmpp.max_outgoing_bytes`; retrying is useless.
    TooLarge {
        /// Its size once serialized (escaped).
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("the outbox is full; try again later"),
            Self::Stopping => f.write_str("xrelay is shutting down; try again later"),
            Self::Spool(e) => write!(f, "the outbox spool cannot be written: {e}"),
            Self::TooLarge { size, limit } => write!(
                f,
                "the message is {size} bytes as an XMPP stanza (after escaping), more than \
                 the {limit} bytes allowed (xmpp.max_outgoing_bytes)"
            ),
        }
    }
}

impl std::error::Error for PushError {}

/// What became of a stanza someone waits for (`?wait=1`): `Ok` once the server
/// acknowledged it, `Err` with the reason when it was taken out as failed.
pub type Delivery = Result<(), String>;

/// Receives the stanza's [`Delivery`].
pub type AckWaiter = Receiver<Delivery>;

/// The bounds and timing of an outbox.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries.
    pub capacity: usize,
    /// Most bytes of serialized stanzas.
    pub max_bytes: usize,
    /// Largest serialized stanza accepted.
    pub max_stanza: usize,
    /// A message sent later than this after it was accepted carries a delay stamp.
    pub stamp_after: Duration,
}

impl Limits {
    /// The limits `cfg` sets.
    pub fn of(cfg: &crate::config::Config) -> Self {
        Self {
            capacity: cfg.outbox.capacity,
            max_bytes: cfg.outbox.max_bytes,
            max_stanza: cfg.xmpp.max_outgoing_bytes,
            stamp_after: cfg.outbox.stamp_after,
        }
    }
}

/// A stanza taken out of the outbox because the server ended the stream over it twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poisoned {
    /// Its `id` attribute.
    pub id: String,
    /// Its `to` attribute.
    pub to: String,
    /// Its size in bytes.
    pub bytes: usize,
}

#[derive(Debug)]
struct Entry {
    /// The serialized stanza, as the stream sends it (without any delay stamp).
    xml: Box<[u8]>,
    /// Its number in the outbox, for telling suspects apart.
    serial: u64,
    /// When it was accepted, seconds since the epoch: the delay stamp.
    accepted_unix: u64,
    /// When it was accepted, on the monotonic clock (none for spool replays).
    accepted: Option<Instant>,
    /// The stream sequence number, once sent on the current stream.
    seq: Option<u64>,
    waiter: Option<Sender<Delivery>>,
    /// Its number in the spool.
    spooled: Option<u64>,
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Entry>,
    /// Sum of the entries' sizes.
    bytes: usize,
    /// `entries[..sent]` are on the current stream, in order.
    sent: usize,
    /// The serial the next entry gets.
    next_serial: u64,
    /// Entries up to this serial were in flight when the server ended a stream with an
    /// error: they go out one at a time.
    suspect_until: Option<u64>,
    spool: Option<Spool>,
    /// Refusing new entries (shutting down).
    closed: bool,
}

/// The bounded queue between HTTP and the stream.
#[derive(Debug)]
pub struct Outbox {
    inner: RefCell<Inner>,
    limits: Limits,
    doorbell_tx: Sender<()>,
    doorbell_rx: Receiver<()>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(limits: Limits) -> Self {
        let (doorbell_tx, doorbell_rx) = channel::bounded(1);
        Self {
            inner: RefCell::new(Inner {
                entries: VecDeque::new(),
                bytes: 0,
                sent: 0,
                next_serial: 1,
                suspect_until: None,
                spool: None,
                closed: false,
            }),
            limits,
            doorbell_tx,
            doorbell_rx,
        }
    }

    /// An outbox backed by `spool`, holding what it replayed (oldest first), which keeps
    /// its original acceptance time. Replayed entries are never dropped, even beyond the
    /// bounds (smaller bounds than before the restart): new ones are refused until there
    /// is room.
    pub fn with_spool(limits: Limits, spool: Spool, replayed: Vec<Replayed>) -> Self {
        let o = Self::new(limits);
        {
            let mut inner = o.inner.borrow_mut();
            inner.add_replayed(replayed);
            inner.spool = Some(spool);
        }
        o
    }

    /// Queue a stanza (on disk first, with a spool). With `wait`, the returned receiver
    /// gets its [`Delivery`].
    pub fn push(&self, stanza: &Element, wait: bool) -> Result<Option<AckWaiter>, PushError> {
        let xml = stanza.to_bytes(NS_CLIENT);
        if xml.len() > self.limits.max_stanza {
            return Err(PushError::TooLarge {
                size: xml.len(),
                limit: self.limits.max_stanza,
            });
        }
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Err(PushError::Stopping);
        }
        if inner.entries.len() >= self.limits.capacity
            || inner.bytes + xml.len() > self.limits.max_bytes
            || inner.spool.as_ref().is_some_and(|s| s.backlog() > 0)
        {
            return Err(PushError::Full);
        }
        let accepted_unix = timefmt::now_unix();
        let spooled = match &mut inner.spool {
            Some(spool) => Some(
                spool
                    .append(&xml, accepted_unix)
                    .map_err(PushError::Spool)?,
            ),
            None => None,
        };
        let (waiter, rx) = if wait {
            let (tx, rx) = channel::bounded(1);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let serial = inner.next_serial;
        inner.next_serial += 1;
        inner.bytes += xml.len();
        inner.entries.push_back(Entry {
            xml: xml.into_boxed_slice(),
            serial,
            accepted_unix,
            accepted: Some(Instant::now()),
            seq: None,
            waiter,
            spooled,
        });
        drop(inner);
        // A full doorbell already means "work waiting"; one ring is enough.
        let _ = self.doorbell_tx.try_send(());
        Ok(rx)
    }

    /// Stanzas waiting, sent or not, those still only in the spool included.
    pub fn depth(&self) -> usize {
        let inner = self.inner.borrow();
        inner.entries.len() + inner.spool.as_ref().map_or(0, Spool::backlog)
    }

    /// Bytes of the stanzas waiting.
    pub fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.limits.capacity
    }

    /// Refuse new stanzas from now on (shutting down); what is queued stays.
    pub fn close(&self) {
        self.inner.borrow_mut().closed = true;
    }

    /// Whether a spool keeps the entries across restarts.
    pub fn is_spooled(&self) -> bool {
        self.inner.borrow().spool.is_some()
    }

    /// Hand unsent stanzas (serialized, stamped when they waited) to `send` in order until
    /// it refuses; returns how many were sent. Suspects of an earlier stream error go one
    /// at a time: none while another entry is unacknowledged.
    pub fn send_pending(&self, mut send: impl FnMut(&[u8]) -> Result<u64, SendError>) -> usize {
        let mut inner = self.inner.borrow_mut();
        let start = inner.sent;
        let now = Instant::now();
        let now_unix = timefmt::now_unix();
        let is_suspect = |e: &Entry, until: Option<u64>| until.is_some_and(|s| e.serial <= s);
        while inner.sent < inner.entries.len() {
            let i = inner.sent;
            let e = &inner.entries[i];
            let suspect = is_suspect(e, inner.suspect_until);
            // Suspects are the oldest entries: while one is in flight, nothing follows it.
            if i > 0 && (suspect || is_suspect(&inner.entries[0], inner.suspect_until)) {
                break;
            }
            let waited = match e.accepted {
                Some(t) => now.saturating_duration_since(t) > self.limits.stamp_after,
                None => {
                    now_unix.saturating_sub(e.accepted_unix) > self.limits.stamp_after.as_secs()
                }
            };
            let stamped = if waited {
                stamp(&e.xml, e.accepted_unix)
            } else {
                None
            };
            match send(stamped.as_deref().unwrap_or(&e.xml)) {
                Ok(seq) => {
                    inner.entries[i].seq = Some(seq);
                    inner.sent += 1;
                }
                Err(_) => break,
            }
            if suspect {
                break;
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
                inner.bytes -= e.xml.len();
                if let Some(w) = e.waiter {
                    let _ = w.try_send(Ok(()));
                }
                spooled = e.spooled.or(spooled);
            }
            inner.sent -= 1;
            n += 1;
        }
        if let Some(done) = spooled {
            inner.spool_done(done);
        }
        inner.refill(&self.limits);
        if inner
            .suspect_until
            .is_some_and(|s| inner.entries.front().is_none_or(|e| e.serial > s))
        {
            inner.suspect_until = None;
        }
        n
    }

    /// The server ended the stream with a stream error `condition`. What was in flight
    /// becomes suspect; a suspect that went out alone and met a stream error again is
    /// taken out as failed and returned (its waiter gets the reason).
    pub fn stream_error(&self, condition: &str) -> Option<Poisoned> {
        if NOT_ABOUT_STANZAS.contains(&condition) {
            return None;
        }
        let mut inner = self.inner.borrow_mut();
        if inner.sent == 0 {
            return None;
        }
        let front = inner.entries.front()?.serial;
        if inner.suspect_until.is_some_and(|s| front <= s) && inner.sent == 1 {
            let e = inner.entries.pop_front()?;
            inner.sent = 0;
            inner.bytes -= e.xml.len();
            if let Some(n) = e.spooled {
                inner.spool_done(n);
            }
            inner.refill(&self.limits);
            let poisoned = Poisoned {
                id: attr(&e.xml, "id"),
                to: attr(&e.xml, "to"),
                bytes: e.xml.len(),
            };
            if let Some(w) = e.waiter {
                let _ = w.try_send(Err(format!(
                    "the server ended the stream ({condition}) twice right after this \
                     message; it was taken out of the queue"
                )));
            }
            return Some(poisoned);
        }
        let last = inner.entries[inner.sent - 1].serial;
        inner.suspect_until = Some(inner.suspect_until.map_or(last, |s| s.max(last)));
        None
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

impl Inner {
    /// Entries from the spool, in order, with their original acceptance time.
    fn add_replayed(&mut self, replayed: Vec<Replayed>) {
        for r in replayed {
            let serial = self.next_serial;
            self.next_serial += 1;
            self.bytes += r.xml.len();
            self.entries.push_back(Entry {
                xml: r.xml.into_boxed_slice(),
                serial,
                accepted_unix: r.accepted,
                accepted: None,
                seq: None,
                waiter: None,
                spooled: Some(r.n),
            });
        }
    }

    /// Take in what the spool still holds on disk, as far as there is room.
    fn refill(&mut self, limits: &Limits) {
        let Some(spool) = &mut self.spool else {
            return;
        };
        if spool.backlog() == 0 {
            return;
        }
        let budget = Budget {
            entries: limits.capacity.saturating_sub(self.entries.len()),
            bytes: limits.max_bytes.saturating_sub(self.bytes),
        };
        match spool.load(budget, self.entries.is_empty()) {
            Ok(loaded) => self.add_replayed(loaded),
            Err(e) => log!("outbox spool: cannot read the messages waiting on disk: {e}"),
        }
    }

    fn spool_done(&mut self, n: u64) {
        if let Some(spool) = &mut self.spool {
            if let Err(e) = spool.done(n) {
                // The entries stay in the file: a restart would send them again.
                log!("outbox spool: cannot record acknowledgements: {e}");
            }
        }
    }
}

/// `xml` (a serialized message) with an XEP-0203 delay stamp of `unix` added as its last
/// child; `None` for other stanzas and messages that already carry one.
fn stamp(xml: &[u8], unix: u64) -> Option<Vec<u8>> {
    const DELAY_NS: &[u8] = b"urn:xmpp:delay";
    if !xml.starts_with(b"<message") || xml.windows(DELAY_NS.len()).any(|w| w == DELAY_NS) {
        return None;
    }
    let delay = format!(
        "<delay xmlns='urn:xmpp:delay' stamp='{}'/>",
        timefmt::format_rfc3339(unix)
    );
    let mut out = Vec::with_capacity(xml.len() + delay.len() + 11);
    if let Some(open) = xml.strip_suffix(b"/>") {
        out.extend_from_slice(open);
        out.push(b'>');
        out.extend_from_slice(delay.as_bytes());
        out.extend_from_slice(b"</message>");
    } else {
        let close = xml.strip_suffix(b"</message>")?;
        out.extend_from_slice(close);
        out.extend_from_slice(delay.as_bytes());
        out.extend_from_slice(b"</message>");
    }
    Some(out)
}

/// The value of attribute `name` of the serialized stanza's start tag, for the log. Values
/// are written between single quotes with quotes escaped, so the first match is exact.
fn attr(xml: &[u8], name: &str) -> String {
    let tag_end = xml.iter().position(|&b| b == b'>').unwrap_or(xml.len());
    let tag = &xml[..tag_end];
    let needle = format!(" {name}='");
    let Some(at) = tag
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    else {
        return String::new();
    };
    let value = &tag[at + needle.len()..];
    let end = value
        .iter()
        .position(|&b| b == b'\'')
        .unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::xml::parse_document;

    const ALL: Budget = Budget {
        entries: usize::MAX,
        bytes: usize::MAX,
    };

    fn limits(capacity: usize) -> Limits {
        Limits {
            capacity,
            max_bytes: 1 << 20,
            max_stanza: 1 << 16,
            stamp_after: Duration::from_secs(5),
        }
    }

    fn msg(n: u32) -> Element {
        Element::new("message", "jabber:client").attr("id", &n.to_string())
    }

    /// A fake stream that numbers what it is given and can refuse after `room` stanzas.
    struct Stream {
        seq: u64,
        room: usize,
        ids: Vec<String>,
        sent: Vec<Vec<u8>>,
    }

    impl Stream {
        fn at(seq: u64) -> Self {
            Self {
                seq,
                room: usize::MAX,
                ids: vec![],
                sent: vec![],
            }
        }

        fn send(&mut self, xml: &[u8]) -> Result<u64, SendError> {
            if self.room == 0 {
                return Err(SendError::Full);
            }
            self.room -= 1;
            self.seq += 1;
            let el = parse_document(xml, 1 << 20).expect("well-formed");
            self.ids
                .push(el.get_attr("id").unwrap_or_default().to_string());
            self.sent.push(xml.to_vec());
            Ok(self.seq)
        }
    }

    #[test]
    fn a_full_or_closing_outbox_refuses_and_keeps_what_it_holds() {
        let o = Outbox::new(limits(2));
        o.push(&msg(1), false).unwrap();
        o.push(&msg(2), false).unwrap();
        assert!(matches!(o.push(&msg(3), false), Err(PushError::Full)));
        o.ack(0);
        o.close();
        assert!(matches!(o.push(&msg(3), false), Err(PushError::Stopping)));
        assert_eq!(o.depth(), 2);
        assert_eq!(o.capacity(), 2);
    }

    #[test]
    fn full_in_bytes_before_full_in_entries() {
        let body = "x".repeat(1000);
        let big = |n: u32| msg(n).text(&body);
        let size = big(1).to_bytes(NS_CLIENT).len();
        let o = Outbox::new(Limits {
            max_bytes: 3 * size + 10,
            ..limits(100)
        });
        for n in 1..=3 {
            o.push(&big(n), false).unwrap();
        }
        assert!(matches!(o.push(&big(4), false), Err(PushError::Full)));
        assert_eq!(o.bytes(), 3 * size);
        let mut s = Stream::at(0);
        o.send_pending(|x| s.send(x));
        o.ack(1);
        assert_eq!(o.bytes(), 2 * size);
        o.push(&big(4), false).unwrap();
    }

    #[test]
    fn a_stanza_over_the_outgoing_limit_is_refused_with_both_sizes() {
        let o = Outbox::new(Limits {
            max_stanza: 1000,
            ..limits(10)
        });
        // Escaping makes 600 quotes 3,600 bytes.
        let e = o.push(&msg(1).text(&"\"".repeat(600)), false).unwrap_err();
        let PushError::TooLarge { size, limit } = e else {
            panic!("{e:?}");
        };
        assert!(size > 3600 && limit == 1000, "{size}");
        let text = e.to_string();
        assert!(
            text.contains(&size.to_string()) && text.contains("1000"),
            "{text}"
        );
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn acked_entries_leave_and_wake_waiters() {
        let o = Outbox::new(limits(8));
        let w1 = o.push(&msg(1), true).unwrap().unwrap();
        let w2 = o.push(&msg(2), true).unwrap().unwrap();
        let mut s = Stream::at(10);
        assert_eq!(o.send_pending(|e| s.send(e)), 2);
        assert_eq!(o.send_pending(|e| s.send(e)), 0, "nothing is sent twice");
        assert_eq!(o.ack(11), 1);
        assert_eq!(w1.try_recv(), Ok(Ok(())));
        assert!(w2.try_recv().is_err());
        assert_eq!(o.ack(11), 0);
        assert_eq!(o.ack(12), 1);
        assert_eq!(w2.try_recv(), Ok(Ok(())));
        assert_eq!(o.depth(), 0);
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn a_lost_stream_resends_everything_unacked_in_order() {
        let o = Outbox::new(limits(8));
        for n in 1..=4 {
            o.push(&msg(n), false).unwrap();
        }
        let mut s = Stream {
            room: 3,
            ..Stream::at(0)
        };
        assert_eq!(
            o.send_pending(|e| s.send(e)),
            3,
            "stops when the stream pushes back"
        );
        assert_eq!(o.ack(1), 1);
        assert_eq!(o.restart(None), (0, 2));
        let mut s2 = Stream::at(0);
        assert_eq!(o.send_pending(|e| s2.send(e)), 3);
        assert_eq!(s2.ids, ["2", "3", "4"]);
        // Acks of the new stream count from its own numbering.
        assert_eq!(o.ack(3), 3);
        assert_eq!(o.depth(), 0);
    }

    #[test]
    fn a_resumed_stream_resends_only_what_the_server_did_not_get() {
        let o = Outbox::new(limits(8));
        let waiters: Vec<_> = (1..=4)
            .map(|n| o.push(&msg(n), true).unwrap().unwrap())
            .collect();
        let mut s = Stream::at(10);
        // Other stanzas (presence, replies) take numbers in between.
        assert_eq!(o.send_pending(|e| s.send(e)), 4);
        assert_eq!(o.ack(11), 1);
        // The link breaks; while it is down, one more is accepted.
        o.push(&msg(5), false).unwrap();
        // The resumed session says the server got up to 13 (entries 2 and 3).
        assert_eq!(o.restart(Some(13)), (2, 1));
        assert!(waiters[1].try_recv().is_ok() && waiters[2].try_recv().is_ok());
        assert!(waiters[3].try_recv().is_err());
        let mut s2 = Stream::at(13);
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
        let (spool, replay) = Spool::open(&path, 65536, ALL).unwrap();
        let o = Outbox::with_spool(limits(2), spool, replay.entries);
        assert!(o.is_spooled());
        o.push(&msg(1), false).unwrap();
        o.push(&msg(2), false).unwrap();
        assert!(matches!(o.push(&msg(3), false), Err(PushError::Full)));
        let mut s = Stream::at(0);
        o.send_pending(|e| s.send(e));
        assert_eq!(o.ack(1), 1);
        drop(o);
        // Restarted with a smaller capacity: nothing replayed is dropped.
        let (spool, replay) = Spool::open(&path, 65536, ALL).unwrap();
        let o = Outbox::with_spool(limits(1), spool, replay.entries);
        assert_eq!(o.depth(), 1);
        assert!(matches!(o.push(&msg(4), false), Err(PushError::Full)));
        let mut s = Stream::at(0);
        o.send_pending(|e| s.send(e));
        assert_eq!(s.ids, ["2"]);
        o.ack(1);
        drop(o);
        let (_, replay) = Spool::open(&path, 65536, ALL).unwrap();
        assert!(replay.entries.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_spool_over_the_bounds_comes_in_as_room_frees_up_before_new_messages() {
        let dir = std::env::temp_dir().join(format!("xrelay-outbox-b-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool");
        let (spool, _) = Spool::open(&path, 65536, ALL).unwrap();
        let o = Outbox::with_spool(limits(100), spool, vec![]);
        for n in 1..=6 {
            o.push(&msg(n), false).unwrap();
        }
        drop(o);
        let small = limits(2);
        let budget = Budget {
            entries: small.capacity,
            bytes: small.max_bytes,
        };
        let (spool, replay) = Spool::open(&path, 65536, budget).unwrap();
        let o = Outbox::with_spool(small, spool, replay.entries);
        assert_eq!(o.depth(), 6);
        assert!(matches!(o.push(&msg(7), false), Err(PushError::Full)));
        let mut s = Stream::at(0);
        let mut acked = 0;
        while o.depth() > 0 {
            assert!(o.inner.borrow().entries.len() <= 2);
            o.send_pending(|e| s.send(e));
            acked = s.seq;
            o.ack(acked);
        }
        assert_eq!(s.ids, ["1", "2", "3", "4", "5", "6"]);
        assert!(acked > 0);
        o.push(&msg(7), false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ack_without_sent_entries_is_harmless() {
        let o = Outbox::new(limits(2));
        o.push(&msg(1), false).unwrap();
        assert_eq!(o.ack(100), 0);
        assert_eq!(o.depth(), 1);
    }

    #[test]
    fn doorbell_rings_once_per_burst() {
        let o = Outbox::new(limits(4));
        o.push(&msg(1), false).unwrap();
        o.push(&msg(2), false).unwrap();
        smol::block_on(o.pushed());
        assert!(o.doorbell_rx.try_recv().is_err());
    }

    #[test]
    fn a_message_sent_at_once_carries_no_stamp() {
        let o = Outbox::new(limits(4));
        o.push(&msg(1).text("hi"), false).unwrap();
        let mut s = Stream::at(0);
        o.send_pending(|e| s.send(e));
        assert!(!String::from_utf8_lossy(&s.sent[0]).contains("delay"));
    }

    #[test]
    fn a_message_that_waited_carries_its_acceptance_time() {
        let o = Outbox::new(Limits {
            stamp_after: Duration::ZERO,
            ..limits(4)
        });
        let before = timefmt::now_unix();
        let body = Element::new("body", NS_CLIENT).text("WAN down");
        o.push(&msg(1).child(body), false).unwrap();
        o.push(&msg(2), false).unwrap();
        o.push(&Element::new("presence", NS_CLIENT), false).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let mut s = Stream::at(0);
        o.send_pending(|e| s.send(e));
        for xml in &s.sent[..2] {
            let el = parse_document(xml, 4096).unwrap();
            let delay = el.get_child("delay", "urn:xmpp:delay").expect("a delay");
            let stamp = timefmt::parse_rfc3339(delay.get_attr("stamp").unwrap()).unwrap();
            assert!(
                (before..=before + 1).contains(&stamp),
                "{stamp} vs {before}"
            );
        }
        let first = parse_document(&s.sent[0], 4096).unwrap();
        assert_eq!(
            first.get_child("body", NS_CLIENT).unwrap().text_content(),
            "WAN down"
        );
        assert!(
            !String::from_utf8_lossy(&s.sent[2]).contains("delay"),
            "presence is not stamped"
        );
        // The queued form stays unstamped: a resend stamps once, not twice.
        o.restart(None);
        let mut s2 = Stream::at(0);
        o.send_pending(|e| s2.send(e));
        assert_eq!(s2.sent, s.sent);
    }

    #[test]
    fn a_replayed_message_is_stamped_with_its_original_time() {
        let dir = std::env::temp_dir().join(format!("xrelay-outbox-t-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spool");
        let (mut spool, _) = Spool::open(&path, 65536, ALL).unwrap();
        let hour_ago = timefmt::now_unix() - 3600;
        spool.append(&msg(1).to_bytes(NS_CLIENT), hour_ago).unwrap();
        drop(spool);
        let (spool, replay) = Spool::open(&path, 65536, ALL).unwrap();
        let o = Outbox::with_spool(limits(4), spool, replay.entries);
        let mut s = Stream::at(0);
        o.send_pending(|e| s.send(e));
        let el = parse_document(&s.sent[0], 4096).unwrap();
        let delay = el.get_child("delay", "urn:xmpp:delay").unwrap();
        assert_eq!(
            delay.get_attr("stamp"),
            Some(timefmt::format_rfc3339(hour_ago).as_str())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stanza_the_server_ends_the_stream_over_twice_is_taken_out() {
        let o = Outbox::new(limits(16));
        let waiters: Vec<_> = (1..=4)
            .map(|n| o.push(&msg(n), true).unwrap().unwrap())
            .collect();
        // First stream: all four go out; the server processed 1 and ends the stream at 2.
        let mut s = Stream::at(0);
        assert_eq!(o.send_pending(|e| s.send(e)), 4);
        assert_eq!(o.stream_error("policy-violation"), None);
        // Meanwhile another one is accepted: it waits behind the suspects.
        o.push(&msg(5), false).unwrap();
        // Second stream: no resumption. The suspects go one at a time.
        o.restart(None);
        let mut s = Stream::at(0);
        assert_eq!(o.send_pending(|e| s.send(e)), 1);
        assert_eq!(o.send_pending(|e| s.send(e)), 0, "waits for the ack");
        o.ack(1);
        assert_eq!(waiters[0].try_recv(), Ok(Ok(())));
        assert_eq!(o.send_pending(|e| s.send(e)), 1);
        assert_eq!(s.ids, ["1", "2"]);
        // The server ends the stream again right after 2, alone in flight: 2 is poison.
        let p = o.stream_error("policy-violation").expect("taken out");
        assert_eq!(p.id, "2");
        assert!(matches!(waiters[1].try_recv(), Ok(Err(why)) if why.contains("policy-violation")));
        assert_eq!(o.depth(), 3);
        // The rest is delivered.
        o.restart(None);
        let mut s = Stream::at(0);
        assert_eq!(o.send_pending(|e| s.send(e)), 1);
        o.ack(1);
        assert_eq!(o.send_pending(|e| s.send(e)), 1);
        o.ack(2);
        // Suspicion is over: what follows goes out at once again.
        for n in 6..=7 {
            o.push(&msg(n), false).unwrap();
        }
        assert_eq!(o.send_pending(|e| s.send(e)), 3);
        assert_eq!(s.ids, ["3", "4", "5", "6", "7"]);
    }

    #[test]
    fn stream_errors_about_the_server_never_take_a_stanza_out() {
        let o = Outbox::new(limits(4));
        o.push(&msg(1), false).unwrap();
        for _ in 0..3 {
            o.restart(None);
            let mut s = Stream::at(0);
            o.send_pending(|e| s.send(e));
            assert_eq!(o.stream_error("system-shutdown"), None);
            assert_eq!(o.stream_error("conflict"), None);
        }
        assert_eq!(o.depth(), 1);
    }

    #[test]
    fn a_stream_error_with_nothing_in_flight_blames_no_stanza() {
        let o = Outbox::new(limits(4));
        o.push(&msg(1), false).unwrap();
        for _ in 0..3 {
            o.restart(None);
            assert_eq!(o.stream_error("policy-violation"), None);
        }
        assert_eq!(o.depth(), 1);
    }
}
