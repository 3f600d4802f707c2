//! Stanza builders and the namespaces of the protocols xrelay speaks.
//!
//! Every stanza xrelay sends is an [`Element`] built here and serialized by the XML layer,
//! which escapes all text: no caller can put markup on the stream.

use super::jid::{BareJid, Jid};
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
            Self::Chat => "chat",
            Self::Normal => "normal",
            Self::Headline => "headline",
            Self::Groupchat => "groupchat",
        }
    }

    /// Parse an attribute or field value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "chat" => Some(Self::Chat),
            "normal" => Some(Self::Normal),
            "headline" => Some(Self::Headline),
            "groupchat" => Some(Self::Groupchat),
            _ => None,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` of an iq (RFC 6120 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqType {
    /// A request for information.
    Get,
    /// A request that changes something.
    Set,
    /// A successful answer.
    Result,
    /// A failed answer.
    Error,
}

impl IqType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Result => "result",
            Self::Error => "error",
        }
    }

    /// Parse an attribute value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "get" => Some(Self::Get),
            "set" => Some(Self::Set),
            "result" => Some(Self::Result),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    /// Whether it asks for an answer (get or set), which RFC 6120 §8.2.3 requires.
    pub fn is_request(self) -> bool {
        matches!(self, Self::Get | Self::Set)
    }

    /// Whether it answers a request (result or error).
    pub fn is_response(self) -> bool {
        !self.is_request()
    }
}

/// The `type` of a presence (RFC 6121 §4.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceType {
    /// No `type` attribute: the sender is online.
    Available,
    /// The sender went offline (or left a room).
    Unavailable,
    /// A request to subscribe to the recipient's presence.
    Subscribe,
    /// A subscription request was approved.
    Subscribed,
    /// The sender unsubscribes from the recipient's presence.
    Unsubscribe,
    /// A subscription was denied or cancelled.
    Unsubscribed,
    /// A request for the recipient's current presence (sent by servers).
    Probe,
    /// A presence failed.
    Error,
}

impl PresenceType {
    /// The attribute value; `available`, which has none, as mod_rest writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Unavailable => "unavailable",
            Self::Subscribe => "subscribe",
            Self::Subscribed => "subscribed",
            Self::Unsubscribe => "unsubscribe",
            Self::Unsubscribed => "unsubscribed",
            Self::Probe => "probe",
            Self::Error => "error",
        }
    }

    /// Parse an attribute value. `available` is not one: only a missing attribute means it.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unavailable" => Some(Self::Unavailable),
            "subscribe" => Some(Self::Subscribe),
            "subscribed" => Some(Self::Subscribed),
            "unsubscribe" => Some(Self::Unsubscribe),
            "unsubscribed" => Some(Self::Unsubscribed),
            "probe" => Some(Self::Probe),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    /// Whether it manages a subscription (RFC 6121 §3).
    pub fn is_subscription(self) -> bool {
        matches!(
            self,
            Self::Subscribe | Self::Subscribed | Self::Unsubscribe | Self::Unsubscribed
        )
    }
}

impl fmt::Display for PresenceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `type` of `el` read as an iq's; `None` when it is missing or not one of the four.
pub fn iq_type(el: &Element) -> Option<IqType> {
    el.get_attr("type").and_then(IqType::parse)
}

/// The `type` of `el` read as a presence's: [`PresenceType::Available`] when there is
/// none; `None` for a value RFC 6121 does not define.
pub fn presence_type(el: &Element) -> Option<PresenceType> {
    match el.get_attr("type") {
        None => Some(PresenceType::Available),
        Some(t) => PresenceType::parse(t),
    }
}

/// The `type` of `el` read as a message's: [`MessageType::Normal`] when there is none
/// (RFC 6121 §5.2.2); `None` for `error` (see [`is_error`]) and for values RFC 6121 does
/// not define.
pub fn message_type(el: &Element) -> Option<MessageType> {
    el.get_attr("type")
        .map_or(Some(MessageType::Normal), MessageType::parse)
}

/// Whether `el`, of any kind, is an error stanza (RFC 6120 §8.3).
pub fn is_error(el: &Element) -> bool {
    el.get_attr("type") == Some("error")
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
pub fn presence(to: &BareJid, kind: PresenceType) -> Element {
    let p = Element::new("presence", NS_CLIENT).attr("to", to.as_str());
    match kind {
        PresenceType::Available => p,
        other => p.attr("type", other.as_str()),
    }
}

/// An `<iq>` of type get or set with one payload element.
pub fn iq(kind: IqType, to: Option<&str>, id: &str, payload: Element) -> Element {
    let mut iq = Element::new("iq", NS_CLIENT)
        .attr("type", kind.as_str())
        .attr("id", id);
    if let Some(to) = to {
        iq.set_attr("to", to);
    }
    iq.child(payload)
}

/// An XEP-0199 ping.
pub fn ping(to: Option<&str>, id: &str) -> Element {
    iq(IqType::Get, to, id, Element::new("ping", NS_PING))
}

/// The empty result answering an iq.
pub fn iq_result(request: &Element) -> Element {
    reply_to(request, "iq").attr("type", IqType::Result.as_str())
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
    pub fn new() -> Self {
        let mut bytes = [0u8; 6];
        // A failing OS random source only weakens uniqueness across restarts; ids stay
        // unique within the process thanks to the counter.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        let prefix = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self { prefix, next: 0 }
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
        Self::new()
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

    fn with_type(name: &str, kind: Option<&str>) -> Element {
        let el = Element::new(name, NS_CLIENT);
        match kind {
            Some(k) => el.attr("type", k),
            None => el,
        }
    }

    #[test]
    fn iq_types_round_trip() {
        for t in [IqType::Get, IqType::Set, IqType::Result, IqType::Error] {
            assert_eq!(IqType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn iq_without_a_type_or_with_an_unknown_one_has_none() {
        for kind in [None, Some(""), Some("GET"), Some("chat"), Some("available")] {
            assert_eq!(iq_type(&with_type("iq", kind)), None, "{kind:?}");
        }
        assert_eq!(iq_type(&with_type("iq", Some("set"))), Some(IqType::Set));
    }

    #[test]
    fn get_and_set_are_requests_and_result_and_error_are_responses() {
        assert!(IqType::Get.is_request() && IqType::Set.is_request());
        assert!(IqType::Result.is_response() && IqType::Error.is_response());
        assert!(!IqType::Get.is_response() && !IqType::Error.is_request());
    }

    #[test]
    fn presence_types_round_trip_but_available_is_never_a_value() {
        for t in [
            PresenceType::Unavailable,
            PresenceType::Subscribe,
            PresenceType::Subscribed,
            PresenceType::Unsubscribe,
            PresenceType::Unsubscribed,
            PresenceType::Probe,
            PresenceType::Error,
        ] {
            assert_eq!(PresenceType::parse(t.as_str()), Some(t));
        }
        assert_eq!(PresenceType::parse("available"), None);
    }

    #[test]
    fn presence_without_a_type_is_available_and_an_unknown_type_is_none() {
        assert_eq!(
            presence_type(&with_type("presence", None)),
            Some(PresenceType::Available)
        );
        for kind in ["available", "", "Unavailable", "groupchat"] {
            assert_eq!(presence_type(&with_type("presence", Some(kind))), None);
        }
    }

    #[test]
    fn only_the_four_subscription_presences_manage_subscriptions() {
        let managing = [
            PresenceType::Subscribe,
            PresenceType::Subscribed,
            PresenceType::Unsubscribe,
            PresenceType::Unsubscribed,
        ];
        for t in managing {
            assert!(t.is_subscription(), "{t}");
        }
        for t in [
            PresenceType::Available,
            PresenceType::Unavailable,
            PresenceType::Probe,
            PresenceType::Error,
        ] {
            assert!(!t.is_subscription(), "{t}");
        }
    }

    #[test]
    fn message_without_a_type_is_normal_and_error_or_an_unknown_type_is_none() {
        assert_eq!(
            message_type(&with_type("message", None)),
            Some(MessageType::Normal)
        );
        assert_eq!(
            message_type(&with_type("message", Some("groupchat"))),
            Some(MessageType::Groupchat)
        );
        for kind in ["error", "", "Chat", "get"] {
            assert_eq!(message_type(&with_type("message", Some(kind))), None);
        }
    }

    #[test]
    fn any_kind_of_stanza_with_type_error_is_an_error() {
        for name in ["message", "presence", "iq"] {
            assert!(is_error(&with_type(name, Some("error"))));
            assert!(!is_error(&with_type(name, None)));
            assert!(!is_error(&with_type(name, Some("Error"))));
        }
    }

    #[test]
    fn presence_builder_writes_the_type_and_none_for_available() {
        let to = BareJid::parse("a@b").unwrap();
        let p = presence(&to, PresenceType::Subscribed);
        assert_eq!(p.get_attr("type"), Some("subscribed"));
        assert_eq!(
            presence(&to, PresenceType::Available).get_attr("type"),
            None
        );
    }
}
