//! The bot's roster (RFC 6121 §2), sans-I/O: requested once the stream is online, kept
//! current by the server's roster pushes, and bounded.
//!
//! The roster is only read here: contacts come and go through subscription presences,
//! which the server turns into roster pushes. Nothing here approves anyone.

use super::jid::{BareJid, Jid};
use super::stanza::{self, IqType, NS_CLIENT};
use super::xml::Element;

/// The roster namespace.
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// Most contacts tracked; a larger roster is tracked in part (and said so once).
pub const MAX_ROSTER_ITEMS: usize = 2048;

/// The subscription state of a contact (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// Neither way.
    None,
    /// The bot sees the contact's presence.
    To,
    /// The contact sees the bot's presence.
    From,
    /// Both ways.
    Both,
}

impl Subscription {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("to") => Self::To,
            Some("from") => Self::From,
            Some("both") => Self::Both,
            _ => Self::None,
        }
    }

    /// Whether the bot is subscribed to the contact's presence.
    pub fn to_contact(self) -> bool {
        matches!(self, Self::To | Self::Both)
    }
}

/// What a roster iq meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The roster arrived with this many contacts (`true`: more than are tracked).
    Loaded(usize, bool),
    /// The server refused the roster request (the error condition).
    Failed(String),
    /// A roster push, applied; send this answer.
    Answer(Element),
}

/// The contacts, and the roster request in flight.
#[derive(Debug, Default)]
pub struct Roster {
    items: Vec<(BareJid, Subscription)>,
    pending: Option<String>,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The roster get for a new stream, with id `id`.
    pub fn request(&mut self, id: &str) -> Element {
        self.pending = Some(id.to_string());
        stanza::iq(IqType::Get, None, id, Element::new("query", NS_ROSTER))
    }

    /// A contact's subscription, if it is on the roster.
    pub fn get(&self, jid: &BareJid) -> Option<Subscription> {
        self.items.iter().find(|(j, _)| j == jid).map(|(_, s)| *s)
    }

    /// Handle `iq` if it is the answer to our request or a roster push; `None` if it is
    /// neither. `own` is the bot's bare JID: only answers and pushes from it (or from no
    /// one, i.e. the server) count (RFC 6121 §2.1.6): anyone else could guess the id of
    /// our request and answer it with a roster of their choosing.
    pub fn handle(&mut self, iq: &Element, own: &BareJid) -> Option<Outcome> {
        if iq.name() != "iq" || iq.ns() != NS_CLIENT {
            return None;
        }
        let trusted = match iq.get_attr("from").map(Jid::parse) {
            None => true,
            Some(Ok(from)) => from == *own.as_jid(),
            Some(Err(_)) => false,
        };
        let kind = stanza::iq_type(iq);
        if kind.is_some_and(IqType::is_response)
            && trusted
            && self.pending.is_some()
            && iq.get_attr("id") == self.pending.as_deref()
        {
            self.pending = None;
            if kind == Some(IqType::Error) {
                let condition = iq
                    .get_child("error", NS_CLIENT)
                    .and_then(|e| e.children().next())
                    .map_or("unknown error", |c| c.name());
                return Some(Outcome::Failed(condition.to_string()));
            }
            self.items.clear();
            let mut total = 0;
            if let Some(q) = iq.get_child("query", NS_ROSTER) {
                for item in q.children() {
                    total += usize::from(self.apply(item));
                }
            }
            return Some(Outcome::Loaded(total, total > self.items.len()));
        }
        let query = iq.get_child("query", NS_ROSTER)?;
        if kind != Some(IqType::Set) {
            return None;
        }
        if !trusted {
            return Some(Outcome::Answer(stanza::error_reply(
                iq,
                "cancel",
                "service-unavailable",
            )));
        }
        for item in query.children() {
            self.apply(item);
        }
        Some(Outcome::Answer(stanza::iq_result(iq)))
    }

    /// Apply one `<item/>`; `true` if it names a contact (tracked or not).
    fn apply(&mut self, item: &Element) -> bool {
        if !item.is("item", NS_ROSTER) {
            return false;
        }
        let Some(Ok(jid)) = item.get_attr("jid").map(BareJid::parse) else {
            return false;
        };
        let at = self.items.iter().position(|(j, _)| *j == jid);
        match (item.get_attr("subscription"), at) {
            (Some("remove"), Some(i)) => {
                self.items.swap_remove(i);
            }
            (Some("remove"), None) => {}
            (sub, Some(i)) => self.items[i].1 = Subscription::parse(sub),
            (sub, None) if self.items.len() < MAX_ROSTER_ITEMS => {
                self.items.push((jid, Subscription::parse(sub)));
            }
            (_, None) => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::xml::parse_document;

    fn el(s: &str) -> Element {
        parse_document(s.as_bytes(), 1 << 20).unwrap()
    }

    #[test]
    fn the_roster_loads_our_result_and_pushes_and_ignores_spoofed_ones() {
        let own = BareJid::parse("bot@x").unwrap();
        let mut r = Roster::new();
        let get = r.request("r1");
        assert_eq!(get.get_attr("type"), Some("get"));
        assert!(get.get_child("query", NS_ROSTER).is_some());
        let other_result = el("<iq xmlns='jabber:client' type='result' id='zz'/>");
        assert_eq!(r.handle(&other_result, &own), None, "not ours");
        for stranger in ["eve@x", "bot@x/other", "x"] {
            let forged = el(&format!(
                "<iq xmlns='jabber:client' type='result' id='r1' from='{stranger}'>\
                 <query xmlns='jabber:iq:roster'><item jid='eve@x' subscription='both'/>\
                 </query></iq>"
            ));
            assert_eq!(r.handle(&forged, &own), None, "a result from {stranger}");
        }
        let result = el("<iq xmlns='jabber:client' type='result' id='r1'>\
             <query xmlns='jabber:iq:roster'>\
             <item jid='Alice@x' subscription='both' name='A'><group>g</group></item>\
             <item jid='bob@x' subscription='from'/><item jid='carol@x'/>\
             <item jid='bad@'/></query></iq>");
        assert_eq!(r.handle(&result, &own), Some(Outcome::Loaded(3, false)));
        let alice = BareJid::parse("alice@x").unwrap();
        assert_eq!(r.get(&alice), Some(Subscription::Both));
        assert!(r.get(&alice).unwrap().to_contact());
        assert_eq!(
            r.get(&BareJid::parse("carol@x").unwrap()),
            Some(Subscription::None)
        );
        assert_eq!(r.handle(&result, &own), None, "answered once");

        let push = el("<iq xmlns='jabber:client' type='set' id='p1' from='bot@x'>\
             <query xmlns='jabber:iq:roster'><item jid='dave@x' subscription='to'/></query></iq>");
        let Some(Outcome::Answer(a)) = r.handle(&push, &own) else {
            panic!("a push is answered");
        };
        assert_eq!(a.get_attr("type"), Some("result"));
        assert_eq!(a.get_attr("id"), Some("p1"));
        assert_eq!(
            r.get(&BareJid::parse("dave@x").unwrap()),
            Some(Subscription::To)
        );
        let remove = el("<iq xmlns='jabber:client' type='set' id='p2'>\
             <query xmlns='jabber:iq:roster'><item jid='alice@x' subscription='remove'/>\
             </query></iq>");
        assert!(matches!(r.handle(&remove, &own), Some(Outcome::Answer(_))));
        assert_eq!(r.get(&alice), None);
        assert_eq!(r.items.len(), 3);

        let spoofed = el(
            "<iq xmlns='jabber:client' type='set' id='p3' from='eve@x/r'>\
             <query xmlns='jabber:iq:roster'><item jid='eve@x' subscription='both'/>\
             </query></iq>",
        );
        let Some(Outcome::Answer(a)) = r.handle(&spoofed, &own) else {
            panic!("a spoofed push is refused");
        };
        assert_eq!(a.get_attr("type"), Some("error"));
        assert_eq!(r.get(&BareJid::parse("eve@x").unwrap()), None);
    }

    #[test]
    fn a_refused_request_fails_and_a_long_roster_is_cut_at_the_bound() {
        let own = BareJid::parse("bot@x").unwrap();
        let mut r = Roster::new();
        r.request("r1");
        let err = el(
            "<iq xmlns='jabber:client' type='error' id='r1'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        );
        assert_eq!(
            r.handle(&err, &own),
            Some(Outcome::Failed("service-unavailable".into()))
        );
        r.request("r2");
        let mut xml = String::from(
            "<iq xmlns='jabber:client' type='result' id='r2'><query xmlns='jabber:iq:roster'>",
        );
        for i in 0..MAX_ROSTER_ITEMS + 5 {
            xml.push_str(&format!("<item jid='u{i}@x' subscription='both'/>"));
        }
        xml.push_str("</query></iq>");
        assert_eq!(
            r.handle(&el(&xml), &own),
            Some(Outcome::Loaded(MAX_ROSTER_ITEMS + 5, true))
        );
        assert_eq!(r.items.len(), MAX_ROSTER_ITEMS);
    }
}
