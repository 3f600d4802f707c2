//! Who may use the bot through the webhook (`webhook.from`), and a bounded log throttle for
//! the refusals. Pure: the daemon says where a stanza comes from and whether the sender is a
//! contact; this decides. Which HTTP clients are served is decided in `clients`.

pub mod clients;

use crate::xmpp::jid::{BareJid, Jid};
use std::time::{Duration, Instant};

/// Senders whose refusals are remembered at once; beyond it further strangers are not
/// logged until entries expire.
pub const MAX_REFUSED_SENDERS: usize = 256;
/// A refused sender is logged at most once in this window.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// `webhook.from`: whose stanzas reach the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Contacts with a roster subscription `from` or `both` (they see the bot's presence,
    /// which the bot's owner approved, e.g. through an invite).
    Contacts,
    /// Any address on the network.
    Anyone,
    /// These bare JIDs, or every address of these domains.
    List(Vec<BareJid>),
}

impl Access {
    /// Parse one list entry: a bare JID (`alice@example.org`) or a domain (`example.org`).
    pub fn entry(s: &str) -> Result<BareJid, String> {
        BareJid::parse(s).map_err(|_| format!("{s:?} is not a bare JID or a domain"))
    }
}

/// Where a stanza comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A groupchat message in one of the configured rooms: the owner chose the rooms.
    RoomMessage,
    /// Any other stanza from an occupant of a configured room (a private message).
    RoomOccupant,
    /// Anyone else.
    Other,
}

/// Whether `from` may reach the webhook. `contact`: the roster says the sender has a
/// subscription `from` or `both`.
pub fn permits(access: &Access, from: &Jid, origin: Origin, contact: bool) -> bool {
    match (origin, access) {
        (Origin::RoomMessage, _) | (_, Access::Anyone) => true,
        (Origin::RoomOccupant, _) => false,
        (Origin::Other, Access::Contacts) => contact,
        (Origin::Other, Access::List(list)) => list.iter().any(|e| match e.local() {
            Some(_) => *e == from.bare(),
            None => e.domain() == from.domain(),
        }),
    }
}

/// Refused senders and when each was last logged, at most [`MAX_REFUSED_SENDERS`].
#[derive(Debug, Default)]
pub struct RefusalLog {
    seen: Vec<(String, Instant)>,
}

impl RefusalLog {
    /// Whether a refusal of `sender` at `now` is worth a log line: once per sender in
    /// [`REFUSAL_LOG_EVERY`].
    pub fn should_log(&mut self, sender: &str, now: Instant) -> bool {
        self.seen
            .retain(|(_, t)| now.saturating_duration_since(*t) < REFUSAL_LOG_EVERY);
        if self.seen.iter().any(|(s, _)| s == sender) || self.seen.len() >= MAX_REFUSED_SENDERS {
            return false;
        }
        self.seen.push((sender.to_string(), now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn bare(s: &str) -> BareJid {
        BareJid::parse(s).unwrap()
    }

    #[test]
    fn contacts_mode_admits_only_contacts() {
        let a = Access::Contacts;
        assert!(permits(&a, &jid("al@x.org/phone"), Origin::Other, true));
        assert!(!permits(&a, &jid("eve@x.org/phone"), Origin::Other, false));
    }

    #[test]
    fn room_messages_are_admitted_but_private_messages_from_occupants_are_not() {
        for a in [Access::Contacts, Access::List(vec![bare("x.org")])] {
            assert!(permits(
                &a,
                &jid("r@muc.x.org/eve"),
                Origin::RoomMessage,
                false
            ));
            assert!(!permits(
                &a,
                &jid("r@muc.x.org/eve"),
                Origin::RoomOccupant,
                true
            ));
        }
        assert!(permits(
            &Access::Anyone,
            &jid("r@muc.x.org/eve"),
            Origin::RoomOccupant,
            false
        ));
    }

    #[test]
    fn a_list_admits_its_jids_and_whole_domains() {
        let a = Access::List(vec![bare("al@x.org"), bare("corp.example")]);
        assert!(permits(&a, &jid("al@x.org/r"), Origin::Other, false));
        assert!(permits(
            &a,
            &jid("bob@corp.example/r"),
            Origin::Other,
            false
        ));
        assert!(!permits(&a, &jid("bob@x.org/r"), Origin::Other, true));
        assert!(!permits(
            &a,
            &jid("al@sub.corp.example"),
            Origin::Other,
            false
        ));
    }

    #[test]
    fn list_entries_must_be_bare() {
        assert!(Access::entry("al@x.org").is_ok());
        assert!(Access::entry("x.org").is_ok());
        assert!(Access::entry("al@x.org/r").is_err());
        assert!(Access::entry("").is_err());
    }

    #[test]
    fn a_refused_sender_is_logged_once_a_minute() {
        let mut l = RefusalLog::default();
        let t = Instant::now();
        assert!(l.should_log("eve@x", t));
        assert!(!l.should_log("eve@x", t + Duration::from_secs(59)));
        assert!(l.should_log("mallory@x", t));
        assert!(l.should_log("eve@x", t + REFUSAL_LOG_EVERY));
    }

    #[test]
    fn the_refusal_log_is_bounded() {
        let mut l = RefusalLog::default();
        let t = Instant::now();
        for i in 0..MAX_REFUSED_SENDERS {
            assert!(l.should_log(&format!("s{i}@x"), t));
        }
        assert!(!l.should_log("one-more@x", t));
        assert!(l.should_log("one-more@x", t + REFUSAL_LOG_EVERY));
    }
}
