//! The HTTP API against a real Prosody: posting (mod_post_msg compatible), keys, the
//! outbox, MUC, health and metrics, and every error status of the contract.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, unique_user, xrelay, Bed, Bot, HttpResponse, Prosody, ProsodyOpts, TestClient};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// A bot on `p` with a `msg` key, started once its listener is up (not necessarily online).
fn relay(p: &Prosody) -> Bed<'_> {
    Bed::on(p).key("msg").ready_when("http: listening")
}

/// A bot online with a `msg` key and a receiving account ([`Bot::peer`]).
fn online_with_peer() -> Bot {
    Bed::new().key("msg").peer("rcpt").start()
}

/// `xrelay key create ARGS`, returning the printed `ID/SECRET`.
fn key_create(b: &Bot, args: &[&str]) -> String {
    let mut all = vec!["key", "create"];
    all.extend_from_slice(args);
    let out = xrelay(&b.cfg, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn receiver(p: &Prosody) -> (TestClient, String) {
    let user = unique_user("rcpt");
    p.register(&user, "pw");
    (TestClient::connect(p, &user, "pw"), user)
}

fn assert_status(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(
        r.header("Content-Type").is_some_and(|c| c.contains("json")),
        "{r:?}"
    );
    if status >= 400 {
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{r:?}");
    }
}

/// `res` is a 202 with an id, and the peer gets `body` of `kind` with `subject` from the bot.
fn expect(b: &mut Bot, res: HttpResponse, body: &str, kind: &str, subject: Option<&str>) {
    assert_status(&res, 202);
    let v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert!(v["id"].as_str().is_some(), "{res:?}");
    let bot = b.user.clone();
    let m = b
        .peer()
        .recv_message(WAIT)
        .unwrap_or_else(|| panic!("no message for {body:?}"));
    assert_eq!(m.body.as_deref(), Some(body));
    assert_eq!(m.kind, kind);
    assert_eq!(m.subject.as_deref(), subject);
    assert!(m.from.starts_with(&format!("{bot}@localhost")), "{m:?}");
}

#[test]
fn a_text_plain_post_arrives_as_a_chat_message() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let res = b.post(&path, "text/plain", b"plain text");
    expect(&mut b, res, "plain text", "chat", None);
}

#[test]
fn a_utf8_text_post_arrives_intact_without_its_trailing_newline() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let res = b.post(
        &path,
        "text/plain; charset=utf-8",
        "ünï <&> \"q\"\n".as_bytes(),
    );
    expect(&mut b, res, "ünï <&> \"q\"", "chat", None);
}

#[test]
fn a_post_without_content_type_is_sent_as_text() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let res = b.request("POST", &path, &[], b"no content type");
    expect(&mut b, res, "no content type", "chat", None);
}

#[test]
fn form_fields_set_the_recipient_type_body_and_subject() {
    let mut b = online_with_peer();
    let user = b.peer().bare_jid();
    let res = b.post(
        "/msg/nobody",
        "application/x-www-form-urlencoded",
        format!("to={user}&type=headline&body=a+b%26c&subject=S"),
    );
    expect(&mut b, res, "a b&c", "headline", Some("S"));
}

#[test]
fn a_form_body_without_fields_is_sent_as_the_text() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let res = b.post(&path, "application/x-www-form-urlencoded", b"WAN is down");
    expect(&mut b, res, "WAN is down", "chat", None);
}

#[test]
fn json_fields_set_the_recipient_type_body_and_subject() {
    let mut b = online_with_peer();
    let jid = b.peer().bare_jid();
    let res = b.post(
        "/msg/nobody",
        "application/json",
        format!(r#"{{"to":"{jid}","type":"normal","body":"json body","subject":"J"}}"#),
    );
    expect(&mut b, res, "json body", "normal", Some("J"));
}

#[test]
fn a_get_with_a_body_parameter_sends_it() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let res = b.get(&format!("{path}?body=get+works%21"));
    expect(&mut b, res, "get works!", "chat", None);
}

#[test]
fn a_subject_or_title_header_is_the_subject() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let res = b.request("POST", &path, &[("Subject", "From header")], b"s");
    expect(&mut b, res, "s", "chat", Some("From header"));
    let res = b.request("POST", &path, &[("Title", "Title header")], b"t");
    expect(&mut b, res, "t", "chat", Some("Title header"));
}

#[test]
fn mod_post_msgs_curl_line_with_the_key_as_user_and_password_is_delivered() {
    let mut b = online_with_peer();
    let user = b.peer().bare_jid();
    // mod_post_msg's documented curl usage, literally (key id and secret via -u).
    let (id, secret) = b.token.split_once('/').unwrap();
    let out = Command::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{}/msg/{user}", b.port)])
        .args(["-u", &format!("{id}:{secret}")])
        .args([
            "-H",
            "Content-Type: text/plain",
            "-d",
            "Server@host has just crashed!",
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        b.peer().recv_message(WAIT).unwrap().body.as_deref(),
        Some("Server@host has just crashed!")
    );
}

#[test]
fn basic_credentials_with_any_user_and_the_whole_key_as_password_are_accepted() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let basic = http(
        b.port,
        "POST",
        &path,
        &[(
            "Authorization",
            &format!("Basic {}", b64(&format!("x:{}", b.token))),
        )],
        b"basic",
    );
    expect(&mut b, basic, "basic", "chat", None);
}

#[test]
fn a_key_in_the_query_is_accepted() {
    let mut b = online_with_peer();
    let path = format!("/msg/{}", b.peer().bare_jid());
    let with_query = http(
        b.port,
        "POST",
        &format!("{path}?key={}", b.token.replace('/', "%2F")),
        &[],
        b"q",
    );
    expect(&mut b, with_query, "q", "chat", None);
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_post_to_a_room_arrives_as_groupchat_from_the_configured_nick() {
    let p = common::shared();
    let room = format!("{}@conference.localhost", unique_user("room"));
    let (mut c, _) = receiver(p);
    c.join_room(&room, "watcher");
    let rooms = format!("[\"{room}\"]");
    let mut r = relay(p)
        .xmpp("rooms", &rooms)
        .xmpp("nick", "\"alerts\"")
        .start();
    r.daemon.wait_for(&format!("joined {room}"), WAIT);
    let res = r.post(&format!("/msg/{room}"), "text/plain", b"to the room");
    assert_status(&res, 202);
    let m = c.recv_message(WAIT).expect("groupchat arrives");
    assert_eq!(m.kind, "groupchat");
    assert_eq!(m.from, format!("{room}/alerts"));
    assert_eq!(m.body.as_deref(), Some("to the room"));
    let health: serde_json::Value = serde_json::from_str(&r.get("/health").body).unwrap();
    assert_eq!(health["rooms"][0]["state"], "joined", "{health}");
}

#[test]
fn a_room_that_refuses_is_reported_not_fatal() {
    let p = common::shared();
    let rooms = "[\"nosuchroom@nonexistent.localhost\"]";
    let mut r = relay(p).xmpp("rooms", rooms).start();
    r.daemon
        .wait_for("not in nosuchroom@nonexistent.localhost", WAIT);
    let res = r.get("/health");
    assert_eq!(res.status, 200, "{res:?}");
    let health: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(health["rooms"][0]["state"], "failed", "{health}");
}

/// A bot with a 1 KiB body limit, for the error statuses.
fn strict() -> Bot {
    relay(common::shared())
        .http("max_body_bytes = 1024")
        .start()
}

const OK_PATH: &str = "/msg/someone";

#[test]
fn malformed_json_form_or_text_bodies_get_400() {
    let b = strict();
    assert_status(&b.post(OK_PATH, "application/json", b"{"), 400);
    assert_status(&b.post(OK_PATH, "application/json", b"[1]"), 400);
    assert_status(
        &b.post(OK_PATH, "application/x-www-form-urlencoded", b"body=%zz"),
        400,
    );
    assert_status(&b.post(OK_PATH, "text/plain", b"\xff\xfe"), 400);
}

#[test]
fn a_post_without_credentials_gets_401_with_a_challenge() {
    let b = strict();
    let none = http(b.port, "POST", OK_PATH, &[], b"x");
    assert_status(&none, 401);
    assert!(none.header("WWW-Authenticate").is_some(), "{none:?}");
}

#[test]
fn a_wrong_secret_gets_401() {
    let b = strict();
    let (id, _) = b.token.split_once('/').unwrap();
    let wrong = format!("Bearer {id}/wrongsecret");
    assert_status(
        &http(b.port, "POST", OK_PATH, &[("Authorization", &wrong)], b"x"),
        401,
    );
}

#[test]
fn a_key_without_the_msg_scope_gets_403() {
    let b = strict();
    let rest_only = key_create(&b, &["--scope", "rest"]);
    let h = format!("Bearer {rest_only}");
    assert_status(
        &http(b.port, "POST", OK_PATH, &[("Authorization", &h)], b"x"),
        403,
    );
}

#[test]
fn a_body_over_max_body_bytes_gets_413() {
    let b = strict();
    let big = vec![b'x'; 4096];
    assert_status(&b.post(OK_PATH, "text/plain", &big), 413);
}

#[test]
fn an_unsupported_media_type_or_charset_gets_415() {
    let b = strict();
    assert_status(&b.post(OK_PATH, "text/html", b"x"), 415);
    assert_status(&b.post(OK_PATH, "text/plain; charset=latin1", b"x"), 415);
}

#[test]
fn a_missing_or_invalid_recipient_a_blank_body_or_an_unknown_type_gets_422() {
    let b = strict();
    assert_status(&b.post("/msg/", "text/plain", b"x"), 422);
    assert_status(&b.post(OK_PATH, "text/plain", b"  \n"), 422);
    assert_status(&b.post("/msg/a%20b", "text/plain", b"x"), 422);
    assert_status(
        &b.post(&format!("{OK_PATH}?type=shout"), "text/plain", b"x"),
        422,
    );
}

#[test]
fn an_unknown_path_gets_404() {
    let b = strict();
    assert_status(&b.get("/nope"), 404);
}

#[test]
fn a_put_gets_405_naming_the_allowed_methods() {
    let b = strict();
    let put = b.request("PUT", OK_PATH, &[], b"");
    assert_status(&put, 405);
    assert!(put.header("Allow").is_some(), "{put:?}");
}

#[test]
fn an_expired_key_gets_403() {
    let b = strict();
    let short = key_create(&b, &["--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let h = format!("Bearer {short}");
    assert_status(
        &http(b.port, "POST", OK_PATH, &[("Authorization", &h)], b"x"),
        403,
    );
}

#[test]
fn repeated_failures_are_rate_limited() {
    let p = common::shared();
    let r = relay(p).start();
    let bad = "Bearer 0000000000000000/nope";
    let mut last = None;
    for _ in 0..30 {
        let res = http(r.port, "POST", "/msg/x", &[("Authorization", bad)], b"x");
        if res.status == 429 {
            last = Some(res);
            break;
        }
        assert_status(&res, 401);
    }
    let res = last.expect("429 after repeated failures");
    assert_status(&res, 429);
    assert!(res.header("Retry-After").is_some(), "{res:?}");
    // Only wrong credentials are refused: a valid key from that address is still served.
    assert_eq!(r.post("/msg/x", "text/plain", b"x").status, 202);
}

/// A bot with an outbox of 2 on its own Prosody, online once, then cut off by stopping
/// the server.
fn stream_down() -> (Prosody, Bot) {
    let mut p = Prosody::start(ProsodyOpts::default());
    let mut r = relay(&p)
        .xmpp("reconnect_max", "\"1s\"")
        .section("[outbox]\ncapacity = 2\n")
        .start();
    r.daemon.wait_for("online as", WAIT);
    assert_eq!(r.get("/health").status, 200);
    p.stop();
    r.daemon.wait_for("disconnected", WAIT);
    (p, r)
}

#[test]
fn health_answers_503_while_the_stream_is_down() {
    let (_p, r) = stream_down();
    assert_eq!(r.get("/health").status, 503);
}

#[test]
fn a_wait_post_gets_504_when_the_stream_is_down_past_its_timeout() {
    let (_p, r) = stream_down();
    let waited = r.request(
        "POST",
        "/msg/someone?wait=1",
        &[("X-Timeout", "1")],
        b"queued but not acknowledged",
    );
    assert_status(&waited, 504);
}

#[test]
fn a_full_outbox_answers_503_with_retry_after_and_drains_once_back_online() {
    let (mut p, mut r) = stream_down();
    assert_status(&r.post("/msg/someone", "text/plain", b"first"), 202);
    assert_status(&r.post("/msg/someone", "text/plain", b"second"), 202);
    let full = r.post("/msg/someone", "text/plain", b"third");
    assert_status(&full, 503);
    assert!(full.header("Retry-After").is_some(), "{full:?}");
    let v: serde_json::Value = serde_json::from_str(&r.get("/health").body).unwrap();
    assert_eq!(v["outbox"]["depth"], 2, "{v}");
    assert_eq!(v["outbox"]["capacity"], 2, "{v}");
    // Back online: the queued messages go out and the outbox drains.
    p.start_again();
    r.daemon.wait_for("online as", Duration::from_secs(20));
    let deadline = Instant::now() + WAIT;
    loop {
        let v: serde_json::Value = serde_json::from_str(&r.get("/health").body).unwrap();
        if v["outbox"]["depth"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "outbox never drained: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn wait_returns_after_the_server_acknowledged() {
    let p = common::shared();
    let mut r = relay(p).start();
    r.daemon.wait_for("online as", WAIT);
    let (mut c, user) = receiver(p);
    let auth = format!("Bearer {}", r.token);
    let res = http(
        r.port,
        "POST",
        &format!("/msg/{user}?wait=1"),
        &[("Authorization", &auth)],
        b"acked",
    );
    assert_status(&res, 200);
    assert!(res.body.contains("acknowledged"), "{res:?}");
    assert_eq!(c.recv_message(WAIT).unwrap().body.as_deref(), Some("acked"));
}

#[test]
fn nothing_lost_when_the_server_restarts() {
    let mut p = Prosody::start(ProsodyOpts {
        offline: true,
        ..ProsodyOpts::default()
    });
    let mut r = relay(&p).xmpp("reconnect_max", "\"1s\"").start();
    r.daemon.wait_for("online as", WAIT);
    let (mut c, user) = receiver(&p);
    let path = format!("/msg/{user}");
    let mut accepted = Vec::new();
    let mut got: HashMap<String, usize> = HashMap::new();
    for i in 0..200 {
        if i == 100 {
            // Collect what arrived so far, then restart the server.
            while let Some(m) = c.recv_message(Duration::from_millis(300)) {
                *got.entry(m.body.unwrap_or_default()).or_default() += 1;
            }
            p.stop();
        }
        if i == 120 {
            p.start_again();
        }
        let body = format!("msg-{i}");
        let res = r.post(&path, "text/plain", body.as_bytes());
        if res.status / 100 == 2 {
            accepted.push(body);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    r.daemon.wait_for("online as", Duration::from_secs(20));
    let mut c = TestClient::connect(&p, &user, "pw");
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.iter().any(|b| !got.contains_key(b)) && Instant::now() < deadline {
        if let Some(m) = c.recv_message(Duration::from_millis(500)) {
            *got.entry(m.body.unwrap_or_default()).or_default() += 1;
        }
    }
    let lost: Vec<_> = accepted.iter().filter(|b| !got.contains_key(*b)).collect();
    let duplicated = got.values().filter(|&&n| n > 1).count();
    eprintln!(
        "restart: {} answered 2xx, {} arrived, {} duplicated, {} lost",
        accepted.len(),
        got.len(),
        duplicated,
        lost.len()
    );
    assert_eq!(accepted.len(), 200, "every post was accepted");
    assert!(lost.is_empty(), "lost: {lost:?}");
}

#[test]
fn keys_from_the_cli_work_and_deleting_one_revokes_it() {
    let p = common::shared();
    let r = relay(p).start();
    let fresh = key_create(&r, &["--scope", "msg,rest", "router-1"]);
    let (id, secret) = fresh.split_once('/').unwrap();
    assert_eq!(id.len(), 16);
    assert!(secret.len() >= 40);
    let h = format!("Bearer {fresh}");
    assert_status(
        &http(
            r.port,
            "POST",
            "/msg/someone",
            &[("Authorization", &h)],
            b"x",
        ),
        202,
    );
    let list = xrelay(&r.cfg, &["key", "list"]);
    let list_text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list_text.contains(id) && list_text.contains("router-1"),
        "{list_text}"
    );
    assert!(!list_text.contains(secret), "secrets never listed");
    let keys_file = std::fs::read_to_string(&r.keys).unwrap();
    assert!(!keys_file.contains(secret), "only hashes are stored");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&r.keys).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let del = xrelay(&r.cfg, &["key", "delete", id]);
    assert!(del.status.success(), "{del:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = http(
            r.port,
            "POST",
            "/msg/someone",
            &[("Authorization", &h)],
            b"x",
        );
        if res.status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deleted key still accepted: {res:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let again = xrelay(&r.cfg, &["key", "delete", id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("key not found"),
        "{again:?}"
    );
}

#[test]
fn health_shows_the_stream_online_and_the_outbox_capacity() {
    let p = common::shared();
    let mut r = relay(p).start();
    r.daemon.wait_for("online as", WAIT);
    let h = r.get("/health");
    assert_status(&h, 200);
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(v["stream"], "online", "{v}");
    assert_eq!(v["outbox"]["capacity"], 256, "{v}");
}

#[test]
fn metrics_need_a_key_and_count_accepted_messages_and_responses() {
    let p = common::shared();
    let mut r = relay(p).start();
    r.daemon.wait_for("online as", WAIT);
    assert_status(&r.post("/msg/someone", "text/plain", b"counted"), 202);
    assert_status(&http(r.port, "GET", "/metrics", &[], b""), 401);
    let m = r.get("/metrics");
    assert_eq!(m.status, 200, "{m:?}");
    assert!(
        m.body.contains("xrelay_messages_accepted_total 1\n"),
        "{}",
        m.body
    );
    assert!(m.body.contains("xrelay_stream_online 1\n"), "{}", m.body);
    assert!(
        m.body
            .contains("xrelay_http_responses_total{code=\"202\"} 1\n"),
        "{}",
        m.body
    );
}

#[test]
fn slow_clients_are_dropped_and_the_connection_cap_holds() {
    let p = common::shared();
    let r = relay(p)
        .http("max_connections = 1\nread_timeout = \"1s\"\n")
        .start();
    // A client that sends half a request and stalls holds the only slot...
    let mut slow = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    slow.write_all(b"POST /msg/x HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // ...until the read timeout drops it; then the next request is served.
    let started = Instant::now();
    let h = http(r.port, "GET", "/health", &[], b"");
    assert!(h.status == 200 || h.status == 503, "{h:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        started.elapsed()
    );
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    // A body that trickles past the read timeout is dropped too.
    let mut trickle = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    let auth = format!("Authorization: Bearer {}\r\n", r.token);
    trickle
        .write_all(
            format!("POST /msg/x HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 100\r\n\r\nabc")
                .as_bytes(),
        )
        .unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut resp = Vec::new();
    let _ = trickle.read_to_end(&mut resp);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
