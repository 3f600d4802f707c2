//! Stanza sizes and byte bounds against a real Prosody: an oversized incoming message is
//! skipped (even when offline storage hands it over again at every login), an oversized
//! post is refused at the door, a stanza the server refuses every time leaves the queue,
//! messages that waited carry a delay stamp, and the outbox is bounded in bytes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, unique_user, Bed, Prosody, ProsodyOpts, Signal, TestClient};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn receiver(p: &Prosody) -> TestClient {
    let user = unique_user("rcpt");
    p.register(&user, "pw");
    TestClient::connect(p, &user, "pw")
}

#[test]
fn oversized_incoming_message_from_offline_storage_is_skipped_and_the_bot_stays_online() {
    let p = Prosody::start(ProsodyOpts {
        offline: true,
        muc: false,
        direct_tls: false,
        ..ProsodyOpts::default()
    });
    let sender = unique_user("sender");
    p.register(&sender, "pw");
    let mut s = TestClient::connect(&p, &sender, "pw");
    // Registered but not started: the first 100 KB message waits in offline storage and
    // comes with the bot's first login, as it would again after every reconnect.
    let user = unique_user("bot");
    p.register(&user, "pw");
    let big = "x".repeat(100_000);
    let bare = p.jid(&user);
    s.send_raw(&format!(
        "<message to='{bare}' type='chat' id='big1'><body>{big}</body></message>"
    ));
    let mut b = Bed::on(&p)
        .account(&user)
        .xmpp("reconnect_max", "\"1s\"")
        .key("msg")
        .start();
    let d = &mut b.daemon;
    d.wait_for("-byte message from", WAIT);
    // A second one while online, to the full JID.
    s.send_raw(&format!(
        "<message to='{bare}/xrelay' type='chat' id='big2'><body>{big}</body></message>"
    ));
    d.wait_for("-byte message from", WAIT);
    // 30 s online: with reconnect_max at 1 s, a stream ended over the message would have
    // come back and met it again many times over.
    std::thread::sleep(Duration::from_secs(30));
    let log = d.log();
    assert!(!log.contains("disconnected"), "{log}");
    assert_eq!(d.count("online as"), 1, "{log}");
    assert!(log.contains(&format!("from {sender}@localhost/")), "{log}");
    let health = http(b.port, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200, "{}", health.body);
    let mut rcpt = receiver(&p);
    let r = b.post_text(&format!("/msg/{}", rcpt.bare_jid()), "after the big one");
    assert_eq!(r.status, 202, "{}", r.body);
    let m = rcpt.recv_message(WAIT).expect("a later post is delivered");
    assert_eq!(m.body.as_deref(), Some("after the big one"));
    assert!(b.daemon.terminate().success());
}

#[test]
fn oversized_iq_request_is_answered_with_policy_violation() {
    let p = common::shared();
    let mut b = Bed::new().key("msg").start();
    let user = unique_user("asker");
    p.register(&user, "pw");
    let mut c = TestClient::connect(p, &user, "pw");
    let pad = "y".repeat(100_000);
    c.send_raw(&format!(
        "<iq type='get' id='huge1' to='{}@localhost/xrelay'><query xmlns='jabber:iq:version'>\
         <pad>{pad}</pad></query></iq>",
        b.user
    ));
    let reply = c
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("huge1"))
        .expect("an answer");
    assert_eq!(reply.el.attr("type"), Some("error"), "{}", reply.raw);
    assert!(reply.raw.contains("policy-violation"), "{}", reply.raw);
    assert!(!b.daemon.log().contains("disconnected"));
    assert!(b.daemon.terminate().success());
}

#[test]
fn post_that_escapes_past_the_outgoing_limit_is_refused_with_413() {
    let p = common::shared();
    let b = Bed::on(p).key("msg").start();
    let mut rcpt = receiver(p);
    // 60,000 quotes fit the HTTP body limit but escape to 360,000 bytes.
    let r = b.post_text(&format!("/msg/{}", rcpt.bare_jid()), &"\"".repeat(60_000));
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("360"), "{}", r.body);
    assert!(r.body.contains("262144"), "{}", r.body);
    let r = b.post_text(&format!("/msg/{}", rcpt.bare_jid()), "small");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        rcpt.recv_message(WAIT).unwrap().body.as_deref(),
        Some("small")
    );
    assert!(b.daemon.terminate().success());
}

#[test]
fn poison_stanza_is_taken_out_after_two_tries_and_the_next_ten_arrive() {
    let p = Prosody::start(ProsodyOpts {
        stanza_size_limit: Some(10_000),
        muc: false,
        direct_tls: false,
        ..ProsodyOpts::default()
    });
    let mut b = Bed::on(&p)
        .xmpp("reconnect_max", "\"1s\"")
        .key("msg")
        .start();
    let mut rcpt = receiver(&p);
    let to = rcpt.bare_jid();
    // Under xrelay's 256 KiB limit, over this server's 10,000 bytes.
    let (port, auth) = (b.port, b.auth());
    let path = format!("/msg/{to}?wait=1");
    let waiter = std::thread::spawn(move || {
        http(
            port,
            "POST",
            &path,
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            "p".repeat(20_000).as_bytes(),
        )
    });
    b.daemon.wait_for("disconnected", WAIT);
    for n in 0..10 {
        let r = b.post_text(&format!("/msg/{to}"), &format!("next {n}"));
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let r = waiter.join().unwrap();
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("policy-violation"), "{}", r.body);
    let mut got = Vec::new();
    while got.len() < 10 {
        let Some(m) = rcpt.recv_message(Duration::from_secs(20)) else {
            break;
        };
        got.push(m.body.unwrap_or_default());
    }
    let want: Vec<String> = (0..10).map(|n| format!("next {n}")).collect();
    assert_eq!(got, want, "log:\n{}", b.daemon.log());
    let log = b.daemon.log();
    assert_eq!(log.matches("failed and left the queue").count(), 1, "{log}");
    assert_eq!(
        log.matches("disconnected: the server ended the stream: policy-violation")
            .count(),
        2,
        "two tries: {log}"
    );
    let metrics = b.get("/metrics");
    assert!(
        metrics
            .body
            .contains("xrelay_messages_refused_by_server_total 1"),
        "{}",
        metrics.body
    );
    assert!(b.daemon.terminate().success());
}

/// Seconds since the epoch of an XEP-0082 timestamp.
fn unix(stamp: &str) -> u64 {
    xrelay::timefmt::parse_rfc3339(stamp).expect("a valid stamp")
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn message_posted_while_the_server_is_down_carries_a_delay_stamp_of_the_post_time() {
    let mut p = Prosody::start(ProsodyOpts {
        offline: true,
        muc: false,
        direct_tls: false,
        ..ProsodyOpts::default()
    });
    let rcpt_user = unique_user("rcpt");
    p.register(&rcpt_user, "pw");
    let mut b = Bed::on(&p)
        .xmpp("reconnect_max", "\"1s\"")
        .key("msg")
        .start();
    p.stop();
    b.daemon.wait_for("disconnected", WAIT);
    let posted = now_unix();
    let r = b.post_text(&format!("/msg/{}", p.jid(&rcpt_user)), "WAN down");
    assert_eq!(r.status, 202, "{}", r.body);
    // Longer than outbox.stamp_after (5 s).
    std::thread::sleep(Duration::from_secs(6));
    p.start_again();
    let mut rcpt = TestClient::connect(&p, &rcpt_user, "pw");
    let m = rcpt
        .recv_message(Duration::from_secs(20))
        .expect("delivered");
    assert_eq!(m.body.as_deref(), Some("WAN down"));
    // Ours is the one without `from` (offline storage adds its own, with the server's JID).
    let ours =
        m.el.children
            .iter()
            .find(|c| c.is("delay") && c.attr("from").is_none())
            .unwrap_or_else(|| panic!("no delay stamp: {}", m.raw));
    let stamp = unix(ours.attr("stamp").unwrap()) as f64;
    assert!(
        (stamp - posted).abs() <= 1.0,
        "stamp {stamp} vs post {posted}"
    );
    assert!(b.daemon.terminate().success());
}

#[test]
fn outbox_refuses_with_503_at_its_byte_bound_and_memory_stays_bounded() {
    let mut p = Prosody::start(ProsodyOpts {
        muc: false,
        direct_tls: false,
        ..ProsodyOpts::default()
    });
    let max_bytes = 1 << 20;
    let mut b = Bed::on(&p)
        .section(&format!(
            "[outbox]\ncapacity = 4096\nmax_bytes = {max_bytes}\ngrace = \"1s\"\n"
        ))
        .key("msg")
        .start();
    std::thread::sleep(Duration::from_millis(500));
    let idle = b.daemon.rss_kib();
    p.stop();
    b.daemon.wait_for("disconnected", WAIT);
    // 64 KiB bodies (the HTTP body limit), each about as large once serialized.
    let body = "m".repeat(65_000);
    let started = Instant::now();
    let mut accepted = 0;
    let refused = loop {
        let r = b.post_text("/msg/someone@localhost", &body);
        if r.status != 202 {
            break r;
        }
        accepted += 1;
        assert!(accepted < 100, "never refused");
        assert!(started.elapsed() < Duration::from_secs(60));
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.header("Retry-After").is_some());
    let per = body.len() + 100;
    assert!(
        accepted * body.len() <= max_bytes && (accepted + 1) * per > max_bytes,
        "{accepted} accepted"
    );
    let health = b.get("/health");
    assert!(
        health.body.contains("\"max_bytes\":1048576"),
        "{}",
        health.body
    );
    let rss = b.daemon.rss_kib();
    eprintln!("outbox bytes: {accepted} accepted, RSS idle {idle} KiB, full {rss} KiB");
    assert!(
        rss < idle + 2 * (max_bytes as u64 / 1024),
        "RSS {rss} KiB, idle {idle} KiB"
    );
    b.daemon.terminate();
}

#[test]
fn spool_larger_than_the_outbox_bounds_is_replayed_in_order_from_disk() {
    let mut p = Prosody::start(ProsodyOpts {
        muc: false,
        direct_tls: false,
        ..ProsodyOpts::default()
    });
    let rcpt_user = unique_user("rcpt");
    p.register(&rcpt_user, "pw");
    let spool = p.dir.join("spool");
    let spool_line = format!("spool = {}\n", common::toml_str(&spool.to_string_lossy()));
    // First run: a large outbox fills the spool while the server is down.
    let mut b = Bed::on(&p)
        .xmpp("reconnect_max", "\"1s\"")
        .section(&format!(
            "[outbox]\ncapacity = 4096\nmax_bytes = 8388608\n{spool_line}"
        ))
        .key("msg")
        .start();
    p.stop();
    b.daemon.wait_for("disconnected", WAIT);
    let to = p.jid(&rcpt_user);
    let total = 40;
    for n in 0..total {
        let r = b.post_text(
            &format!("/msg/{to}"),
            &format!("{n:03} {}", "s".repeat(60_000)),
        );
        assert_eq!(r.status, 202, "{}", r.body);
    }
    b.daemon.signal(Signal::KILL);
    b.daemon.wait_exit(WAIT);
    // Second run: the same spool under a 1 MiB outbox.
    p.start_again();
    let mut rcpt = TestClient::connect(&p, &rcpt_user, "pw");
    let mut second = Bed::on(&p)
        .account(&b.user)
        .section(&format!("[outbox]\nmax_bytes = 1048576\n{spool_line}"))
        .ready_when("more wait on disk")
        .start();
    let d = &mut second.daemon;
    let mut got = Vec::new();
    let mut peak = 0;
    while got.len() < total {
        let Some(m) = rcpt.recv_message(Duration::from_secs(20)) else {
            break;
        };
        got.push(m.body.unwrap_or_default()[..3].to_string());
        peak = peak.max(d.rss_kib());
    }
    let want: Vec<String> = (0..total).map(|n| format!("{n:03}")).collect();
    assert_eq!(got, want, "log:\n{}", d.log());
    let health = http(second.port, "GET", "/health", &[], b"");
    assert!(health.body.contains("\"depth\":0"), "{}", health.body);
    eprintln!("spool replay: {total} x 60 kB through a 1 MiB outbox, peak RSS {peak} KiB");
    assert!(second.daemon.terminate().success());
}
