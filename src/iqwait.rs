//! iq requests sent over `/rest` that wait for their reply: a set with a fixed capacity
//! (`rest.max_waiting`), matched by id and sender as RFC 6120 §8.2.3 pairs them.
//!
//! An entry lives exactly as long as its HTTP request waits: [`Waiting`] removes it when
//! dropped (reply taken, timeout, client gone), so a reply that comes too late finds nothing
//! and the set never holds more than its capacity. The daemon runs on one thread, so the set
//! sits in a `RefCell`; no borrow is held across an `.await`.

use crate::xmpp::jid::{BareJid, Jid};
use crate::xmpp::stanza::{self, IqType};
use crate::xmpp::xml::Element;
use smol::channel::{self, Receiver, Sender};
use std::cell::RefCell;
use std::fmt;

/// Why an iq cannot wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// As many iqs wait as `rest.max_waiting` allows.
    Full,
    /// An iq with the same id to the same address is already waiting.
    Duplicate,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("too many iq requests are waiting for replies"),
            Self::Duplicate => f.write_str("an iq with this id to this address is already waiting"),
        }
    }
}

impl std::error::Error for WaitError {}

#[derive(Debug)]
struct Entry {
    id: String,
    from: Jid,
    tx: Sender<Element>,
}

/// The iqs waiting for replies.
#[derive(Debug)]
pub struct IqWaiters {
    entries: RefCell<Vec<Entry>>,
    capacity: usize,
}

/// One waiting iq; dropping it gives up the wait.
#[derive(Debug)]
pub struct Waiting<'a> {
    set: &'a IqWaiters,
    id: String,
    from: Jid,
    rx: Receiver<Element>,
}

impl IqWaiters {
    /// An empty set for at most `capacity` iqs.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RefCell::new(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    /// How many iqs wait.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait for the reply to iq `id` sent to `from` (the reply comes from the address the
    /// request went to).
    pub fn wait(&self, id: &str, from: Jid) -> Result<Waiting<'_>, WaitError> {
        let mut entries = self.entries.borrow_mut();
        if entries.iter().any(|e| e.id == id && e.from == from) {
            return Err(WaitError::Duplicate);
        }
        if entries.len() >= self.capacity {
            return Err(WaitError::Full);
        }
        let (tx, rx) = channel::bounded(1);
        entries.push(Entry {
            id: id.to_string(),
            from: from.clone(),
            tx,
        });
        Ok(Waiting {
            set: self,
            id: id.to_string(),
            from,
            rx,
        })
    }

    /// Hand an inbound iq result or error to its waiter. `own` is the bot's bare JID, which
    /// a reply without `from` comes from (RFC 6120 §8.1.2.1). Returns whether it was taken.
    pub fn complete(&self, reply: &Element, own: &BareJid) -> bool {
        if reply.name() != "iq" || !stanza::iq_type(reply).is_some_and(IqType::is_response) {
            return false;
        }
        let Some(id) = reply.get_attr("id") else {
            return false;
        };
        let from = match reply.get_attr("from") {
            None => own.as_jid().clone(),
            Some(f) => match Jid::parse(f) {
                Ok(j) => j,
                Err(_) => return false,
            },
        };
        let mut entries = self.entries.borrow_mut();
        let Some(i) = entries.iter().position(|e| e.id == id && e.from == from) else {
            return false;
        };
        let entry = entries.swap_remove(i);
        // The receiver is alive while the entry exists (its drop removes the entry).
        entry.tx.try_send(reply.clone()).is_ok()
    }
}

impl Waiting<'_> {
    /// The reply, once it came.
    pub async fn reply(&self) -> Option<Element> {
        self.rx.recv().await.ok()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.set
            .entries
            .borrow_mut()
            .retain(|e| !(e.id == self.id && e.from == self.from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::xml::parse_document;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn el(s: &str) -> Element {
        parse_document(s.as_bytes(), 4096).unwrap()
    }

    #[test]
    fn replies_are_matched_by_id_and_sender() {
        let own = BareJid::parse("bot@example.org").unwrap();
        let set = IqWaiters::new(4);
        let w = set.wait("q1", jid("example.org")).unwrap();
        // Wrong id, wrong sender, not a reply: not taken.
        assert!(!set.complete(&el("<iq type='result' id='q2' from='example.org'/>"), &own));
        assert!(!set.complete(&el("<iq type='result' id='q1' from='other.org'/>"), &own));
        assert!(!set.complete(&el("<iq type='get' id='q1' from='example.org'/>"), &own));
        assert!(!set.complete(&el("<message id='q1' from='example.org'/>"), &own));
        assert!(set.complete(&el("<iq type='error' id='q1' from='example.org'/>"), &own));
        let got = smol::block_on(w.reply()).unwrap();
        assert_eq!(got.get_attr("type"), Some("error"));
        assert!(set.is_empty(), "a taken reply frees its slot");
        drop(w);
        assert!(!set.complete(&el("<iq type='result' id='q1' from='example.org'/>"), &own));
    }

    #[test]
    fn a_reply_without_from_comes_from_the_own_account() {
        let own = BareJid::parse("bot@example.org").unwrap();
        let set = IqWaiters::new(1);
        let w = set.wait("r", own.clone().into()).unwrap();
        assert!(set.complete(&el("<iq type='result' id='r'/>"), &own));
        assert!(smol::block_on(w.reply()).is_some());
    }

    #[test]
    fn the_set_is_bounded_and_a_dropped_wait_frees_its_slot() {
        let set = IqWaiters::new(2);
        let a = set.wait("a", jid("x.org")).unwrap();
        assert_eq!(
            set.wait("a", jid("x.org")).unwrap_err(),
            WaitError::Duplicate
        );
        let _b = set.wait("a", jid("y.org")).unwrap();
        assert_eq!(set.wait("c", jid("x.org")).unwrap_err(), WaitError::Full);
        drop(a);
        assert_eq!(set.len(), 1);
        let _c = set.wait("c", jid("x.org")).unwrap();
        // A late reply to the dropped wait is not taken.
        assert!(!set.complete(
            &el("<iq type='result' id='a' from='x.org'/>"),
            &BareJid::parse("bot@x.org").unwrap()
        ));
    }
}
