//! The HTTP API against a real Prosody: posting (mod_post_msg compatible), keys, the
//! outbox, MUC, health and metrics, and every error status of the contract.

mod common;

use common::xrelay;

use common::{http, unique_user, Daemon, HttpResponse, Prosody, ProsodyOpts, TestClient};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// A running `xrelay run` with an HTTP port and a `msg` key.
struct Relay {
    daemon: Daemon,
    port: u16,
    cfg: PathBuf,
    token: String,
    bot: String,
}

/// `xrelay key create ARGS`, returning the printed `ID/SECRET`.
fn key_create(cfg: &Path, args: &[&str]) -> String {
    let mut all = vec!["key", "create"];
    all.extend_from_slice(args);
    let out = xrelay(cfg, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn relay(p: &Prosody, xmpp: &[(&str, &str)], tail: &str) -> Relay {
    let b = common::bot_config(p, xmpp, tail, "");
    let mut daemon = Daemon::start(&b.cfg);
    daemon.wait_for("http: listening", WAIT);
    Relay {
        daemon,
        port: b.port,
        cfg: b.cfg,
        token: b.token,
        bot: b.bot,
    }
}

impl Relay {
    fn post(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> HttpResponse {
        let auth = format!("Bearer {}", self.token);
        let mut head = vec![("Authorization", auth.as_str())];
        if let Some(ct) = content_type {
            head.push(("Content-Type", ct));
        }
        http(self.port, "POST", path, &head, body)
    }

    fn get(&self, path: &str) -> HttpResponse {
        let auth = format!("Bearer {}", self.token);
        http(self.port, "GET", path, &[("Authorization", &auth)], b"")
    }
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

fn expect(
    c: &mut TestClient,
    bot: &str,
    res: HttpResponse,
    body: &str,
    kind: &str,
    subject: Option<&str>,
) {
    assert_status(&res, 202);
    let v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert!(v["id"].as_str().is_some(), "{res:?}");
    let m = c
        .recv_message(WAIT)
        .unwrap_or_else(|| panic!("no message for {body:?}"));
    assert_eq!(m.body.as_deref(), Some(body));
    assert_eq!(m.kind, kind);
    assert_eq!(m.subject.as_deref(), subject);
    assert!(m.from.starts_with(&format!("{bot}@localhost")), "{m:?}");
}

#[test]
fn every_content_type_and_field() {
    let p = common::shared();
    let mut r = relay(p, &[], "");
    r.daemon.wait_for("online as", WAIT);
    let (mut c, user) = receiver(p);
    let jid = format!("{user}@localhost");
    let path = format!("/msg/{user}");
    expect(
        &mut c,
        &r.bot,
        r.post(&path, Some("text/plain"), b"plain text"),
        "plain text",
        "chat",
        None,
    );
    expect(
        &mut c,
        &r.bot,
        r.post(
            &path,
            Some("text/plain; charset=utf-8"),
            "ünï <&> \"q\"\n".as_bytes(),
        ),
        "ünï <&> \"q\"",
        "chat",
        None,
    );
    expect(
        &mut c,
        &r.bot,
        r.post(&path, None, b"no content type"),
        "no content type",
        "chat",
        None,
    );
    expect(
        &mut c,
        &r.bot,
        r.post(
            "/msg/nobody",
            Some("application/x-www-form-urlencoded"),
            format!("to={user}&type=headline&body=a+b%26c&subject=S").as_bytes(),
        ),
        "a b&c",
        "headline",
        Some("S"),
    );
    expect(
        &mut c,
        &r.bot,
        r.post(
            &path,
            Some("application/x-www-form-urlencoded"),
            b"WAN is down",
        ),
        "WAN is down",
        "chat",
        None,
    );
    expect(
        &mut c,
        &r.bot,
        r.post(
            "/msg/nobody",
            Some("application/json"),
            format!(r#"{{"to":"{jid}","type":"normal","body":"json body","subject":"J"}}"#)
                .as_bytes(),
        ),
        "json body",
        "normal",
        Some("J"),
    );
    expect(
        &mut c,
        &r.bot,
        r.get(&format!("{path}?body=get+works%21")),
        "get works!",
        "chat",
        None,
    );
    let auth = format!("Bearer {}", r.token);
    expect(
        &mut c,
        &r.bot,
        http(
            r.port,
            "POST",
            &path,
            &[("Authorization", &auth), ("Subject", "From header")],
            b"s",
        ),
        "s",
        "chat",
        Some("From header"),
    );
    expect(
        &mut c,
        &r.bot,
        http(
            r.port,
            "POST",
            &path,
            &[("Authorization", &auth), ("Title", "Title header")],
            b"t",
        ),
        "t",
        "chat",
        Some("Title header"),
    );
    // mod_post_msg's documented curl usage, literally (key id and secret via -u).
    let (id, secret) = r.token.split_once('/').unwrap();
    let out = Command::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{}/msg/{user}", r.port)])
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
        c.recv_message(WAIT).unwrap().body.as_deref(),
        Some("Server@host has just crashed!")
    );
    // Any user with password ID/SECRET works too.
    let basic = http(
        r.port,
        "POST",
        &path,
        &[(
            "Authorization",
            &format!("Basic {}", b64(&format!("x:{}", r.token))),
        )],
        b"basic",
    );
    expect(&mut c, &r.bot, basic, "basic", "chat", None);
    let with_query = http(
        r.port,
        "POST",
        &format!("{path}?key={}", r.token.replace('/', "%2F")),
        &[],
        b"q",
    );
    expect(&mut c, &r.bot, with_query, "q", "chat", None);
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn muc_room_gets_groupchat() {
    let p = common::shared();
    let room = format!("{}@conference.localhost", unique_user("room"));
    let (mut c, _) = receiver(p);
    c.join_room(&room, "watcher");
    let rooms = format!("[\"{room}\"]");
    let mut r = relay(p, &[("rooms", &rooms), ("nick", "\"alerts\"")], "");
    r.daemon.wait_for(&format!("joined {room}"), WAIT);
    let res = r.post(&format!("/msg/{room}"), Some("text/plain"), b"to the room");
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
    let mut r = relay(p, &[("rooms", rooms)], "");
    r.daemon
        .wait_for("not in nosuchroom@nonexistent.localhost", WAIT);
    let res = r.get("/health");
    assert_eq!(res.status, 200, "{res:?}");
    let health: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(health["rooms"][0]["state"], "failed", "{health}");
}

#[test]
fn every_error_status() {
    let p = common::shared();
    let r = relay(p, &[], "max_body_bytes = 1024\n");
    let ok = "/msg/someone";
    assert_status(&r.post(ok, Some("application/json"), b"{"), 400);
    assert_status(&r.post(ok, Some("application/json"), b"[1]"), 400);
    assert_status(
        &r.post(ok, Some("application/x-www-form-urlencoded"), b"body=%zz"),
        400,
    );
    assert_status(&r.post(ok, Some("text/plain"), b"\xff\xfe"), 400);
    let none = http(r.port, "POST", ok, &[], b"x");
    assert_status(&none, 401);
    assert!(none.header("WWW-Authenticate").is_some(), "{none:?}");
    let (id, _) = r.token.split_once('/').unwrap();
    let wrong = format!("Bearer {id}/wrongsecret");
    assert_status(
        &http(r.port, "POST", ok, &[("Authorization", &wrong)], b"x"),
        401,
    );
    let rest_only = key_create(&r.cfg, &["--scope", "rest"]);
    let h = format!("Bearer {rest_only}");
    assert_status(
        &http(r.port, "POST", ok, &[("Authorization", &h)], b"x"),
        403,
    );
    let big = vec![b'x'; 4096];
    assert_status(&r.post(ok, Some("text/plain"), &big), 413);
    assert_status(&r.post(ok, Some("text/html"), b"x"), 415);
    assert_status(&r.post(ok, Some("text/plain; charset=latin1"), b"x"), 415);
    assert_status(&r.post("/msg/", Some("text/plain"), b"x"), 422);
    assert_status(&r.post(ok, Some("text/plain"), b"  \n"), 422);
    assert_status(&r.post("/msg/a%20b", Some("text/plain"), b"x"), 422);
    assert_status(
        &r.post(&format!("{ok}?type=shout"), Some("text/plain"), b"x"),
        422,
    );
    assert_status(&r.get("/nope"), 404);
    let put = http(
        r.port,
        "PUT",
        ok,
        &[("Authorization", &format!("Bearer {}", r.token))],
        b"",
    );
    assert_status(&put, 405);
    assert!(put.header("Allow").is_some(), "{put:?}");
    // An expired key: 403.
    let short = key_create(&r.cfg, &["--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let h = format!("Bearer {short}");
    assert_status(
        &http(r.port, "POST", ok, &[("Authorization", &h)], b"x"),
        403,
    );
}

#[test]
fn repeated_failures_are_rate_limited() {
    let p = common::shared();
    let r = relay(p, &[], "");
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
    assert_eq!(r.post("/msg/x", Some("text/plain"), b"x").status, 202);
}

#[test]
fn outbox_full_and_wait_timeout_while_the_stream_is_down() {
    let mut p = Prosody::start(ProsodyOpts::default());
    let mut r = relay(
        &p,
        &[("reconnect_max", "\"1s\"")],
        "[outbox]\ncapacity = 2\n",
    );
    r.daemon.wait_for("online as", WAIT);
    assert_eq!(r.get("/health").status, 200);
    p.stop();
    r.daemon.wait_for("disconnected", WAIT);
    assert_eq!(r.get("/health").status, 503);
    let auth = format!("Bearer {}", r.token);
    let waited = http(
        r.port,
        "POST",
        "/msg/someone?wait=1",
        &[("Authorization", &auth), ("X-Timeout", "1")],
        b"queued but not acknowledged",
    );
    assert_status(&waited, 504);
    assert_status(&r.post("/msg/someone", Some("text/plain"), b"second"), 202);
    let full = r.post("/msg/someone", Some("text/plain"), b"third");
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
    let mut r = relay(p, &[], "");
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
    let mut r = relay(&p, &[("reconnect_max", "\"1s\"")], "");
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
        let res = r.post(&path, Some("text/plain"), body.as_bytes());
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
    let r = relay(p, &[], "");
    let fresh = key_create(&r.cfg, &["--scope", "msg,rest", "router-1"]);
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
    let keys_file = std::fs::read_to_string(p.dir.join(format!("keys-{}", r.bot))).unwrap();
    assert!(!keys_file.contains(secret), "only hashes are stored");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p.dir.join(format!("keys-{}", r.bot)))
        .unwrap()
        .permissions()
        .mode();
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
fn health_and_metrics() {
    let p = common::shared();
    let mut r = relay(p, &[], "");
    r.daemon.wait_for("online as", WAIT);
    let h = r.get("/health");
    assert_status(&h, 200);
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(v["stream"], "online", "{v}");
    assert_eq!(v["outbox"]["capacity"], 256, "{v}");
    assert_status(&r.post("/msg/someone", Some("text/plain"), b"counted"), 202);
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
    let r = relay(p, &[], "max_connections = 1\nread_timeout = \"1s\"\n");
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
