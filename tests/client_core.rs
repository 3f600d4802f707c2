//! The XMPP client core against a real Prosody: `send`, `check`, `run`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::xrelay;

use common::{unique_user, Bed, Prosody, ProsodyOpts, Scram, TestClient};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A bot account and a receiving account online on `p`.
fn bot_and_receiver(p: &Prosody, extra: &[(&str, &str)]) -> (std::path::PathBuf, TestClient) {
    let bot = unique_user("bot");
    let rcpt = unique_user("rcpt");
    p.register(&bot, "bot-pw");
    p.register(&rcpt, "rcpt-pw");
    let cfg = p.xrelay_config(&bot, "bot-pw", extra);
    let client = TestClient::connect(p, &rcpt, "rcpt-pw");
    (cfg, client)
}

#[test]
fn send_delivers_text_intact() {
    let p = common::shared();
    let (cfg, mut rcpt) = bot_and_receiver(p, &[]);
    let to = rcpt.bare_jid();
    let body = "WAN <down> & \"quotes\" 'apostrophes' ünïcödé 😀 </body><evil/>";
    let out = xrelay(&cfg, &["send", "-s", "Alert <1>", &to, body]);
    assert!(out.status.success(), "{}", text(&out));
    let m = rcpt.recv_message(WAIT).expect("message arrives");
    assert_eq!(m.body.as_deref(), Some(body));
    assert_eq!(m.subject.as_deref(), Some("Alert <1>"));
    assert_eq!(m.kind, "chat");
}

#[test]
fn send_reads_stdin_and_takes_a_bare_localpart() {
    let p = common::shared();
    let (cfg, mut rcpt) = bot_and_receiver(p, &[]);
    let local = rcpt.bare_jid().split('@').next().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xrelay"))
        .arg("-c")
        .arg(&cfg)
        .args(["send", "-t", "headline", &local])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all("line one\nline two\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let m = rcpt.recv_message(WAIT).expect("message arrives");
    assert_eq!(m.body.as_deref(), Some("line one\nline two"));
    assert_eq!(m.kind, "headline");
}

#[test]
fn send_usage_errors_exit_2() {
    let p = common::shared();
    let cfg = p.xrelay_config("nobody", "x", &[]);
    for args in [
        vec!["send"],
        vec!["send", "a@b", "x", "y"],
        vec!["send", "-t", "shout", "a@b", "x"],
        vec!["send", "a b@c", "x"],
        vec!["send", "a@b", "   "],
        vec!["frobnicate"],
    ] {
        let out = xrelay(&cfg, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    let bad = p.dir.join("bad.toml");
    std::fs::write(&bad, "[xmpp]\njid = \"a@b\"\npasword = \"typo\"\n").unwrap();
    let out = xrelay(&bad, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("xmpp.pasword (line 3): unknown key"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_reports_every_step() {
    let p = common::shared();
    let bot = unique_user("bot");
    p.register(&bot, "pw");
    let out = xrelay(&p.xrelay_config(&bot, "pw", &[]), &["check"]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    for needle in [
        "DNS: 127.0.0.1:",
        "TCP: connected to 127.0.0.1:",
        "TLS: TLSv1.3",
        "authentication: SCRAM-SHA-256 ok",
        "stream management on",
        "ok: online in",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in {s}");
    }
}

fn check_fails_at(p: &Prosody, user: &str, pw: &str, extra: &[(&str, &str)], step: &str) {
    let out = xrelay(&p.xrelay_config(user, pw, extra), &["check"]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains(&format!("FAILED at step {step}:")),
        "wanted {step}: {s}"
    );
}

#[test]
fn check_names_the_failing_step() {
    let p = common::shared();
    let bot = unique_user("bot");
    p.register(&bot, "right");
    check_fails_at(p, &bot, "wrong", &[], "authentication");
    // No ca_file: the built-in roots do not trust the test CA.
    check_fails_at(p, &bot, "right", &[("ca_file", "")], "TLS certificate");
    let wrong_pin = "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"";
    check_fails_at(
        p,
        &bot,
        "right",
        &[("pin_sha256", &format!("[{wrong_pin}]"))],
        "TLS certificate",
    );
    let closed = common::free_port().to_string();
    check_fails_at(p, &bot, "right", &[("port", &closed)], "TCP");
}

#[test]
fn pin_trusts_exactly_that_key_without_a_ca() {
    let p = common::shared();
    let bot = unique_user("bot");
    p.register(&bot, "pw");
    let pin = format!("[\"{}\"]", p.pin());
    let cfg = p.xrelay_config(&bot, "pw", &[("ca_file", ""), ("pin_sha256", &pin)]);
    let out = xrelay(&cfg, &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&p.pin()));
}

#[test]
fn send_over_direct_tls_is_delivered() {
    let p = common::shared();
    let port = p.direct_tls_port.expect("direct TLS port").to_string();
    let (cfg, mut rcpt) = bot_and_receiver(p, &[("tls", "\"direct\""), ("port", &port)]);
    let out = xrelay(&cfg, &["send", &rcpt.bare_jid(), "over direct TLS"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        rcpt.recv_message(WAIT).unwrap().body.as_deref(),
        Some("over direct TLS")
    );
}

#[test]
fn a_scram_sha1_server_without_stream_management_is_logged_into_and_acked_by_ping() {
    let p = Prosody::start(ProsodyOpts {
        scram: Scram::Sha1,
        smacks: false,
        ..ProsodyOpts::default()
    });
    let (cfg, mut rcpt) = bot_and_receiver(&p, &[]);
    let out = xrelay(&cfg, &["check"]);
    let s = text(&out);
    assert!(s.contains("authentication: SCRAM-SHA-1 ok"), "{s}");
    assert!(s.contains("stream management not offered"), "{s}");
    let out = xrelay(&cfg, &["send", &rcpt.bare_jid(), "acked by ping"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        rcpt.recv_message(WAIT).unwrap().body.as_deref(),
        Some("acked by ping")
    );
}

#[test]
fn run_reconnects_after_the_server_restarts() {
    let mut p = Prosody::start(ProsodyOpts::default());
    let b = Bed::on(&p).xmpp("reconnect_max", "\"2s\"").start();
    let (bot, mut d) = (b.user.clone(), b.daemon);
    p.stop();
    d.wait_for("disconnected", WAIT);
    d.wait_for("reconnecting in", WAIT);
    p.start_again();
    d.wait_for("online as", WAIT);
    // Answers an iq it does not handle (no webhook), so the sender is not left waiting.
    let rcpt = unique_user("rcpt");
    p.register(&rcpt, "pw");
    let mut c = TestClient::connect(&p, &rcpt, "pw");
    c.send_raw(&format!(
        "<iq type='get' id='v1' to='{bot}@localhost/xrelay'><query xmlns='jabber:iq:last'/></iq>"
    ));
    let reply = c.recv_stanza(WAIT).expect("an answer");
    assert!(reply.contains("service-unavailable"), "{reply}");
    assert!(d.terminate().success());
}

#[test]
fn oversized_incoming_stanza_is_skipped_without_memory_growth() {
    let p = common::shared();
    let b = Bed::on(p)
        .xmpp("max_stanza_bytes", "8192")
        .xmpp("reconnect_max", "\"1s\"")
        .start();
    let (bot, mut d) = (b.user.clone(), b.daemon);
    let rcpt = unique_user("rcpt");
    p.register(&rcpt, "pw");
    let mut c = TestClient::connect(p, &rcpt, "pw");
    let big = "x".repeat(100_000);
    let before = d.rss_kib();
    for round in 0..3 {
        c.send_raw(&format!(
            "<message to='{bot}@localhost/xrelay' type='chat' id='big{round}'><body>{big}</body></message>"
        ));
        d.wait_for("-byte message from", WAIT);
    }
    let after = d.rss_kib();
    assert!(
        after < before + 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(d.count("disconnected"), 0, "{}", d.log());
    assert!(d.terminate().success());
}
