//! Hostile HTTP against the real binary, as raw bytes over TCP (and the HTTP surface: what
//! `/health` tells strangers, `http.allowed_hosts`, Basic credentials on cross-site
//! requests, and curl, wget and urllib with a password). Every case checks the
//! answer, that the daemon still runs, and that a normal `?wait=1` post right after it is
//! answered 200 and delivered.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{unique_user, Bed, Bot};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// A bot with a `msg` key, a 3 s read timeout and `http_extra` in `[http]`, and a
/// receiving account ([`Bot::peer`]).
fn relay(http_extra: &str) -> Bot {
    Bed::new()
        .http(&format!("read_timeout = \"3s\"\n{http_extra}"))
        .key("msg")
        .peer("rcpt")
        .start()
}

/// Write `bytes` (a failed write is part of the test), then read until the server closes
/// or goes quiet for `quiet`.
fn raw_with(port: u16, bytes: &[u8], quiet: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(quiet)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn raw(port: u16, bytes: &[u8]) -> String {
    raw_with(port, bytes, Duration::from_secs(5))
}

/// The status codes of every answer in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text.get(i + 9..i + 12))
        .filter_map(|code| code.parse().ok())
        .collect()
}

// Requests written byte for byte, and what must arrive after them.
impl Bot {
    fn auth_line(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.token)
    }

    /// `POST /msg/RCPT` over HTTP/1.1 with the key, the header lines `head` (each ending
    /// in CRLF) and then `body`, byte for byte.
    fn msg_request(&self, head: &str, body: &str) -> String {
        format!(
            "POST /msg/{} HTTP/1.1\r\nHost: x\r\n{}{head}\r\n{body}",
            self.peer_jid(),
            self.auth_line()
        )
    }

    /// Send `req` on a new connection: its answers have the statuses `want`.
    fn answers(&self, req: &str, want: &[u16]) {
        let answer = raw(self.port, req.as_bytes());
        assert_eq!(statuses(&answer), want, "{answer}");
    }

    /// The daemon runs, and a normal `?wait=1` post is answered 200 and delivered.
    fn still_serves(&mut self) {
        assert!(self.daemon.is_running(), "{}", self.daemon.log());
        self.assert_delivered("after");
    }

    fn assert_delivered(&mut self, tag: &str) {
        let body = format!("{tag} {}", unique_user("m"));
        let req = format!(
            "POST /msg/{}?wait=1 HTTP/1.1\r\nHost: x\r\n{}Content-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.peer_jid(),
            self.auth_line(),
            body.len()
        );
        let answer = raw_with(self.port, req.as_bytes(), WAIT);
        assert_eq!(statuses(&answer), [200], "{answer}");
        self.expect_message(&body);
    }

    fn expect_message(&mut self, body: &str) {
        let m = self
            .peer()
            .recv_message(WAIT)
            .unwrap_or_else(|| panic!("{body:?} not delivered"));
        assert_eq!(m.body.as_deref(), Some(body));
    }

    fn peak_rss(&self) -> u64 {
        self.daemon.peak_rss_kib_and_sockets().0
    }
}

#[test]
fn a_non_ascii_header_value_without_credentials_is_answered_not_fatal() {
    let mut r = relay("");
    let health = raw(
        r.port,
        "GET /health HTTP/1.1\r\nHost: x\r\nX: é\r\nConnection: close\r\n\r\n".as_bytes(),
    );
    assert_eq!(statuses(&health), [200], "{health}");
    let msg = raw(
        r.port,
        "POST /msg/x HTTP/1.1\r\nHost: x\r\nSubject: é\r\nContent-Length: 1\r\n\r\nx".as_bytes(),
    );
    assert_eq!(statuses(&msg), [401], "{msg}");
    r.still_serves();
}

#[test]
fn a_non_ascii_trailer_after_a_401_is_not_fatal() {
    let mut r = relay("");
    let answer = raw(
        r.port,
        "POST /msg/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         1\r\na\r\n0\r\nX-T: é\r\n\r\n"
            .as_bytes(),
    );
    assert_eq!(statuses(&answer)[0], 401, "{answer}");
    r.still_serves();
}

#[test]
fn a_non_ascii_trailer_on_an_accepted_body_is_ignored() {
    let mut r = relay("");
    let req = r.msg_request(
        "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
        "7\r\ntrailer\r\n0\r\nX-T: é\r\n\r\n",
    );
    r.answers(&req, &[202]);
    r.expect_message("trailer");
    r.still_serves();
}

#[test]
fn an_8_mib_header_line_is_refused_without_growing_memory() {
    let mut r = relay("");
    r.assert_delivered("warm up");
    let before = r.peak_rss();
    let mut req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 8 << 20));
    let answer = raw(r.port, &req);
    assert!(
        answer.is_empty() || statuses(&answer) == [431],
        "{answer:.200}"
    );
    let grown = r.peak_rss().saturating_sub(before);
    assert!(grown < 1024, "peak RSS grew by {grown} kB");
    r.still_serves();
}

#[test]
fn ten_thousand_headers_are_refused_without_growing_memory() {
    let mut r = relay("");
    r.assert_delivered("warm up");
    let before = r.peak_rss();
    let mut req = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..10_000 {
        req.extend(format!("X-{i}: v\r\n").bytes());
    }
    req.extend(b"\r\n");
    let answer = raw(r.port, &req);
    assert!(
        answer.is_empty() || statuses(&answer) == [431],
        "{answer:.200}"
    );
    let grown = r.peak_rss().saturating_sub(before);
    assert!(grown < 1024, "peak RSS grew by {grown} kB");
    r.still_serves();
}

#[test]
fn an_obs_fold_header_is_refused_with_400() {
    let mut r = relay("");
    let answer = raw(
        r.port,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
    );
    assert_eq!(statuses(&answer), [400], "{answer}");
    r.still_serves();
}

#[test]
fn conflicting_content_lengths_are_refused_with_400() {
    let mut r = relay("");
    let req = r.msg_request("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!");
    r.answers(&req, &[400]);
    r.still_serves();
}

#[test]
fn a_list_of_content_lengths_is_refused_with_400() {
    let mut r = relay("");
    let req = r.msg_request("Content-Length: 5, 5\r\n", "hello");
    r.answers(&req, &[400]);
    r.still_serves();
}

#[test]
fn a_duplicate_equal_content_length_is_refused_with_400() {
    let mut r = relay("");
    let req = r.msg_request(
        "Content-Type: text/plain\r\nContent-Length: 5\r\nContent-Length: 5\r\n\
         Connection: close\r\n",
        "dupes",
    );
    r.answers(&req, &[400]);
    r.still_serves();
}

#[test]
fn content_length_with_transfer_encoding_is_refused_with_400_and_nothing_is_smuggled() {
    let mut r = relay("");
    let req = r.msg_request(
        "Content-Type: text/plain\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n",
        "4\r\nreal\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    // One answer (not a 404 for the smuggled request), and the connection is closed; the
    // next message to arrive is the one `still_serves` posts.
    r.answers(&req, &[400]);
    r.still_serves();
}

#[test]
fn transfer_encoding_before_content_length_is_refused_with_400() {
    let mut r = relay("");
    let req = r.msg_request(
        "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n",
        "4\r\nreal\r\n0\r\n\r\n",
    );
    r.answers(&req, &[400]);
    r.still_serves();
}

#[test]
fn an_overflowing_chunk_size_is_refused_with_400() {
    let mut r = relay("");
    let req = r.msg_request(
        "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n",
        "ffffffffffffffffff\r\nabc\r\n",
    );
    r.answers(&req, &[400]);
    r.still_serves();
}

#[test]
fn random_bytes_on_50_connections_at_once_are_refused() {
    let mut r = relay("max_connections = 64\n");
    let port = r.port;
    let threads: Vec<_> = (0..50u64)
        .map(|i| {
            std::thread::spawn(move || {
                // xorshift: the same bytes on every run.
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i + 1);
                let bytes: Vec<u8> = (0..4096)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                raw_with(port, &bytes, Duration::from_secs(5))
            })
        })
        .collect();
    for t in threads {
        let answer = t.join().unwrap();
        assert!(
            answer.is_empty() || statuses(&answer).iter().all(|s| (400..500).contains(s)),
            "{answer:.200}"
        );
    }
    r.still_serves();
}

#[test]
fn http_1_0_without_host_is_served() {
    let mut r = relay("");
    let answer = raw(r.port, b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(statuses(&answer), [200], "{answer}");
    r.still_serves();
}

#[test]
fn http_1_1_without_host_is_refused_with_400() {
    let mut r = relay("");
    let answer = raw(r.port, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(statuses(&answer), [400], "{answer}");
    r.still_serves();
}

#[test]
fn http_1_0_post_and_get_are_answered_and_delivered() {
    let mut r = relay("");
    let post = format!(
        "POST /msg/{} HTTP/1.0\r\n{}Content-Type: text/plain\r\nContent-Length: 8\r\n\r\nold post",
        r.peer_jid(),
        r.auth_line()
    );
    let answer = raw(r.port, post.as_bytes());
    assert_eq!(statuses(&answer), [202], "{answer}");
    r.expect_message("old post");
    let get = format!(
        "GET /msg/{}?body=old+get&key={} HTTP/1.0\r\n\r\n",
        r.peer_jid(),
        r.token.replace('/', "%2F")
    );
    let answer = raw(r.port, get.as_bytes());
    assert_eq!(statuses(&answer), [202], "{answer}");
    r.expect_message("old get");
    r.still_serves();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut r = relay("");
    let one = |body: &str| {
        r.msg_request(
            &format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                body.len()
            ),
            body,
        )
    };
    let req = format!(
        "{}{}GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        one("first"),
        one("second")
    );
    r.answers(&req, &[202, 202, 200]);
    r.expect_message("first");
    r.expect_message("second");
    r.still_serves();
}

#[test]
fn valid_credentials_from_a_blocked_address_are_served() {
    let mut r = relay("");
    let bad = "POST /msg/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nobody/wrong\r\n\
               Content-Length: 1\r\nConnection: close\r\n\r\nx";
    let blocked = (0..30).any(|_| statuses(&raw(r.port, bad.as_bytes())) == [429]);
    assert!(blocked, "never blocked");
    r.still_serves();
}

#[test]
fn forwarded_for_from_a_trusted_proxy_blocks_only_that_client() {
    let mut r = relay("trusted_proxies = [\"127.0.0.1\"]\n");
    let bad = |client: &str| {
        format!(
            "POST /msg/x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\
             Authorization: Bearer nobody/wrong\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        )
    };
    let blocked = (0..30).any(|_| statuses(&raw(r.port, bad("192.0.2.1").as_bytes())) == [429]);
    assert!(blocked, "never blocked");
    assert_eq!(statuses(&raw(r.port, bad("192.0.2.2").as_bytes())), [401]);
    r.still_serves();
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let mut r = relay("");
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let head = r.msg_request(
        "Content-Type: text/plain\r\nContent-Length: 8\r\nExpect: 100-continue\r\n\
         Connection: close\r\n",
        "",
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );
    s.write_all(b"continue").unwrap();
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert_eq!(statuses(&rest), [202], "{rest}");
    r.expect_message("continue");
    r.still_serves();
}

#[test]
fn an_oversized_declared_body_gets_413_without_100_continue() {
    let mut r = relay("max_body_bytes = 1024\n");
    let req = r.msg_request("Content-Length: 999999\r\nExpect: 100-continue\r\n", "");
    r.answers(&req, &[413]);
    r.still_serves();
}

#[test]
fn a_body_slower_than_the_minimum_rate_gets_408_within_seconds() {
    let mut r = relay("min_body_rate = 1024\n");
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let head = r.msg_request("Content-Type: text/plain\r\nContent-Length: 60000\r\n", "");
    s.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        let _ = s.write_all(b"z");
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(statuses(&answer), [408], "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    r.still_serves();
}

#[test]
fn a_key_at_its_concurrent_request_cap_gets_429_and_others_pass() {
    let mut r = relay("max_per_key = 1\nmin_body_rate = 0\n");
    // One request of the key holds its only place: its body is still to come.
    let mut holder = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    let head = r.msg_request(
        "Content-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n",
        "",
    );
    holder.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = raw(r.port, head.replace("Length: 4", "Length: 1").as_bytes());
    assert_eq!(statuses(&second), [429], "{second}");
    assert!(second.contains("Retry-After: 1"), "{second}");
    holder.write_all(b"held").unwrap();
    let mut first = String::new();
    holder.set_read_timeout(Some(WAIT)).unwrap();
    let _ = holder.read_to_string(&mut first);
    assert_eq!(statuses(&first), [202], "{first}");
    r.expect_message("held");
    holder.shutdown(Shutdown::Both).ok();
    r.still_serves();
}

#[test]
fn bare_lf_line_ends_are_served() {
    let mut r = relay("");
    let answer = raw(
        r.port,
        b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n",
    );
    assert_eq!(statuses(&answer), [200], "{answer}");
    r.still_serves();
}

/// `curl ARGS`, returning what it printed (`-s -w %{http_code}` gives the status last).
fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_issues_curl_lines_are_answered() {
    let mut r = relay("");
    let health = format!("http://127.0.0.1:{}/health", r.port);
    assert_eq!(curl(&["-H", "X: é", &health]), "200");
    assert_eq!(curl(&["--http1.0", &health]), "200");
    let msg = format!("http://127.0.0.1:{}/msg/{}", r.port, r.peer_jid());
    let auth = r.auth_line();
    let auth = auth.trim_end();
    assert_eq!(
        curl(&["--http1.0", "-H", auth, "-d", "curl http1.0", &msg]),
        "202"
    );
    r.expect_message("curl http1.0");
    r.still_serves();
}

#[test]
fn a_raw_utf8_path_is_read_like_its_percent_encoded_form() {
    let mut r = relay("");
    let req = format!(
        "POST /msg/{}/h\u{e4}user HTTP/1.1\r\nHost: x\r\n{}Content-Type: text/plain\r\n\
         Content-Length: 4\r\nConnection: close\r\n\r\nraw8",
        r.peer_jid(),
        r.auth_line()
    );
    r.answers(&req, &[202]);
    r.expect_message("raw8");
    let latin1 = format!(
        "POST /msg/{}/h\u{e4}user HTTP/1.1\r\nHost: x\r\n{}Content-Length: 1\r\n\r\nx",
        r.peer_jid(),
        r.auth_line()
    )
    .replace('\u{e4}', "\u{0}");
    let mut bytes = latin1.into_bytes();
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        bytes[i] = 0xe4;
    }
    let answer = raw(r.port, &bytes);
    assert_eq!(statuses(&answer), [400], "{answer}");
    r.still_serves();
}

// The HTTP surface: what /health tells strangers, which hosts are answered, and Basic
// credentials a browser would send by itself.

impl Bot {
    /// The key's `(ID, SECRET)`.
    fn id_secret(&self) -> (&str, &str) {
        self.token.split_once('/').expect("ID/SECRET")
    }

    /// `Authorization: Basic` for the key, as `curl -u ID:SECRET` sends it.
    fn basic(&self) -> String {
        use base64::Engine;
        let (id, secret) = self.id_secret();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        format!("Authorization: Basic {b64}\r\n")
    }

    /// `GET target` with the header lines `head` (each ending in CRLF); the answer.
    fn get_raw(&self, target: &str, head: &str) -> String {
        raw(
            self.port,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    }

    /// `POST /msg/RCPT` with Basic credentials, the header lines `head` and `body`.
    fn msg_request_basic(&self, head: &str, body: &str) -> String {
        format!(
            "POST /msg/{} HTTP/1.1\r\nHost: x\r\n{}{head}Content-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.peer_jid(),
            self.basic(),
            body.len()
        )
    }

    /// Whether exactly one 401 was answered so far: a client that sends its password only
    /// after the challenge got it once.
    fn challenged_once(&self) -> bool {
        let answer = self.get_raw("/metrics", &self.auth_line());
        answer.contains("xrelay_http_responses_total{code=\"401\"} 1\n")
    }

    /// The URL of `/msg/RCPT` on the listener.
    fn msg_url(&self) -> String {
        format!("http://127.0.0.1:{}/msg/{}", self.port, self.peer_jid())
    }
}

/// The JSON body of an answer read with [`raw`].
fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn health_without_a_key_shows_the_state_but_no_jid_rooms_or_last_error() {
    let mut r = relay("");
    let answer = r.get_raw("/health", "");
    assert_eq!(statuses(&answer), [200], "{answer}");
    let v = json_body(&answer);
    assert_eq!(v["stream"], "online", "{v}");
    assert_eq!(v["outbox"]["depth"], 0, "{v}");
    for hidden in ["jid", "rooms", "last_error"] {
        assert!(v.get(hidden).is_none(), "{hidden} shown: {v}");
    }
    assert!(!answer.contains("@localhost"), "{answer}");
    r.still_serves();
}

#[test]
fn health_with_any_valid_key_shows_the_jid_rooms_and_last_error() {
    let mut r = relay("");
    let answer = r.get_raw("/health", &r.auth_line());
    assert_eq!(statuses(&answer), [200], "{answer}");
    let v = json_body(&answer);
    assert!(
        v["jid"].as_str().is_some_and(|j| j.ends_with("@localhost")),
        "{v}"
    );
    assert!(v["rooms"].is_array(), "{v}");
    assert!(v.get("last_error").is_some(), "{v}");
    r.still_serves();
}

#[test]
fn health_with_a_wrong_key_is_refused_with_401() {
    let mut r = relay("");
    let answer = r.get_raw("/health", "Authorization: Bearer nosuch/key\r\n");
    assert_eq!(statuses(&answer), [401], "{answer}");
    assert!(!answer.contains("@localhost"), "{answer}");
    r.still_serves();
}

/// The hosts of the allowed_hosts tests; `x` is what the other requests name.
const ALLOWED: &str = "allowed_hosts = [\"x\", \"router.lan\"]\n";

#[test]
fn a_wrong_host_gets_421_when_allowed_hosts_is_set_and_nothing_is_delivered() {
    let mut r = relay(ALLOWED);
    let req = format!(
        "POST /msg/{} HTTP/1.1\r\nHost: attacker.example:{}\r\n{}Content-Type: text/plain\r\n\
         Content-Length: 8\r\nConnection: close\r\n\r\nrebinded",
        r.peer_jid(),
        r.port,
        r.auth_line()
    );
    r.answers(&req, &[421]);
    // The next message the receiver gets is the normal post, not the refused one.
    r.still_serves();
}

#[test]
fn a_listed_host_on_any_port_is_served_when_allowed_hosts_is_set() {
    let mut r = relay(ALLOWED);
    r.answers(
        "GET /health HTTP/1.1\r\nHost: Router.LAN:5280\r\nConnection: close\r\n\r\n",
        &[200],
    );
    r.still_serves();
}

#[test]
fn an_absolute_target_for_another_host_gets_421_when_allowed_hosts_is_set() {
    let mut r = relay(ALLOWED);
    r.answers(
        "GET http://attacker.example/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        &[421],
    );
    r.still_serves();
}

#[test]
fn http_1_0_without_host_gets_421_when_allowed_hosts_is_set() {
    let mut r = relay(ALLOWED);
    r.answers("GET /health HTTP/1.0\r\n\r\n", &[421]);
    r.still_serves();
}

#[test]
fn a_cross_site_get_with_basic_credentials_is_refused_and_nothing_is_delivered() {
    let mut r = relay("");
    let target = format!("/msg/{}?body=from+another+site", r.peer_jid());
    let answer = r.get_raw(
        &target,
        &format!("{}Sec-Fetch-Site: cross-site\r\n", r.basic()),
    );
    assert_eq!(statuses(&answer), [403], "{answer}");
    let why = json_body(&answer)["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("Bearer") && why.contains("?key="), "{why}");
    r.still_serves();
}

#[test]
fn basic_credentials_with_another_sites_origin_are_refused() {
    let mut r = relay("");
    let req = r.msg_request_basic("Origin: https://attacker.example\r\n", "posted by a page");
    r.answers(&req, &[403]);
    r.still_serves();
}

#[test]
fn basic_credentials_from_the_devices_own_page_are_served() {
    let mut r = relay("");
    let req = r.msg_request_basic(
        "Origin: http://x\r\nSec-Fetch-Site: same-origin\r\n",
        "own page",
    );
    r.answers(&req, &[202]);
    r.expect_message("own page");
    r.still_serves();
}

#[test]
fn a_cross_site_get_with_the_key_in_the_query_is_served() {
    let mut r = relay("");
    let key = r.token.replace('/', "%2F");
    let target = format!("/msg/{}?body=explicit+key&key={key}", r.peer_jid());
    let answer = r.get_raw(&target, "Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(statuses(&answer), [202], "{answer}");
    r.expect_message("explicit key");
    r.still_serves();
}

#[test]
fn curl_with_user_and_password_is_served() {
    let mut r = relay("");
    let (id, secret) = r.id_secret();
    let user = format!("{id}:{secret}");
    let url = r.msg_url();
    assert_eq!(curl(&["-u", &user, "-d", "from curl -u", &url]), "202");
    r.expect_message("from curl -u");
    r.still_serves();
}

#[test]
fn gnu_wget_with_user_and_password_is_served_after_the_challenge() {
    let mut r = relay("");
    let (id, secret) = r.id_secret();
    let out = std::process::Command::new("wget")
        .args(["-q", "-O", "-", "--tries=1", "--timeout=10"])
        .args(["--user", id, "--password", secret])
        .args(["--post-data", "from wget", &r.msg_url()])
        .output()
        .expect("wget runs");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued"),
        "{out:?}"
    );
    r.expect_message("from wget");
    assert!(
        r.challenged_once(),
        "wget sent its password before the challenge"
    );
    r.still_serves();
}

#[test]
fn python_urllib_with_http_basic_auth_handler_is_served_after_the_challenge() {
    let mut r = relay("");
    let (id, secret) = r.id_secret();
    let script = "import sys, urllib.request as u\n\
        url, user, pw = sys.argv[1:4]\n\
        m = u.HTTPPasswordMgrWithDefaultRealm()\n\
        m.add_password(None, url, user, pw)\n\
        o = u.build_opener(u.HTTPBasicAuthHandler(m))\n\
        print(o.open(u.Request(url, data=b'from urllib'), timeout=10).status)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &r.msg_url(), id, secret])
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "202",
        "{out:?}"
    );
    r.expect_message("from urllib");
    assert!(
        r.challenged_once(),
        "urllib sent its password before the challenge"
    );
    r.still_serves();
}
