//! Webhooks: stanzas that reach the bot are POSTed to `webhook.url`, and the HTTP answer
//! becomes the XMPP reply (the semantics of mod_rest's callbacks and mod_component_http).
//!
//! The pure half turns a stanza into a request (URL template, JSON or XML body, signature)
//! and a response into what the sender gets ([`Outcome`]): 202/204 nothing, a stanza in the
//! body that reply, a 4xx/5xx the stanza error of Prosody's HTTP→stanza-error table, an
//! unreachable endpoint `wait/recipient-unavailable`. The shell is a one-request HTTP/1.x
//! client (`http::client` over smol TCP, rustls for https) and one worker fed by a bounded queue, so
//! replies keep the order of the stanzas and a slow endpoint never holds up the stream.

use crate::app::App;
use crate::config::{WebhookConfig, WebhookFormat};
use crate::http::client::{self, ClientError};
use crate::http::url::Url;
use crate::log;
use crate::metrics;
use crate::xmpp::jid::Jid;
use crate::xmpp::jsonmap;
use crate::xmpp::stanza::{self, NS_CLIENT};
use crate::xmpp::tls;
use crate::xmpp::xml::{self, Element};
use ring::hmac;
use rustls::ClientConfig;
use smol::channel::{Receiver, Sender, TrySendError};
use smol::future::FutureExt;
use smol::net::TcpStream;
use smol::Timer;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Media type of stanzas as XML.
pub const CONTENT_XML: &str = "application/xmpp+xml";
/// Media type of mod_rest's JSON mapping.
pub const CONTENT_JSON: &str = "application/json";
/// The signature header: `sha256=` and the hex HMAC-SHA256 of the body under `secret`.
pub const SIGNATURE_HEADER: &str = "X-Xrelay-Signature";
/// First pause before retrying an unreachable endpoint; it doubles with each retry.
pub const RETRY_START: Duration = Duration::from_millis(500);
/// Longest pause between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(8);

/// What the sender of a forwarded stanza gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing: 202 or 204, or a message answered without a usable body.
    NoReply,
    /// This stanza, addressed to the sender.
    Reply(Element),
}

/// Why a call to the endpoint failed before it gave an HTTP status.
#[derive(Debug)]
pub enum CallError {
    /// The URL could not be built or names no host.
    Url(String),
    /// No TCP connection (refused, unreachable, name not resolved): retried.
    Connect(std::io::Error),
    /// The TLS handshake failed.
    Tls(tls::TlsError),
    /// The endpoint did not answer within `webhook.timeout`.
    Timeout,
    /// The answer was not HTTP, or broke off.
    Http(String),
    /// The answer's body is larger than a stanza may be.
    TooLarge(usize),
}

impl CallError {
    /// Whether another attempt may succeed without the endpoint having seen the stanza:
    /// only when no connection was made, so a retry never delivers a stanza twice.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CallError::Connect(_))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Url(why) => write!(f, "bad webhook URL: {why}"),
            CallError::Connect(e) => write!(f, "cannot connect: {e}"),
            CallError::Tls(e) => write!(f, "{e}"),
            CallError::Timeout => f.write_str("no answer in time"),
            CallError::Http(why) => write!(f, "bad HTTP answer: {why}"),
            CallError::TooLarge(max) => write!(f, "the answer is larger than {max} bytes"),
        }
    }
}

impl std::error::Error for CallError {}

/// The URL for `st`: `{kind}`, `{type}`, `{from}` and `{to}` in the template replaced by the
/// percent-encoded values (empty when absent; a presence without type is `available`).
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

/// RFC 3986 unreserved characters stay; every other byte becomes `%XX`.
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The request body for `st` and its media type: mod_rest's JSON mapping plus `stanza`, the
/// full XML; or the XML alone.
pub fn request_body(format: WebhookFormat, st: &Element) -> (Vec<u8>, &'static str) {
    // A standalone document carries its namespace, as mod_rest sends it.
    let xml = st.to_bytes("");
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

/// The value of [`SIGNATURE_HEADER`] for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "sha256={}",
        crate::hashfile::hex(hmac::sign(&key, body).as_ref())
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

/// What the sender of `request` gets for an HTTP answer. `body` is at most the stanza size
/// limit; a body that claims to be a stanza but is not one is treated as no body (and
/// reported in the error, for the log).
pub fn outcome(
    request: &Element,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max: usize,
) -> (Outcome, Option<String>) {
    if !(200..300).contains(&status) {
        let (kind, condition) = http_error(status);
        let reply = match reason_phrase(status) {
            "" => stanza::error_reply(request, kind, condition),
            text => stanza::error_reply_text(request, kind, condition, text),
        };
        return (Outcome::Reply(reply), None);
    }
    let no_body = || {
        if request.name() == "iq" {
            Outcome::Reply(stanza::iq_result(request))
        } else {
            Outcome::NoReply
        }
    };
    if status == 202 || status == 204 {
        return (Outcome::NoReply, None);
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let parsed = match media.as_deref() {
        _ if body.iter().all(u8::is_ascii_whitespace) => return (no_body(), None),
        Some(CONTENT_JSON) => serde_json::from_slice(body)
            .map_err(|e| format!("the JSON answer is not valid: {e}"))
            .and_then(|v| jsonmap::from_json(&v).map_err(|e| e.to_string())),
        Some(CONTENT_XML) => xml::parse_document(body, max).map_err(|e| e.to_string()),
        _ => return (no_body(), None),
    };
    match parsed.and_then(|reply| shape_reply(request, reply)) {
        Ok(reply) => (Outcome::Reply(reply), None),
        Err(why) => (no_body(), Some(why)),
    }
}

/// Addresses `reply` to the sender of `request`: to/from swapped (the server stamps our
/// `from`), the id kept for iq; a reply to a groupchat message goes to the room.
fn shape_reply(request: &Element, mut reply: Element) -> Result<Element, String> {
    if reply.ns() != NS_CLIENT || !matches!(reply.name(), "message" | "presence" | "iq") {
        return Err("the answer is not a message, presence or iq".into());
    }
    let is_iq = request.name() == "iq";
    if is_iq != (reply.name() == "iq") {
        return Err(format!(
            "a {} cannot answer a {}",
            reply.name(),
            request.name()
        ));
    }
    reply.remove_attr("from");
    let from = request.get_attr("from").unwrap_or_default();
    let groupchat = request.get_attr("type") == Some("groupchat") && reply.name() == "message";
    if groupchat {
        let room = Jid::parse(from).map_or_else(|_| from.to_string(), |j| j.bare().to_string());
        reply.set_attr("to", &room);
        reply.set_attr("type", "groupchat");
    } else if !from.is_empty() {
        reply.set_attr("to", from);
    } else {
        reply.remove_attr("to");
    }
    if is_iq {
        match request.get_attr("id") {
            Some(id) => reply.set_attr("id", id),
            None => reply.remove_attr("id"),
        }
        if reply.get_attr("type") != Some("error") {
            reply.set_attr("type", "result");
        }
    } else if reply.name() == "message" && reply.get_attr("type").is_none() {
        if let Some(t) = request.get_attr("type") {
            reply.set_attr("type", t);
        }
    }
    Ok(reply)
}

/// The endpoint and how to reach it.
#[derive(Debug)]
pub struct Webhook {
    cfg: WebhookConfig,
    tls: Arc<ClientConfig>,
    /// Largest answer body read: a reply must fit in a stanza.
    max_body: usize,
}

/// The bounded queue in front of the worker.
#[derive(Debug)]
pub struct Queue {
    tx: Sender<Element>,
}

impl Queue {
    /// Hand `st` to the worker; `false` when the queue is full (or the worker is gone).
    pub fn offer(&self, st: Element) -> bool {
        match self.tx.try_send(st) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
        }
    }
}

/// A webhook and its queue; the receiver goes to [`run_worker`].
pub fn new(
    cfg: WebhookConfig,
    tls: Arc<ClientConfig>,
    max_body: usize,
) -> (Webhook, Queue, Receiver<Element>) {
    let (tx, rx) = smol::channel::bounded(cfg.queue);
    (Webhook { cfg, tls, max_body }, Queue { tx }, rx)
}

/// The worker: one stanza at a time, so replies keep their order; each reply goes through
/// the outbox like any other stanza, so it survives a reconnect.
pub async fn run_worker(hook: Webhook, rx: Receiver<Element>, app: &App) {
    while let Ok(st) = rx.recv().await {
        let Some(reply) = hook.deliver(&st, app).await else {
            continue;
        };
        if app.outbox.push(reply, false).is_err() {
            metrics::inc(&app.metrics.webhook.reply_dropped);
            log!(
                "webhook: the reply to {} from {} was dropped: the outbox is full",
                st.name(),
                st.get_attr("from").unwrap_or_default()
            );
        }
    }
}

impl Webhook {
    /// Call the endpoint for `st` (retrying connection failures) and return the reply.
    pub async fn deliver(&self, st: &Element, app: &App) -> Option<Element> {
        let url = fill_url(&self.cfg.url, st);
        let (body, content_type) = request_body(self.cfg.format, st);
        let mut pause = RETRY_START;
        let mut attempt = 0;
        let result = loop {
            let call = async { Some(self.call(&url, &body, content_type).await) };
            let timeout = async {
                Timer::after(self.cfg.timeout).await;
                None
            };
            match call.or(timeout).await.unwrap_or(Err(CallError::Timeout)) {
                Err(e) if e.is_retryable() && attempt < self.cfg.retries => {
                    attempt += 1;
                    Timer::after(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                other => break other,
            }
        };
        let from = st.get_attr("from").unwrap_or_default();
        match result {
            Ok((status, ctype, answer)) => {
                let (out, problem) = outcome(st, status, ctype.as_deref(), &answer, self.max_body);
                if let Some(why) = problem {
                    log!(
                        "webhook: answer to the {} from {from} unusable: {why}",
                        st.name()
                    );
                }
                if (200..300).contains(&status) {
                    metrics::inc(&app.metrics.webhook.ok);
                } else {
                    metrics::inc(&app.metrics.webhook.http_error);
                    log!("webhook: HTTP {status} for the {} from {from}", st.name());
                }
                match out {
                    Outcome::Reply(r) => Some(r),
                    Outcome::NoReply => None,
                }
            }
            Err(e) => {
                metrics::inc(&app.metrics.webhook.unreachable);
                log!(
                    "webhook: the {} from {from} was not delivered: {e}",
                    st.name()
                );
                Some(stanza::error_reply(st, "wait", "recipient-unavailable"))
            }
        }
    }

    /// One POST: (status, content type, body).
    async fn call(
        &self,
        url: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<(u16, Option<String>, Vec<u8>), CallError> {
        let url = Url::parse(url).map_err(|e| CallError::Url(e.to_string()))?;
        let signed = self
            .cfg
            .secret
            .as_ref()
            .map(|secret| signature(secret.expose(), body));
        let bearer = self
            .cfg
            .bearer
            .as_ref()
            .map(|b| format!("Bearer {}", b.expose()));
        let mut headers = vec![
            ("Content-Type", content_type),
            (
                "Accept",
                "application/json, application/xmpp+xml;q=0.9, */*;q=0.1",
            ),
            ("User-Agent", concat!("xrelay/", env!("CARGO_PKG_VERSION"))),
        ];
        if let Some(sig) = &signed {
            headers.push((SIGNATURE_HEADER, sig));
        }
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        let addr_host = url.connect_host();
        let tcp = TcpStream::connect((addr_host, url.port_or_default()))
            .await
            .map_err(CallError::Connect)?;
        let res = if url.https {
            let stream = tls::connect(self.tls.clone(), addr_host, tcp)
                .await
                .map_err(CallError::Tls)?;
            client::post(stream, &url, &headers, body, self.max_body).await
        } else {
            client::post(tcp, &url, &headers, body, self.max_body).await
        };
        let res = res.map_err(|e| match e {
            ClientError::TooLarge(max) => CallError::TooLarge(max),
            other => CallError::Http(other.to_string()),
        })?;
        Ok((res.status, res.content_type, res.body))
    }
}

/// How the endpoint's certificate is checked: the stream's CA file if set, else the
/// built-in roots (pins name the XMPP server's key, not the endpoint's).
pub fn trust(ca_file: Option<&std::path::Path>) -> tls::Trust {
    ca_file.map_or(tls::Trust::Roots, |p| tls::Trust::CaFile(p.to_path_buf()))
}

/// Whether a stanza goes to the webhook at all: of a configured kind, not an error, and
/// for iq only requests.
pub fn wants(cfg: &WebhookConfig, st: &Element) -> bool {
    let kind = st.get_attr("type");
    kind != Some("error")
        && cfg.stanzas.iter().any(|k| k == st.name())
        && (st.name() != "iq" || matches!(kind, Some("get" | "set")))
}

/// The answer to a stanza the queue had no room for.
pub fn busy_reply(st: &Element) -> Element {
    stanza::error_reply(st, "wait", "resource-constraint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn el(s: &str) -> Element {
        xml::parse_document(s.as_bytes(), 65536).unwrap()
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
    fn bodies_are_json_with_the_stanza_or_xml() {
        let m = el(MSG);
        let (body, ct) = request_body(WebhookFormat::Json, &m);
        assert_eq!(ct, CONTENT_JSON);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["body"], "hi & bye");
        assert_eq!(v["kind"], "message");
        assert_eq!(v["from"], "alice@example.org/phone");
        let stanza = v["stanza"].as_str().unwrap();
        assert!(
            stanza.starts_with("<message xmlns='jabber:client'"),
            "{stanza}"
        );
        assert_eq!(el(stanza), m);
        let (body, ct) = request_body(WebhookFormat::Xml, &m);
        assert_eq!(ct, CONTENT_XML);
        assert_eq!(el(std::str::from_utf8(&body).unwrap()), m);
    }

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepted_and_no_content_mean_no_reply() {
        for st in [MSG, IQ] {
            for status in [202, 204] {
                let body = br#"{"body": "ignored"}"#;
                let (o, _) = outcome(&el(st), status, Some(CONTENT_JSON), body, 4096);
                assert_eq!(o, Outcome::NoReply);
            }
        }
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
            (Some("text/plain"), b"ok", false),
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
        assert!(why.unwrap().contains("not a message"));
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
                br#"{"body":"x"}"#,
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
        };
        assert!(wants(&cfg, &el(MSG)));
        assert!(wants(&cfg, &el(IQ)));
        assert!(!wants(&cfg, &el("<message type='error'/>")));
        assert!(!wants(&cfg, &el("<iq type='result' id='x'/>")));
        assert!(!wants(&cfg, &el("<presence/>")));
        assert!(!CallError::Timeout.is_retryable());
        assert!(CallError::Connect(std::io::ErrorKind::ConnectionRefused.into()).is_retryable());
    }
}
