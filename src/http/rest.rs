//! `/rest` bodies (mod_rest's sending side): what a request asks to send, checked the way
//! mod_rest checks it, and the encodings of the iq reply.
//!
//! A body is never passed through: XML is parsed into a bounded tree by the stream's own
//! parser and JSON is mapped by `jsonmap`, then xrelay serializes the stanza itself, so what
//! reaches the stream is always well-formed and one stanza. Only `to`, `id`, `type` and
//! `xml:lang` survive on the top element; the server stamps `from`.

use super::body::{form_pairs, percent_decode, MAX_FORM_FIELDS};
use crate::xmpp::jid::Jid;
use crate::xmpp::jsonmap::{self, MapError};
use crate::xmpp::stanza::{self, IqType, PresenceType, NS_CLIENT};
use crate::xmpp::xml::{self, DocError, Element};
use serde_json::{Map, Value};
use std::fmt;

/// Media type of stanzas as XML.
pub const CONTENT_XML: &str = "application/xmpp+xml";
/// Media type of mod_rest's JSON mapping.
pub const CONTENT_JSON: &str = "application/json";
/// Media type of form bodies (curl's `-d`).
pub const CONTENT_FORM: &str = "application/x-www-form-urlencoded";
/// Media type of plain text.
pub const CONTENT_TEXT: &str = "text/plain";
/// The iq payloads `GET /rest/{payload}/{to}` and `POST /rest/iq/{payload}/{to}` name.
const IQ_SHORTHANDS: [&str; 4] = ["ping", "disco", "items", "version"];

/// Why a `/rest` request is refused (mod_rest's errors, with its status codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestError {
    /// A media type other than XML, JSON, a form or plain text.
    MediaType(String),
    /// The body is not well-formed XML or JSON, not UTF-8, or not exactly one element.
    NotWellFormed(String),
    /// The path is not `/rest/{kind}/{type}/{to}` (or `/rest/{payload}/{to}` for GET).
    Path(String),
    /// The stanza carries a namespace other than jabber:client.
    Namespace(String),
    /// Not a message, presence or iq.
    StanzaKind(String),
    /// `to` is not a valid address.
    To(String),
    /// `from` is not a valid address.
    From(String),
    /// `from` names someone other than the bot.
    NotOurFrom(String),
    /// An iq of a type other than get or set.
    IqType,
    /// An iq without exactly one child element.
    IqChildren(usize),
    /// The JSON does not describe a stanza.
    Mapping(MapError),
}

impl RestError {
    /// The HTTP status mod_rest answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::MediaType(_) => 415,
            Self::NotWellFormed(_) | Self::Path(_) => 400,
            Self::NotOurFrom(_) => 403,
            Self::Namespace(_)
            | Self::StanzaKind(_)
            | Self::To(_)
            | Self::From(_)
            | Self::IqType
            | Self::IqChildren(_)
            | Self::Mapping(_) => 422,
        }
    }

    /// The XMPP condition mod_rest names for it.
    pub fn condition(&self) -> &'static str {
        match self {
            Self::MediaType(_) | Self::IqChildren(_) | Self::Mapping(_) => "bad-format",
            Self::NotWellFormed(_) | Self::Path(_) => "not-well-formed",
            Self::Namespace(_) => "invalid-namespace",
            Self::StanzaKind(_) => "unsupported-stanza-type",
            Self::To(_) => "improper-addressing",
            Self::From(_) => "invalid-from",
            Self::NotOurFrom(_) => "not-authorized",
            Self::IqType => "invalid-xml",
        }
    }
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MediaType(t) => write!(
                f,
                "unsupported media type {t:?}; use application/xmpp+xml, application/json \
                 or application/x-www-form-urlencoded (text/plain with \
                 /rest/{{kind}}/{{type}}/{{to}})"
            ),
            Self::NotWellFormed(why) => write!(f, "the body is not well-formed: {why}"),
            Self::Path(why) => write!(f, "bad path: {why}"),
            Self::Namespace(ns) => {
                write!(
                    f,
                    "the stanza must have no xmlns (it is jabber:client), not {ns:?}"
                )
            }
            Self::StanzaKind(name) => write!(
                f,
                "<{name}> is not a stanza; send a message, presence or iq"
            ),
            Self::To(why) => write!(f, "invalid destination address: {why}"),
            Self::From(why) => write!(f, "invalid source address: {why}"),
            Self::NotOurFrom(from) => {
                write!(f, "{from} is not this bot's address; leave out from")
            }
            Self::IqType => f.write_str("an iq must be of type get or set"),
            Self::IqChildren(n) => {
                write!(f, "an iq must have exactly one child element, not {n}")
            }
            Self::Mapping(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RestError {}

/// A `/rest` request as far as the body goes.
///
/// Deliberately not `Debug`: the query string may carry an API key (`?key=ID/SECRET`).
#[derive(Clone, Copy)]
pub struct RestRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path after `/rest` (`""`, `/echo`, or `/{kind}/{type}/{to}`, or for GET
    /// `/{payload}/{to}`).
    pub path: &'a str,
    /// The raw query string: a GET's payload fields (`?node=...`).
    pub query: Option<&'a str>,
    /// The declared media type, if any.
    pub content_type: Option<&'a str>,
    /// The body (already bounded by `http.max_body_bytes`).
    pub body: &'a [u8],
}

/// What a `/rest` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The stanza, checked; its `id` is left as given (maybe absent).
    pub stanza: Element,
    /// Fields of a JSON or form body (or query) that the mapping ignored, for the
    /// `X-Xrelay-Ignored` header.
    pub ignored: Vec<String>,
    /// `POST /rest/echo`: answer with the stanza instead of sending it.
    pub echo: bool,
}

/// The response header that names the fields of a request that were ignored.
pub const IGNORED_HEADER: &str = "X-Xrelay-Ignored";

/// The value of [`IGNORED_HEADER`], when any field was ignored.
pub fn ignored_header(ignored: &[String]) -> Option<String> {
    (!ignored.is_empty()).then(|| ignored.join(", "))
}

/// The stanza `req` asks to send, checked. `bot` is the bot's full JID.
pub fn parse(req: &RestRequest<'_>, bot: &Jid) -> Result<Parsed, RestError> {
    let mut ignored = Vec::new();
    let stanza = parse_stanza(req, &mut ignored)?;
    Ok(Parsed {
        stanza: check(stanza, bot)?,
        ignored,
        echo: req.method != "GET" && req.path.trim_matches('/') == "echo",
    })
}

fn parse_stanza(req: &RestRequest<'_>, ignored: &mut Vec<String>) -> Result<Element, RestError> {
    let path = req.path.trim_start_matches('/');
    let path = (!path.is_empty() && path.trim_end_matches('/') != "echo").then_some(path);
    let media = req
        .content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty());
    let el = if req.method == "GET" {
        let path = path.ok_or_else(|| RestError::Path("GET needs /rest/{payload}/{to}".into()))?;
        let mut fields = match req.query {
            Some(q) => form_map(q.as_bytes())?,
            None => Map::new(),
        };
        // The API key may come in the query; it is no payload field.
        fields.remove("key");
        mapped(amend(fields, &format!("iq/{path}"))?, ignored)?
    } else {
        match media.as_deref() {
            // The body is already bounded; the framer's own limit only has to let it through.
            Some(CONTENT_XML) => parse_xml(req.body)?,
            Some(CONTENT_JSON) => {
                let v: Value = serde_json::from_slice(req.body)
                    .map_err(|e| RestError::NotWellFormed(e.to_string()))?;
                match path {
                    None => {
                        ignored.extend(jsonmap::ignored_keys(&v));
                        jsonmap::from_json(&v).map_err(RestError::Mapping)?
                    }
                    Some(p) => match v {
                        Value::Object(m) => mapped(amend(m, p)?, ignored)?,
                        _ => return Err(RestError::Mapping(MapError::NotAnObject)),
                    },
                }
            }
            Some("text/plain") => text_stanza(utf8(req.body)?, path)?,
            // curl's -d: a form with none of the mapping's fields is the text as sent (ntfy's
            // rule), so `-d 'disk usage=95%'` is a message, not an empty form.
            Some(CONTENT_FORM) if !has_mapped_field(req.body) => {
                text_stanza(utf8(req.body)?, path)?
            }
            Some(CONTENT_FORM) => {
                let fields = form_map(req.body)?;
                match path {
                    None => mapped(fields, ignored)?,
                    Some(p) => mapped(amend(fields, p)?, ignored)?,
                }
            }
            None if req.body.is_empty() => match path {
                Some(p) => from_json(amend(Map::new(), p)?)?,
                None => return Err(RestError::MediaType(String::new())),
            },
            other => return Err(RestError::MediaType(other.unwrap_or_default().to_string())),
        }
    };
    Ok(el)
}

fn utf8(body: &[u8]) -> Result<&str, RestError> {
    std::str::from_utf8(body).map_err(|_| RestError::NotWellFormed("the body is not UTF-8".into()))
}

/// The stanza of a JSON object (after the path amended it), noting the keys it ignored.
fn mapped(m: Map<String, Value>, ignored: &mut Vec<String>) -> Result<Element, RestError> {
    let v = Value::Object(m);
    ignored.extend(jsonmap::ignored_keys(&v));
    jsonmap::from_json(&v).map_err(RestError::Mapping)
}

/// Whether any name in a form body is a field of the JSON mapping.
fn has_mapped_field(body: &[u8]) -> bool {
    form_pairs(body).any(|(name, _)| {
        percent_decode(name, true)
            .and_then(|n| String::from_utf8(n).ok())
            .is_some_and(|n| jsonmap::is_field(&n))
    })
}

/// A form body or query string as the JSON object mod_rest makes of it: every value a
/// string (a repeated name keeps the last), but the flags `join` and `ping` and the empty
/// or `true` iq payloads, which are `true`.
fn form_map(input: &[u8]) -> Result<Map<String, Value>, RestError> {
    let bad = |what: &str| RestError::NotWellFormed(format!("the form {what}"));
    let mut m = Map::new();
    for (n, (name, value)) in form_pairs(input).enumerate() {
        if n >= MAX_FORM_FIELDS {
            return Err(bad(&format!("has more than {MAX_FORM_FIELDS} fields")));
        }
        let decode = |b: &[u8]| {
            percent_decode(b, true)
                .ok_or_else(|| bad("has an invalid percent escape"))
                .and_then(|v| String::from_utf8(v).map_err(|_| bad("is not UTF-8")))
        };
        let (name, value) = (decode(name)?, decode(value)?);
        let flag = matches!(name.as_str(), "join" | "ping")
            || (matches!(name.as_str(), "disco" | "items" | "version")
                && matches!(value.as_str(), "" | "true"));
        let v = match value.as_str() {
            _ if !flag => Value::String(value),
            "0" | "false" => Value::Bool(false),
            _ => Value::Bool(true),
        };
        m.insert(name, v);
    }
    Ok(m)
}

/// A stanza a webhook answers with as a form body (mod_rest reads those too).
pub fn form_stanza(body: &[u8]) -> Result<Element, RestError> {
    from_json(form_map(body)?)
}

/// One stanza as XML, parsed by the stream's own parser.
fn parse_xml(body: &[u8]) -> Result<Element, RestError> {
    // The body is already bounded; the framer's own limit only has to let it through.
    xml::parse_document(body, body.len().max(512) * 2).map_err(|e| match e {
        DocError::NotOneElement => RestError::NotWellFormed("expected exactly one element".into()),
        DocError::Xml(e) => RestError::NotWellFormed(e.to_string()),
    })
}

/// A stanza a webhook answers with as raw XML (mod_component_http's `stanza`, or an
/// `application/xmpp+xml` body): the checks `/rest` makes on XML that apply to a reply (one
/// message, presence or iq in jabber:client, a valid `to`), and only the attributes a client
/// may set.
pub fn reply_xml(body: &[u8]) -> Result<Element, RestError> {
    let mut el = parse_xml(body)?;
    el.remove_attr("from");
    check_addressing(el)
}

/// `text/plain`: the message body or the presence `show`, as mod_rest reads it.
fn text_stanza(text: &str, path: Option<&str>) -> Result<Element, RestError> {
    let Some(path) = path else {
        let mut m = Map::new();
        m.insert("kind".into(), "message".into());
        m.insert("type".into(), "chat".into());
        m.insert("body".into(), text.into());
        return from_json(m);
    };
    let mut m = amend(Map::new(), path)?;
    match m.get("kind").and_then(Value::as_str) {
        Some("message") => m.insert("body".into(), text.into()),
        Some("presence") => m.insert("show".into(), text.into()),
        _ => {
            return Err(RestError::Path(
                "text/plain goes with /rest/message/... or /rest/presence/...".into(),
            ))
        }
    };
    from_json(m)
}

fn from_json(m: Map<String, Value>) -> Result<Element, RestError> {
    jsonmap::from_json(&Value::Object(m)).map_err(RestError::Mapping)
}

/// Fill `kind`, `type` and `to` from `{kind}/{type}/{to}`; an iq path names a payload
/// instead of a type (`iq/ping/{to}`), whose value is the body's object.
fn amend(data: Map<String, Value>, path: &str) -> Result<Map<String, Value>, RestError> {
    let mut parts = path.splitn(3, '/');
    let (Some(kind), Some(kind_type)) = (parts.next(), parts.next()) else {
        return Err(RestError::Path(format!(
            "{path:?} is not {{kind}}/{{type}}/{{to}}"
        )));
    };
    let to = parts.next().unwrap_or_default();
    let to = percent_decode(to.as_bytes(), false)
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| RestError::To("bad percent-encoding in the path".into()))?;
    let mut out = if kind == "iq" && !matches!(kind_type, "get" | "set") {
        if !IQ_SHORTHANDS.contains(&kind_type) {
            return Err(RestError::Path(format!(
                "{kind_type:?} is not an iq type or one of ping, disco, items, version"
            )));
        }
        let payload = if kind_type == "ping" || data.is_empty() {
            Value::Bool(true)
        } else {
            Value::Object(data)
        };
        let mut m = Map::new();
        m.insert(kind_type.into(), payload);
        m
    } else {
        let mut m = data;
        m.insert("type".into(), kind_type.into());
        m
    };
    out.insert("kind".into(), kind.into());
    if !to.is_empty() {
        out.insert("to".into(), to.into());
    }
    Ok(out)
}

/// mod_rest's checks, then only the attributes a client may set.
fn check(el: Element, bot: &Jid) -> Result<Element, RestError> {
    let from = el.get_attr("from").map(str::to_string);
    let el = check_addressing(el)?;
    if let Some(from) = from {
        let jid = Jid::parse(&from).map_err(|e| RestError::From(e.to_string()))?;
        let ours =
            jid.bare() == bot.bare() && jid.resource().is_none_or(|r| Some(r) == bot.resource());
        if !ours {
            return Err(RestError::NotOurFrom(jid.to_string()));
        }
    }
    if el.name() == "iq" {
        if !stanza::iq_type(&el).is_some_and(IqType::is_request) {
            return Err(RestError::IqType);
        }
        let n = el.children().count();
        if n != 1 {
            return Err(RestError::IqChildren(n));
        }
    }
    Ok(el)
}

/// A stanza in jabber:client with a valid `to`, keeping only `to`, `id`, `type` and
/// `xml:lang`.
fn check_addressing(mut el: Element) -> Result<Element, RestError> {
    if el.ns() != NS_CLIENT {
        return Err(RestError::Namespace(el.ns().to_string()));
    }
    if !matches!(el.name(), "message" | "presence" | "iq") {
        return Err(RestError::StanzaKind(el.name().to_string()));
    }
    if let Some(to) = el.get_attr("to") {
        let jid = Jid::parse(to).map_err(|e| RestError::To(e.to_string()))?;
        el.set_attr("to", jid.as_str());
    }
    let drop: Vec<String> = el
        .attrs()
        .map(|(k, _)| k)
        .filter(|k| !matches!(*k, "to" | "id" | "type" | "xml:lang"))
        .map(str::to_string)
        .collect();
    for k in drop {
        el.remove_attr(&k);
    }
    Ok(el)
}

/// What in `el` would change the bot's account, if anything: XEP-0077 registration
/// (password change, cancellation), roster edits, subscription presences. `/rest` refuses
/// these unless `rest.allow_account_changes` is set.
pub fn account_change(el: &Element) -> Option<&'static str> {
    const NS_REGISTER: &str = "jabber:iq:register";
    match el.name() {
        "iq" if el.children().any(|c| c.ns() == NS_REGISTER) => {
            Some("an in-band registration request (jabber:iq:register)")
        }
        "iq" if stanza::iq_type(el) == Some(IqType::Set)
            && el
                .children()
                .any(|c| c.ns() == crate::xmpp::roster::NS_ROSTER) =>
        {
            Some("a roster edit")
        }
        "presence" if stanza::presence_type(el).is_some_and(PresenceType::is_subscription) => {
            Some("a subscription presence")
        }
        _ => None,
    }
}

/// The reply's media type: whichever of XML and JSON comes first in `Accept`, then in the
/// request's own type (mod_rest's rule); XML when neither names one.
pub fn reply_type(accept: Option<&str>, content_type: Option<&str>) -> &'static str {
    let s = format!(
        "{},{}",
        accept.unwrap_or_default(),
        content_type.unwrap_or_default()
    )
    .to_ascii_lowercase();
    match (s.find(CONTENT_XML), s.find(CONTENT_JSON)) {
        (_, None) => CONTENT_XML,
        (None, Some(_)) => CONTENT_JSON,
        (Some(x), Some(j)) if j < x => CONTENT_JSON,
        _ => CONTENT_XML,
    }
}

/// `reply` in `media_type` (one of [`reply_type`]'s answers).
pub fn encode(reply: &Element, media_type: &str) -> Vec<u8> {
    if media_type == CONTENT_JSON {
        Value::Object(jsonmap::to_json(reply))
            .to_string()
            .into_bytes()
    } else {
        // Without xmlns, as mod_rest writes stanzas: what /rest accepts.
        reply.to_bytes(NS_CLIENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> Jid {
        Jid::parse("bot@example.org/xrelay").unwrap()
    }

    fn post_parsed(path: &str, ct: Option<&str>, body: &str) -> Result<Parsed, RestError> {
        parse(
            &RestRequest {
                method: "POST",
                path,
                query: None,
                content_type: ct,
                body: body.as_bytes(),
            },
            &bot(),
        )
    }

    fn post(path: &str, ct: Option<&str>, body: &str) -> Result<Element, RestError> {
        post_parsed(path, ct, body).map(|p| p.stanza)
    }

    fn get(path: &str, query: Option<&str>) -> Result<Parsed, RestError> {
        parse(
            &RestRequest {
                method: "GET",
                path,
                query,
                content_type: None,
                body: b"",
            },
            &bot(),
        )
    }

    const JSON_T: Option<&str> = Some("application/json");
    const FORM_T: Option<&str> = Some("application/x-www-form-urlencoded");

    fn xml(body: &str) -> Result<Element, RestError> {
        post("", Some("application/xmpp+xml"), body)
    }

    fn out(el: &Element) -> String {
        String::from_utf8(el.to_bytes(NS_CLIENT)).unwrap()
    }

    #[test]
    fn xml_stanzas_are_reserialized_with_only_client_attributes() {
        let el = xml("<message to='Alice@Example.org' type='chat' id='m1' foo='x' from='bot@example.org/xrelay'><body>a &amp; b</body></message>").unwrap();
        assert_eq!(
            out(&el),
            "<message to='alice@example.org' type='chat' id='m1'><body>a &amp; b</body></message>"
        );
        let el = xml("<iq type='get' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>").unwrap();
        assert_eq!(
            out(&el),
            "<iq type='get' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>"
        );
        // An explicit jabber:client is the default namespace, so it is allowed.
        assert!(xml("<presence xmlns='jabber:client'/>").is_ok());
    }

    #[test]
    fn json_and_path_forms_follow_mod_rest() {
        let el = post("", Some("application/json"), r#"{"to":"a@b","body":"hi"}"#).unwrap();
        assert_eq!(out(&el), "<message to='a@b'><body>hi</body></message>");
        let el = post(
            "/message/headline/a%40b",
            Some("text/plain; charset=utf-8"),
            "hi",
        )
        .unwrap();
        assert_eq!(
            out(&el),
            "<message type='headline' to='a@b'><body>hi</body></message>"
        );
        let el = post("/presence/available/", Some("text/plain"), "away").unwrap();
        assert_eq!(out(&el), "<presence><show>away</show></presence>");
        let el = post("/iq/ping/example.org", None, "").unwrap();
        assert_eq!(
            out(&el),
            "<iq type='get' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>"
        );
        let el = get("/version/example.org", None).unwrap().stanza;
        assert_eq!(
            out(&el),
            "<iq type='get' to='example.org'><query xmlns='jabber:iq:version'/></iq>"
        );
        let el = post(
            "/message/chat/a@b",
            Some("application/json"),
            r#"{"body":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            out(&el),
            "<message type='chat' to='a@b'><body>x</body></message>"
        );
        let el = post("", Some("text/plain"), "just text").unwrap();
        assert_eq!(
            out(&el),
            "<message type='chat'><body>just text</body></message>"
        );
    }

    #[test]
    fn every_refusal_has_mod_rests_status() {
        let cases: Vec<(Result<Element, RestError>, u16, &str)> = vec![
            (post("", Some("text/html"), "<p/>"), 415, "bad-format"),
            (post("", None, "x"), 415, "bad-format"),
            (post("", None, ""), 415, "bad-format"),
            (xml("<message>"), 400, "not-well-formed"),
            (xml("<message/><message/>"), 400, "not-well-formed"),
            (
                xml("<?xml version='1.0'?><message/>"),
                400,
                "not-well-formed",
            ),
            (
                post("", Some("application/json"), "{"),
                400,
                "not-well-formed",
            ),
            (post("", Some("text/plain"), "\u{0}\u{ff}"), 200, ""),
            (xml("<message xmlns='urn:x'/>"), 422, "invalid-namespace"),
            (
                xml("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"),
                422,
                "invalid-namespace",
            ),
            (xml("<foo/>"), 422, "unsupported-stanza-type"),
            (xml("<message to='a@@b'/>"), 422, "improper-addressing"),
            (xml("<message from='@x'/>"), 422, "invalid-from"),
            (
                xml("<message from='eve@example.org'/>"),
                403,
                "not-authorized",
            ),
            (
                xml("<message from='bot@example.org/other'/>"),
                403,
                "not-authorized",
            ),
            (xml("<iq type='result' to='x'/>"), 422, "invalid-xml"),
            (xml("<iq type='get' to='x'/>"), 422, "bad-format"),
            (
                xml("<iq type='get' to='x'><a xmlns='u:a'/><b xmlns='u:b'/></iq>"),
                422,
                "bad-format",
            ),
            (
                post("", Some("application/json"), r#"{"kind":"iq","body":"x"}"#),
                422,
                "bad-format",
            ),
            (post("", Some("application/json"), "[1]"), 422, "bad-format"),
            (
                post("", Some("application/json"), r#"{"to":"a@@b","body":"x"}"#),
                422,
                "bad-format",
            ),
            (
                post("/message", Some("text/plain"), "x"),
                400,
                "not-well-formed",
            ),
            (
                post("/iq/get/x", Some("text/plain"), "x"),
                400,
                "not-well-formed",
            ),
            (post("/iq/nope/x", None, ""), 400, "not-well-formed"),
            (
                post("/message/chat/%zz", Some("text/plain"), "x"),
                422,
                "improper-addressing",
            ),
            (
                post("/message/shout/a@b", Some("text/plain"), "x"),
                422,
                "bad-format",
            ),
        ];
        for (i, (got, status, condition)) in cases.into_iter().enumerate() {
            match got {
                Ok(el) => assert_eq!(status, 200, "case {i}: accepted {}", out(&el)),
                Err(e) => {
                    assert_eq!(
                        (e.status(), e.condition()),
                        (status, condition),
                        "case {i}: {e}"
                    );
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        // A body that is not UTF-8 is refused, whatever the type.
        let bad = parse(
            &RestRequest {
                method: "POST",
                path: "/message/chat/a@b",
                query: None,
                content_type: Some("text/plain"),
                body: b"\xff",
            },
            &bot(),
        );
        assert_eq!(bad.unwrap_err().status(), 400);
    }

    #[test]
    fn account_changes_are_recognised() {
        let change = |b: &str| account_change(&xml(b).unwrap());
        assert!(change("<iq type='set' to='x'><query xmlns='jabber:iq:register'><password>p</password></query></iq>").is_some());
        assert!(change("<iq type='get' to='x'><query xmlns='jabber:iq:register'/></iq>").is_some());
        assert!(change(
            "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='a@b'/></query></iq>"
        )
        .is_some());
        assert!(change("<presence to='a@b' type='subscribed'/>").is_some());
        assert!(change("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>").is_none());
        assert!(change("<presence to='r@muc/n'/>").is_none());
        assert!(change("<message to='a@b'><body>x</body></message>").is_none());
    }

    #[test]
    fn replies_follow_accept_then_the_request_type() {
        assert_eq!(reply_type(None, None), CONTENT_XML);
        assert_eq!(reply_type(None, Some("application/json")), CONTENT_JSON);
        assert_eq!(
            reply_type(Some("application/xmpp+xml"), Some("application/json")),
            CONTENT_XML
        );
        assert_eq!(
            reply_type(
                Some("application/json, application/xmpp+xml;q=0.5"),
                Some("application/xmpp+xml")
            ),
            CONTENT_JSON
        );
        let reply =
            xml("<iq type='get' id='v' to='x'><query xmlns='jabber:iq:version'/></iq>").unwrap();
        let json: Value = serde_json::from_slice(&encode(&reply, CONTENT_JSON)).unwrap();
        assert_eq!(json["kind"], "iq");
        assert!(String::from_utf8(encode(&reply, CONTENT_XML))
            .unwrap()
            .starts_with("<iq type='get'"));
    }

    #[test]
    fn unknown_json_fields_are_ignored_and_named() {
        let p = post_parsed("", JSON_T, r#"{"to":"a@b","body":"x","colour":"red"}"#).unwrap();
        assert_eq!(out(&p.stanza), "<message to='a@b'><body>x</body></message>");
        assert_eq!(p.ignored, ["colour"]);
        assert_eq!(ignored_header(&p.ignored).as_deref(), Some("colour"));
        assert_eq!(ignored_header(&[]), None);
    }

    #[test]
    fn form_bodies_fill_the_path_form() {
        let p = post_parsed("/message/chat/a@b", FORM_T, "body=hi+there&nick=Bot&x=1").unwrap();
        assert_eq!(
            out(&p.stanza),
            "<message type='chat' to='a@b'><body>hi there</body>\
             <nick xmlns='http://jabber.org/protocol/nick'>Bot</nick></message>"
        );
        assert_eq!(p.ignored, ["x"]);
        let el = post("/presence/available/", FORM_T, "show=away&priority=5").unwrap();
        assert_eq!(
            out(&el),
            "<presence><show>away</show><priority>5</priority></presence>"
        );
        assert_eq!(
            post("/message/chat/a@b", FORM_T, "body=%zz")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn a_form_without_a_mapped_field_is_the_text_as_sent() {
        let el = post("/message/chat/a@b", FORM_T, "disk usage=95% on nas01").unwrap();
        assert_eq!(
            out(&el),
            "<message type='chat' to='a@b'><body>disk usage=95% on nas01</body></message>"
        );
    }

    #[test]
    fn get_query_parameters_are_payload_fields() {
        let p = get(
            "/items/example.org",
            Some("node=http%3A%2F%2Fjabber.org%2Fprotocol%2Fcommands&key=K/S"),
        )
        .unwrap();
        assert_eq!(
            out(&p.stanza),
            "<iq type='get' to='example.org'><query xmlns='http://jabber.org/protocol/disco#items' \
             node='http://jabber.org/protocol/commands'/></iq>"
        );
        assert!(p.ignored.is_empty());
    }

    #[test]
    fn echo_parses_without_sending() {
        let p = post_parsed("/echo", JSON_T, r#"{"to":"a@b","body":"x"}"#).unwrap();
        assert!(p.echo);
        assert_eq!(out(&p.stanza), "<message to='a@b'><body>x</body></message>");
        assert!(!post_parsed("", JSON_T, r#"{"body":"x"}"#).unwrap().echo);
    }

    #[test]
    fn reply_xml_keeps_only_client_attributes_and_checks_the_stanza() {
        let el =
            reply_xml(b"<message from='x@y' foo='1' to='a@b'><body>b</body></message>").unwrap();
        assert_eq!(out(&el), "<message to='a@b'><body>b</body></message>");
        assert_eq!(reply_xml(b"<x/>").unwrap_err().status(), 422);
        assert_eq!(reply_xml(b"<message>").unwrap_err().status(), 400);
    }
}
