//! The JSON form of stanzas that Prosody's mod_rest defined (`kind`, `type`, `to`, `from`,
//! `id`, `body`, `disco`, ...): webhook requests and replies and `/rest` bodies use it, so
//! scripts written for mod_rest work unchanged.
//!
//! Both directions are pure. JSON → stanza ignores keys the mapping does not know, as mod_rest
//! does ([`ignored_keys`] names them, so that callers can show typos); a known field that does
//! not belong to the stanza's kind, or a value of the wrong shape, is an error, because a
//! silently dropped field is a message that says something else than intended.

use super::jid::Jid;
use super::stanza::{NS_CLIENT, NS_MUC, NS_PING, NS_STANZA_ERRORS};
use super::xml::{is_valid_name, parse_document, DocError, Element, Node};
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
/// XEP-0071 XHTML-IM wrapper.
pub const NS_XHTML_IM: &str = "http://jabber.org/protocol/xhtml-im";
/// XHTML, the namespace of the XHTML-IM `<body>`.
pub const NS_XHTML: &str = "http://www.w3.org/1999/xhtml";
/// XEP-0203 delayed delivery.
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// XEP-0050 ad-hoc commands.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
/// XEP-0004 data forms.
pub const NS_DATA: &str = "jabber:x:data";

/// Most entries taken from a JSON list (features, identities, items).
pub const MAX_LIST: usize = 256;

/// The stanza kinds.
const KINDS: [&str; 3] = ["message", "presence", "iq"];

/// Why a JSON object is not a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// The JSON value is not an object.
    NotAnObject,
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
            Self::NotAnObject => f.write_str("a stanza in JSON must be an object"),
            Self::UnknownKind(k) => {
                write!(f, "unknown kind {k:?}; expected message, presence or iq")
            }
            Self::BadType { kind, value } => write!(f, "{value:?} is not a type of {kind}"),
            Self::WrongKind { field, kind } => {
                write!(f, "field {field:?} does not belong in a {kind}")
            }
            Self::BadValue { field, expected } => {
                write!(f, "field {field:?} must be {expected}")
            }
            Self::BadJid { field, reason } => write!(f, "field {field:?}: {reason}"),
        }
    }
}

impl std::error::Error for MapError {}

/// The JSON form of a stanza; `presence` without a type is `"available"`, `message`
/// without one `"normal"` (RFC 6121 defaults). Payloads the mapping does not know are left
/// out (the webhook adds the full XML beside them).
pub fn to_json(el: &Element) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "kind", el.name().into());
    let kind = match (el.name(), el.get_attr("type")) {
        (_, Some(t)) => Some(t),
        ("presence", None) => Some("available"),
        ("message", None) => Some("normal"),
        _ => None,
    };
    if let Some(t) = kind {
        put(&mut m, "type", t.into());
    }
    put_attrs(&mut m, el, &["to", "from", "id"]);
    if let Some(lang) = el.get_attr("xml:lang") {
        put(&mut m, "lang", lang.into());
    }
    for child in el.children() {
        let text = || Value::from(child.text_content());
        match (child.ns(), child.name()) {
            (NS_CLIENT, name @ ("body" | "subject" | "thread" | "show" | "status")) => {
                put(&mut m, name, text());
            }
            (NS_CLIENT, "priority") => {
                let p = child.text_content();
                let v = p
                    .trim()
                    .parse::<i8>()
                    .map_or_else(|_| p.into(), Value::from);
                put(&mut m, "priority", v);
            }
            (NS_CLIENT, "error") => {
                put(&mut m, "error", error_json(child));
            }
            (NS_CHATSTATES, state) => {
                put(&mut m, "state", state.into());
            }
            (NS_NICK, "nick") => {
                put(&mut m, "nick", text());
            }
            (NS_OOB, "x") => {
                if let Some(url) = child.get_child("url", NS_OOB) {
                    put(&mut m, "oob_url", url.text_content().into());
                }
            }
            (NS_MUC, "x") => {
                put(&mut m, "join", true.into());
            }
            (NS_PING, "ping") => {
                put(&mut m, "ping", true.into());
            }
            (NS_DISCO_INFO, "query") => {
                put(&mut m, "disco", disco_json(child));
            }
            (NS_DISCO_ITEMS, "query") => {
                put(&mut m, "items", items_json(child));
            }
            (NS_VERSION, "query") => {
                put(&mut m, "version", version_json(child));
            }
            (NS_XHTML_IM, "html") => {
                if let Some(body) = child.get_child("body", NS_XHTML) {
                    let xhtml = String::from_utf8_lossy(&body.to_bytes(NS_XHTML)).into_owned();
                    put(&mut m, "html", xhtml.into());
                }
            }
            (NS_DELAY, "delay") => {
                if let Some(stamp) = child.get_attr("stamp") {
                    put(&mut m, "delay", stamp.into());
                }
            }
            (NS_COMMANDS, "command") => {
                put(&mut m, "command", command_json(child));
            }
            _ => {}
        }
    }
    m
}

/// `m[key] = v`, kept out of line: the mapping inserts in many places.
#[inline(never)]
fn put(m: &mut Map<String, Value>, key: &str, v: Value) {
    m.insert(key.to_owned(), v);
}

/// The attributes `names` of `el` that are present, as strings.
fn put_attrs(m: &mut Map<String, Value>, el: &Element, names: &[&str]) {
    for a in names {
        if let Some(v) = el.get_attr(a) {
            put(m, a, v.into());
        }
    }
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
    let mut extensions = Map::new();
    for c in q.children() {
        match c.name() {
            "identity" => {
                if let (Some(category), Some(kind)) = (c.get_attr("category"), c.get_attr("type")) {
                    let mut id = Map::new();
                    put(&mut id, "category", category.into());
                    put(&mut id, "type", kind.into());
                    if let Some(name) = c.get_attr("name") {
                        put(&mut id, "name", name.into());
                    }
                    identities.push(Value::Object(id));
                }
            }
            "feature" => {
                if let Some(var) = c.get_attr("var") {
                    features.push(Value::from(var));
                }
            }
            "x" if c.ns() == NS_DATA => {
                let mut data = formdata_json(c);
                let form_type = match data.remove(FORM_TYPE) {
                    Some(Value::String(t)) => Some(t),
                    Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
                    _ => None,
                };
                if let Some(t) = form_type {
                    extensions.insert(t, Value::Object(data));
                }
            }
            _ => {}
        }
    }
    let mut m = Map::new();
    if let Some(node) = q.get_attr("node") {
        put(&mut m, "node", node.into());
    }
    put(&mut m, "identities", identities.into());
    put(&mut m, "features", features.into());
    if !extensions.is_empty() {
        put(&mut m, "extensions", extensions.into());
    }
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
            put_attrs(&mut it, c, &["jid", "node", "name"]);
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
            put(&mut m, f, c.text_content().into());
        }
    }
    Value::Object(m)
}

fn error_json(e: &Element) -> Value {
    let mut m = Map::new();
    if let Some(t) = e.get_attr("type") {
        put(&mut m, "type", t.into());
    }
    for c in e.children().filter(|c| c.ns() == NS_STANZA_ERRORS) {
        if c.name() == "text" {
            put(&mut m, "text", c.text_content().into());
        } else {
            put(&mut m, "condition", c.name().into());
        }
    }
    Value::Object(m)
}

/// XEP-0050: the command's attributes, `actions` as a set (plus `execute`), `note` and the
/// form as `form`.
fn command_json(c: &Element) -> Value {
    let mut m = Map::new();
    put_attrs(&mut m, c, &["node", "action", "sessionid", "status"]);
    if let Some(actions) = c.get_child("actions", NS_COMMANDS) {
        let mut set = Map::new();
        if let Some(default) = actions.get_attr("execute") {
            put(&mut set, "execute", default.into());
        }
        for a in actions.children() {
            put(&mut set, a.name(), true.into());
        }
        put(&mut m, "actions", set.into());
    }
    if let Some(note) = c.get_child("note", NS_COMMANDS) {
        let mut n = Map::new();
        put(
            &mut n,
            "type",
            note.get_attr("type").unwrap_or("info").into(),
        );
        put(&mut n, "text", note.text_content().into());
        put(&mut m, "note", n.into());
    }
    if let Some(form) = c.get_child("x", NS_DATA) {
        put(&mut m, "form", form_json(form));
    }
    Value::Object(m)
}

/// The field that names a form's purpose (XEP-0068).
const FORM_TYPE: &str = "FORM_TYPE";

fn values(field: &Element) -> Vec<String> {
    field
        .children()
        .filter(|v| v.is("value", NS_DATA))
        .map(Element::text_content)
        .collect()
}

/// XEP-0004, the whole form: type, title, instructions and the fields with their type,
/// label, description, options and value (a list for `*-multi` but text-multi, whose
/// lines are joined).
fn form_json(x: &Element) -> Value {
    let mut form = Map::new();
    if let Some(t) = x.get_attr("type") {
        put(&mut form, "type", t.into());
    }
    for text in ["title", "instructions"] {
        if let Some(c) = x.get_child(text, NS_DATA) {
            put(&mut form, text, c.text_content().into());
        }
    }
    let mut fields = Vec::new();
    for f in x.children().filter(|f| f.is("field", NS_DATA)) {
        let mut field = Map::new();
        put_attrs(&mut field, f, &["var", "type", "label"]);
        if let Some(desc) = f.get_child("desc", NS_DATA) {
            put(&mut field, "desc", desc.text_content().into());
        }
        if f.get_child("required", NS_DATA).is_some() {
            put(&mut field, "required", true.into());
        }
        let vals = values(f);
        match f.get_attr("type") {
            Some("jid-multi" | "list-multi") => {
                put(&mut field, "value", vals.into());
            }
            Some("text-multi") => {
                put(&mut field, "value", vals.join("\n").into());
            }
            _ => {
                if let Some(v) = vals.into_iter().next() {
                    put(&mut field, "value", v.into());
                }
            }
        }
        let options: Vec<Value> = f
            .children()
            .filter(|o| o.is("option", NS_DATA))
            .map(|o| {
                let mut opt = Map::new();
                if let Some(l) = o.get_attr("label") {
                    put(&mut opt, "label", l.into());
                }
                let v = o.get_child("value", NS_DATA).map(Element::text_content);
                put(&mut opt, "value", v.unwrap_or_default().into());
                Value::Object(opt)
            })
            .collect();
        if !options.is_empty() {
            put(&mut field, "options", options.into());
        }
        fields.push(Value::Object(field));
    }
    put(&mut form, "fields", fields.into());
    Value::Object(form)
}

/// XEP-0004, only the data: `var` → value; lists for list fields and untyped ones (whose
/// arity is unknown), text-multi joined, booleans as booleans, other typed fields their
/// first value (or null).
fn formdata_json(x: &Element) -> Map<String, Value> {
    let mut m = Map::new();
    for f in x.children().filter(|f| f.is("field", NS_DATA)) {
        let Some(var) = f.get_attr("var") else {
            continue;
        };
        let vals = values(f);
        let v = match f.get_attr("type") {
            Some("list-single" | "list-multi" | "jid-multi") | None => vals.into(),
            Some("text-multi") => vals.join("\n").into(),
            Some("boolean") => {
                matches!(vals.first().map(String::as_str), Some("1" | "true")).into()
            }
            Some(_) => vals.into_iter().next().map_or(Value::Null, Value::from),
        };
        put(&mut m, var, v);
    }
    m
}

/// Which kinds may carry a field (`None`: every kind).
fn field_kinds(field: &str) -> Option<Option<&'static [&'static str]>> {
    const MESSAGE: &[&str] = &["message"];
    const PRESENCE: &[&str] = &["presence"];
    const IQ: &[&str] = &["iq"];
    Some(match field {
        "kind" | "type" | "to" | "from" | "id" | "lang" | "error" | "delay" => None,
        "body" | "subject" | "thread" | "oob_url" | "state" | "html" => Some(MESSAGE),
        "nick" => Some(&["message", "presence"]),
        "show" | "status" | "priority" | "join" => Some(PRESENCE),
        "ping" | "disco" | "items" | "version" | "command" => Some(IQ),
        _ => return None,
    })
}

/// The kind a field implies when neither `kind` nor `type` says (mod_rest's rules).
fn implied_kind(field: &str) -> Option<&'static str> {
    match field {
        "body" | "subject" | "thread" | "state" | "oob_url" | "html" => Some("message"),
        "show" | "status" | "priority" | "join" => Some("presence"),
        "ping" | "disco" | "items" | "version" | "command" => Some("iq"),
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
/// message; an iq without `type` is a `get` (a `set` with `command`); `"available"` presence
/// has no type attribute. Keys the mapping does not know are ignored ([`ignored_keys`]).
pub fn from_json(v: &Value) -> Result<Element, MapError> {
    let Value::Object(m) = v else {
        return Err(MapError::NotAnObject);
    };
    // A command without a type is a `set`, as XEP-0050 executes it (mod_rest's rule).
    let t = string(m, "type")?.or(m.contains_key("command").then_some("set"));
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
    if let Some(c) = m.get("command") {
        el.push_child(command_from(c)?);
    }
    if let Some(html) = string(m, "html")? {
        el.push_child(xhtml_im(html)?);
    }
    if let Some(stamp) = string(m, "delay")? {
        el.push_child(Element::new("delay", NS_DELAY).attr("stamp", stamp));
    }
    if let Some(e) = m.get("error") {
        el.push_child(error_from(e)?);
    }
    Ok(el)
}

/// Whether `key` is a field of the mapping (at the top level of a stanza's object).
pub fn is_field(key: &str) -> bool {
    field_kinds(key).is_some()
}

/// The keys of a JSON object that [`from_json`] ignores, in the object's order.
pub fn ignored_keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m.keys().filter(|k| !is_field(k)).cloned().collect(),
        _ => Vec::new(),
    }
}

/// Every known field, for naming one in errors with a static string.
const FIELDS: [&str; 24] = [
    "kind", "type", "to", "from", "id", "lang", "error", "body", "subject", "thread", "oob_url",
    "state", "nick", "show", "status", "priority", "join", "ping", "disco", "items", "version",
    "command", "html", "delay",
];

/// XEP-0071: the `<html>` for `html`, XHTML that is a `<body>` element or what goes inside
/// one; it must be well-formed (the parser bounds it by its own size).
pub fn xhtml_im(html: &str) -> Result<Element, MapError> {
    const BODY_OPEN: &str = "<body xmlns='http://www.w3.org/1999/xhtml'>";
    let doc = format!("{BODY_OPEN}{html}</body>");
    let not_xhtml = |_: DocError| bad("html", "well-formed XHTML");
    let mut body = parse_document(doc.as_bytes(), doc.len().max(512) * 2).map_err(not_xhtml)?;
    // The caller's own `<body>`, alone, is the body.
    let only_body = body.nodes().iter().all(|n| match n {
        Node::Element(e) => e.is("body", NS_XHTML),
        Node::Text(t) => t.trim().is_empty(),
    }) && body.children().count() == 1;
    if only_body {
        let inner = body.children().next().cloned();
        if let Some(inner) = inner {
            body = inner;
        }
    }
    Ok(Element::new("html", NS_XHTML_IM).child(body))
}

fn command_from(v: &Value) -> Result<Element, MapError> {
    const EXPECTED: &str = "a node name or an object with a node";
    let o = match v {
        Value::String(node) => {
            return Ok(Element::new("command", NS_COMMANDS).attr("node", node));
        }
        Value::Object(o) => o,
        _ => return Err(bad("command", EXPECTED)),
    };
    let node = opt_str(o, "node", "command")?.ok_or_else(|| bad("command", EXPECTED))?;
    let mut c = Element::new("command", NS_COMMANDS).attr("node", node);
    if let Some(action) = opt_str(o, "action", "command")? {
        if !matches!(action, "execute" | "next" | "prev" | "complete" | "cancel") {
            return Err(bad(
                "command",
                "an action of execute, next, prev, complete or cancel",
            ));
        }
        c.set_attr("action", action);
    }
    for a in ["sessionid", "status"] {
        if let Some(v) = opt_str(o, a, "command")? {
            c.set_attr(a, v);
        }
    }
    match o.get("actions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(set)) => {
            let mut actions = Element::new("actions", NS_COMMANDS);
            if let Some(default) = opt_str(set, "execute", "command")? {
                actions.set_attr("execute", default);
            }
            for a in ["prev", "next", "complete"] {
                if set.get(a) == Some(&Value::Bool(true)) {
                    actions.push_child(Element::new(a, NS_COMMANDS));
                }
            }
            c.push_child(actions);
        }
        Some(_) => return Err(bad("command", "actions as a map of action to true")),
    }
    match o.get("note") {
        None | Some(Value::Null) => {}
        Some(Value::Object(n)) => {
            let kind = opt_str(n, "type", "command")?.unwrap_or("info");
            if !matches!(kind, "info" | "warn" | "error") {
                return Err(bad("command", "a note of type info, warn or error"));
            }
            let text = opt_str(n, "text", "command")?.unwrap_or_default();
            c.push_child(
                Element::new("note", NS_COMMANDS)
                    .attr("type", kind)
                    .text(text),
            );
        }
        Some(_) => return Err(bad("command", "a note as an object with type and text")),
    }
    if let Some(form) = o.get("form").filter(|f| !f.is_null()) {
        c.push_child(form_from(form, "command")?);
    } else if let Some(data) = o.get("data").filter(|d| !d.is_null()) {
        let Value::Object(data) = data else {
            return Err(bad("command", "data as a map of field to value"));
        };
        c.push_child(formdata_from(data, "submit", None, "command")?);
    }
    Ok(c)
}

/// The string values of a form field: a string (text-multi: one value per line) or a list.
fn field_values(
    v: Option<&Value>,
    multiline: bool,
    field: &'static str,
) -> Result<Vec<String>, MapError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if multiline => Ok(s.split('\n').map(str::to_string).collect()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Bool(b)) => Ok(vec![if *b { "1" } else { "0" }.to_string()]),
        Some(Value::Array(a)) if a.len() <= MAX_LIST => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(field, "form values as strings"))
            })
            .collect(),
        Some(_) => Err(bad(field, "form values as strings or lists of strings")),
    }
}

fn push_values(f: &mut Element, vals: Vec<String>) {
    for v in vals {
        f.push_child(Element::new("value", NS_DATA).text(&v));
    }
}

/// XEP-0004, the whole form (the shape [`form_json`] gives); its type defaults to `submit`.
fn form_from(v: &Value, field: &'static str) -> Result<Element, MapError> {
    let Value::Object(o) = v else {
        return Err(bad(field, "a form as an object with fields"));
    };
    let kind = opt_str(o, "type", field)?.unwrap_or("submit");
    if !matches!(kind, "form" | "submit" | "cancel" | "result") {
        return Err(bad(field, "a form of type form, submit, cancel or result"));
    }
    let mut x = Element::new("x", NS_DATA).attr("type", kind);
    for text in ["title", "instructions"] {
        if let Some(t) = opt_str(o, text, field)? {
            x.push_child(Element::new(text, NS_DATA).text(t));
        }
    }
    for f in list(o.get("fields"), field)? {
        let Value::Object(f) = f else {
            return Err(bad(field, "form fields as objects"));
        };
        let mut e = Element::new("field", NS_DATA);
        for a in ["var", "type", "label"] {
            if let Some(v) = opt_str(f, a, field)? {
                e.set_attr(a, v);
            }
        }
        if let Some(desc) = opt_str(f, "desc", field)? {
            e.push_child(Element::new("desc", NS_DATA).text(desc));
        }
        if f.get("required") == Some(&Value::Bool(true)) {
            e.push_child(Element::new("required", NS_DATA));
        }
        let multiline = f.get("type").and_then(Value::as_str) == Some("text-multi");
        push_values(&mut e, field_values(f.get("value"), multiline, field)?);
        for opt in list(f.get("options"), field)? {
            let Value::Object(opt) = opt else {
                return Err(bad(field, "form options as objects"));
            };
            let mut oe = Element::new("option", NS_DATA);
            if let Some(l) = opt_str(opt, "label", field)? {
                oe.set_attr("label", l);
            }
            let value = opt_str(opt, "value", field)?.unwrap_or_default();
            oe.push_child(Element::new("value", NS_DATA).text(value));
            e.push_child(oe);
        }
        x.push_child(e);
    }
    Ok(x)
}

/// XEP-0004 from a map of field to value (the shape [`formdata_json`] gives), with a hidden
/// `FORM_TYPE` first when given; booleans become boolean fields.
fn formdata_from(
    data: &Map<String, Value>,
    kind: &str,
    form_type: Option<&str>,
    field: &'static str,
) -> Result<Element, MapError> {
    if data.len() > MAX_LIST {
        return Err(bad(field, "a form of at most 256 fields"));
    }
    let mut x = Element::new("x", NS_DATA).attr("type", kind);
    if let Some(t) = form_type {
        x.push_child(
            Element::new("field", NS_DATA)
                .attr("var", FORM_TYPE)
                .attr("type", "hidden")
                .child(Element::new("value", NS_DATA).text(t)),
        );
    }
    for (var, v) in data {
        let mut f = Element::new("field", NS_DATA).attr("var", var);
        if v.is_boolean() {
            f.set_attr("type", "boolean");
        }
        push_values(&mut f, field_values(Some(v), false, field)?);
        x.push_child(f);
    }
    Ok(x)
}

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
    match o.get("extensions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(ext)) if ext.len() <= MAX_LIST => {
            for (form_type, data) in ext {
                let Value::Object(data) = data else {
                    return Err(bad("disco", "extensions as maps of field to value"));
                };
                q.push_child(formdata_from(data, "result", Some(form_type), "disco")?);
            }
        }
        Some(_) => return Err(bad("disco", "extensions as a map of FORM_TYPE to fields")),
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
        let reread = xml(&ser(&back));
        assert_eq!(
            reread
                .get_child("body", NS_CLIENT)
                .map(Element::text_content),
            Some("hi <there>".to_string())
        );
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
        let v = from_json(
            &json!({"type": "result", "version": {"name": "x", "version": "1", "os": "Linux"}}),
        )
        .unwrap();
        assert_eq!(
            to_json(&v)["version"],
            json!({"name": "x", "version": "1", "os": "Linux"})
        );
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
                json!({"html": "<p>unclosed"}),
                bad("html", "well-formed XHTML"),
            ),
            (
                json!({"html": "</body><script/><body>"}),
                bad("html", "well-formed XHTML"),
            ),
            (
                json!({"command": {"action": "execute"}}),
                bad("command", "a node name or an object with a node"),
            ),
            (
                json!({"command": {"node": "n", "action": "run"}}),
                bad(
                    "command",
                    "an action of execute, next, prev, complete or cancel",
                ),
            ),
            (
                json!({"disco": {"extensions": {"urn:x": 1}}}),
                bad("disco", "extensions as maps of field to value"),
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
        for e in [MapError::NotAnObject, bad("x", "y")] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn unknown_keys_are_ignored_and_named() {
        let v = json!({"to": "a@b", "body": "x", "bodyy": "y", "colour": "red"});
        let el = from_json(&v).unwrap();
        assert_eq!(ser(&el), "<message to='a@b'><body>x</body></message>");
        assert_eq!(ignored_keys(&v), ["bodyy", "colour"]);
        assert!(ignored_keys(&json!({"body": "x"})).is_empty());
    }

    #[test]
    fn nick_maps_both_ways() {
        let el = from_json(&json!({"body": "x", "nick": "Bot"})).unwrap();
        let nick = xml(&ser(&el))
            .get_child("nick", "http://jabber.org/protocol/nick")
            .map(Element::text_content);
        assert_eq!(nick.as_deref(), Some("Bot"));
        assert_eq!(to_json(&el)["nick"], "Bot");
    }

    #[test]
    fn html_is_xhtml_im_both_ways() {
        let el = from_json(&json!({"body": "hi", "html": "<p>hi <b>you</b></p>"})).unwrap();
        assert_eq!(
            ser(&el),
            "<message><body>hi</body><html xmlns='http://jabber.org/protocol/xhtml-im'>\
             <body xmlns='http://www.w3.org/1999/xhtml'><p>hi <b>you</b></p></body></html></message>"
        );
        assert_eq!(to_json(&el)["html"], "<body><p>hi <b>you</b></p></body>");
        // mod_rest's own form, a whole <body>, maps to the same stanza and back unchanged.
        let whole = json!({"body": "hi", "html": "<body><p>hi <b>you</b></p></body>"});
        let again = from_json(&whole).unwrap();
        assert_eq!(again, el);
        assert_eq!(
            Value::Object(to_json(&again)),
            whole
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("kind".into(), "message".into());
                    o.insert("type".into(), "normal".into());
                    Value::Object(o)
                })
                .unwrap()
        );
    }

    #[test]
    fn delay_is_a_stamp_both_ways() {
        let m = xml("<message from='a@b'><body>old</body>\
                     <delay xmlns='urn:xmpp:delay' from='b' stamp='2026-12-04T20:00:00Z'/></message>");
        let j = to_json(&m);
        assert_eq!(j["delay"], "2026-12-04T20:00:00Z");
        let back = from_json(&Value::Object(j)).unwrap();
        assert_eq!(
            back.get_child("delay", NS_DELAY)
                .and_then(|d| d.get_attr("stamp")),
            Some("2026-12-04T20:00:00Z")
        );
    }

    #[test]
    fn a_command_is_a_node_or_a_map() {
        let el = from_json(&json!({"command": "uptime", "to": "example.com"})).unwrap();
        assert_eq!(
            ser(&el),
            "<iq type='set' to='example.com'>\
             <command xmlns='http://jabber.org/protocol/commands' node='uptime'/></iq>"
        );
        let el = from_json(
            &json!({"command": {"node": "uptime"}, "kind": "iq", "type": "set",
                                   "to": "example.com"}),
        )
        .unwrap();
        assert_eq!(to_json(&el)["command"], json!({"node": "uptime"}));
        let step = json!({"node": "config", "action": "next", "sessionid": "s1",
                          "data": {"answer": "42", "many": ["a", "b"], "on": true}});
        let el = from_json(&json!({"command": step})).unwrap();
        let c = to_json(&el)["command"].clone();
        assert_eq!(c["action"], "next");
        assert_eq!(c["sessionid"], "s1");
        assert_eq!(c["form"]["type"], "submit");
        assert_eq!(
            c["form"]["fields"],
            json!([{"var": "answer", "value": "42"}, {"var": "many", "value": "a"},
                   {"var": "on", "type": "boolean", "value": "1"}])
        );
    }

    #[test]
    fn command_results_map_both_ways() {
        let r = xml("<iq type='result' id='c' from='example.com'>\
             <command xmlns='http://jabber.org/protocol/commands' node='uptime' \
             sessionid='s' status='executing'>\
             <actions execute='next'><next/><complete/></actions>\
             <note type='info'>Up for 3 days</note>\
             <x xmlns='jabber:x:data' type='form'><title>T</title><instructions>I</instructions>\
             <field var='who' type='jid-multi' label='Who'><desc>D</desc><required/>\
             <value>a@b</value><value>c@d</value></field>\
             <field var='pick' type='list-single'><value>1</value>\
             <option label='One'><value>1</value></option></field>\
             <field var='text' type='text-multi'><value>l1</value><value>l2</value></field>\
             </x></command></iq>");
        let j = to_json(&r);
        assert_eq!(
            j["command"],
            json!({"node": "uptime", "sessionid": "s", "status": "executing",
                   "actions": {"execute": "next", "next": true, "complete": true},
                   "note": {"type": "info", "text": "Up for 3 days"},
                   "form": {"type": "form", "title": "T", "instructions": "I", "fields": [
                       {"var": "who", "type": "jid-multi", "label": "Who", "desc": "D",
                        "required": true, "value": ["a@b", "c@d"]},
                       {"var": "pick", "type": "list-single", "value": "1",
                        "options": [{"label": "One", "value": "1"}]},
                       {"var": "text", "type": "text-multi", "value": "l1\nl2"}]}})
        );
        let back = from_json(&Value::Object(j.clone())).unwrap();
        assert_eq!(to_json(&back), j);
    }

    #[test]
    fn disco_extensions_map_both_ways() {
        let d = xml(
            "<iq type='result' id='d'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='server' type='im'/><feature var='urn:a'/>\
             <x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>\
             <field var='abuse-addresses' type='list-multi'><value>mailto:abuse@b</value></field>\
             <field var='admin-addresses'><value>xmpp:admin@b</value></field>\
             </x></query></iq>",
        );
        let j = to_json(&d);
        assert_eq!(
            j["disco"]["extensions"],
            json!({"http://jabber.org/network/serverinfo": {
                "abuse-addresses": ["mailto:abuse@b"], "admin-addresses": ["xmpp:admin@b"]}})
        );
        let back = from_json(&Value::Object(j.clone())).unwrap();
        assert_eq!(to_json(&back), j);
        let plain =
            to_json(&from_json(&json!({"type": "result", "disco": {"features": ["x"]}})).unwrap());
        assert!(plain["disco"].get("extensions").is_none());
    }
}
