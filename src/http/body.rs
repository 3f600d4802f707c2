//! The parsing half of `POST /msg/{to}` and `GET /msg/{to}?body=...` (Prosody's mod_post_msg):
//! turns what the HTTP server read into the recipient, type, body and subject of one message.
//!
//! Sans-I/O and pure: the server has already bounded the body by `max_body_bytes`, and nothing
//! here allocates more than a small multiple of the request's size. Where mod_post_msg has
//! footguns (a `curl -d 'text'` form body without `=`, `text/plain; charset=utf-8` refused,
//! empty messages accepted) this module follows the product contract instead.
//!
//! A form body in which none of the fields below appears is the message text as sent
//! (ntfy's rule): `curl -d 'disk usage=95% on nas01'` is a message, not an empty form.

use crate::xmpp::jid::{BareJid, Jid};
use crate::xmpp::jsonmap;
use crate::xmpp::stanza::MessageType;
use crate::xmpp::xml::Element;
use serde_json::Value;
use std::fmt;

/// Most `name=value` pairs read from a form body or a query string; more is a malformed request.
pub const MAX_FORM_FIELDS: usize = 64;

/// Most characters of client input echoed back in an error sentence.
const MAX_ECHO_CHARS: usize = 64;

/// What the HTTP server read of a `/msg/{to}` request.
///
/// Deliberately not `Debug`: the query string may carry an API key (`?key=ID/SECRET`).
#[derive(Clone, Copy)]
pub struct MsgRequest<'a> {
    /// `GET` takes every field from the query string; any other method reads the body.
    pub method: &'a str,
    /// The `{to}` path segment, still percent-encoded.
    pub path_to: &'a str,
    /// The raw query string, without the `?`.
    pub query: Option<&'a str>,
    /// The raw `Content-Type` header value.
    pub content_type: Option<&'a str>,
    /// The `Subject` header, else the `Title` header (ntfy's name for it).
    pub subject_header: Option<&'a str>,
    /// The request body, already bounded by `max_body_bytes`.
    pub body: &'a [u8],
}

/// The message a `/msg` request asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipient (a full JID is allowed).
    pub to: Jid,
    /// The message type.
    pub kind: MessageType,
    /// The message text; never empty or whitespace only.
    pub body: String,
    /// The subject, if a non-empty one was given.
    pub subject: Option<String>,
    /// The XHTML-IM `<html>` of an `html` field (mod_post_msg's), checked well-formed.
    pub html: Option<Element>,
}

/// Why a `/msg` request cannot become a message; [`BodyError::status`] gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body, query or path cannot be parsed (400); the text says what is wrong.
    Malformed(String),
    /// The text is not valid UTF-8 (400).
    InvalidUtf8,
    /// A content type or charset this endpoint does not read (415); holds the header value.
    UnsupportedType(String),
    /// The recipient is not a valid JID (422); holds why.
    BadRecipient(String),
    /// Neither the path nor a `to` field names a recipient (422).
    MissingRecipient,
    /// The message text is empty or whitespace only (422).
    EmptyBody,
    /// The `type` is not one of chat, normal, headline, groupchat (422); holds the value.
    BadType(String),
    /// The `html` field is not well-formed XHTML (422).
    BadHtml,
}

impl BodyError {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::InvalidUtf8 => 400,
            Self::UnsupportedType(_) => 415,
            Self::BadRecipient(_)
            | Self::MissingRecipient
            | Self::EmptyBody
            | Self::BadType(_)
            | Self::BadHtml => 422,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => f.write_str(why),
            Self::InvalidUtf8 => f.write_str("the message is not valid UTF-8"),
            Self::UnsupportedType(t) => write!(
                f,
                "unsupported content type {t:?}: send text/plain, \
                 application/x-www-form-urlencoded or application/json in UTF-8"
            ),
            Self::BadRecipient(why) => write!(f, "invalid recipient: {why}"),
            Self::MissingRecipient => {
                f.write_str("no recipient: put it in the path (/msg/{to}) or in a `to` field")
            }
            Self::EmptyBody => f.write_str("the message is empty"),
            Self::BadType(t) => write!(
                f,
                "unknown message type {t:?}: use chat, normal, headline or groupchat"
            ),
            Self::BadHtml => f.write_str("the html field is not well-formed XHTML"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Turn a `/msg/{to}` request into the message to send.
///
/// `bot` is the bot's bare JID: a bare localpart `to` means `localpart@<bot's domain>`.
/// `rooms`: configured MUC rooms — a message to one of them gets type groupchat unless a type
/// was given.
pub fn parse_msg(
    req: &MsgRequest<'_>,
    bot: &BareJid,
    rooms: &[BareJid],
) -> Result<Outgoing, BodyError> {
    let fields = if req.method == "GET" {
        match req.query {
            Some(q) => parse_form(q.as_bytes(), "query string")?,
            None => Fields::default(),
        }
    } else {
        // Only type and subject come from a POST's query: handy for `curl --data-binary @file`.
        let mut fields = match req.query {
            Some(q) => {
                let q = parse_form(q.as_bytes(), "query string")?;
                Fields {
                    kind: q.kind,
                    subject: q.subject,
                    ..Fields::default()
                }
            }
            None => Fields::default(),
        };
        fields.overlay(parse_body(req.content_type, req.body)?);
        fields
    };

    let to = match fields
        .to
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(t) => recipient(t, bot)?,
        None => {
            let decoded = percent_decode(req.path_to.as_bytes(), false)
                .ok_or_else(|| bad_escape("recipient path"))?;
            let path = String::from_utf8(decoded).map_err(|_| BodyError::InvalidUtf8)?;
            recipient(path.trim(), bot)?
        }
    };

    let kind = match fields
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(t) => MessageType::parse(&t.to_ascii_lowercase())
            .ok_or_else(|| BodyError::BadType(clip(t)))?,
        // Only the room itself: a message to an occupant (room@service/nick) is a private
        // message, which XEP-0045 sends as chat.
        None if to.is_bare() && rooms.contains(&to.bare()) => MessageType::Groupchat,
        None => MessageType::Chat,
    };

    let body = match fields.body {
        Some(b) if !b.trim().is_empty() => b,
        _ => return Err(BodyError::EmptyBody),
    };

    let html = match fields.html.as_deref().filter(|h| !h.trim().is_empty()) {
        Some(h) => Some(jsonmap::xhtml_im(h).map_err(|_| BodyError::BadHtml)?),
        None => None,
    };

    let subject = fields.subject.filter(|s| !s.trim().is_empty()).or_else(|| {
        req.subject_header
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    });

    Ok(Outgoing {
        to,
        kind,
        body,
        subject,
        html,
    })
}

/// The fields a form, JSON object or query string may carry.
#[derive(Default)]
struct Fields {
    to: Option<String>,
    kind: Option<String>,
    body: Option<String>,
    subject: Option<String>,
    html: Option<String>,
}

impl Fields {
    /// Fields present in `other` win.
    fn overlay(&mut self, other: Self) {
        let Self {
            to,
            kind,
            body,
            subject,
            html,
        } = other;
        for (slot, new) in [
            (&mut self.to, to),
            (&mut self.kind, kind),
            (&mut self.body, body),
            (&mut self.subject, subject),
            (&mut self.html, html),
        ] {
            if new.is_some() {
                *slot = new;
            }
        }
    }
}

/// The body formats this endpoint reads.
enum Format {
    Text,
    Form,
    Json,
}

fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Fields, BodyError> {
    match format(content_type)? {
        Format::Text => Ok(text_fields(body)?),
        // ntfy-style: `curl -d 'WAN is down'` labels plain text as a form; without one of the
        // fields it is not one. It is taken as is, not percent-decoded, so `100% down` survives.
        Format::Form if !has_field(body) => Ok(text_fields(body)?),
        Format::Form => parse_form(strip_newline(body), "form data"),
        Format::Json => parse_json(body),
    }
}

/// Match the media type case-insensitively, ignoring parameters except `charset`.
fn format(content_type: Option<&str>) -> Result<Format, BodyError> {
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Format::Text);
    };
    let unsupported = || BodyError::UnsupportedType(clip(ct));
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or_default().trim();
    let format = if media.eq_ignore_ascii_case("text/plain") {
        Format::Text
    } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Format::Form
    } else if media.eq_ignore_ascii_case("application/json") {
        Format::Json
    } else {
        return Err(unsupported());
    };
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("us-ascii") {
                return Err(unsupported());
            }
        }
    }
    Ok(format)
}

/// A text body: UTF-8, minus the one line ending `echo | curl --data-binary @-` appends.
fn text_fields(body: &[u8]) -> Result<Fields, BodyError> {
    let text = std::str::from_utf8(strip_newline(body)).map_err(|_| BodyError::InvalidUtf8)?;
    Ok(Fields {
        body: Some(text.to_owned()),
        ..Fields::default()
    })
}

fn strip_newline(body: &[u8]) -> &[u8] {
    match body.strip_suffix(b"\n") {
        Some(b) => b.strip_suffix(b"\r").unwrap_or(b),
        None => body,
    }
}

/// The names a form body may carry: the message's fields and xrelay's own (`key`, `wait`).
const FORM_FIELDS: [&[u8]; 7] = [
    b"to", b"type", b"body", b"subject", b"html", b"key", b"wait",
];

/// Whether any name in a form body is one of [`FORM_FIELDS`].
fn has_field(body: &[u8]) -> bool {
    form_pairs(strip_newline(body))
        .filter_map(|(name, _)| percent_decode(name, true))
        .any(|name| FORM_FIELDS.contains(&name.as_slice()))
}

/// The `name=value` pairs of a form body or query string, still percent-encoded (a pair
/// without `=` has an empty value).
pub(crate) fn form_pairs(input: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        })
}

/// `application/x-www-form-urlencoded` (also the query string): `+` is a space; a duplicate
/// field replaces the earlier one; values of other fields (`key`, `wait`) are not decoded.
fn parse_form(input: &[u8], what: &str) -> Result<Fields, BodyError> {
    let mut fields = Fields::default();
    for (n, (name, value)) in form_pairs(input).enumerate() {
        if n >= MAX_FORM_FIELDS {
            return Err(BodyError::Malformed(format!(
                "the {what} has more than {MAX_FORM_FIELDS} fields"
            )));
        }
        let name = percent_decode(name, true).ok_or_else(|| bad_escape(what))?;
        let slot = match name.as_slice() {
            b"to" => &mut fields.to,
            b"type" => &mut fields.kind,
            b"body" => &mut fields.body,
            b"subject" => &mut fields.subject,
            b"html" => &mut fields.html,
            _ => continue,
        };
        let value = percent_decode(value, true).ok_or_else(|| bad_escape(what))?;
        *slot = Some(String::from_utf8(value).map_err(|_| BodyError::InvalidUtf8)?);
    }
    Ok(fields)
}

/// Decode `%XX` escapes (and `+` as a space in forms); `None` on a malformed escape.
pub(crate) fn percent_decode(input: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let hex = |i: usize| {
        input
            .get(i)
            .and_then(|&c| char::from(c).to_digit(16))
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'%' => {
                out.push(hex(i + 1)? << 4 | hex(i + 2)?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn bad_escape(what: &str) -> BodyError {
    BodyError::Malformed(format!("the {what} has an invalid percent escape"))
}

/// A JSON object with optional string fields `to`, `type`, `body`, `subject`.
fn parse_json(body: &[u8]) -> Result<Fields, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::InvalidUtf8)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| BodyError::Malformed(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(BodyError::Malformed(
            "the JSON body must be an object".to_owned(),
        ));
    };
    let mut fields = Fields::default();
    for (name, value) in map {
        let slot = match name.as_str() {
            "to" => &mut fields.to,
            "type" => &mut fields.kind,
            "body" => &mut fields.body,
            "subject" => &mut fields.subject,
            "html" => &mut fields.html,
            // Unknown fields are ignored, as mod_post_msg does, so its clients keep working.
            _ => continue,
        };
        match value {
            Value::String(s) => *slot = Some(s),
            // Clients commonly send null for "not set".
            Value::Null => {}
            _ => {
                return Err(BodyError::Malformed(format!(
                    "the JSON field {name:?} must be a string"
                )))
            }
        }
    }
    Ok(fields)
}

/// Parse a recipient; a localpart alone (no '@', possibly with a resource) is at the bot's domain.
fn recipient(to: &str, bot: &BareJid) -> Result<Jid, BodyError> {
    if to.is_empty() {
        return Err(BodyError::MissingRecipient);
    }
    let (bare, resource) = match to.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (to, None),
    };
    let parsed = if bare.is_empty() || bare.contains('@') {
        Jid::parse(to)
    } else {
        let mut full = String::with_capacity(to.len() + 1 + bot.domain().len());
        full.push_str(bare);
        full.push('@');
        full.push_str(bot.domain());
        if let Some(r) = resource {
            full.push('/');
            full.push_str(r);
        }
        Jid::parse(&full)
    };
    parsed.map_err(|e| BodyError::BadRecipient(e.to_string()))
}

/// Client input shortened for an error sentence.
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> BareJid {
        BareJid::parse("bot@example.org").unwrap()
    }

    fn room() -> BareJid {
        BareJid::parse("alerts@conference.example.org").unwrap()
    }

    fn req<'a>(content_type: Option<&'a str>, body: &'a [u8]) -> MsgRequest<'a> {
        MsgRequest {
            method: "POST",
            path_to: "alice",
            query: None,
            content_type,
            subject_header: None,
            body,
        }
    }

    fn run(r: MsgRequest<'_>) -> Result<Outgoing, BodyError> {
        parse_msg(&r, &bot(), &[room()])
    }

    fn post(content_type: Option<&str>, body: &[u8]) -> Result<Outgoing, BodyError> {
        run(req(content_type, body))
    }

    fn ok(content_type: Option<&str>, body: &[u8]) -> Outgoing {
        post(content_type, body).unwrap()
    }

    fn status(r: Result<Outgoing, BodyError>) -> u16 {
        r.unwrap_err().status()
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json");
    const TEXT: Option<&str> = Some("text/plain");

    #[test]
    fn a_text_body_is_the_message_even_when_it_looks_like_a_form() {
        let m = ok(TEXT, "WAN is down ✓".as_bytes());
        assert_eq!(m.to.as_str(), "alice@example.org");
        assert_eq!(m.kind, MessageType::Chat);
        assert_eq!(m.body, "WAN is down ✓");
        assert_eq!(m.subject, None);
        // A text body is not a form, even if it looks like one.
        assert_eq!(ok(TEXT, b"to=bob&body=x").body, "to=bob&body=x");
        assert_eq!(ok(TEXT, b"line 1\nline 2").body, "line 1\nline 2");
    }

    #[test]
    fn no_content_type_is_text() {
        assert_eq!(ok(None, b"hello").body, "hello");
        assert_eq!(ok(Some("  "), b"hello").body, "hello");
    }

    #[test]
    fn utf8_or_unnamed_charsets_are_read_and_other_charsets_get_415() {
        for (ct, body) in [
            ("text/plain; charset=utf-8", &b"x"[..]),
            ("text/plain;charset=us-ascii", b"x"),
            ("text/plain; format=flowed", b"x"),
            ("text/plain; garbage", b"x"),
            ("application/json; charset=UTF-8", br#"{"body":"x"}"#),
            (
                "Application/X-WWW-Form-Urlencoded; charset=utf-8",
                b"body=x",
            ),
        ] {
            assert_eq!(post(Some(ct), body).unwrap().body, "x", "{ct}");
        }
        assert_eq!(ok(Some("TEXT/PLAIN; Charset=\"UTF-8\""), b"hi").body, "hi");
        for ct in [
            "text/plain; charset=latin1",
            "text/plain; charset=\"ISO-8859-1\"",
            "application/json; charset=utf-16",
        ] {
            let e = post(Some(ct), b"hi").unwrap_err();
            assert_eq!(e.status(), 415, "{ct}");
            assert!(matches!(e, BodyError::UnsupportedType(_)));
        }
    }

    #[test]
    fn other_content_types_get_415_naming_the_type_clipped() {
        for ct in [
            "text/html",
            "application/xml",
            "multipart/form-data; boundary=x",
            "text/plainx",
            "; charset=utf-8",
        ] {
            assert_eq!(status(post(Some(ct), b"hi")), 415, "{ct}");
        }
        let long = format!("x/{}", "y".repeat(10_000));
        let e = post(Some(&long), b"hi").unwrap_err();
        assert!(e.to_string().len() < 300, "the echoed type is clipped");
    }

    #[test]
    fn one_trailing_line_ending_is_dropped() {
        assert_eq!(ok(TEXT, b"hi\n").body, "hi");
        assert_eq!(ok(TEXT, b"hi\r\n").body, "hi");
        assert_eq!(ok(TEXT, b"hi\n\n").body, "hi\n", "only one line ending");
        assert_eq!(ok(TEXT, b"hi\r").body, "hi\r");
        assert_eq!(ok(FORM, b"WAN is down\n").body, "WAN is down");
        assert_eq!(ok(FORM, b"body=hi\n").body, "hi");
        assert_eq!(ok(FORM, b"body=hi%0A").body, "hi\n");
        assert_eq!(status(post(TEXT, b"\n")), 422);
        assert_eq!(status(post(TEXT, b"\r\n")), 422);
    }

    #[test]
    fn form_fields_set_the_recipient_body_subject_and_type() {
        let m = ok(FORM, b"body=WAN+is+down%21&subject=Router&type=headline");
        assert_eq!(m.to.as_str(), "alice@example.org");
        assert_eq!(m.body, "WAN is down!");
        assert_eq!(m.subject.as_deref(), Some("Router"));
        assert_eq!(m.kind, MessageType::Headline);
        // `to` overrides the path; unknown fields, empty pairs and repeats are fine.
        let m = ok(
            FORM,
            b"to=bob%40other.org&&key=%zz&body=a&body=b%C3%A9&wait",
        );
        assert_eq!(m.to.as_str(), "bob@other.org");
        assert_eq!(m.body, "bé");
        // Percent-encoded field names count.
        assert_eq!(ok(FORM, b"b%6Fdy=x").body, "x");
        // An empty `to` falls back to the path.
        assert_eq!(ok(FORM, b"to=&body=x").to.as_str(), "alice@example.org");
    }

    #[test]
    fn form_without_a_known_field_is_the_text_as_sent() {
        assert_eq!(
            ok(FORM, b"disk usage=95% on nas01").body,
            "disk usage=95% on nas01"
        );
        assert_eq!(ok(FORM, b"b%y=1&x=2").body, "b%y=1&x=2");
        assert_eq!(ok(FORM, b"a=1&body=x").body, "x");
        // xrelay's own fields make it a form: no key ends up in a message.
        assert_eq!(status(post(FORM, b"key=ID/SECRET")), 422);
    }

    #[test]
    fn html_field_is_xhtml_im_and_checked() {
        let m = ok(FORM, b"body=hi&html=%3Cp%3Ehi%3C%2Fp%3E");
        assert_eq!(m.html.unwrap().name(), "html");
        let m = ok(JSON, br#"{"body":"hi","html":"<b>hi</b>"}"#);
        assert!(m.html.is_some());
        assert_eq!(post(FORM, b"body=hi&html=%3Cp%3E"), Err(BodyError::BadHtml));
    }

    #[test]
    fn form_without_equals_is_text() {
        let m = ok(FORM, b"WAN is down");
        assert_eq!(m.body, "WAN is down");
        // Taken as is: no percent-decoding, no '+' to space.
        assert_eq!(ok(FORM, b"100% up+down").body, "100% up+down");
        assert_eq!(status(post(FORM, b"")), 422);
        assert_eq!(post(FORM, b"\xff"), Err(BodyError::InvalidUtf8));
    }

    #[test]
    fn broken_percent_encoding_or_too_many_form_fields_get_400() {
        for body in [&b"body=%zz"[..], b"body=%4", b"body=%", b"body=%+1"] {
            let e = post(FORM, body).unwrap_err();
            assert!(matches!(e, BodyError::Malformed(_)), "{body:?}");
            assert_eq!(e.status(), 400);
        }
        assert_eq!(post(FORM, b"body=%FF"), Err(BodyError::InvalidUtf8));
        assert_eq!(post(FORM, b"body=%C3"), Err(BodyError::InvalidUtf8));
        assert_eq!(post(FORM, b"to=%C3%28&body=x"), Err(BodyError::InvalidUtf8));
        // With a known field, so that it is a form and not text.
        let many: Vec<u8> = (0..=MAX_FORM_FIELDS)
            .map(|i| match i {
                0 => "to=bob".to_string(),
                i => format!("f{i}=1"),
            })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        assert_eq!(status(post(FORM, &many)), 400);
        let enough = &many[..many.iter().rposition(|&b| b == b'&').unwrap()];
        let with_body = [enough, b"&body=x"].concat();
        assert_eq!(status(post(FORM, &with_body)), 400);
        assert_eq!(
            status(post(FORM, enough)),
            422,
            "{MAX_FORM_FIELDS} fields are read"
        );
    }

    #[test]
    fn json_fields_set_the_recipient_body_subject_and_type() {
        let m = ok(
            JSON,
            br#"{"to":"carol@example.net/phone","type":"normal","body":"Hi \u00e9","subject":"S","extra":[1,{"x":2}]}"#,
        );
        assert_eq!(m.to.as_str(), "carol@example.net/phone");
        assert_eq!(m.kind, MessageType::Normal);
        assert_eq!(m.body, "Hi é");
        assert_eq!(m.subject.as_deref(), Some("S"));
        let m = ok(JSON, br#"{"body":"x","subject":null,"to":null}"#);
        assert_eq!(m.to.as_str(), "alice@example.org");
        assert_eq!(m.subject, None);
        assert_eq!(status(post(JSON, b"{}")), 422);
        assert_eq!(status(post(JSON, br#"{"body":"  \n"}"#)), 422);
    }

    #[test]
    fn malformed_or_mistyped_json_gets_400() {
        for body in [
            &b"{"[..],
            b"",
            b"body=x",
            b"[\"x\"]",
            b"\"x\"",
            b"42",
            br#"{"body":42}"#,
            br#"{"body":"x","to":["a@b"]}"#,
            br#"{"body":"x","type":true}"#,
            br#"{"body":"x"} trailing"#,
        ] {
            let e = post(JSON, body).unwrap_err();
            assert!(matches!(e, BodyError::Malformed(_)), "{body:?}: {e}");
            assert_eq!(e.status(), 400);
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            post(JSON, b"{\"body\":\"\xff\"}"),
            Err(BodyError::InvalidUtf8)
        );
        let deep = "[".repeat(100_000);
        assert_eq!(status(post(JSON, deep.as_bytes())), 400);
    }

    #[test]
    fn invalid_utf8_text_is_refused() {
        assert_eq!(post(TEXT, b"caf\xe9"), Err(BodyError::InvalidUtf8));
        assert_eq!(post(None, b"\xc3"), Err(BodyError::InvalidUtf8));
    }

    #[test]
    fn a_get_takes_its_fields_from_the_query() {
        let r = MsgRequest {
            method: "GET",
            path_to: "alice",
            query: Some("key=ID/SECRET&body=Door+opened&type=headline&subject=Home"),
            content_type: Some("image/png"),
            subject_header: Some("ignored"),
            body: b"ignored",
        };
        let m = run(r).unwrap();
        assert_eq!(m.body, "Door opened");
        assert_eq!(m.kind, MessageType::Headline);
        assert_eq!(m.subject.as_deref(), Some("Home"));
        let to = MsgRequest {
            query: Some("to=dave&body=x"),
            ..r
        };
        assert_eq!(run(to).unwrap().to.as_str(), "dave@example.org");
        assert_eq!(status(run(MsgRequest { query: None, ..r })), 422);
        assert_eq!(
            status(run(MsgRequest {
                query: Some("body=%"),
                ..r
            })),
            400
        );
    }

    #[test]
    fn query_fields_of_a_post_apply_unless_the_body_sets_them() {
        let r = MsgRequest {
            query: Some("type=headline&subject=Q&body=ignored&to=ignored@x"),
            ..req(TEXT, b"hi")
        };
        let m = run(r).unwrap();
        assert_eq!(m.body, "hi");
        assert_eq!(m.kind, MessageType::Headline);
        assert_eq!(m.subject.as_deref(), Some("Q"));
        assert_eq!(m.to.as_str(), "alice@example.org");
        // Body fields override query fields.
        let r = MsgRequest {
            query: Some("type=headline&subject=Q"),
            ..req(FORM, b"body=x&type=normal&subject=B")
        };
        let m = run(r).unwrap();
        assert_eq!(m.kind, MessageType::Normal);
        assert_eq!(m.subject.as_deref(), Some("B"));
    }

    #[test]
    fn the_subject_header_applies_unless_a_subject_field_is_set() {
        let r = MsgRequest {
            subject_header: Some("From header"),
            ..req(TEXT, b"hi")
        };
        assert_eq!(run(r).unwrap().subject.as_deref(), Some("From header"));
        let r = MsgRequest {
            subject_header: Some("From header"),
            ..req(FORM, b"body=hi&subject=Field")
        };
        assert_eq!(run(r).unwrap().subject.as_deref(), Some("Field"));
        let r = MsgRequest {
            subject_header: Some("From header"),
            ..req(FORM, b"body=hi&subject=")
        };
        assert_eq!(run(r).unwrap().subject.as_deref(), Some("From header"));
        let r = MsgRequest {
            subject_header: Some(" "),
            ..req(TEXT, b"hi")
        };
        assert_eq!(run(r).unwrap().subject, None);
    }

    #[test]
    fn path_recipients_are_decoded_and_completed_with_the_domain_or_refused() {
        let to = |path: &str| {
            run(MsgRequest {
                path_to: path,
                ..req(TEXT, b"hi")
            })
        };
        assert_eq!(to("Alice").unwrap().to.as_str(), "alice@example.org");
        assert_eq!(to("bob%40other.org").unwrap().to.as_str(), "bob@other.org");
        assert_eq!(
            to("bob@other.org%2FPhone%201").unwrap().to.as_str(),
            "bob@other.org/Phone 1"
        );
        assert_eq!(
            to("bob/laptop").unwrap().to.as_str(),
            "bob@example.org/laptop"
        );
        // '+' is not a space in a path.
        assert_eq!(to("a+b").unwrap().to.as_str(), "a+b@example.org");
        for bad in [
            "a%20b", "a%3Cb", "a b", "a<b@x", "bob@", "a@b@c", "%2Fr", "a@b/",
        ] {
            let e = to(bad).unwrap_err();
            assert!(matches!(e, BodyError::BadRecipient(_)), "{bad}: {e:?}");
            assert_eq!(e.status(), 422);
            assert!(e.to_string().starts_with("invalid recipient: "), "{e}");
        }
        assert_eq!(to(""), Err(BodyError::MissingRecipient));
        assert_eq!(to("%20"), Err(BodyError::MissingRecipient));
        assert_eq!(status(to("a%zz")), 400);
        assert_eq!(to("%FF"), Err(BodyError::InvalidUtf8));
        // A `to` field wins, so a broken path does not matter then.
        let r = MsgRequest {
            path_to: "%zz",
            ..req(FORM, b"to=bob&body=x")
        };
        assert_eq!(run(r).unwrap().to.as_str(), "bob@example.org");
        let r = MsgRequest {
            path_to: "",
            ..req(FORM, b"body=x")
        };
        assert_eq!(run(r), Err(BodyError::MissingRecipient));
        let r = MsgRequest {
            path_to: "",
            ..req(JSON, br#"{"to":"a b","body":"x"}"#)
        };
        assert_eq!(status(run(r)), 422);
    }

    #[test]
    fn posts_to_a_room_default_to_groupchat() {
        let to_room = |body: &'static [u8], path: &'static str| {
            run(MsgRequest {
                path_to: path,
                ..req(FORM, body)
            })
            .unwrap()
        };
        let path = "alerts@conference.example.org";
        assert_eq!(to_room(b"body=x", path).kind, MessageType::Groupchat);
        assert_eq!(
            to_room(b"body=x", "Alerts@Conference.Example.org").kind,
            MessageType::Groupchat
        );
        assert_eq!(to_room(b"body=x&type=chat", path).kind, MessageType::Chat);
        assert_eq!(to_room(b"body=x&type=", path).kind, MessageType::Groupchat);
        // A private message to an occupant stays chat.
        let pm = "alerts@conference.example.org%2Fnick";
        assert_eq!(to_room(b"body=x", pm).kind, MessageType::Chat);
        assert_eq!(to_room(b"body=x", "alerts").kind, MessageType::Chat);
    }

    #[test]
    fn every_message_type_but_error_is_accepted() {
        for (t, kind) in [
            ("chat", MessageType::Chat),
            ("normal", MessageType::Normal),
            ("headline", MessageType::Headline),
            ("groupchat", MessageType::Groupchat),
            ("Headline", MessageType::Headline),
        ] {
            let body = format!("body=x&type={t}");
            assert_eq!(ok(FORM, body.as_bytes()).kind, kind, "{t}");
        }
        let e = post(FORM, b"body=x&type=error").unwrap_err();
        assert_eq!(e, BodyError::BadType("error".to_owned()));
        assert_eq!(e.status(), 422);
        let long = format!("body=x&type={}", "z".repeat(10_000));
        let e = post(FORM, long.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 200, "the echoed type is clipped");
    }

    #[test]
    fn empty_or_blank_bodies_are_refused() {
        for (ct, body) in [
            (TEXT, &b""[..]),
            (TEXT, b" \t "),
            (None, b""),
            (FORM, b"body="),
            (FORM, b"body=+%20"),
            (FORM, b"subject=x"),
            (JSON, br#"{"body":""}"#),
        ] {
            assert_eq!(post(ct, body), Err(BodyError::EmptyBody), "{body:?}");
        }
    }

    #[test]
    fn each_error_has_its_status_and_a_lower_case_message() {
        let all = [
            (BodyError::Malformed("the body is broken".to_owned()), 400),
            (BodyError::InvalidUtf8, 400),
            (BodyError::UnsupportedType("text/html".to_owned()), 415),
            (
                BodyError::BadRecipient("the address is empty".to_owned()),
                422,
            ),
            (BodyError::MissingRecipient, 422),
            (BodyError::EmptyBody, 422),
            (BodyError::BadType("x".to_owned()), 422),
            (BodyError::BadHtml, 422),
        ];
        for (e, code) in all {
            assert_eq!(e.status(), code, "{e:?}");
            let s = e.to_string();
            assert!(!s.is_empty() && !s.ends_with('.'), "{s}");
            assert!(s.starts_with(|c: char| !c.is_uppercase()), "{s}");
        }
    }

    #[test]
    fn odd_inputs_never_panic() {
        const ALPHABET: &[u8] = b"%+=&;{}[]\":,\\/@< \n\r\tab09AFzZ\xff\xc3\xa9\x00\xef\xbf\xbe";
        let types = [
            None,
            TEXT,
            FORM,
            JSON,
            Some("text/plain; charset=\"utf-8"),
            Some(";;=;"),
            Some("é/é; charset=é"),
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..4000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let ct = types[round % types.len()];
            for method in ["GET", "POST"] {
                let r = MsgRequest {
                    method,
                    path_to: &text,
                    query: Some(&text),
                    content_type: ct,
                    subject_header: Some(&text),
                    body: &bytes,
                };
                match parse_msg(&r, &bot(), &[room()]) {
                    Ok(m) => assert!(!m.body.trim().is_empty()),
                    Err(e) => {
                        assert!(matches!(e.status(), 400 | 415 | 422));
                        assert!(!e.to_string().is_empty());
                    }
                }
            }
        }
    }
}
