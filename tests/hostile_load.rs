//! Many slow or idle HTTP clients against a small connection cap: real requests still get
//! through, the cap holds, and memory stays within a bound derived from the config.
//! (bench/slowloris.sh does the same at 1,000 connections and measures it.)

mod common;

use common::{http, unique_user, Daemon, HttpResponse};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 4;
const MAX_BODY: usize = 65536;

struct Relay {
    daemon: Daemon,
    port: u16,
    token: String,
    rcpt: String,
    _cfg: PathBuf,
}

fn relay(read_timeout: &str) -> Relay {
    let p = common::shared();
    let rcpt = unique_user("rcpt");
    p.register(&rcpt, "pw");
    let b = common::bot_config(
        p,
        &[],
        &format!(
            "max_connections = {MAX_CONNECTIONS}\nmax_per_key = {MAX_CONNECTIONS}\n\
             max_body_bytes = {MAX_BODY}\nread_timeout = \"{read_timeout}\"\n"
        ),
        "",
    );
    let mut daemon = Daemon::start(&b.cfg);
    daemon.wait_for("http: listening", WAIT);
    Relay {
        daemon,
        port: b.port,
        token: b.token,
        rcpt: format!("{rcpt}@localhost"),
        _cfg: b.cfg,
    }
}

impl Relay {
    fn post(&self, body: &str) -> HttpResponse {
        let auth = format!("Bearer {}", self.token);
        http(
            self.port,
            "POST",
            &format!("/msg/{}", self.rcpt),
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            body.as_bytes(),
        )
    }

    /// A connection that sent half a request head and stalls.
    fn idle(&self) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(b"POST /msg/x HTTP/1.1\r\nHost: x\r\n").unwrap();
        s
    }

    /// An authenticated post whose body stalls after a few bytes: a request being answered.
    fn stalled_body(&self) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(
            format!(
                "POST /msg/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Length: 1000\r\n\r\nabc",
                self.token
            )
            .as_bytes(),
        )
        .unwrap();
        s
    }
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
    let r = relay("5s");
    assert_eq!(r.post("warm up").status, 202);
    let (idle_rss, idle_sockets) = r.daemon.peak_rss_kib_and_sockets();
    // Ten times the cap in connections that never finish their request head.
    let mut idle: Vec<TcpStream> = (0..10 * MAX_CONNECTIONS).map(|_| r.idle()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // A real request does not wait for the read timeout of the ones holding the slots.
    let started = Instant::now();
    let res = r.post("through the flood");
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
    let r = relay("1s");
    // Every slot holds an authenticated post whose body stalls: none may be closed early...
    let mut stalled: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| r.stalled_body()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...so a new request waits in the backlog until the read timeout ends one of them.
    let started = Instant::now();
    let res = r.post("after the timeout");
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
