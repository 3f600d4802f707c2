//! The pure half of webhooks: a stanza becomes a request (URL template, XML without the
//! client namespace or JSON body, signature) and a response becomes what the sender gets
//! ([`Outcome`]): a stanza in the body that reply (whatever the status), 202/204 or no
//! usable body nothing (an empty result for an iq), another 4xx/5xx the stanza error of
//! Prosody's HTTP→stanza-error table, an unreachable endpoint `wait/recipient-unavailable`;
//! a receipt when the message asked for one.

use crate::config::{WebhookConfig, WebhookFormat};
use crate::http::rest::{self, CONTENT_FORM, CONTENT_JSON, CONTENT_TEXT, CONTENT_XML};
use crate::xmpp::jid::Jid;
use crate::xmpp::jsonmap;
use crate::xmpp::stanza::{self, IqType, MessageType, NS_CLIENT};
use crate::xmpp::xml::Element;
use ring::hmac;

/// XEP-0184 message delivery receipts.
pub const NS_RECEIPTS: &str = "urn:xmpp:receipts";
/// The signature header: `sha256=` and the hex HMAC-SHA256 under `secret` of the
/// timestamp, a `.`, and the body.
pub const SIGNATURE_HEADER: &str = "X-Xrelay-Signature";
/// The time the request was signed (Unix seconds), so that a receiver can refuse a
/// captured request replayed later.
pub const TIMESTAMP_HEADER: &str = "X-Xrelay-Timestamp";
/// What the sender of a forwarded stanza gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing: 202 or 204, or a message answered without a usable body.
    NoReply,
    /// This stanza, addressed to the sender.
    Reply(Element),
}

/// The URL for `st`: `{kind}`, `{type}`, `{from}` and `{to}` in the template replaced by the
/// percent-encoded values (empty when absent; a presence without type is `available`).
/// The config allows them only in the path and query; there no value can change the path
/// (dot segments are encoded twice, so that a receiver that decodes once still sees no `..`).
pub fn fill_url(template: &str, st: &Element) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let value = ["kind", "type", "from", "to"].into_iter().find_map(|name| {
            let token = after
                .strip_prefix('{')?
                .strip_prefix(name)?
                .strip_prefix('}')?;
            let v = match name {
                "kind" => Some(st.name()),
                "type" => st.get_attr("type").or(match st.name() {
                    "presence" => Some("available"),
                    "message" => Some("normal"),
                    _ => None,
                }),
                other => st.get_attr(other),
            };
            Some((v.unwrap_or(""), after.len() - token.len()))
        });
        match value {
            Some((v, used)) => {
                percent_encode(v, &mut out);
                rest = &after[used..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// RFC 3986 unreserved characters stay; every other byte becomes `%XX`, `/` included. A
/// value that is `.` or `..` would be a dot segment, and so would `%2E` and `%2E%2E`
/// (RFC 3986 §6.2.2.2; browsers and proxies such as nginx resolve them), so each of its
/// dots becomes `%252E`: the literal text `%2E` once decoded, never a step up the path.
fn percent_encode(s: &str, out: &mut String) {
    if matches!(s, "." | "..") {
        out.push_str(&"%252E".repeat(s.len()));
        return;
    }
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The request body for `st` and its media type: mod_rest's JSON mapping plus `stanza`, the
/// full XML; or the XML alone. The XML has no `xmlns` on the stanza (the empty namespace
/// means jabber:client), as mod_rest posts it; children keep their own namespaces.
pub fn request_body(format: WebhookFormat, st: &Element) -> (Vec<u8>, &'static str) {
    let xml = st.to_bytes(NS_CLIENT);
    match format {
        WebhookFormat::Xml => (xml, CONTENT_XML),
        WebhookFormat::Json => {
            let mut m = jsonmap::to_json(st);
            m.insert(
                "stanza".into(),
                String::from_utf8_lossy(&xml).into_owned().into(),
            );
            (
                serde_json::Value::Object(m).to_string().into_bytes(),
                CONTENT_JSON,
            )
        }
    }
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp` (the value of
/// [`TIMESTAMP_HEADER`]): HMAC-SHA256 of `TIMESTAMP.BODY`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{timestamp}.").as_bytes());
    ctx.update(body);
    format!(
        "sha256={}",
        crate::store::hashfile::hex(ctx.sign().as_ref())
    )
}

/// The stanza error for an HTTP status (Prosody's net.http.errors table, after XEP-0086):
/// (error type, condition).
pub fn http_error(status: u16) -> (&'static str, &'static str) {
    match status {
        400 | 411 | 416 | 422 => ("modify", "bad-request"),
        401 | 511 => ("auth", "not-authorized"),
        402 => ("auth", "payment-required"),
        403 | 451 => ("auth", "forbidden"),
        404 => ("cancel", "item-not-found"),
        405 => ("cancel", "not-allowed"),
        406 => ("modify", "not-acceptable"),
        407 => ("auth", "registration-required"),
        408 | 502 | 504 => ("wait", "remote-server-timeout"),
        409 | 412 => ("cancel", "conflict"),
        410 => ("cancel", "gone"),
        413 | 414 | 431 => ("modify", "resource-constraint"),
        415 | 501 => ("cancel", "feature-not-implemented"),
        423 | 429 | 507 => ("wait", "resource-constraint"),
        500 => ("wait", "internal-server-error"),
        503 => ("cancel", "service-unavailable"),
        _ => ("cancel", "undefined-condition"),
    }
}

/// The reason phrase sent as the error's text.
fn reason_phrase(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// What the sender of `request` gets for an HTTP answer (mod_rest's rules). `body` is at
/// most the stanza size limit.
///
/// A stanza in the body (XML, JSON, mod_component_http's `stanza`, or for a 2xx a form or
/// `text/plain`, which is a chat message) is the reply, whatever the status. Without one,
/// 2xx answers nothing but an iq, which gets an empty result (an iq is always answered);
/// other statuses answer the stanza error of the HTTP→stanza-error table. A body that claims
/// to be a stanza but is not one counts as no body, and is reported (for the log). When the
/// message asked for a receipt (XEP-0184), the reply carries it, or is it.
pub fn outcome(
    request: &Element,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max: usize,
) -> (Outcome, Option<String>) {
    let success = (200..300).contains(&status);
    let parsed = match status {
        202 | 204 => None,
        _ => answer_stanza(content_type, body, max, success)
            .map(|r| r.and_then(|reply| shape_reply(request, reply))),
    };
    let (out, problem) = match parsed {
        Some(Ok(reply)) => (Outcome::Reply(reply), None),
        // An error page's body is not meant as a stanza: not worth a log line.
        Some(Err(why)) => (no_stanza(request, status), success.then_some(why)),
        None => (no_stanza(request, status), None),
    };
    (with_receipt(request, out), problem)
}

/// The answer without a usable stanza: nothing (an empty result for an iq) for a 2xx, the
/// status's stanza error otherwise.
fn no_stanza(request: &Element, status: u16) -> Outcome {
    if (200..300).contains(&status) {
        return if request.name() == "iq" {
            Outcome::Reply(stanza::iq_result(request))
        } else {
            Outcome::NoReply
        };
    }
    let (kind, condition) = http_error(status);
    Outcome::Reply(match reason_phrase(status) {
        "" => stanza::error_reply(request, kind, condition),
        text => stanza::error_reply_text(request, kind, condition, text),
    })
}

/// The stanza an answer's body holds, if its media type says it holds one; `success`
/// admits the forms that only a 2xx answer means as a reply (a form, plain text).
fn answer_stanza(
    content_type: Option<&str>,
    body: &[u8],
    max: usize,
    success: bool,
) -> Option<Result<Element, String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    Some(match media.as_deref()? {
        CONTENT_JSON => serde_json::from_slice::<serde_json::Value>(body)
            .map_err(|e| format!("the JSON answer is not valid: {e}"))
            .and_then(|v| match v.get("stanza") {
                // mod_component_http: the raw stanza overrides the other fields.
                Some(serde_json::Value::String(raw)) => {
                    rest::reply_xml(raw.as_bytes()).map_err(|e| e.to_string())
                }
                _ => jsonmap::from_json(&v).map_err(|e| e.to_string()),
            }),
        CONTENT_XML if body.len() <= max => rest::reply_xml(body).map_err(|e| e.to_string()),
        CONTENT_XML => Err(format!("the XML answer is larger than {max} bytes")),
        CONTENT_FORM if success => rest::form_stanza(body).map_err(|e| e.to_string()),
        CONTENT_TEXT if success => match std::str::from_utf8(body) {
            Ok(text) => Ok(Element::new("message", NS_CLIENT)
                .attr("type", "chat")
                .child(Element::new("body", NS_CLIENT).text(text))),
            Err(_) => Err("the text answer is not UTF-8".into()),
        },
        _ => return None,
    })
}

/// The XEP-0184 receipt a message asks for: it has an id and a `<request/>` (a room
/// message never gets one).
fn receipt_for(request: &Element) -> Option<Element> {
    let asks = request.name() == "message"
        && stanza::message_type(request) != Some(MessageType::Groupchat)
        && request.get_child("request", NS_RECEIPTS).is_some();
    let id = request.get_attr("id").filter(|_| asks)?;
    Some(Element::new("received", NS_RECEIPTS).attr("id", id))
}

/// `out` carrying the receipt `request` asks for: added to a message reply to the sender,
/// or sent alone when there is no reply.
fn with_receipt(request: &Element, out: Outcome) -> Outcome {
    let Some(receipt) = receipt_for(request) else {
        return out;
    };
    let sender = request.get_attr("from");
    match out {
        Outcome::Reply(mut r)
            if r.name() == "message" && !stanza::is_error(&r) && r.get_attr("to") == sender =>
        {
            r.push_child(receipt);
            Outcome::Reply(r)
        }
        Outcome::NoReply => {
            let mut r = Element::new("message", NS_CLIENT);
            if let Some(from) = sender {
                r.set_attr("to", from);
            }
            if let Some(t) = request.get_attr("type") {
                r.set_attr("type", t);
            }
            Outcome::Reply(r.child(receipt))
        }
        other => other,
    }
}

/// Addresses `reply` to the sender of `request`: to/from swapped (the server stamps our
/// `from`), the id kept for iq and errors; a reply to a groupchat message goes to the room.
/// A message or presence that names another recipient in `to` goes there
/// (mod_component_http), unless it names the bot itself.
fn shape_reply(request: &Element, mut reply: Element) -> Result<Element, String> {
    // Never presence: an endpoint must not approve subscriptions or change the bot's status.
    if reply.ns() != NS_CLIENT || !matches!(reply.name(), "message" | "iq") {
        return Err("the answer is not a message or iq".into());
    }
    let is_iq = request.name() == "iq";
    if is_iq != (reply.name() == "iq") {
        return Err(format!(
            "a {} cannot answer a {}",
            reply.name(),
            request.name()
        ));
    }
    if reply.name() == "message" && reply.nodes().is_empty() {
        return Err("the answer is an empty message".into());
    }
    reply.remove_attr("from");
    if reply.get_attr("type").is_none() && reply.get_child("error", NS_CLIENT).is_some() {
        reply.set_attr("type", "error");
    }
    let is_error = stanza::is_error(&reply);
    let bare = |j: &str| Jid::parse(j).map(|j| j.bare()).ok();
    let elsewhere = reply.get_attr("to").filter(|to| {
        !is_iq
            && !is_error
            && bare(to).is_some()
            && bare(to) != request.get_attr("to").and_then(bare)
    });
    let from = request.get_attr("from").unwrap_or_default();
    let groupchat =
        stanza::message_type(request) == Some(MessageType::Groupchat) && reply.name() == "message";
    if elsewhere.is_some() {
        // Addressed by the webhook itself.
    } else if groupchat && !is_error {
        let room = Jid::parse(from).map_or_else(|_| from.to_string(), |j| j.bare().to_string());
        reply.set_attr("to", &room);
        reply.set_attr("type", "groupchat");
    } else if !from.is_empty() {
        reply.set_attr("to", from);
    } else {
        reply.remove_attr("to");
    }
    if is_iq || is_error {
        match request.get_attr("id") {
            Some(id) => reply.set_attr("id", id),
            None => reply.remove_attr("id"),
        }
    }
    if is_iq && !is_error {
        reply.set_attr("type", "result");
    } else if reply.name() == "message" && reply.get_attr("type").is_none() {
        if let Some(t) = request.get_attr("type") {
            reply.set_attr("type", t);
        }
    }
    Ok(reply)
}

/// Whether a stanza goes to the webhook at all: of a configured kind, not an error, and
/// for iq only requests.
pub fn wants(cfg: &WebhookConfig, st: &Element) -> bool {
    !stanza::is_error(st)
        && cfg.stanzas.iter().any(|k| k == st.name())
        && (st.name() != "iq" || stanza::iq_type(st).is_some_and(IqType::is_request))
}

/// The answer to a stanza the queue had no room for.
pub fn busy_reply(st: &Element) -> Element {
    stanza::error_reply(st, "wait", "resource-constraint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::Url;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn el(s: &str) -> Element {
        crate::xmpp::xml::parse_document(s.as_bytes(), 65536).unwrap()
    }

    fn ser(e: &Element) -> String {
        String::from_utf8(e.to_bytes(NS_CLIENT)).unwrap()
    }

    const MSG: &str = "<message from='alice@example.org/phone' to='bot@example.org' \
                       id='m1' type='chat'><body>hi &amp; bye</body></message>";
    const IQ: &str = "<iq from='alice@example.org/phone' to='bot@example.org/r' id='q1' \
                      type='get'><query xmlns='urn:x'/></iq>";

    #[test]
    fn url_templates_are_filled_percent_encoded() {
        let m = el(MSG);
        assert_eq!(
            fill_url("http://h:1/in/{kind}/{type}?from={from}&to={to}&x={y}{", &m),
            "http://h:1/in/message/chat?from=alice%40example.org%2Fphone&to=bot%40example.org&x={y}{"
        );
        let p = el("<presence from='a@b'/>");
        assert_eq!(fill_url("/{type}/{to}", &p), "/available/");
        assert_eq!(fill_url("/é{kind}", &p), "/épresence");
    }

    #[test]
    fn dot_segment_values_stay_in_their_path_segment() {
        for (t, filled) in [
            ("..", "http://h/in/%252E%252E/x"),
            (".", "http://h/in/%252E/x"),
            ("../../admin", "http://h/in/..%2F..%2Fadmin/x"),
            ("...", "http://h/in/.../x"),
        ] {
            let m = el(&format!(
                "<message from='a@b' type='{t}'><body>x</body></message>"
            ));
            let url = fill_url("http://h/in/{type}/x", &m);
            assert_eq!(url, filled);
            // What the request line carries: three segments, none of them a dot segment,
            // even for a receiver that decodes once before it normalizes the path.
            let parsed = Url::parse(&url).unwrap();
            assert_eq!(parsed.path, &filled["http://h".len()..], "{t}");
            let segments: Vec<&str> = parsed.path[1..].split('/').collect();
            assert_eq!(segments.len(), 3, "{t}");
            for seg in segments {
                let decoded = seg.replace("%2E", ".").replace("%25", "%");
                assert!(decoded != "." && decoded != "..", "{t}: {seg}");
            }
        }
    }

    #[test]
    fn a_replayed_request_fails_the_documented_timestamp_check() {
        // The receiver's check of docs/security.md, step by step.
        fn receiver_accepts(secret: &str, ts: &str, sig: &str, body: &[u8], now: u64) -> bool {
            let Ok(t) = ts.parse::<u64>() else {
                return false;
            };
            if now.abs_diff(t) > 300 {
                return false;
            }
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
            let mut signed = format!("{ts}.").into_bytes();
            signed.extend_from_slice(body);
            let Some(hex) = sig.strip_prefix("sha256=") else {
                return false;
            };
            let raw: Option<Vec<u8>> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            raw.is_some_and(|raw| hmac::verify(&key, &signed, &raw).is_ok())
        }
        let body = br#"{"body":"open the door"}"#;
        let sent = 1_800_000_000;
        let sig = signature("s3cret", sent, body);
        assert!(receiver_accepts(
            "s3cret",
            &sent.to_string(),
            &sig,
            body,
            sent + 2
        ));
        // Captured and replayed an hour later, as it was.
        assert!(!receiver_accepts(
            "s3cret",
            &sent.to_string(),
            &sig,
            body,
            sent + 3600
        ));
        // Replayed with a fresh timestamp: the signature no longer matches.
        let now = sent + 3600;
        assert!(!receiver_accepts(
            "s3cret",
            &now.to_string(),
            &sig,
            body,
            now
        ));
        assert!(!receiver_accepts(
            "other",
            &sent.to_string(),
            &sig,
            body,
            sent
        ));
    }

    #[test]
    fn bodies_are_json_with_the_stanza_or_xml() {
        let m = el(MSG);
        let (body, ct) = request_body(WebhookFormat::Json, &m);
        assert_eq!(ct, CONTENT_JSON);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["body"], "hi & bye");
        assert_eq!(v["kind"], "message");
        assert_eq!(v["from"], "alice@example.org/phone");
        let stanza = v["stanza"].as_str().unwrap();
        assert_eq!(stanza, MSG);
        let (body, ct) = request_body(WebhookFormat::Xml, &m);
        assert_eq!(ct, CONTENT_XML);
        assert_eq!(el(std::str::from_utf8(&body).unwrap()), m);
    }

    #[test]
    fn xml_bodies_have_no_client_namespace_and_children_keep_theirs() {
        let m = el("<message from='a@b/c' type='chat'><body>x</body>\
                    <request xmlns='urn:xmpp:receipts'/></message>");
        let (body, _) = request_body(WebhookFormat::Xml, &m);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<message from='a@b/c' type='chat'><body>x</body>\
             <request xmlns='urn:xmpp:receipts'/></message>"
        );
    }

    #[test]
    fn signature_is_hex_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2's key and text, behind the timestamp (Python's hmac agrees).
        assert_eq!(
            signature("Jefe", 1_700_000_000, b"what do ya want for nothing?"),
            "sha256=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
        );
    }

    #[test]
    fn accepted_and_no_content_answer_nothing_but_an_empty_iq_result() {
        for status in [202, 204] {
            let body = br#"{"body": "ignored"}"#;
            let (o, _) = outcome(&el(MSG), status, Some(CONTENT_JSON), body, 4096);
            assert_eq!(o, Outcome::NoReply);
            let (o, _) = outcome(&el(IQ), status, Some(CONTENT_JSON), body, 4096);
            let Outcome::Reply(r) = o else { panic!() };
            assert_eq!(
                ser(&r),
                "<iq to='alice@example.org/phone' id='q1' type='result'/>"
            );
        }
    }

    #[test]
    fn a_text_answer_is_a_chat_reply() {
        let (o, why) = outcome(
            &el(MSG),
            200,
            Some("text/plain; charset=utf-8"),
            b"ok",
            4096,
        );
        assert_eq!(why, None);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message type='chat' to='alice@example.org/phone'><body>ok</body></message>"
        );
    }

    #[test]
    fn a_form_answer_is_mapped_like_json() {
        let (o, _) = outcome(
            &el(MSG),
            200,
            Some(CONTENT_FORM),
            b"body=a+b&subject=s",
            4096,
        );
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message to='alice@example.org/phone' type='chat'><subject>s</subject><body>a b</body></message>"
        );
    }

    #[test]
    fn an_error_status_with_a_stanza_sends_that_stanza() {
        let (o, why) = outcome(
            &el(MSG),
            500,
            Some(CONTENT_XML),
            b"<message><body>oops</body></message>",
            4096,
        );
        assert_eq!(why, None);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message to='alice@example.org/phone' type='chat'><body>oops</body></message>"
        );
        // A text or unparsable error page is not a stanza: the status's error.
        for (ct, body) in [
            (Some("text/plain"), &b"Internal error"[..]),
            (Some(CONTENT_JSON), b"{"),
        ] {
            let (o, why) = outcome(&el(MSG), 500, ct, body, 4096);
            assert_eq!(why, None);
            assert!(matches!(o, Outcome::Reply(r) if r.get_attr("type") == Some("error")));
        }
    }

    #[test]
    fn a_raw_stanza_in_json_overrides_the_other_fields() {
        let body = br#"{"body": "ignored", "stanza": "<message type='headline'><body>raw</body><x xmlns='urn:x'/></message>"}"#;
        let (o, why) = outcome(&el(MSG), 200, Some(CONTENT_JSON), body, 4096);
        assert_eq!(why, None);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message type='headline' to='alice@example.org/phone'><body>raw</body><x xmlns='urn:x'/></message>"
        );
        let bad = br#"{"stanza": "<message xmlns='urn:evil'/>"}"#;
        let (o, why) = outcome(&el(MSG), 200, Some(CONTENT_JSON), bad, 4096);
        assert_eq!(o, Outcome::NoReply);
        assert!(why.unwrap().contains("xmlns"));
    }

    #[test]
    fn an_explicit_to_in_a_reply_is_honoured() {
        let body = br#"{"to": "carol@example.org", "body": "fwd"}"#;
        let (o, _) = outcome(&el(MSG), 200, Some(CONTENT_JSON), body, 4096);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(r.get_attr("to"), Some("carol@example.org"));
        // Not to the bot itself, and an iq result always goes to the requester.
        let body = br#"{"to": "bot@example.org/x", "body": "me"}"#;
        let (o, _) = outcome(&el(MSG), 200, Some(CONTENT_JSON), body, 4096);
        assert!(
            matches!(o, Outcome::Reply(r) if r.get_attr("to") == Some("alice@example.org/phone"))
        );
        let body = br#"{"kind": "iq", "to": "carol@example.org", "ping": true}"#;
        let (o, _) = outcome(&el(IQ), 200, Some(CONTENT_JSON), body, 4096);
        assert!(
            matches!(o, Outcome::Reply(r) if r.get_attr("to") == Some("alice@example.org/phone"))
        );
    }

    #[test]
    fn a_receipt_request_is_answered_with_the_reply_or_alone() {
        const ASKS: &str = "<message from='alice@example.org/phone' to='bot@example.org' \
                            id='m7' type='chat'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>";
        let (o, _) = outcome(
            &el(ASKS),
            200,
            Some(CONTENT_JSON),
            br#"{"body": "yes"}"#,
            4096,
        );
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message to='alice@example.org/phone' type='chat'><body>yes</body>\
             <received xmlns='urn:xmpp:receipts' id='m7'/></message>"
        );
        let (o, _) = outcome(&el(ASKS), 204, None, b"", 4096);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message to='alice@example.org/phone' type='chat'>\
             <received xmlns='urn:xmpp:receipts' id='m7'/></message>"
        );
        let (o, _) = outcome(&el(ASKS), 404, None, b"", 4096);
        assert!(matches!(o, Outcome::Reply(r) if r.get_child("received", NS_RECEIPTS).is_none()));
    }

    #[test]
    fn a_stanza_in_the_body_is_the_reply() {
        let m = el(MSG);
        let (o, why) = outcome(
            &m,
            200,
            Some("application/json; charset=utf-8"),
            br#"{"body": "echo"}"#,
            4096,
        );
        assert_eq!(why, None);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message to='alice@example.org/phone' type='chat'><body>echo</body></message>"
        );
        let (o, _) = outcome(
            &m,
            200,
            Some(CONTENT_XML),
            b"<message from='x@y' type='headline'><body>b</body></message>",
            4096,
        );
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            ser(&r),
            "<message type='headline' to='alice@example.org/phone'><body>b</body></message>"
        );
        let q = el(IQ);
        let (o, _) = outcome(
            &q,
            200,
            Some(CONTENT_JSON),
            br#"{"kind": "iq", "version": {"name": "bot"}}"#,
            4096,
        );
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(r.get_attr("id"), Some("q1"));
        assert_eq!(r.get_attr("type"), Some("result"));
        assert_eq!(r.get_attr("to"), Some("alice@example.org/phone"));
        let g = el("<message from='room@muc/alice' type='groupchat'><body>x</body></message>");
        let (o, _) = outcome(&g, 200, Some(CONTENT_JSON), br#"{"body": "y"}"#, 4096);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            (r.get_attr("to"), r.get_attr("type")),
            (Some("room@muc"), Some("groupchat"))
        );
    }

    #[test]
    fn a_2xx_without_a_usable_body_answers_only_iq() {
        let cases: [(Option<&str>, &[u8], bool); 6] = [
            (Some("image/png"), b"ok", false),
            (None, b"", false),
            (Some(CONTENT_JSON), b"  ", false),
            (Some(CONTENT_JSON), b"{not json", true),
            (Some(CONTENT_XML), b"<message><unclosed>", true),
            (Some(CONTENT_JSON), br#"{"bogus": 1}"#, true),
        ];
        for (ct, body, reported) in cases {
            let (o, why) = outcome(&el(MSG), 200, ct, body, 4096);
            assert_eq!(o, Outcome::NoReply, "{ct:?}");
            assert_eq!(why.is_some(), reported, "{ct:?} {body:?}");
            let (o, _) = outcome(&el(IQ), 200, ct, body, 4096);
            let Outcome::Reply(r) = o else { panic!() };
            assert_eq!(
                ser(&r),
                "<iq to='alice@example.org/phone' id='q1' type='result'/>"
            );
        }
        // An iq cannot answer a message, nor a message an iq.
        let (o, why) = outcome(
            &el(MSG),
            200,
            Some(CONTENT_JSON),
            br#"{"ping": true}"#,
            4096,
        );
        assert_eq!(o, Outcome::NoReply);
        assert!(why.unwrap().contains("cannot answer"));
        let (o, _) = outcome(&el(IQ), 200, Some(CONTENT_JSON), br#"{"body": "x"}"#, 4096);
        assert!(matches!(o, Outcome::Reply(r) if r.get_attr("type") == Some("result")));
        let (_, why) = outcome(
            &el(MSG),
            200,
            Some(CONTENT_XML),
            b"<iq xmlns='urn:x'/>",
            4096,
        );
        assert!(why.unwrap().contains("no xmlns"));
    }

    #[test]
    fn a_presence_in_the_answer_is_never_sent() {
        let (o, why) = outcome(
            &el(MSG),
            200,
            Some(CONTENT_XML),
            b"<presence xmlns='jabber:client' type='subscribed'/>",
            4096,
        );
        assert_eq!(o, Outcome::NoReply);
        assert!(why.unwrap().contains("not a message or iq"));
    }

    #[test]
    fn http_errors_become_stanza_errors() {
        for (status, kind, condition) in [
            (400, "modify", "bad-request"),
            (401, "auth", "not-authorized"),
            (403, "auth", "forbidden"),
            (404, "cancel", "item-not-found"),
            (429, "wait", "resource-constraint"),
            (500, "wait", "internal-server-error"),
            (501, "cancel", "feature-not-implemented"),
            (503, "cancel", "service-unavailable"),
            (504, "wait", "remote-server-timeout"),
            (418, "cancel", "undefined-condition"),
            (302, "cancel", "undefined-condition"),
        ] {
            let (o, _) = outcome(
                &el(MSG),
                status,
                Some(CONTENT_JSON),
                br#"{"error": "not a stanza"}"#,
                4096,
            );
            let Outcome::Reply(r) = o else { panic!() };
            assert_eq!(r.get_attr("type"), Some("error"));
            assert_eq!(r.get_attr("id"), Some("m1"));
            let j = jsonmap::to_json(&r);
            assert_eq!(j["error"]["type"], kind, "{status}");
            assert_eq!(j["error"]["condition"], condition, "{status}");
        }
        let (o, _) = outcome(&el(IQ), 404, None, b"", 4096);
        let Outcome::Reply(r) = o else { panic!() };
        assert_eq!(
            jsonmap::to_json(&r)["error"],
            json!({"type": "cancel", "condition": "item-not-found", "text": "Not Found"})
        );
    }

    #[test]
    fn only_configured_requests_go_to_the_webhook() {
        let cfg = WebhookConfig {
            url: "http://h/".into(),
            format: WebhookFormat::Json,
            stanzas: vec!["message".into(), "iq".into()],
            timeout: Duration::from_secs(1),
            secret: None,
            bearer: None,
            retries: 0,
            queue: 1,
            from: crate::access::Access::Contacts,
        };
        assert!(wants(&cfg, &el(MSG)));
        assert!(wants(&cfg, &el(IQ)));
        assert!(!wants(&cfg, &el("<message type='error'/>")));
        assert!(!wants(&cfg, &el("<iq type='result' id='x'/>")));
        assert!(!wants(&cfg, &el("<presence/>")));
    }

    #[test]
    fn an_iq_without_a_request_type_does_not_go_to_the_webhook() {
        let cfg = WebhookConfig {
            url: "http://h/".into(),
            format: WebhookFormat::Json,
            stanzas: vec!["iq".into()],
            timeout: Duration::from_secs(1),
            secret: None,
            bearer: None,
            retries: 0,
            queue: 1,
            from: crate::access::Access::Contacts,
        };
        for iq in [
            "<iq id='x'/>",
            "<iq type='GET' id='x'/>",
            "<iq type='chat' id='x'/>",
        ] {
            assert!(!wants(&cfg, &el(iq)), "{iq}");
        }
    }
}
