//! The test bed of the integration tests: real Prosody instances on 127.0.0.1 (lifecycle,
//! certificates, accounts, xrelay configs) and an independent XMPP client that checks what
//! arrives. A test's bot (account, config, key, running daemon, a second account beside it)
//! comes from one builder, [`Bed`].
//!
//! Every test binary compiles this module on its own and uses a different part of it, so
//! unused items and re-exports are expected in each of them.
#![allow(dead_code, unused_imports)]

mod bed;
mod certs;
pub(crate) mod client;
mod daemon;
mod ejabberd;
pub(crate) mod faults;
mod prosody;
mod receiver;
pub(crate) mod webhook;
pub(crate) mod xml;

pub(crate) use bed::{Bed, Bot, Written};
pub(crate) use client::{Message, Stanza, TestClient, Transport};
pub(crate) use daemon::{http, http_section, xrelay, Daemon, HttpResponse};
pub(crate) use ejabberd::Ejabberd;
pub(crate) use faults::FaultProxy;
pub(crate) use prosody::{FileShare, Prosody, ProsodyOpts, Scram, UPLOAD_DOMAIN};
pub(crate) use receiver::Receiver;
pub(crate) use rustix::process::Signal;
pub(crate) use xml::Element;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The XMPP domain of every test instance.
pub(crate) const DOMAIN: &str = "localhost";
/// The MUC service of instances started with `muc`.
pub(crate) const MUC_DOMAIN: &str = "conference.localhost";
/// Set (to anything) to keep the temp dirs of instances and certificates for inspection.
pub(crate) const KEEP_DIRS_ENV: &str = "XRELAY_KEEP_TEST_DIRS";

/// A free port on 127.0.0.1 (bound, read, released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A fresh account name (lower-case, as Prosody stores it), so tests can share an instance.
pub(crate) fn unique_user(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        prefix.to_lowercase(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One default instance per test binary, started on first use and shared by its tests (each
/// registers its own accounts). It dies with the test process (see [`Prosody::start`]).
pub(crate) fn shared() -> &'static Prosody {
    static SHARED: OnceLock<Prosody> = OnceLock::new();
    SHARED.get_or_init(|| Prosody::start(ProsodyOpts::default()))
}

/// What the client and the xrelay configs need of a server instance (Prosody or ejabberd).
pub(crate) trait Server {
    /// The XMPP domain.
    fn domain(&self) -> &str;
    /// The STARTTLS c2s port on 127.0.0.1.
    fn c2s_port(&self) -> u16;
    /// The direct TLS c2s port on 127.0.0.1, if any.
    fn direct_tls_port(&self) -> Option<u16>;
    /// PEM of the CA that signed the server's certificate.
    fn ca_file(&self) -> &Path;
    /// The server's log so far.
    fn log(&self) -> String;
    /// Creates an account; the server must be running.
    fn register(&self, user: &str, password: &str);

    /// Registers a fresh account named after `prefix`; returns (user, password).
    fn new_user(&self, prefix: &str) -> (String, String) {
        let user = unique_user(prefix);
        let password = format!("pw-{user}");
        self.register(&user, &password);
        (user, password)
    }
}

impl Server for Prosody {
    fn domain(&self) -> &str {
        &self.domain
    }
    fn c2s_port(&self) -> u16 {
        self.c2s_port
    }
    fn direct_tls_port(&self) -> Option<u16> {
        self.direct_tls_port
    }
    fn ca_file(&self) -> &Path {
        Self::ca_file(self)
    }
    fn log(&self) -> String {
        Self::log(self)
    }
    fn register(&self, user: &str, password: &str) {
        Self::register(self, user, password)
    }
}

/// Writes an xrelay config for `user` of `server` into `dir` (see
/// [`Prosody::xrelay_config_with`] for `xmpp` and `tail`); returns its path.
pub(crate) fn write_xrelay_config(
    server: &(impl Server + ?Sized),
    dir: &Path,
    user: &str,
    password: &str,
    xmpp: &[(&str, &str)],
    tail: &str,
) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut keys: Vec<(String, String)> = vec![
        (
            "jid".into(),
            toml_str(&format!("{user}@{}", server.domain())),
        ),
        ("password".into(), toml_str(password)),
        ("server".into(), toml_str("127.0.0.1")),
        ("port".into(), server.c2s_port().to_string()),
        ("tls".into(), toml_str("starttls")),
        (
            "ca_file".into(),
            toml_str(&server.ca_file().to_string_lossy()),
        ),
    ];
    for &(key, value) in xmpp {
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => keys.push((key.to_string(), value.to_string())),
        }
    }
    let mut text = String::from("[xmpp]\n");
    for (k, v) in keys.iter().filter(|(_, v)| !v.is_empty()) {
        text.push_str(&format!("{k} = {v}\n"));
    }
    if !tail.is_empty() {
        text.push('\n');
        text.push_str(tail);
        text.push('\n');
    }
    let path = dir.join(format!(
        "xrelay-{user}-{}.toml",
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write the xrelay config");
    // It holds the password: xrelay refuses it if group or others can read it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .expect("make the xrelay config private");
    path
}

/// Whether temp dirs are kept after use.
fn keep_dirs() -> bool {
    std::env::var_os(KEEP_DIRS_ENV).is_some()
}

/// A new empty directory of this process under the tests' temp dir, named `p<pid>-<name>`.
///
/// Statics are never dropped, so dirs of the shared instance and the certificates outlive
/// their process; the first call sweeps those of processes that are gone.
fn new_dir(name: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xrelay-tests");
        std::fs::create_dir_all(&root).expect("create the tests' temp dir");
        if !keep_dirs() {
            sweep_dead(&root);
        }
        root
    });
    let dir = root.join(format!("p{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// Removes dirs left by test processes that no longer run.
fn sweep_dead(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix('p'))
            .and_then(|n| n.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// `s` as a TOML basic string.
pub(crate) fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Send `sig` to the process `pid` (a child of the tests, not reaped yet, so the pid is
/// still its own).
pub(crate) fn kill(pid: u32, sig: Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a valid pid");
    let _ = rustix::process::kill_process(pid, sig);
}
