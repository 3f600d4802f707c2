//! Webhooks against a real Prosody and a real HTTP endpoint (plain and TLS): what the
//! endpoint receives, and what the sender gets for each kind of answer.

mod common;

use common::webhook::{Endpoint, Recorded, Reply};
use common::{http_section, shared, toml_str, unique_user, Daemon, Element, Prosody, TestClient};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "hook-secret";
const BEARER: &str = "hook-bearer";

/// A bot running xrelay with `[webhook]` set to `webhook` (TOML lines), and a sender.
struct Bed {
    daemon: Daemon,
    bot: String,
    sender: TestClient,
}

fn bed(p: &Prosody, webhook: &str) -> Bed {
    let bot = unique_user("hookbot");
    p.register(&bot, "pw");
    let (_, http) = http_section(&p.dir);
    // These tests speak JSON unless they say otherwise (the default format is XML).
    let format = if webhook.contains("format") {
        ""
    } else {
        "format = \"json\"\n"
    };
    // The senders are strangers to the bot: these tests are about the endpoint, not access.
    let cfg = p.xrelay_config_with(
        &bot,
        "pw",
        &[],
        &format!("{http}[webhook]\nfrom = \"anyone\"\n{format}{webhook}\n"),
    );
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("online as", WAIT);
    let user = unique_user("sender");
    p.register(&user, "pw");
    Bed {
        daemon,
        bot: p.jid(&bot),
        sender: TestClient::connect(p, &user, "pw"),
    }
}

impl Bed {
    fn send(&mut self, body: &str) {
        let bot = self.bot.clone();
        self.sender.send_message(&bot, body);
    }

    /// The next message from the bot with a body.
    fn reply(&mut self) -> String {
        let m = self
            .sender
            .recv_message(WAIT)
            .expect("a reply from the bot");
        assert!(m.from.starts_with(&self.bot), "{}", m.raw);
        m.body.unwrap_or_default()
    }

    /// The next error stanza: (error type, condition).
    fn error(&mut self, name: &str) -> (String, String, Element) {
        let s = self
            .sender
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

#[test]
fn json_webhook_requests_and_every_kind_of_answer() {
    let p = shared();
    let hook = Endpoint::start(false, json_handler);
    let url = hook.url("/hook/{kind}/{type}?from={from}");
    let mut b = bed(
        p,
        &format!(
            "url = {}\nstanzas = [\"message\", \"iq\"]\ntimeout = \"1s\"\nretries = 0\n\
             secret = {}\nbearer = {}\n",
            toml_str(&url),
            toml_str(SECRET),
            toml_str(BEARER)
        ),
    );

    // A JSON reply becomes the answer; the request is mod_rest's mapping, signed.
    b.send("echo hello <&>");
    assert_eq!(b.reply(), "echo: hello <&>");
    let req = hook.requests().pop().unwrap();
    let sender = b.sender.jid();
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

    // 202 and 204: nothing comes back; the worker keeps order, so the next reply is the echo.
    b.send("accepted");
    b.send("nocontent");
    b.send("echo after");
    assert_eq!(b.reply(), "echo: after");

    // An XML reply to a JSON request.
    b.send("xml");
    assert_eq!(b.reply(), "from <xml>");

    // HTTP errors become the stanza errors of the table, with the id kept.
    for (status, kind, condition) in [
        (404, "cancel", "item-not-found"),
        (429, "wait", "resource-constraint"),
        (500, "wait", "internal-server-error"),
    ] {
        b.send(&format!("status {status}"));
        let (t, c, _) = b.error("message");
        assert_eq!((t.as_str(), c.as_str()), (kind, condition), "HTTP {status}");
    }

    // A slow endpoint: the timeout answers, not the endpoint.
    let started = Instant::now();
    b.send("slow");
    let (t, c, _) = b.error("message");
    assert_eq!((t.as_str(), c.as_str()), ("wait", "recipient-unavailable"));
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );

    // A 10 MB answer is refused unread: an error, and no memory growth.
    let before = b.daemon.rss_kib();
    b.send("huge");
    let (t, c, _) = b.error("message");
    assert_eq!((t.as_str(), c.as_str()), ("wait", "recipient-unavailable"));
    let grown = b.daemon.rss_kib().saturating_sub(before);
    assert!(grown < 1024, "RSS grew by {grown} KiB");

    // iq: version is answered by xrelay itself, others go to the webhook.
    let bot_full = format!("{}/xrelay", b.bot);
    b.sender.send_raw(&format!(
        "<iq type='get' id='v1' to='{bot_full}'><query xmlns='jabber:iq:version'/></iq>"
    ));
    let v = b
        .sender
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("v1"))
        .expect("a version answer");
    assert_eq!(v.el.attr("type"), Some("result"), "{}", v.raw);
    assert!(v.raw.contains("<name>xrelay</name>"), "{}", v.raw);
    b.sender.send_raw(&format!(
        "<iq type='get' id='c1' to='{bot_full}'><query xmlns='urn:test:q'/></iq>"
    ));
    let c = b
        .sender
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("c1"))
        .expect("the webhook's iq answer");
    assert_eq!(c.el.attr("type"), Some("result"), "{}", c.raw);
    assert!(c.raw.contains("<answer>42</answer>"), "{}", c.raw);
}

#[test]
fn xml_webhook_over_tls() {
    let p = shared();
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
    let mut b = bed(
        p,
        &format!("url = {}\nformat = \"xml\"\n", toml_str(&hook.url("/xml"))),
    );
    b.send("hello");
    assert_eq!(b.reply(), "xml over tls");
    let req = hook.requests().pop().unwrap();
    let text = req.text();
    assert!(
        text.starts_with("<message ") && text.contains("<body>hello</body>"),
        "{text}"
    );
    assert!(req.header("X-Xrelay-Signature").is_none());
    b.send("json please");
    assert_eq!(b.reply(), "json over tls");
}

#[test]
fn unreachable_endpoint_answers_recipient_unavailable_after_retries() {
    let p = shared();
    let port = common::free_port();
    let mut b = bed(
        p,
        &format!("url = \"http://127.0.0.1:{port}/down\"\nretries = 2\n"),
    );
    let started = Instant::now();
    b.send("anyone there?");
    let (t, c, _) = b.error("message");
    assert_eq!((t.as_str(), c.as_str()), ("wait", "recipient-unavailable"));
    // Two retries: pauses of 0.5 s and 1 s before giving up.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // iq is not among the forwarded kinds here: service-unavailable.
    b.sender.send_raw(&format!(
        "<iq type='get' id='n1' to='{}/xrelay'><query xmlns='urn:test:q'/></iq>",
        b.bot
    ));
    let (t, c, _) = b.error("iq");
    assert_eq!((t.as_str(), c.as_str()), ("cancel", "service-unavailable"));
}

#[test]
fn full_queue_answers_resource_constraint() {
    let p = shared();
    let hook = Endpoint::start(false, |_| {
        Reply::with("application/json", r#"{"body": "done"}"#).after(Duration::from_millis(700))
    });
    let mut b = bed(
        p,
        &format!("url = {}\nqueue = 1\n", toml_str(&hook.url("/q"))),
    );
    for i in 0..4 {
        b.send(&format!("m{i}"));
    }
    let (mut done, mut refused) = (0, 0);
    for _ in 0..4 {
        let s = b
            .sender
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
fn http_1_0_close_framed_and_chunked_answers() {
    let p = shared();
    // Python's http.server and CGI gateways: HTTP/1.0, the body ends when the server closes.
    let url = raw_endpoint(|req| {
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}",
            serde_json::json!({ "body": format!("1.0: {}", body_field(req)) })
        )
    });
    let mut b = bed(p, &format!("url = {}", toml_str(&url)));
    b.send("one");
    assert_eq!(b.reply(), "1.0: one");

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
    let mut b = bed(p, &format!("url = {}", toml_str(&url)));
    b.send("two");
    assert_eq!(b.reply(), "chunked: two");
}
