//! Stanza builders and the namespaces of the protocols xrelay speaks.
//!
//! Every stanza xrelay sends is an [`Element`] built here and serialized by the XML layer,
//! which escapes all text: no caller can put markup on the stream.

use super::jid::Jid;
use super::xml::Element;
use std::fmt;

/// The default namespace of a client stream.
pub const NS_CLIENT: &str = "jabber:client";
/// The stream namespace.
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// STARTTLS.
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL.
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding.
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Legacy session establishment (RFC 3921), still offered by some servers.
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Stream error conditions.
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions.
pub const NS_STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// XEP-0198 stream management.
pub const NS_SM: &str = "urn:xmpp:sm:3";
/// XEP-0199 ping.
pub const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0045 multi-user chat.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";

/// The `type` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// One-to-one chat (the default for posted messages).
    Chat,
    /// A standalone message.
    Normal,
    /// An alert that is not stored offline.
    Headline,
    /// A message to a MUC room.
    Groupchat,
}

impl MessageType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Chat => "chat",
            MessageType::Normal => "normal",
            MessageType::Headline => "headline",
            MessageType::Groupchat => "groupchat",
        }
    }

    /// Parse an attribute or field value.
    pub fn parse(s: &str) -> Option<MessageType> {
        match s {
            "chat" => Some(MessageType::Chat),
            "normal" => Some(MessageType::Normal),
            "headline" => Some(MessageType::Headline),
            "groupchat" => Some(MessageType::Groupchat),
            _ => None,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `<message>` with a body and an optional subject.
pub fn message(
    to: &Jid,
    kind: MessageType,
    id: &str,
    body: &str,
    subject: Option<&str>,
) -> Element {
    let mut m = Element::new("message", NS_CLIENT)
        .attr("to", to.as_str())
        .attr("type", kind.as_str())
        .attr("id", id);
    if let Some(s) = subject {
        m.push_child(Element::new("subject", NS_CLIENT).text(s));
    }
    m.child(Element::new("body", NS_CLIENT).text(body))
}

/// A `<presence>` of `kind` (`subscribed`, `subscribe`, `unsubscribed`, ...) to `to`.
pub fn presence(to: &Jid, kind: &str) -> Element {
    Element::new("presence", NS_CLIENT)
        .attr("to", to.as_str())
        .attr("type", kind)
}

/// An `<iq>` of type get or set with one payload element.
pub fn iq(kind: &str, to: Option<&str>, id: &str, payload: Element) -> Element {
    let mut iq = Element::new("iq", NS_CLIENT)
        .attr("type", kind)
        .attr("id", id);
    if let Some(to) = to {
        iq.set_attr("to", to);
    }
    iq.child(payload)
}

/// An XEP-0199 ping.
pub fn ping(to: Option<&str>, id: &str) -> Element {
    iq("get", to, id, Element::new("ping", NS_PING))
}

/// The empty result answering an iq.
pub fn iq_result(request: &Element) -> Element {
    reply_to(request, "iq").attr("type", "result")
}

/// A stanza error answering `request` (RFC 6120 §8.3): same kind and id, to/from swapped.
pub fn error_reply(request: &Element, error_type: &str, condition: &str) -> Element {
    reply_to(request, request.name())
        .attr("type", "error")
        .child(error(error_type, condition, None))
}

/// [`error_reply`] with a human-readable `<text>`.
pub fn error_reply_text(
    request: &Element,
    error_type: &str,
    condition: &str,
    text: &str,
) -> Element {
    reply_to(request, request.name())
        .attr("type", "error")
        .child(error(error_type, condition, Some(text)))
}

fn error(error_type: &str, condition: &str, text: Option<&str>) -> Element {
    let mut e = Element::new("error", NS_CLIENT)
        .attr("type", error_type)
        .child(Element::new(condition, NS_STANZA_ERRORS));
    if let Some(t) = text {
        e.push_child(Element::new("text", NS_STANZA_ERRORS).text(t));
    }
    e
}

fn reply_to(request: &Element, name: &str) -> Element {
    let mut r = Element::new(name, NS_CLIENT);
    if let Some(from) = request.get_attr("from") {
        r.set_attr("to", from);
    }
    if let Some(id) = request.get_attr("id") {
        r.set_attr("id", id);
    }
    r
}

/// Unique stanza ids: a random per-process prefix, so ids never repeat across restarts,
/// and a counter.
#[derive(Debug)]
pub struct IdGen {
    prefix: String,
    next: u64,
}

impl IdGen {
    /// A generator with a fresh random prefix.
    pub fn new() -> IdGen {
        let mut bytes = [0u8; 6];
        // A failing OS random source only weakens uniqueness across restarts; ids stay
        // unique within the process thanks to the counter.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        let prefix = bytes.iter().map(|b| format!("{b:02x}")).collect();
        IdGen { prefix, next: 0 }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.prefix, self.next)
    }

    /// Whether this generator made `id` (so an error stanza carrying it answers one of ours).
    pub fn owns(&self, id: &str) -> bool {
        id.strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| n.parse::<u64>().is_ok())
    }
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(e: &Element) -> String {
        String::from_utf8(e.to_bytes(NS_CLIENT)).unwrap()
    }

    #[test]
    fn message_text_is_escaped() {
        let to = Jid::parse("a@b").unwrap();
        let m = message(&to, MessageType::Chat, "1", "</body><evil/>&", Some("S<"));
        let s = xml(&m);
        let back = crate::xmpp::xml::parse_document(s.as_bytes(), 4096).unwrap();
        assert!(back.is("message", NS_CLIENT), "{s}");
        let children: Vec<&str> = back.children().map(Element::name).collect();
        assert_eq!(children, ["subject", "body"], "{s}");
        let text = |name| back.get_child(name, NS_CLIENT).map(Element::text_content);
        assert_eq!(text("body").as_deref(), Some("</body><evil/>&"), "{s}");
        assert_eq!(text("subject").as_deref(), Some("S<"), "{s}");
        // Inside the client stream the default namespace is not written again.
        assert!(!s.contains("xmlns"), "{s}");
    }

    #[test]
    fn replies_swap_addresses() {
        let req = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "q1")
            .attr("from", "x@y/z")
            .attr("to", "bot@y/r")
            .child(Element::new("query", "urn:x"));
        let r = iq_result(&req);
        assert_eq!(r.get_attr("to"), Some("x@y/z"));
        assert_eq!(r.get_attr("id"), Some("q1"));
        assert_eq!(r.get_attr("from"), None);
        let e = error_reply(&req, "cancel", "service-unavailable");
        assert_eq!(e.get_attr("type"), Some("error"));
        let err = e.get_child("error", NS_CLIENT).unwrap();
        assert_eq!(err.get_attr("type"), Some("cancel"));
        assert!(err
            .get_child("service-unavailable", NS_STANZA_ERRORS)
            .is_some());
    }

    #[test]
    fn ids_are_unique() {
        let mut g = IdGen::new();
        let a = g.next_id();
        assert_ne!(a, g.next_id());
        assert_ne!(IdGen::new().next_id(), a);
        assert!(g.owns(&a));
        assert!(!IdGen::new().owns(&a));
        assert!(!g.owns("x"));
    }

    #[test]
    fn message_types_round_trip() {
        for t in [
            MessageType::Chat,
            MessageType::Normal,
            MessageType::Headline,
            MessageType::Groupchat,
        ] {
            assert_eq!(MessageType::parse(t.as_str()), Some(t));
        }
        assert_eq!(MessageType::parse("error"), None);
    }
}
