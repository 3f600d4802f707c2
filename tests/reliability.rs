//! Reliability under faults: xrelay talks to a real Prosody through a fault-injecting proxy
//! (`common::faults`) that cuts, stalls and delays the connection; Prosody is restarted;
//! xrelay is killed with SIGKILL and stopped with SIGTERM. Messages are posted over HTTP
//! and an independent client counts what arrives: answered 2xx, arrived, duplicated, lost.
//!
//! Each run posts `XRELAY_RELIABILITY_MESSAGES` messages (default 300); the figures in
//! docs/delivery.md are from `XRELAY_RELIABILITY_MESSAGES=1000 cargo test --test reliability
//! -- --nocapture`, which prints one line per run.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    unique_user, Bed, Bot, Daemon, FaultProxy, HttpResponse, Prosody, ProsodyOpts, Receiver, Signal,
};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
/// Messages per run unless `XRELAY_RELIABILITY_MESSAGES` says otherwise.
const DEFAULT_MESSAGES: usize = 300;
/// Latency the proxy adds in the cut runs, so that messages are always in flight.
const IN_FLIGHT_DELAY: Duration = Duration::from_millis(20);

fn messages() -> usize {
    std::env::var("XRELAY_RELIABILITY_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_MESSAGES)
}

/// xrelay for a fresh bot account on `p` with a `msg` key, through `proxy`; `xmpp`
/// overrides `[xmpp]` keys, `outbox` is added to `[outbox]`.
fn relay(p: &Prosody, proxy: &FaultProxy, xmpp: &[(&str, &str)], outbox: &str) -> Bot {
    let mut bed = Bed::on(p)
        .xmpp("port", &proxy.port.to_string())
        .xmpp("reconnect_max", "\"1s\"");
    for (key, value) in xmpp {
        bed = bed.xmpp(key, value);
    }
    bed.section(&format!("[outbox]\ncapacity = 4096\n{outbox}\n"))
        .key("msg")
        .start()
}

fn start(cfg: &std::path::Path) -> Daemon {
    let mut daemon = Daemon::start(cfg);
    daemon.wait_for("online as", WAIT);
    daemon
}

/// A text post to `to` with the key.
fn post(r: &Bot, to: &str, body: &str) -> HttpResponse {
    r.post_text(&format!("/msg/{to}"), body)
}

/// What a run measured.
#[derive(Debug)]
struct Report {
    answered: usize,
    arrived: usize,
    duplicated: usize,
    lost: usize,
}

/// Print the daemon's lines about sessions (what was confirmed and resent each time).
fn show_sessions(name: &str, d: &mut Daemon) {
    for l in d.log().lines().filter(|l| l.contains("sent again")) {
        eprintln!("reliability {name}: {l}");
    }
}

fn report(name: &str, started: Instant, accepted: &[String], rx: &Receiver) -> Report {
    let arrived = accepted.iter().filter(|b| rx.got.contains_key(*b)).count();
    let r = Report {
        answered: accepted.len(),
        arrived,
        duplicated: rx.got.values().map(|&n| n.saturating_sub(1)).sum(),
        lost: accepted.len() - arrived,
    };
    eprintln!(
        "reliability {name}: {} answered 2xx, {} arrived, {} duplicated, {} lost ({:.1} s)",
        r.answered,
        r.arrived,
        r.duplicated,
        r.lost,
        started.elapsed().as_secs_f64()
    );
    r
}

/// Post `n` messages `msg 0` .. `msg n-1`, calling `fault` before each; returns the bodies
/// answered 2xx.
fn post_all(
    r: &mut Bot,
    rx: &mut Receiver,
    n: usize,
    mut fault: impl FnMut(usize, &mut Bot, &mut Receiver),
) -> Vec<String> {
    let mut accepted = Vec::with_capacity(n);
    for i in 0..n {
        fault(i, r, rx);
        let body = format!("msg {i}");
        let res = post(r, &rx.user, &body);
        if res.status / 100 == 2 {
            accepted.push(body);
        }
        rx.poll(Duration::from_millis(1));
    }
    accepted
}

/// Wait until `needle` was logged `n` times.
fn wait_count(d: &mut Daemon, needle: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    while d.count(needle) < n {
        assert!(
            Instant::now() < deadline,
            "{needle:?} not logged {n} times:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Post `n` messages, cutting every connection at a quarter, half and three quarters;
/// ten posts after each cut, wait until the log shows `back(cuts)` (a line and its count),
/// so the stream flows again before the next cut. Returns the accepted messages, collected.
fn post_with_three_cuts(
    r: &mut Bot,
    rx: &mut Receiver,
    proxy: &FaultProxy,
    n: usize,
    back: impl Fn(usize) -> (&'static str, usize),
) -> Vec<String> {
    let cut_at = [n / 4, n / 2, 3 * n / 4];
    let mut cuts = 0;
    let accepted = post_all(r, rx, n, |i, r, _| {
        if cut_at.contains(&i) {
            proxy.cut_all();
            cuts += 1;
        }
        if cut_at.contains(&(i.saturating_sub(10))) {
            let (line, count) = back(cuts);
            wait_count(&mut r.daemon, line, count);
        }
    });
    rx.collect(&accepted);
    accepted
}

/// Three cuts while messages are in flight: each time the session is resumed, and only
/// what the server did not get is sent again.
#[test]
fn cuts_mid_stream_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let p = common::shared();
    let proxy = FaultProxy::start(p.c2s_port);
    proxy.delay(IN_FLIGHT_DELAY);
    let mut r = relay(p, &proxy, &[], "");
    let mut rx = Receiver::new(p);
    let n = messages();
    let accepted =
        post_with_three_cuts(&mut r, &mut rx, &proxy, n, |cuts| ("session resumed", cuts));
    let rep = report("cuts", started, &accepted, &rx);
    show_sessions("cuts", &mut r.daemon);
    assert_eq!(rep.answered, n);
    assert_eq!(rep.lost, 0, "{rep:?}");
    assert_eq!(rep.duplicated, 0, "{rep:?}");
    wait_count(&mut r.daemon, "session resumed", 3);
    assert_eq!(r.daemon.count("not resumed"), 0, "{}", r.daemon.log());
}

/// A link that silently stops carrying anything (no FIN): only the ping timeout notices;
/// the session is resumed on a new connection.
#[test]
fn a_stalled_link_is_noticed_by_the_ping_and_resumed() {
    let started = Instant::now();
    let p = common::shared();
    let proxy = FaultProxy::start(p.c2s_port);
    let mut r = relay(
        p,
        &proxy,
        &[("ping_interval", "\"1s\""), ("timeout", "\"2s\"")],
        "",
    );
    let mut rx = Receiver::new(p);
    let n = messages();
    let mut noticed = None;
    let accepted = post_all(&mut r, &mut rx, n, |i, r, _| {
        if i == n / 2 {
            proxy.stall(true);
        }
        if i == n / 2 + 20 {
            // Twenty messages were accepted into the stalled stream.
            let t = Instant::now();
            r.daemon
                .wait_for("disconnected: timed out waiting for a ping reply", WAIT);
            noticed = Some(t.elapsed());
            proxy.stall(false);
        }
    });
    rx.collect(&accepted);
    let rep = report("stall", started, &accepted, &rx);
    show_sessions("stall", &mut r.daemon);
    eprintln!(
        "reliability stall: noticed {:.1} s after the last message was posted",
        noticed.unwrap().as_secs_f64()
    );
    assert_eq!(rep.lost, 0, "{rep:?}");
    assert_eq!(rep.duplicated, 0, "{rep:?}");
    wait_count(&mut r.daemon, "session resumed", 1);
}

/// Prosody restarted twice during a stream: the session cannot be resumed, but Prosody
/// still reports how far the old one got (`<failed h=.../>`), so nothing is sent twice.
#[test]
fn server_restarts_lose_nothing() {
    let started = Instant::now();
    let mut p = Prosody::start(ProsodyOpts {
        offline: true,
        ..ProsodyOpts::default()
    });
    let proxy = FaultProxy::start(p.c2s_port);
    proxy.delay(IN_FLIGHT_DELAY);
    let mut r = relay(&p, &proxy, &[], "");
    let mut rx = Receiver::new(&p);
    let n = messages();
    let restarts = [n / 3, 2 * n / 3];
    let mut accepted = Vec::new();
    for i in 0..n {
        if let Some(k) = restarts.iter().position(|&at| at == i) {
            // Restart a server xrelay is online with, not one it is still reconnecting to.
            wait_count(&mut r.daemon, "session not resumed", k);
            p.stop();
            // Posts go on while the server is down.
            for j in 0..30 {
                let body = format!("down {k} {j}");
                if post(&r, &rx.user, &body).status / 100 == 2 {
                    accepted.push(body);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            p.start_again();
            rx.reconnect(&p);
        }
        let body = format!("msg {i}");
        if post(&r, &rx.user, &body).status / 100 == 2 {
            accepted.push(body);
        }
        rx.poll(Duration::from_millis(1));
    }
    rx.collect(&accepted);
    let rep = report("restarts", started, &accepted, &rx);
    show_sessions("restarts", &mut r.daemon);
    assert_eq!(rep.answered, n + 60);
    assert_eq!(rep.lost, 0, "{rep:?}\n{}", r.daemon.log());
    assert_eq!(rep.duplicated, 0, "{rep:?}\n{}", r.daemon.log());
    assert_eq!(
        r.daemon.count("session not resumed"),
        2,
        "{}",
        r.daemon.log()
    );
}

/// A server without stream management: acknowledgement by ping; after a cut everything
/// unacknowledged is sent again, so nothing is lost (duplicates are possible).
#[test]
fn without_stream_management_cuts_lose_nothing() {
    let started = Instant::now();
    let p = Prosody::start(ProsodyOpts {
        smacks: false,
        ..ProsodyOpts::default()
    });
    let proxy = FaultProxy::start(p.c2s_port);
    proxy.delay(IN_FLIGHT_DELAY);
    let mut r = relay(&p, &proxy, &[], "");
    let mut rx = Receiver::new(&p);
    let n = messages();
    let accepted = post_with_three_cuts(&mut r, &mut rx, &proxy, n, |cuts| ("online as", cuts + 1));
    let rep = report("cuts without stream management", started, &accepted, &rx);
    show_sessions("cuts without stream management", &mut r.daemon);
    assert_eq!(rep.lost, 0, "{rep:?}");
    assert_eq!(r.daemon.count("online as"), 4);
}

/// `kill -9` while messages wait for the server: with the spool, every message answered
/// 202 arrives after the restart.
#[test]
fn kill_9_with_the_spool_loses_nothing() {
    let started = Instant::now();
    let p = common::shared();
    let proxy = FaultProxy::start(p.c2s_port);
    let spool = p.dir.join(format!("spool-{}", unique_user("s")));
    let mut r = relay(
        p,
        &proxy,
        &[],
        &format!("spool = {}", common::toml_str(&spool.to_string_lossy())),
    );
    let mut rx = Receiver::new(p);
    let n = messages();
    let accepted = post_all(&mut r, &mut rx, n, |i, _, _| {
        if i == n / 2 {
            // The second half waits in the outbox: the server never sees it.
            proxy.stall(true);
        }
    });
    r.daemon.signal(Signal::KILL);
    assert!(r.daemon.wait_exit(WAIT).is_some());
    proxy.cut_all();
    proxy.stall(false);
    let mut again = start(&r.cfg);
    assert_eq!(again.count("from before the restart queued again"), 1);
    for l in again.log().lines().filter(|l| l.contains("outbox spool")) {
        eprintln!("reliability kill -9 with the spool: {l}");
    }
    rx.collect(&accepted);
    let rep = report("kill -9 with the spool", started, &accepted, &rx);
    assert_eq!(rep.answered, n);
    assert_eq!(rep.lost, 0, "{rep:?}\n{}", again.log());
    // Once all is delivered the spool holds nothing live: a third start replays nothing.
    wait_count(&mut again, "online as", 1);
    again.signal(Signal::TERM);
    assert!(again.wait_exit(WAIT).is_some_and(|s| s.success()));
    assert!(again.log().ends_with("stopped"), "{}", again.log());
    let mut third = start(&r.cfg);
    third.signal(Signal::TERM);
    third.wait_exit(WAIT);
    assert_eq!(third.count("queued again"), 0, "{}", third.log());
}

/// SIGTERM: HTTP stops at once and the outbox gets `outbox.grace` to be acknowledged.
#[test]
fn sigterm_waits_for_the_outbox_to_be_acknowledged_then_stops() {
    let p = common::shared();
    let proxy = FaultProxy::start(p.c2s_port);
    let mut r = relay(p, &proxy, &[], "grace = \"5s\"");
    // A slow link: messages are still unacknowledged when the signal comes.
    proxy.delay(Duration::from_millis(300));
    let mut rx = Receiver::new(p);
    let bodies: Vec<String> = (0..20).map(|i| format!("slow {i}")).collect();
    for b in &bodies {
        assert_eq!(post(&r, &rx.user, b).status, 202);
    }
    let t = Instant::now();
    r.daemon.signal(Signal::TERM);
    r.daemon.wait_for("shutting down: waiting up to 5s", WAIT);
    let refused = std::net::TcpStream::connect(("127.0.0.1", r.port));
    assert!(
        refused.is_err(),
        "HTTP still accepting during the grace period"
    );
    let status = r.daemon.wait_exit(WAIT).expect("exits");
    assert!(status.success());
    eprintln!(
        "reliability sigterm: 20 messages on a 300 ms link delivered, stopped after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(r.daemon.log().ends_with("stopped"), "{}", r.daemon.log());
    rx.collect(&bodies);
    assert!(bodies.iter().all(|b| rx.got.contains_key(b)));
}

/// SIGTERM on a dead link: the grace period ends and the count of what is lost is logged.
#[test]
fn sigterm_on_a_dead_link_stops_after_the_grace_and_logs_what_is_lost() {
    let p = common::shared();
    let proxy = FaultProxy::start(p.c2s_port);
    let rx = Receiver::new(p);
    let mut r = relay(p, &proxy, &[], "grace = \"1s\"");
    proxy.stall(true);
    for i in 0..5 {
        assert_eq!(post(&r, &rx.user, &format!("stuck {i}")).status, 202);
    }
    let t = Instant::now();
    r.daemon.signal(Signal::TERM);
    assert!(r.daemon.wait_exit(WAIT).expect("exits").success());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(
        r.daemon
            .log()
            .ends_with("stopped: 5 message(s) not delivered and lost"),
        "{}",
        r.daemon.log()
    );
    proxy.stall(false);
}
