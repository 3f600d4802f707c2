//! Webhooks against a real Prosody and a real HTTP endpoint (plain and TLS): what the
//! endpoint receives, and what the sender gets for each kind of answer.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::webhook::{Endpoint, Recorded, Reply};
use common::{toml_str, Bed, Bot, Element};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "hook-secret";
const BEARER: &str = "hook-bearer";

/// A bot running xrelay with `[webhook]` set to `webhook` (TOML lines), and a sender
/// ([`Bot::peer`]).
fn bed(webhook: &str) -> Bot {
    // These tests speak JSON unless they say otherwise (the default format is XML).
    let format = if webhook.contains("format") {
        ""
    } else {
        "format = \"json\"\n"
    };
    // The senders are strangers to the bot: these tests are about the endpoint, not access.
    Bed::new()
        .webhook(&format!("from = \"anyone\"\n{format}{webhook}\n"))
        .peer("sender")
        .start()
}

/// The sender sends `body` to the bot.
fn send(b: &mut Bot, body: &str) {
    let bot = b.jid.clone();
    b.peer().send_message(&bot, body);
}

/// The next message from the bot with a body.
fn reply(b: &mut Bot) -> String {
    let m = b.peer().recv_message(WAIT).expect("a reply from the bot");
    assert!(m.from.starts_with(&b.jid), "{}", m.raw);
    m.body.unwrap_or_default()
}

/// The next error stanza: (error type, condition).
fn error(b: &mut Bot, name: &str) -> (String, String, Element) {
    let s = b
        .peer()
        .recv_where(WAIT, |e| e.is(name) && e.attr("type") == Some("error"))
        .unwrap_or_else(|| panic!("no {name} error arrived"));
    let err = s.el.child("error").expect("an <error/>").clone();
    let condition = err
        .children
        .iter()
        .find(|c| c.local_name() != "text")
        .map(|c| c.local_name().to_string())
        .unwrap_or_default();
    (
        err.attr("type").unwrap_or_default().to_string(),
        condition,
        s.el,
    )
}

/// The body field of a JSON webhook request.
fn body_of(r: &Recorded) -> String {
    r.json()["body"].as_str().unwrap_or_default().to_string()
}

fn json_handler(r: &Recorded) -> Reply {
    if r.header("Content-Type") != Some("application/json") {
        return Reply::status(415);
    }
    let v = r.json();
    if v["kind"] == "iq" {
        return Reply::with(
            "application/xmpp+xml",
            "<iq type='result'><query xmlns='urn:test:q'><answer>42</answer></query></iq>",
        );
    }
    let body = body_of(r);
    match body.split_once(' ').unwrap_or((&body, "")) {
        ("echo", rest) => Reply::with(
            "application/json",
            &format!(r#"{{"body": "echo: {rest}"}}"#),
        ),
        ("accepted", _) => {
            Reply::with("application/json", r#"{"body": "must not arrive"}"#).code(202)
        }
        ("nocontent", _) => Reply::status(204),
        ("status", code) => Reply::status(code.parse().unwrap()),
        ("slow", _) => {
            Reply::with("application/json", r#"{"body": "late"}"#).after(Duration::from_secs(3))
        }
        ("huge", _) => Reply {
            status: 200,
            content_type: Some("application/json".into()),
            body: vec![b' '; 10 << 20],
            delay: Duration::ZERO,
        },
        ("xml", _) => Reply::with(
            "application/xmpp+xml",
            "<message><body>from &lt;xml&gt;</body></message>",
        ),
        _ => Reply::status(400),
    }
}

/// A bot whose JSON webhook is [`json_handler`], signed and with a bearer, for messages
/// and iqs, with a 1 s timeout and no retries.
fn json_bed() -> (Endpoint, Bot) {
    let hook = Endpoint::start(false, json_handler);
    let url = hook.url("/hook/{kind}/{type}?from={from}");
    let b = bed(&format!(
        "url = {}\nstanzas = [\"message\", \"iq\"]\ntimeout = \"1s\"\nretries = 0\n\
         secret = {}\nbearer = {}\n",
        toml_str(&url),
        toml_str(SECRET),
        toml_str(BEARER)
    ));
    (hook, b)
}

#[test]
fn a_json_answer_is_the_reply() {
    let (_hook, mut b) = json_bed();
    send(&mut b, "echo hello <&>");
    assert_eq!(reply(&mut b), "echo: hello <&>");
}

#[test]
fn the_request_is_mod_rests_json_mapping_at_the_filled_url() {
    let (hook, mut b) = json_bed();
    send(&mut b, "echo hello <&>");
    reply(&mut b);
    let req = hook.requests().pop().unwrap();
    let sender = b.peer().jid();
    assert_eq!(req.method, "POST");
    let enc: String = sender
        .bytes()
        .map(|c| match c {
            b'@' => "%40".to_string(),
            b'/' => "%2F".to_string(),
            c => char::from(c).to_string(),
        })
        .collect();
    assert_eq!(req.path, format!("/hook/message/chat?from={enc}"));
    let v = req.json();
    assert_eq!(v["kind"], "message");
    assert_eq!(v["type"], "chat");
    assert_eq!(v["from"], sender.as_str());
    assert_eq!(v["body"], "echo hello <&>");
    let stanza = v["stanza"].as_str().unwrap();
    assert!(
        stanza.contains("<body>echo hello &lt;&amp;&gt;</body>"),
        "{stanza}"
    );
}

#[test]
fn the_request_carries_the_bearer_and_a_signature_of_a_recent_timestamp_and_the_body() {
    let (hook, mut b) = json_bed();
    send(&mut b, "echo hello <&>");
    reply(&mut b);
    let req = hook.requests().pop().unwrap();
    assert_eq!(
        req.header("Authorization"),
        Some(&*format!("Bearer {BEARER}"))
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let sig = req.header("X-Xrelay-Signature").unwrap();
    let hex = sig.strip_prefix("sha256=").unwrap();
    let raw: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    // Signed as TIMESTAMP.BODY, the timestamp a recent one (docs/security.md).
    let ts = req.header("X-Xrelay-Timestamp").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts.parse().unwrap()) <= 300, "{ts}");
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&req.body);
    ring::hmac::verify(&key, &signed, &raw).expect("the signature verifies");
}

#[test]
fn accepted_and_no_content_answers_send_nothing_and_keep_the_order() {
    let (_hook, mut b) = json_bed();
    // The worker keeps order, so the next reply is the echo.
    send(&mut b, "accepted");
    send(&mut b, "nocontent");
    send(&mut b, "echo after");
    assert_eq!(reply(&mut b), "echo: after");
}

#[test]
fn an_xml_answer_to_a_json_request_is_the_reply() {
    let (_hook, mut b) = json_bed();
    send(&mut b, "xml");
    assert_eq!(reply(&mut b), "from <xml>");
}

#[test]
fn http_errors_become_the_stanza_errors_of_the_table() {
    let (_hook, mut b) = json_bed();
    for (status, kind, condition) in [
        (404, "cancel", "item-not-found"),
        (429, "wait", "resource-constraint"),
        (500, "wait", "internal-server-error"),
    ] {
        send(&mut b, &format!("status {status}"));
        let (t, c, _) = error(&mut b, "message");
        assert_eq!((t.as_str(), c.as_str()), (kind, condition), "HTTP {status}");
    }
}

#[test]
fn a_slow_endpoint_gets_recipient_unavailable_at_the_timeout() {
    let (_hook, mut b) = json_bed();
    // The timeout answers, not the endpoint.
    let started = Instant::now();
    send(&mut b, "slow");
    let (t, c, _) = error(&mut b, "message");
    assert_eq!((t.as_str(), c.as_str()), ("wait", "recipient-unavailable"));
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_10_mb_answer_is_refused_unread_without_memory_growth() {
    let (_hook, mut b) = json_bed();
    let before = b.daemon.rss_kib();
    send(&mut b, "huge");
    let (t, c, _) = error(&mut b, "message");
    assert_eq!((t.as_str(), c.as_str()), ("wait", "recipient-unavailable"));
    let grown = b.daemon.rss_kib().saturating_sub(before);
    assert!(grown < 1024, "RSS grew by {grown} KiB");
}

#[test]
fn a_version_iq_is_answered_by_xrelay_itself() {
    let (_hook, mut b) = json_bed();
    let bot_full = b.full_jid();
    b.peer().send_raw(&format!(
        "<iq type='get' id='v1' to='{bot_full}'><query xmlns='jabber:iq:version'/></iq>"
    ));
    let v = b
        .peer()
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("v1"))
        .expect("a version answer");
    assert_eq!(v.el.attr("type"), Some("result"), "{}", v.raw);
    assert!(v.raw.contains("<name>xrelay</name>"), "{}", v.raw);
}

#[test]
fn other_iqs_get_the_webhooks_answer() {
    let (_hook, mut b) = json_bed();
    let bot_full = b.full_jid();
    b.peer().send_raw(&format!(
        "<iq type='get' id='c1' to='{bot_full}'><query xmlns='urn:test:q'/></iq>"
    ));
    let c = b
        .peer()
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("c1"))
        .expect("the webhook's iq answer");
    assert_eq!(c.el.attr("type"), Some("result"), "{}", c.raw);
    assert!(c.raw.contains("<answer>42</answer>"), "{}", c.raw);
}

/// A bot whose XML webhook over TLS answers JSON to a body with "json please", XML to
/// anything else.
fn xml_tls_bed() -> (Endpoint, Bot) {
    let hook = Endpoint::start(true, |r| {
        if r.header("Content-Type") != Some("application/xmpp+xml") {
            return Reply::status(415);
        }
        let text = r.text();
        if text.contains("json please") {
            Reply::with("application/json", r#"{"body": "json over tls"}"#)
        } else {
            Reply::with(
                "application/xmpp+xml",
                "<message xmlns='jabber:client'><body>xml over tls</body></message>",
            )
        }
    });
    let b = bed(&format!(
        "url = {}\nformat = \"xml\"\n",
        toml_str(&hook.url("/xml"))
    ));
    (hook, b)
}

#[test]
fn an_xml_webhook_over_tls_gets_the_unsigned_stanza_and_its_xml_answer_is_the_reply() {
    let (hook, mut b) = xml_tls_bed();
    send(&mut b, "hello");
    assert_eq!(reply(&mut b), "xml over tls");
    let req = hook.requests().pop().unwrap();
    let text = req.text();
    assert!(
        text.starts_with("<message ") && text.contains("<body>hello</body>"),
        "{text}"
    );
    assert!(req.header("X-Xrelay-Signature").is_none());
}

#[test]
fn a_json_answer_to_an_xml_request_is_the_reply() {
    let (_hook, mut b) = xml_tls_bed();
    send(&mut b, "json please");
    assert_eq!(reply(&mut b), "json over tls");
}

/// A bot whose webhook (messages only, two retries) listens nowhere.
fn unreachable_bed() -> Bot {
    let port = common::free_port();
    bed(&format!(
        "url = \"http://127.0.0.1:{port}/down\"\nretries = 2\n"
    ))
}

#[test]
fn an_unreachable_endpoint_answers_recipient_unavailable_after_the_retries() {
    let mut b = unreachable_bed();
    let started = Instant::now();
    send(&mut b, "anyone there?");
    let (t, c, _) = error(&mut b, "message");
    assert_eq!((t.as_str(), c.as_str()), ("wait", "recipient-unavailable"));
    // Two retries: pauses of 0.5 s and 1 s before giving up.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_iq_when_iqs_are_not_forwarded_gets_service_unavailable() {
    let mut b = unreachable_bed();
    let to = b.full_jid();
    b.peer().send_raw(&format!(
        "<iq type='get' id='n1' to='{to}'><query xmlns='urn:test:q'/></iq>"
    ));
    let (t, c, _) = error(&mut b, "iq");
    assert_eq!((t.as_str(), c.as_str()), ("cancel", "service-unavailable"));
}

#[test]
fn a_full_queue_answers_resource_constraint() {
    let hook = Endpoint::start(false, |_| {
        Reply::with("application/json", r#"{"body": "done"}"#).after(Duration::from_millis(700))
    });
    let mut b = bed(&format!("url = {}\nqueue = 1\n", toml_str(&hook.url("/q"))));
    for i in 0..4 {
        send(&mut b, &format!("m{i}"));
    }
    let (mut done, mut refused) = (0, 0);
    for _ in 0..4 {
        let s = b
            .peer()
            .recv_where(WAIT, |e| e.is("message"))
            .expect("an answer for every message");
        if s.el.attr("type") == Some("error") {
            assert!(s.raw.contains("resource-constraint"), "{}", s.raw);
            refused += 1;
        } else {
            done += 1;
        }
    }
    assert!(refused >= 1 && done >= 1, "done {done}, refused {refused}");
    assert_eq!(hook.requests().len(), done);
}

/// A raw endpoint that answers every connection with `answer(body it received)`, exactly
/// as written: for framings the test endpoint does not produce.
fn raw_endpoint(answer: fn(&str) -> String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // The request is small: read until the declared body is in.
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = conn.write_all(answer(body).as_bytes());
                        break;
                    }
                }
            }
        }
    });
    url
}

fn body_field(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["body"].as_str().unwrap_or_default().to_string()
}

#[test]
fn an_http_1_0_answer_framed_by_the_close_is_the_reply() {
    // Python's http.server and CGI gateways: HTTP/1.0, the body ends when the server closes.
    let url = raw_endpoint(|req| {
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}",
            serde_json::json!({ "body": format!("1.0: {}", body_field(req)) })
        )
    });
    let mut b = bed(&format!("url = {}", toml_str(&url)));
    send(&mut b, "one");
    assert_eq!(reply(&mut b), "1.0: one");
}

#[test]
fn a_chunked_answer_is_the_reply() {
    let url = raw_endpoint(|req| {
        let reply =
            serde_json::json!({ "body": format!("chunked: {}", body_field(req)) }).to_string();
        let (a, z) = reply.split_at(5);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{z}\r\n0\r\n\r\n",
            a.len(),
            z.len()
        )
    });
    let mut b = bed(&format!("url = {}", toml_str(&url)));
    send(&mut b, "two");
    assert_eq!(reply(&mut b), "chunked: two");
}
