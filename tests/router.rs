//! The router and Pi jobs against a real Prosody: HTTP on the local unix socket (`curl
//! --unix-socket`), `xrelay send` through the running daemon (no second login) and its
//! fallback, HTTPS on the listener with certificate reload, and the OpenWrt hotplug script
//! reporting a WAN outage that arrives later with its delay stamp.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    http, unique_user, xrelay, Bed, Bot, Daemon, Prosody, ProsodyOpts, Signal, TestClient,
};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// A directory of its own under `p`'s.
fn dir(p: &Prosody, name: &str) -> PathBuf {
    let d = p.dir.join(unique_user(name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bed on `p` that also listens on the unix socket `sock`, with `http_extra` in `[http]`.
fn on_socket<'p>(p: &'p Prosody, http_extra: &str, sock: &Path) -> Bed<'p> {
    Bed::on(p)
        .listen(&format!("unix:{}", sock.display()))
        .http(http_extra)
}

/// A bot on the shared Prosody with a socket in its own dir; the bot and the socket.
fn bot(p: &Prosody, http_extra: &str) -> (Bot, PathBuf) {
    let sock = dir(p, "sock").join("xrelay.sock");
    (on_socket(p, http_extra, &sock).start(), sock)
}

fn receiver(p: &Prosody) -> (TestClient, String) {
    let user = unique_user("rcpt");
    p.register(&user, "pw");
    (TestClient::connect(p, &user, "pw"), p.jid(&user))
}

/// `curl ARGS...`: its status code and output.
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl").args(args).output().expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn curl_unix_socket_post_is_delivered() {
    let p = common::shared();
    let (b, sock) = bot(p, "unix_trust = true");
    let (mut rcpt, to) = receiver(p);
    let (ok, out) = curl(&[
        "-sS",
        "-f",
        "--unix-socket",
        &sock.to_string_lossy(),
        "-d",
        "backup done",
        &format!("http://localhost/msg/{to}?wait=1"),
    ]);
    assert!(ok, "{out}");
    let m = rcpt.recv_message(WAIT).expect("delivered");
    assert_eq!(m.body.as_deref(), Some("backup done"));
    assert!(b.daemon.terminate().success());
}

#[test]
fn the_socket_has_the_configured_file_mode() {
    let p = common::shared();
    let (_b, sock) = bot(p, "unix_mode = \"0600\"");
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn an_untrusted_socket_asks_for_a_key() {
    let p = common::shared();
    let (_b, sock) = bot(p, "");
    let (_, out) = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--unix-socket",
        &sock.to_string_lossy(),
        "-d",
        "x",
        "http://localhost/msg/someone@localhost",
    ]);
    assert_eq!(out, "401");
}

#[test]
fn send_goes_through_the_daemon_without_a_second_login() {
    let p = common::shared();
    let (mut b, _sock) = bot(p, "unix_trust = true");
    let (mut rcpt, to) = receiver(p);
    let out = xrelay(&b.cfg, &["send", &to, "through the socket"]);
    assert!(out.status.success(), "{out:?}");
    let m = rcpt.recv_message(WAIT).expect("delivered");
    assert_eq!(m.body.as_deref(), Some("through the socket"));
    // Sent by the daemon's own session, not by one of `send`'s.
    assert!(!m.from.contains("-send-"), "from {}", m.from);
    assert!(
        !p.log().contains("xrelay-send-") && !b.daemon.log().contains("-send-"),
        "a second login happened"
    );
    assert!(b.daemon.terminate().success());
}

#[test]
fn send_exits_nonzero_with_the_reason_when_the_daemon_refuses_the_post() {
    let p = common::shared();
    let (b, _sock) = bot(p, "unix_trust = true\nmax_body_bytes = 64");
    let long = "x".repeat(200);
    let out = xrelay(&b.cfg, &["send", &p.jid("someone"), &long]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("413"),
        "{out:?}"
    );
}

#[test]
fn send_no_wait_exits_zero_once_the_daemon_queued_the_message() {
    let p = common::shared();
    let (b, _sock) = bot(p, "unix_trust = true");
    let (mut rcpt, to) = receiver(p);
    let out = xrelay(&b.cfg, &["send", "--no-wait", &to, "queued"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        rcpt.recv_message(WAIT).expect("delivered").body.as_deref(),
        Some("queued")
    );
}

#[test]
fn send_logs_in_itself_when_the_socket_does_not_answer() {
    let p = common::shared();
    let sock = dir(p, "nodaemon").join("xrelay.sock");
    // A stale socket file that nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let cfg = on_socket(p, "unix_trust = true", &sock).write().cfg;
    let (mut rcpt, to) = receiver(p);
    let out = xrelay(&cfg, &["send", &to, "on my own"]);
    assert!(out.status.success(), "{out:?}");
    let m = rcpt.recv_message(WAIT).expect("delivered");
    assert_eq!(m.body.as_deref(), Some("on my own"));
    assert!(m.from.contains("-send-"), "from {}", m.from);
}

#[test]
fn garbage_and_a_half_request_on_the_socket_leave_the_next_post_working() {
    let p = common::shared();
    let (mut b, sock) = bot(p, "unix_trust = true\nread_timeout = \"1s\"");
    let mut garbage = UnixStream::connect(&sock).unwrap();
    garbage
        .write_all(b"\x00\xff\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
        .unwrap();
    let mut half = UnixStream::connect(&sock).unwrap();
    half.write_all(
        b"POST /msg/x@localhost HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc",
    )
    .unwrap();
    let mut answer = Vec::new();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = garbage.read_to_end(&mut answer);
    let (mut rcpt, to) = receiver(p);
    let out = xrelay(&b.cfg, &["send", &to, "still here"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        rcpt.recv_message(WAIT).expect("delivered").body.as_deref(),
        Some("still here")
    );
    drop(half);
    assert!(b.daemon.is_running());
}

/// A self-signed certificate for 127.0.0.1 in `dir` as `NAME.pem` / `NAME.key`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (cert, key)
}

fn https_bot(p: &Prosody, cert: &Path, key: &Path) -> Bot {
    let extra = format!(
        "unix_trust = true\ntls_cert = {}\ntls_key = {}",
        common::toml_str(&cert.to_string_lossy()),
        common::toml_str(&key.to_string_lossy())
    );
    bot(p, &extra).0
}

/// `curl --cacert CA` posts `text` over HTTPS with a key; whether it got a 2xx.
fn https_post(b: &Bot, ca: &Path, to: &str, text: &str) -> (bool, String) {
    let out = xrelay(&b.cfg, &["key", "create", "tests"]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    curl(&[
        "-sS",
        "-f",
        "--cacert",
        &ca.to_string_lossy(),
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-d",
        text,
        &format!("https://127.0.0.1:{}/msg/{to}?wait=1", b.port),
    ])
}

#[test]
fn curl_cacert_post_over_https_is_delivered() {
    let p = common::shared();
    let d = dir(p, "https");
    let (cert, key) = self_signed(&d, "a");
    let b = https_bot(p, &cert, &key);
    let (mut rcpt, to) = receiver(p);
    let (ok, out) = https_post(&b, &cert, &to, "over https");
    assert!(ok, "{out}");
    assert_eq!(
        rcpt.recv_message(WAIT).expect("delivered").body.as_deref(),
        Some("over https")
    );
    // Plain HTTP on the TLS port gets no answer.
    let port = b.port;
    let r = std::panic::catch_unwind(|| http(port, "GET", "/health", &[], b""));
    assert!(r.is_err() || r.unwrap().status != 200);
}

#[test]
fn a_key_that_does_not_fit_the_certificate_stops_the_start_as_a_config_error() {
    let p = common::shared();
    let d = dir(p, "badkey");
    let (cert, _) = self_signed(&d, "a");
    let (_, other_key) = self_signed(&d, "b");
    let sock = d.join("xrelay.sock");
    let extra = format!(
        "tls_cert = {}\ntls_key = {}",
        common::toml_str(&cert.to_string_lossy()),
        common::toml_str(&other_key.to_string_lossy())
    );
    let cfg = on_socket(p, &extra, &sock).write().cfg;
    let mut daemon = Daemon::start(&cfg);
    let status = daemon.wait_exit(WAIT).expect("it stops");
    assert!(!status.success());
    assert!(
        daemon
            .log()
            .contains("config error: http.tls_cert/http.tls_key"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_replaced_certificate_is_served_after_sighup() {
    let p = common::shared();
    let d = dir(p, "reload");
    let (cert, key) = self_signed(&d, "live");
    let first = d.join("first.pem");
    std::fs::copy(&cert, &first).unwrap();
    let mut b = https_bot(p, &cert, &key);
    let (_, to) = receiver(p);
    let (new_cert, new_key) = self_signed(&d, "next");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    b.daemon.signal(Signal::HUP);
    b.daemon.wait_for("https: certificate reloaded", WAIT);
    let (ok, out) = https_post(&b, &cert, &to, "new cert");
    assert!(ok, "{out}");
    let (old_ok, _) = https_post(&b, &first, &to, "old cert");
    assert!(!old_ok, "the old certificate is still served");
}

#[test]
fn hotplug_ifdown_message_queues_while_the_server_is_down_and_arrives_with_its_delay_stamp() {
    let mut p = Prosody::start(ProsodyOpts {
        offline: true,
        muc: false,
        direct_tls: false,
        ..ProsodyOpts::default()
    });
    let rcpt_user = unique_user("rcpt");
    p.register(&rcpt_user, "pw");
    let sock = dir(&p, "hotplug").join("xrelay.sock");
    let b = on_socket(&p, "unix_trust = true", &sock)
        .xmpp("reconnect_max", "\"1s\"")
        .start();
    let (cfg, mut daemon) = (b.cfg.clone(), b.daemon);
    p.stop();
    daemon.wait_for("disconnected", WAIT);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/openwrt/hotplug.d/iface/90-xrelay");
    let posted = xrelay::timefmt::now_unix();
    let out = Command::new("sh")
        .arg(&script)
        .env("ACTION", "ifdown")
        .env("INTERFACE", "wan")
        .env("XRELAY_BIN", env!("CARGO_BIN_EXE_xrelay"))
        .env("XRELAY_CONFIG", &cfg)
        .env("XRELAY_TO", p.jid(&rcpt_user))
        .env("XRELAY_STATE", sock.with_file_name("wan-down"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Longer than outbox.stamp_after (5 s).
    std::thread::sleep(Duration::from_secs(6));
    p.start_again();
    let mut rcpt = TestClient::connect(&p, &rcpt_user, "pw");
    let m = rcpt
        .recv_message(Duration::from_secs(20))
        .expect("delivered");
    assert!(
        m.body.as_deref().unwrap_or("").starts_with("WAN down on "),
        "{}",
        m.raw
    );
    let ours =
        m.el.children
            .iter()
            .find(|c| c.is("delay") && c.attr("from").is_none())
            .unwrap_or_else(|| panic!("no delay stamp: {}", m.raw));
    let stamp = xrelay::timefmt::parse_rfc3339(ours.attr("stamp").unwrap()).unwrap();
    assert!(
        stamp.abs_diff(posted) <= 2,
        "stamp {stamp} vs event {posted}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn a_renewed_certificate_is_served_without_a_signal() {
    let p = common::shared();
    let d = dir(p, "renew");
    let (cert, key) = self_signed(&d, "live");
    let mut b = https_bot(p, &cert, &key);
    let (_, to) = receiver(p);
    let (new_cert, new_key) = self_signed(&d, "next");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    // The files are looked at at most every 5 s, when a connection arrives.
    std::thread::sleep(Duration::from_secs(6));
    let (ok, out) = https_post(&b, &cert, &to, "renewed");
    assert!(ok, "{out}");
    assert_eq!(b.daemon.count("https: certificate reloaded"), 1);
}

#[test]
fn a_socket_request_is_answered_whatever_host_it_names_despite_allowed_hosts() {
    let p = common::shared();
    let (b, _sock) = bot(p, "unix_trust = true\nallowed_hosts = [\"router.lan\"]");
    let (mut rcpt, to) = receiver(p);
    let out = xrelay(&b.cfg, &["send", &to, "any host"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        rcpt.recv_message(WAIT).expect("delivered").body.as_deref(),
        Some("any host")
    );
}

#[test]
fn health_on_a_trusted_socket_shows_the_account() {
    let p = common::shared();
    let (_b, sock) = bot(p, "unix_trust = true");
    let (ok, out) = curl(&[
        "-sS",
        "--unix-socket",
        &sock.to_string_lossy(),
        "http://localhost/health",
    ]);
    assert!(ok && out.contains("\"jid\""), "{out}");
}
