//! The JSON form of stanzas that Prosody's mod_rest defined (`kind`, `type`, `to`, `from`,
//! `id`, `body`, `disco`, ...): webhook requests and replies and `/rest` bodies use it, so
//! scripts written for mod_rest work unchanged.
//!
//! Both directions are pure. JSON → stanza is strict: an unknown field, a field that does not
//! belong to the stanza's kind, or a value of the wrong shape is an error, never ignored,
//! because a silently dropped field is a message that says something else than intended.

use super::jid::Jid;
use super::stanza::{NS_CLIENT, NS_MUC, NS_PING, NS_STANZA_ERRORS};
use super::xml::{is_valid_name, Element};
use serde_json::{Map, Value};
use std::fmt;

/// XEP-0030 information queries.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 item queries.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0092 software version.
pub const NS_VERSION: &str = "jabber:iq:version";
/// XEP-0085 chat states.
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0066 out-of-band data in messages.
pub const NS_OOB: &str = "jabber:x:oob";
/// XEP-0172 user nickname.
pub const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// Most entries taken from a JSON list (features, identities, items).
pub const MAX_LIST: usize = 256;

/// The stanza kinds.
const KINDS: [&str; 3] = ["message", "presence", "iq"];

/// Why a JSON object is not a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// The JSON value is not an object.
    NotAnObject,
    /// A field mod_rest's mapping does not have.
    UnknownField(String),
    /// `kind` is not message, presence or iq.
    UnknownKind(String),
    /// `type` is not valid for the stanza's kind.
    BadType {
        /// The stanza kind.
        kind: &'static str,
        /// The given type.
        value: String,
    },
    /// A field that another kind of stanza carries.
    WrongKind {
        /// The field.
        field: &'static str,
        /// The stanza kind.
        kind: &'static str,
    },
    /// A field's value has the wrong shape; what was expected.
    BadValue {
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// `to` or `from` is not a valid JID.
    BadJid {
        /// `to` or `from`.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::NotAnObject => f.write_str("a stanza in JSON must be an object"),
            MapError::UnknownField(k) => write!(f, "unknown field {k:?}"),
            MapError::UnknownKind(k) => {
                write!(f, "unknown kind {k:?}; expected message, presence or iq")
            }
            MapError::BadType { kind, value } => write!(f, "{value:?} is not a type of {kind}"),
            MapError::WrongKind { field, kind } => {
                write!(f, "field {field:?} does not belong in a {kind}")
            }
            MapError::BadValue { field, expected } => {
                write!(f, "field {field:?} must be {expected}")
            }
            MapError::BadJid { field, reason } => write!(f, "field {field:?}: {reason}"),
        }
    }
}

impl std::error::Error for MapError {}

/// The JSON form of a stanza; `presence` without a type is `"available"`, `message`
/// without one `"normal"` (RFC 6121 defaults). Payloads the mapping does not know are left
/// out (the webhook adds the full XML beside them).
pub fn to_json(el: &Element) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), el.name().into());
    let kind = match (el.name(), el.get_attr("type")) {
        (_, Some(t)) => Some(t),
        ("presence", None) => Some("available"),
        ("message", None) => Some("normal"),
        _ => None,
    };
    if let Some(t) = kind {
        m.insert("type".into(), t.into());
    }
    for attr in ["to", "from", "id"] {
        if let Some(v) = el.get_attr(attr) {
            m.insert(attr.into(), v.into());
        }
    }
    if let Some(lang) = el.get_attr("xml:lang") {
        m.insert("lang".into(), lang.into());
    }
    for child in el.children() {
        let text = || Value::from(child.text_content());
        match (child.ns(), child.name()) {
            (NS_CLIENT, name @ ("body" | "subject" | "thread" | "show" | "status")) => {
                m.insert(name.into(), text());
            }
            (NS_CLIENT, "priority") => {
                let p = child.text_content();
                let v = p
                    .trim()
                    .parse::<i8>()
                    .map_or_else(|_| p.into(), Value::from);
                m.insert("priority".into(), v);
            }
            (NS_CLIENT, "error") => {
                m.insert("error".into(), error_json(child));
            }
            (NS_CHATSTATES, state) => {
                m.insert("state".into(), state.into());
            }
            (NS_NICK, "nick") => {
                m.insert("nick".into(), text());
            }
            (NS_OOB, "x") => {
                if let Some(url) = child.get_child("url", NS_OOB) {
                    m.insert("oob_url".into(), url.text_content().into());
                }
            }
            (NS_MUC, "x") => {
                m.insert("join".into(), true.into());
            }
            (NS_PING, "ping") => {
                m.insert("ping".into(), true.into());
            }
            (NS_DISCO_INFO, "query") => {
                m.insert("disco".into(), disco_json(child));
            }
            (NS_DISCO_ITEMS, "query") => {
                m.insert("items".into(), items_json(child));
            }
            (NS_VERSION, "query") => {
                m.insert("version".into(), version_json(child));
            }
            _ => {}
        }
    }
    m
}

/// An empty query maps to its node, or `true`.
fn empty_query(q: &Element) -> Option<Value> {
    if q.children().next().is_some() {
        return None;
    }
    Some(q.get_attr("node").map_or(Value::Bool(true), Value::from))
}

fn disco_json(q: &Element) -> Value {
    if let Some(v) = empty_query(q) {
        return v;
    }
    let mut identities = Vec::new();
    let mut features = Vec::new();
    for c in q.children() {
        match c.name() {
            "identity" => {
                if let (Some(category), Some(kind)) = (c.get_attr("category"), c.get_attr("type")) {
                    let mut id = Map::new();
                    id.insert("category".into(), category.into());
                    id.insert("type".into(), kind.into());
                    if let Some(name) = c.get_attr("name") {
                        id.insert("name".into(), name.into());
                    }
                    identities.push(Value::Object(id));
                }
            }
            "feature" => {
                if let Some(var) = c.get_attr("var") {
                    features.push(Value::from(var));
                }
            }
            _ => {}
        }
    }
    let mut m = Map::new();
    if let Some(node) = q.get_attr("node") {
        m.insert("node".into(), node.into());
    }
    m.insert("identities".into(), identities.into());
    m.insert("features".into(), features.into());
    Value::Object(m)
}

fn items_json(q: &Element) -> Value {
    if let Some(v) = empty_query(q) {
        return v;
    }
    let items: Vec<Value> = q
        .children()
        .filter(|c| c.name() == "item")
        .map(|c| {
            let mut it = Map::new();
            for a in ["jid", "node", "name"] {
                if let Some(v) = c.get_attr(a) {
                    it.insert(a.into(), v.into());
                }
            }
            Value::Object(it)
        })
        .collect();
    items.into()
}

fn version_json(q: &Element) -> Value {
    if q.children().next().is_none() {
        return true.into();
    }
    let mut m = Map::new();
    for f in ["name", "version", "os"] {
        if let Some(c) = q.get_child(f, NS_VERSION) {
            m.insert(f.into(), c.text_content().into());
        }
    }
    Value::Object(m)
}

fn error_json(e: &Element) -> Value {
    let mut m = Map::new();
    if let Some(t) = e.get_attr("type") {
        m.insert("type".into(), t.into());
    }
    for c in e.children().filter(|c| c.ns() == NS_STANZA_ERRORS) {
        if c.name() == "text" {
            m.insert("text".into(), c.text_content().into());
        } else {
            m.insert("condition".into(), c.name().into());
        }
    }
    Value::Object(m)
}

/// Which kinds may carry a field (`None`: every kind).
fn field_kinds(field: &str) -> Option<Option<&'static [&'static str]>> {
    const MESSAGE: &[&str] = &["message"];
    const PRESENCE: &[&str] = &["presence"];
    const IQ: &[&str] = &["iq"];
    Some(match field {
        "kind" | "type" | "to" | "from" | "id" | "lang" | "error" => None,
        "body" | "subject" | "thread" | "oob_url" | "state" => Some(MESSAGE),
        "nick" => Some(&["message", "presence"]),
        "show" | "status" | "priority" | "join" => Some(PRESENCE),
        "ping" | "disco" | "items" | "version" => Some(IQ),
        _ => return None,
    })
}

/// The kind a field implies when neither `kind` nor `type` says (mod_rest's rules).
fn implied_kind(field: &str) -> Option<&'static str> {
    match field {
        "body" | "subject" | "thread" | "state" | "oob_url" => Some("message"),
        "show" | "status" | "priority" | "join" => Some("presence"),
        "ping" | "disco" | "items" | "version" => Some("iq"),
        _ => None,
    }
}

fn kind_of_type(t: &str) -> Option<&'static str> {
    match t {
        "get" | "set" | "result" => Some("iq"),
        "normal" | "chat" | "headline" | "groupchat" => Some("message"),
        "available" | "unavailable" | "subscribe" | "subscribed" | "unsubscribe"
        | "unsubscribed" | "probe" => Some("presence"),
        _ => None,
    }
}

fn valid_type(kind: &str, t: &str) -> bool {
    t == "error" || kind_of_type(t) == Some(kind)
}

fn string<'a>(m: &'a Map<String, Value>, field: &'static str) -> Result<Option<&'a str>, MapError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(MapError::BadValue {
            field,
            expected: "a string",
        }),
    }
}

fn bad(field: &'static str, expected: &'static str) -> MapError {
    MapError::BadValue { field, expected }
}

/// The stanza a JSON object describes (mod_rest's mapping).
///
/// The kind comes from `kind`, else from `type`, else from the fields present, else it is a
/// message; an iq without `type` is a `get`; `"available"` presence has no type attribute.
pub fn from_json(v: &Value) -> Result<Element, MapError> {
    let Value::Object(m) = v else {
        return Err(MapError::NotAnObject);
    };
    for k in m.keys() {
        if field_kinds(k).is_none() {
            return Err(MapError::UnknownField(k.clone()));
        }
    }
    let t = string(m, "type")?;
    let kind: &'static str = match string(m, "kind")? {
        Some(k) => KINDS
            .into_iter()
            .find(|known| *known == k)
            .ok_or_else(|| MapError::UnknownKind(k.to_string()))?,
        None => t
            .and_then(kind_of_type)
            .or_else(|| m.keys().find_map(|k| implied_kind(k)))
            .unwrap_or("message"),
    };
    for k in m.keys() {
        if let Some(Some(kinds)) = field_kinds(k) {
            if !kinds.contains(&kind) {
                let field = FIELDS.iter().copied().find(|f| f == k).unwrap_or("?");
                return Err(MapError::WrongKind { field, kind });
            }
        }
    }
    let mut el = Element::new(kind, NS_CLIENT);
    match (kind, t) {
        ("presence", Some("available")) => {}
        (_, Some(t)) if valid_type(kind, t) => el.set_attr("type", t),
        (_, Some(t)) => {
            return Err(MapError::BadType {
                kind,
                value: t.to_string(),
            })
        }
        ("iq", None) => el.set_attr("type", "get"),
        _ => {}
    }
    for field in ["to", "from"] {
        if let Some(j) = string(m, field)? {
            let jid = Jid::parse(j).map_err(|e| MapError::BadJid {
                field,
                reason: e.to_string(),
            })?;
            el.set_attr(field, jid.as_str());
        }
    }
    if let Some(id) = string(m, "id")? {
        el.set_attr("id", id);
    }
    if let Some(lang) = string(m, "lang")? {
        el.set_attr("xml:lang", lang);
    }
    for field in ["subject", "body", "thread", "show", "status"] {
        if let Some(text) = string(m, field)? {
            if field == "show" && !matches!(text, "away" | "chat" | "dnd" | "xa") {
                return Err(bad("show", "one of away, chat, dnd, xa"));
            }
            el.push_child(Element::new(field, NS_CLIENT).text(text));
        }
    }
    match m.get("priority") {
        None | Some(Value::Null) => {}
        Some(p) => {
            let n = p
                .as_i64()
                .or_else(|| p.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n| (-128..=127).contains(n))
                .ok_or_else(|| bad("priority", "an integer from -128 to 127"))?;
            el.push_child(Element::new("priority", NS_CLIENT).text(&n.to_string()));
        }
    }
    if let Some(state) = string(m, "state")? {
        if !matches!(
            state,
            "active" | "inactive" | "gone" | "composing" | "paused"
        ) {
            return Err(bad(
                "state",
                "one of active, inactive, gone, composing, paused",
            ));
        }
        el.push_child(Element::new(state, NS_CHATSTATES));
    }
    if let Some(nick) = string(m, "nick")? {
        el.push_child(Element::new("nick", NS_NICK).text(nick));
    }
    if let Some(url) = string(m, "oob_url")? {
        el.push_child(Element::new("x", NS_OOB).child(Element::new("url", NS_OOB).text(url)));
    }
    if flag(m, "join")? {
        el.push_child(Element::new("x", NS_MUC));
    }
    if flag(m, "ping")? {
        el.push_child(Element::new("ping", NS_PING));
    }
    if let Some(d) = m.get("disco") {
        el.push_child(disco_from(d)?);
    }
    if let Some(i) = m.get("items") {
        el.push_child(items_from(i)?);
    }
    if let Some(v) = m.get("version") {
        el.push_child(version_from(v)?);
    }
    if let Some(e) = m.get("error") {
        el.push_child(error_from(e)?);
    }
    Ok(el)
}

/// Every known field, for naming one in errors with a static string.
const FIELDS: [&str; 21] = [
    "kind", "type", "to", "from", "id", "lang", "error", "body", "subject", "thread", "oob_url",
    "state", "nick", "show", "status", "priority", "join", "ping", "disco", "items", "version",
];

fn flag(m: &Map<String, Value>, field: &'static str) -> Result<bool, MapError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(field, "true or false")),
    }
}

/// `true`, a node name, or `None` for an object.
fn query_shorthand(v: &Value, ns: &str, field: &'static str) -> Result<Option<Element>, MapError> {
    match v {
        Value::Bool(true) => Ok(Some(Element::new("query", ns))),
        Value::String(node) => Ok(Some(Element::new("query", ns).attr("node", node))),
        Value::Object(_) | Value::Array(_) => Ok(None),
        _ => Err(bad(field, "true, a node name, an object or a list")),
    }
}

fn opt_str<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a str>, MapError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "an object of strings")),
    }
}

fn list<'a>(v: Option<&'a Value>, field: &'static str) -> Result<&'a [Value], MapError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) if a.len() <= MAX_LIST => Ok(a),
        Some(_) => Err(bad(field, "a list of at most 256 entries")),
    }
}

fn disco_from(v: &Value) -> Result<Element, MapError> {
    if let Some(q) = query_shorthand(v, NS_DISCO_INFO, "disco")? {
        return Ok(q);
    }
    let Value::Object(o) = v else {
        return Err(bad("disco", "true, a node name or an object"));
    };
    let mut q = Element::new("query", NS_DISCO_INFO);
    if let Some(node) = opt_str(o, "node", "disco")? {
        q.set_attr("node", node);
    }
    for id in list(o.get("identities"), "disco")? {
        let Value::Object(id) = id else {
            return Err(bad("disco", "identities as objects"));
        };
        let (Some(category), Some(kind)) = (
            opt_str(id, "category", "disco")?,
            opt_str(id, "type", "disco")?,
        ) else {
            return Err(bad("disco", "identities with a category and a type"));
        };
        let mut e = Element::new("identity", NS_DISCO_INFO)
            .attr("category", category)
            .attr("type", kind);
        if let Some(name) = opt_str(id, "name", "disco")? {
            e.set_attr("name", name);
        }
        q.push_child(e);
    }
    for f in list(o.get("features"), "disco")? {
        let Value::String(var) = f else {
            return Err(bad("disco", "features as strings"));
        };
        q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", var));
    }
    Ok(q)
}

fn items_from(v: &Value) -> Result<Element, MapError> {
    if let Some(q) = query_shorthand(v, NS_DISCO_ITEMS, "items")? {
        return Ok(q);
    }
    let mut q = Element::new("query", NS_DISCO_ITEMS);
    let entries = match v {
        Value::Object(o) => {
            if let Some(node) = opt_str(o, "node", "items")? {
                q.set_attr("node", node);
            }
            list(o.get("items"), "items")?
        }
        other => list(Some(other), "items")?,
    };
    for item in entries {
        let e = match item {
            Value::String(jid) => Element::new("item", NS_DISCO_ITEMS).attr("jid", jid),
            Value::Object(o) => {
                let Some(jid) = opt_str(o, "jid", "items")? else {
                    return Err(bad("items", "items with a jid"));
                };
                let mut e = Element::new("item", NS_DISCO_ITEMS).attr("jid", jid);
                for a in ["node", "name"] {
                    if let Some(v) = opt_str(o, a, "items")? {
                        e.set_attr(a, v);
                    }
                }
                e
            }
            _ => return Err(bad("items", "items as strings or objects")),
        };
        q.push_child(e);
    }
    Ok(q)
}

fn version_from(v: &Value) -> Result<Element, MapError> {
    let mut q = Element::new("query", NS_VERSION);
    match v {
        Value::Bool(true) => {}
        Value::Object(o) => {
            for f in ["name", "version", "os"] {
                if let Some(s) = opt_str(o, f, "version")? {
                    q.push_child(Element::new(f, NS_VERSION).text(s));
                }
            }
        }
        _ => return Err(bad("version", "true or an object with name, version, os")),
    }
    Ok(q)
}

fn error_from(v: &Value) -> Result<Element, MapError> {
    const EXPECTED: &str = "an object with type, condition and text";
    let Value::Object(o) = v else {
        return Err(bad("error", EXPECTED));
    };
    let kind = opt_str(o, "type", "error")?.unwrap_or("cancel");
    if !matches!(kind, "auth" | "cancel" | "continue" | "modify" | "wait") {
        return Err(bad(
            "error",
            "of type auth, cancel, continue, modify or wait",
        ));
    }
    let condition = opt_str(o, "condition", "error")?.unwrap_or("undefined-condition");
    // `text` names the error's text element: as a condition it would read back as text.
    if !is_valid_name(condition) || condition == "text" {
        return Err(bad("error", "a condition that is an element name"));
    }
    let mut e = Element::new("error", NS_CLIENT)
        .attr("type", kind)
        .child(Element::new(condition, NS_STANZA_ERRORS));
    if let Some(text) = opt_str(o, "text", "error")? {
        e.push_child(Element::new("text", NS_STANZA_ERRORS).text(text));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::xml::parse_document;
    use serde_json::json;

    fn xml(s: &str) -> Element {
        parse_document(s.as_bytes(), 4096).unwrap()
    }

    fn ser(e: &Element) -> String {
        String::from_utf8(e.to_bytes(NS_CLIENT)).unwrap()
    }

    #[test]
    fn messages_map_both_ways() {
        let m = xml(
            "<message from='a@b/c' to='bot@b' id='1' type='chat' xml:lang='en'>\
             <body>hi &lt;there&gt;</body><subject>s</subject><thread>t</thread>\
             <active xmlns='http://jabber.org/protocol/chatstates'/>\
             <x xmlns='jabber:x:oob'><url>https://x/y</url></x>\
             <unknown xmlns='urn:x'/></message>",
        );
        let j = Value::Object(to_json(&m));
        assert_eq!(
            j,
            json!({"kind": "message", "type": "chat", "from": "a@b/c", "to": "bot@b", "id": "1",
                   "lang": "en", "body": "hi <there>", "subject": "s", "thread": "t",
                   "state": "active", "oob_url": "https://x/y"})
        );
        let back = from_json(&j).unwrap();
        assert_eq!(to_json(&back), to_json(&m));
        assert!(ser(&back).contains("<body>hi &lt;there&gt;</body>"));
        let plain = from_json(&json!({"body": "x", "to": "a@b"})).unwrap();
        assert_eq!(ser(&plain), "<message to='a@b'><body>x</body></message>");
        assert_eq!(to_json(&plain)["type"], "normal");
    }

    #[test]
    fn presence_and_iq_payloads_map_both_ways() {
        let p = from_json(
            &json!({"show": "away", "status": "gone fishing", "priority": 5,
                                  "to": "room@muc/nick", "join": true}),
        )
        .unwrap();
        assert_eq!(p.name(), "presence");
        assert_eq!(p.get_attr("type"), None);
        let j = to_json(&p);
        assert_eq!(j["type"], "available");
        assert_eq!(j["priority"], 5);
        assert_eq!(j["join"], true);
        let sub = from_json(&json!({"type": "subscribe", "to": "a@b"})).unwrap();
        assert_eq!(
            (sub.name(), sub.get_attr("type")),
            ("presence", Some("subscribe"))
        );

        let ping = from_json(&json!({"ping": true, "to": "b"})).unwrap();
        assert_eq!(
            ser(&ping),
            "<iq type='get' to='b'><ping xmlns='urn:xmpp:ping'/></iq>"
        );
        let disco = xml(
            "<iq type='result' id='d'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='server' type='im' name='P'/><feature var='urn:a'/>\
             <feature var='urn:b'/></query></iq>",
        );
        let j = to_json(&disco);
        assert_eq!(
            j["disco"],
            json!({"identities": [{"category": "server", "type": "im", "name": "P"}],
                   "features": ["urn:a", "urn:b"]})
        );
        assert_eq!(to_json(&from_json(&Value::Object(j.clone())).unwrap()), j);
        assert_eq!(
            to_json(&from_json(&json!({"disco": "n"})).unwrap())["disco"],
            "n"
        );
        let items =
            from_json(&json!({"type": "result", "items": ["a@b", {"jid": "c", "name": "C"}]}))
                .unwrap();
        assert_eq!(
            to_json(&items)["items"],
            json!([{"jid": "a@b"}, {"jid": "c", "name": "C"}])
        );
        assert_eq!(
            to_json(&from_json(&json!({"items": true})).unwrap())["items"],
            true
        );
        let v = from_json(&json!({"type": "result", "version": {"name": "x", "version": "1"}}))
            .unwrap();
        assert_eq!(to_json(&v)["version"], json!({"name": "x", "version": "1"}));
        assert_eq!(
            to_json(&from_json(&json!({"version": true})).unwrap())["version"],
            true
        );
    }

    #[test]
    fn errors_map_both_ways() {
        let e = from_json(&json!({"kind": "iq", "type": "error", "id": "1",
            "error": {"type": "wait", "condition": "resource-constraint", "text": "busy"}}))
        .unwrap();
        assert_eq!(
            to_json(&e)["error"],
            json!({"type": "wait", "condition": "resource-constraint", "text": "busy"})
        );
    }

    #[test]
    fn every_bad_input_is_an_error() {
        let cases = [
            (json!([]), MapError::NotAnObject),
            (json!("x"), MapError::NotAnObject),
            (
                json!({"bodyy": "x"}),
                MapError::UnknownField("bodyy".into()),
            ),
            (
                json!({"kind": "stream"}),
                MapError::UnknownKind("stream".into()),
            ),
            (
                json!({"kind": "iq", "type": "chat"}),
                MapError::BadType {
                    kind: "iq",
                    value: "chat".into(),
                },
            ),
            (
                json!({"type": "bogus"}),
                MapError::BadType {
                    kind: "message",
                    value: "bogus".into(),
                },
            ),
            (
                json!({"kind": "iq", "body": "x"}),
                MapError::WrongKind {
                    field: "body",
                    kind: "iq",
                },
            ),
            (
                json!({"ping": true, "body": "x"}),
                MapError::WrongKind {
                    field: "ping",
                    kind: "message",
                },
            ),
            (json!({"body": 1}), bad("body", "a string")),
            (
                json!({"show": "busy"}),
                bad("show", "one of away, chat, dnd, xa"),
            ),
            (
                json!({"priority": 300}),
                bad("priority", "an integer from -128 to 127"),
            ),
            (
                json!({"state": "typing"}),
                bad("state", "one of active, inactive, gone, composing, paused"),
            ),
            (json!({"ping": "yes"}), bad("ping", "true or false")),
            (
                json!({"disco": 3}),
                bad("disco", "true, a node name, an object or a list"),
            ),
            (
                json!({"disco": {"identities": [{"type": "x"}]}}),
                bad("disco", "identities with a category and a type"),
            ),
            (
                json!({"disco": {"features": [1]}}),
                bad("disco", "features as strings"),
            ),
            (
                json!({"items": [1]}),
                bad("items", "items as strings or objects"),
            ),
            (
                json!({"version": "1.0"}),
                bad("version", "true or an object with name, version, os"),
            ),
            (
                json!({"error": {"type": "x"}}),
                bad("error", "of type auth, cancel, continue, modify or wait"),
            ),
            (
                json!({"error": {"condition": "a b"}}),
                bad("error", "a condition that is an element name"),
            ),
            (
                json!({"error": {"condition": "text"}}),
                bad("error", "a condition that is an element name"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(from_json(&input), Err(want), "{input}");
        }
        assert!(matches!(
            from_json(&json!({"to": "@b", "body": "x"})),
            Err(MapError::BadJid { field: "to", .. })
        ));
        let many: Vec<_> = (0..MAX_LIST + 1)
            .map(|i| Value::from(i.to_string()))
            .collect();
        assert!(from_json(&json!({"items": many})).is_err());
        for e in [MapError::NotAnObject, MapError::UnknownField("x".into())] {
            assert!(!e.to_string().is_empty());
        }
    }
}
