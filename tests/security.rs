//! Attacks on the binary as a whole: a hostile server (log injection, a costly SCRAM
//! login), local files (a readable config), and processes racing over the keys and
//! invites files. The hostile server is a fake one on 127.0.0.1 (`tls = "plain"`, allowed
//! towards loopback), since a real server would not misbehave on cue.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{http, toml_str, xrelay, Daemon};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
/// The stream header of the fake server.
const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>";

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xrelay-security-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A private config for `bot@localhost` towards `127.0.0.1:xmpp_port` without TLS, with its
/// HTTP listener, keys and invites files in `d`. Returns the path and the HTTP port.
fn config(d: &Path, xmpp_port: u16) -> (PathBuf, u16) {
    let (port, http) = common::http_section(d);
    let text = format!(
        "[xmpp]\njid = \"bot@localhost\"\npassword = \"pw\"\nserver = \"127.0.0.1\"\n\
         port = {xmpp_port}\ntls = \"plain\"\nreconnect_max = \"1s\"\n\n{http}\
         [invites]\nfile = {}\n",
        toml_str(&d.join("invites").to_string_lossy())
    );
    let path = d.join("xrelay.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, port)
}

/// Read from `s` until what was read contains `needle`; everything read.
fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains(needle) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A fake server: every connection to the returned port goes to `serve`.
fn fake_server(serve: impl Fn(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            serve(s);
        }
    });
    port
}

#[test]
fn server_error_text_with_a_newline_is_logged_on_one_line() {
    let port = fake_server(|mut s| {
        read_until(&mut s, "version='1.0'>");
        let _ = s.write_all(
            format!(
                "{SERVER_HEADER}<stream:error>\
                 <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye\n\
                 xrelay: keys reloaded\r\n</text></stream:error></stream:stream>"
            )
            .as_bytes(),
        );
    });
    let d = dir("logline");
    let (cfg, _) = config(&d, port);
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("conflict", WAIT);
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("conflict")).unwrap();
    assert!(
        // XML turns the CR LF into one LF.
        line.contains("(bye\\nxrelay: keys reloaded\\n)"),
        "{line}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("xrelay: keys reloaded")),
        "a forged line: {log}"
    );
}

#[test]
fn health_answers_within_50_ms_during_a_login_with_100000_pbkdf2_iterations() {
    let (challenged, challenged_rx) = mpsc::channel();
    let (answered, answered_rx) = mpsc::channel();
    let port = fake_server(move |mut s| {
        read_until(&mut s, "version='1.0'>");
        let features = "<stream:features>\
             <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>";
        let _ = s.write_all(format!("{SERVER_HEADER}{features}").as_bytes());
        let auth = read_until(&mut s, "</auth>");
        let Some(first) = auth
            .split_once("'>")
            .and_then(|(_, rest)| rest.split_once("</auth>"))
            .and_then(|(b64, _)| STANDARD.decode(b64).ok())
        else {
            return;
        };
        let first = String::from_utf8_lossy(&first).into_owned();
        let nonce = first.split("r=").nth(1).unwrap_or_default();
        let server_first = format!("r={nonce}server,s={},i=100000", STANDARD.encode("salt"));
        let _ = s.write_all(
            format!(
                "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
                STANDARD.encode(server_first)
            )
            .as_bytes(),
        );
        let _ = challenged.send(Instant::now());
        read_until(&mut s, "</response>");
        let _ = answered.send(Instant::now());
        let _ = s.write_all(
            b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>\
              </stream:stream>",
        );
    });
    let d = dir("pbkdf2");
    let (cfg, http_port) = config(&d, port);
    let _daemon = Daemon::start(&cfg);
    let start = challenged_rx.recv_timeout(WAIT).expect("a login");
    let mut slowest = Duration::ZERO;
    let mut asked = 0;
    let end = loop {
        if let Ok(end) = answered_rx.try_recv() {
            break end;
        }
        let t = Instant::now();
        let r = http(http_port, "GET", "/health", &[], b"");
        // Not online yet: 503, but an answer.
        assert_eq!(r.status, 503, "{r:?}");
        slowest = slowest.max(t.elapsed());
        asked += 1;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no answer to the challenge"
        );
    };
    eprintln!(
        "PBKDF2 window {:?}: {asked} /health requests, slowest {slowest:?}",
        end - start
    );
    assert!(asked > 0);
    assert!(slowest < Duration::from_millis(50), "{slowest:?}");
}

#[test]
fn readable_config_holding_the_password_is_refused_by_the_binary() {
    let d = dir("mode");
    let (cfg, _) = config(&d, 1);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = xrelay(&cfg, &["key", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("xmpp.password") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn concurrent_cli_creates_revokes_and_deletes_lose_nothing() {
    const EACH: usize = 6;
    let d = dir("race");
    let (cfg, _) = config(&d, 1);
    let run = |args: Vec<String>| {
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = xrelay(&cfg, &args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Things to revoke and delete later.
    let list_ids = |what: &str| -> Vec<String> {
        let out = xrelay(&cfg, &[what, "list"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let first: Vec<_> = (0..EACH)
        .flat_map(|n| {
            let name = format!("old{n}");
            [
                run(args(&["key", "create", &name])),
                run(args(&["invite", "create", &name])),
            ]
        })
        .collect();
    first.into_iter().for_each(|t| drop(t.join().unwrap()));
    let old_keys = list_ids("key");
    let old_invites = list_ids("invite");
    assert_eq!((old_keys.len(), old_invites.len()), (EACH, EACH));
    // Now everything at once: deletions, revocations and creations.
    let mut all = Vec::new();
    for n in 0..EACH {
        let name = format!("new{n}");
        all.push(run(args(&["key", "delete", &old_keys[n]])));
        all.push(run(args(&["invite", "revoke", &old_invites[n]])));
        all.push(run(args(&["key", "create", &name])));
        all.push(run(args(&["invite", "create", &name])));
    }
    all.into_iter().for_each(|t| drop(t.join().unwrap()));
    let keys = xrelay(&cfg, &["key", "list"]);
    let keys = String::from_utf8_lossy(&keys.stdout);
    let invites = xrelay(&cfg, &["invite", "list"]);
    let invites = String::from_utf8_lossy(&invites.stdout);
    for listing in [&keys, &invites] {
        assert_eq!(listing.lines().count(), EACH + 1, "{listing}");
        assert!(!listing.contains("old"), "a deletion was undone: {listing}");
        for n in 0..EACH {
            assert!(
                listing.contains(&format!("new{n}")),
                "new{n} lost: {listing}"
            );
        }
    }
}

#[test]
fn broken_keys_file_revokes_the_deleted_key_in_the_running_daemon() {
    let d = dir("revoke");
    let (cfg, http_port) = config(&d, 1);
    let key = |name: &str| {
        let out = xrelay(&cfg, &["key", "create", name]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (kept, deleted) = (key("kept"), key("deleted"));
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("listening", WAIT);
    let post = |token: &str| {
        let auth = format!("Bearer {token}");
        let head = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "text/plain"),
        ];
        http(http_port, "POST", "/msg/alice@localhost", &head, b"hi").status
    };
    assert_ne!(post(&deleted), 401);
    // The admin deletes a key by hand and leaves a typo behind.
    let keys = d.join(format!("keys-{http_port}"));
    let id = deleted.split('/').next().unwrap();
    let text = std::fs::read_to_string(&keys).unwrap();
    let left: String = text
        .lines()
        .filter(|l| !l.starts_with(id))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&keys, format!("{left}typo\n")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(post(&deleted), 401);
    assert_eq!(post(&kept), 401, "nothing loads, so nothing is valid");
    daemon.wait_for("ALL API KEYS REFUSED", WAIT);
    std::fs::write(&keys, left).unwrap();
    assert_ne!(post(&kept), 401, "valid again once the file loads");
    assert_eq!(post(&deleted), 401);
}
