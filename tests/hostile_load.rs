//! Many slow or idle HTTP clients against a small connection cap: real requests still get
//! through, the cap holds, and memory stays within a bound derived from the config.
//! (bench/slowloris.sh does the same at 1,000 connections and measures it.)

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{unique_user, Bed, Bot, HttpResponse};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MAX_CONNECTIONS: usize = 4;
const MAX_BODY: usize = 65536;

/// A bot with a `msg` key behind a small connection cap, started once its listener is up;
/// posts go to `rcpt`, a registered account.
fn relay(read_timeout: &str) -> (Bot, String) {
    let p = common::shared();
    let rcpt = unique_user("rcpt");
    p.register(&rcpt, "pw");
    let b = Bed::on(p)
        .http(&format!(
            "max_connections = {MAX_CONNECTIONS}\nmax_per_key = {MAX_CONNECTIONS}\n\
             max_body_bytes = {MAX_BODY}\nread_timeout = \"{read_timeout}\"\n"
        ))
        .key("msg")
        .ready_when("http: listening")
        .start();
    (b, format!("{rcpt}@localhost"))
}

/// A post to `rcpt` with the key.
fn post(r: &Bot, rcpt: &str, body: &str) -> HttpResponse {
    r.post_text(&format!("/msg/{rcpt}"), body)
}

/// A connection to `r` that sent half a request head and stalls.
fn idle(r: &Bot) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.write_all(b"POST /msg/x HTTP/1.1\r\nHost: x\r\n").unwrap();
    s
}

/// An authenticated post to `r` whose body stalls after a few bytes: a request being
/// answered.
fn stalled_body(r: &Bot) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.write_all(
        format!(
            "POST /msg/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Length: 1000\r\n\r\nabc",
            r.token
        )
        .as_bytes(),
    )
    .unwrap();
    s
}

/// Whether the server closed `s` (read gives end of file, a reset, or an answer and then end
/// of file) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn idle_connections_beyond_the_cap_give_way_to_requests() {
    let (r, rcpt) = relay("5s");
    assert_eq!(post(&r, &rcpt, "warm up").status, 202);
    let (idle_rss, idle_sockets) = r.daemon.peak_rss_kib_and_sockets();
    // Ten times the cap in connections that never finish their request head.
    let mut idle: Vec<TcpStream> = (0..10 * MAX_CONNECTIONS).map(|_| idle(&r)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // A real request does not wait for the read timeout of the ones holding the slots.
    let started = Instant::now();
    let res = post(&r, &rcpt, "through the flood");
    assert_eq!(res.status, 202, "{res:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The cap held: the oldest idle connections were closed to make room.
    let (rss, sockets) = r.daemon.peak_rss_kib_and_sockets();
    assert!(
        sockets <= idle_sockets + MAX_CONNECTIONS,
        "{sockets} sockets, {idle_sockets} before"
    );
    assert!(closed_within(&mut idle[0], Duration::from_secs(1)));
    // Memory (docs/security.md, "Slow clients"): each served connection holds at most a
    // body and about 32 KiB of buffers; 1 MiB of slack for the allocator.
    let bound = idle_rss + (MAX_CONNECTIONS * (MAX_BODY + 32 * 1024) / 1024) as u64 + 1024;
    assert!(
        rss <= bound,
        "peak RSS {rss} kB, bound {bound} kB (idle {idle_rss} kB)"
    );
    drop(idle);
}

#[test]
fn requests_being_answered_keep_their_slots_until_the_read_timeout() {
    let (r, rcpt) = relay("1s");
    // Every slot holds an authenticated post whose body stalls: none may be closed early...
    let mut stalled: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| stalled_body(&r)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...so a new request waits in the backlog until the read timeout ends one of them.
    let started = Instant::now();
    let res = post(&r, &rcpt, "after the timeout");
    let waited = started.elapsed();
    assert_eq!(res.status, 202, "{res:?}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    for s in &mut stalled {
        assert!(closed_within(s, Duration::from_secs(3)));
    }
}
