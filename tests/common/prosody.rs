//! Prosody instances for the tests: config, process lifetime, readiness, accounts, and the
//! xrelay configs that point at them.

use super::certs::certs;
use super::Signal;
use super::{keep_dirs, new_dir, toml_str, DOMAIN, MUC_DOMAIN};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// How long Prosody may take from spawn to answering (typically ~1 s; parallel test
/// binaries on a small machine stretch that).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Prosody may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one readiness probe (connect, stream header, answer).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between readiness checks.
const POLL: Duration = Duration::from_millis(20);
/// Starts with fresh ports when a port was taken between choosing it and Prosody binding it.
const START_ATTEMPTS: usize = 3;
/// Set (to anything) for Prosody's debug log.
pub(super) const DEBUG_ENV: &str = "XRELAY_PROSODY_DEBUG";

/// Which SCRAM hash Prosody stores (and therefore offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scram {
    /// SCRAM-SHA-1 (`password_hash = "SHA-1"`).
    Sha1,
    /// SCRAM-SHA-256 (`password_hash = "SHA-256"`).
    Sha256,
}

/// What a test instance offers.
#[derive(Debug, Clone)]
pub(crate) struct ProsodyOpts {
    /// The SCRAM variant offered (PLAIN is offered over TLS in any case).
    pub scram: Scram,
    /// Stream management (XEP-0198, `mod_smacks`).
    pub smacks: bool,
    /// A direct TLS c2s port (XEP-0368) besides the STARTTLS one.
    pub direct_tls: bool,
    /// A MUC service at [`MUC_DOMAIN`] where anyone may create rooms.
    pub muc: bool,
    /// `c2s_require_encryption`; off lets a client log in without TLS (SCRAM only).
    pub require_encryption: bool,
    /// Offline storage: messages to an offline account wait for it instead of bouncing.
    pub offline: bool,
    /// `c2s_stanza_size_limit`, when not Prosody's default (256 KiB).
    pub stanza_size_limit: Option<usize>,
    /// XEP-0363 uploads: `mod_http_file_share` at [`UPLOAD_DOMAIN`] over HTTPS.
    pub file_share: Option<FileShare>,
}

/// The upload component's address.
pub(crate) const UPLOAD_DOMAIN: &str = "upload.localhost";

/// How `mod_http_file_share` is set up.
#[derive(Debug, Clone)]
pub(crate) struct FileShare {
    /// `http_file_share_size_limit` (advertised as max-file-size).
    pub size_limit: u64,
    /// `http_file_share_allowed_file_types`; empty: any type.
    pub allowed_types: Vec<String>,
}

impl Default for ProsodyOpts {
    fn default() -> Self {
        Self {
            scram: Scram::Sha256,
            smacks: true,
            direct_tls: true,
            muc: true,
            require_encryption: true,
            offline: false,
            stanza_size_limit: None,
            file_share: None,
        }
    }
}

/// One Prosody process with its own config, data and ports, in its own temp dir.
///
/// Dropping it stops Prosody and removes the dir (unless `XRELAY_KEEP_TEST_DIRS` is set).
pub(crate) struct Prosody {
    /// The XMPP domain: [`DOMAIN`].
    pub domain: String,
    /// The STARTTLS c2s port on 127.0.0.1.
    pub c2s_port: u16,
    /// The direct TLS c2s port on 127.0.0.1, with `direct_tls`.
    pub direct_tls_port: Option<u16>,
    /// The HTTPS port on 127.0.0.1, with `file_share`.
    pub https_port: Option<u16>,
    /// The instance dir: config, data, log, xrelay configs.
    pub dir: PathBuf,
    /// What it was started with.
    pub opts: ProsodyOpts,
    config: PathBuf,
    child: Option<Child>,
}

/// Why a launch did not end with a Prosody that answers.
#[derive(Debug)]
enum LaunchError {
    PortTaken,
    Spawn(io::Error),
    Exited(ExitStatus),
    Timeout,
}

impl Prosody {
    /// Writes the config and starts Prosody; returns once its c2s port answers a stream
    /// header. Panics with Prosody's log if it does not start.
    ///
    /// Prosody is killed when the test process ends, even if this value is never dropped
    /// (as with [`super::shared`]).
    pub(crate) fn start(opts: ProsodyOpts) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = new_dir(&format!("prosody-{}", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(dir.join("data")).expect("create the data dir");
        // Prosody indexes `certs` next to its config; an empty one keeps it from complaining.
        std::fs::create_dir_all(dir.join("certs")).expect("create the certs dir");
        let mut p = Self {
            domain: DOMAIN.to_string(),
            c2s_port: 0,
            direct_tls_port: None,
            https_port: None,
            config: dir.join("prosody.cfg.lua"),
            dir,
            opts,
            child: None,
        };
        for attempt in 1..=START_ATTEMPTS {
            let ports = free_ports(3);
            p.c2s_port = ports[0];
            p.direct_tls_port = p.opts.direct_tls.then_some(ports[1]);
            p.https_port = p.opts.file_share.as_ref().map(|_| ports[2]);
            std::fs::write(&p.config, p.lua_config()).expect("write the Prosody config");
            match p.launch() {
                Ok(()) => return p,
                Err(LaunchError::PortTaken) if attempt < START_ATTEMPTS => p.stop(),
                Err(e) => p.fail(e),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts the stopped instance again with the same ports, config and data.
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "Prosody is already running");
        if let Err(e) = self.launch() {
            self.fail(e);
        }
    }

    /// Stops Prosody: SIGTERM, then SIGKILL if it has not exited after [`STOP_TIMEOUT`].
    /// Does nothing if it is not running.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        super::kill(child.id(), Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Whether the Prosody process is running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The pid of the running Prosody.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Creates an account (`prosodyctl register`); works while Prosody runs.
    pub(crate) fn register(&self, user: &str, password: &str) {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, &self.domain, password])
            .stdin(Stdio::null())
            .output()
            .expect("run prosodyctl (tests/setup-debian.sh installs it)");
        assert!(
            out.status.success(),
            "prosodyctl register {user} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Registers a fresh account named after `prefix`; returns (user, password).
    pub(crate) fn new_user(&self, prefix: &str) -> (String, String) {
        super::Server::new_user(self, prefix)
    }

    /// The bare JID of `user` on this instance.
    pub(crate) fn jid(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    /// The JID of room `name` on the MUC service.
    pub(crate) fn room(&self, name: &str) -> String {
        assert!(self.opts.muc, "this instance has no MUC service");
        format!("{name}@{MUC_DOMAIN}")
    }

    /// PEM of the test CA that signed the server certificate.
    pub(crate) fn ca_file(&self) -> &'static Path {
        &certs().ca
    }

    /// PEM of the server certificate.
    pub(crate) fn cert_file(&self) -> &'static Path {
        &certs().cert
    }

    /// Base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (`pin_sha256`).
    pub(crate) fn pin(&self) -> String {
        certs().pin.clone()
    }

    /// Prosody's config file, for tests that run prosodyctl themselves.
    pub(crate) fn config_path(&self) -> &Path {
        &self.config
    }

    /// Prosody's log (all runs of this instance), then anything it printed itself.
    pub(crate) fn log(&self) -> String {
        let mut log = std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default();
        let out = std::fs::read_to_string(self.dir.join("prosody.out")).unwrap_or_default();
        if !out.trim().is_empty() {
            log.push_str("--- Prosody's stdout/stderr ---\n");
            log.push_str(&out);
        }
        log
    }

    /// Writes an xrelay config (TOML) for `user` into the instance dir; returns its path.
    ///
    /// `[xmpp]` gets `jid`, `password`, `server = "127.0.0.1"`, `port` (STARTTLS port),
    /// `tls = "starttls"` and `ca_file` (the test CA). Each `(key, value)` of `xmpp`
    /// replaces or adds an `[xmpp]` key; `value` is TOML as written (`"\"direct\""`, `"5223"`,
    /// `"[\"a@conference.localhost\"]"`), and an empty value removes the key.
    pub(crate) fn xrelay_config(
        &self,
        user: &str,
        password: &str,
        xmpp: &[(&str, &str)],
    ) -> PathBuf {
        self.xrelay_config_with(user, password, xmpp, "")
    }

    /// [`Prosody::xrelay_config`] followed by `tail`, TOML appended verbatim (other
    /// sections such as `[http]`).
    pub(crate) fn xrelay_config_with(
        &self,
        user: &str,
        password: &str,
        xmpp: &[(&str, &str)],
        tail: &str,
    ) -> PathBuf {
        super::write_xrelay_config(self, &self.dir, user, password, xmpp, tail)
    }

    fn lua_config(&self) -> String {
        let certs = certs();
        // adhoc + uptime: the ad-hoc `uptime` command; server_contact_info: XEP-0128 forms
        // in the server's disco#info.
        let mut modules = vec![
            "roster",
            "saslauth",
            "tls",
            "disco",
            "ping",
            "version",
            "adhoc",
            "uptime",
            "server_contact_info",
        ];
        if self.opts.smacks {
            modules.push("smacks");
        }
        if self.opts.offline {
            modules.push("offline");
        }
        let path = |name: &str| lua_str(&self.dir.join(name).to_string_lossy());
        let mut cfg = format!(
            r#"-- Test instance: loopback only; no s2s, HTTP or offline storage (a message to an
-- offline account bounces).
pidfile = {pidfile}
data_path = {data}
run_as_root = true
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ {direct} }}
legacy_ssl_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s", "s2s_auth_certs"{offline} }}
authentication = "internal_hashed"
password_hash = "{hash}"
c2s_require_encryption = {require}
ssl = {{ certificate = {cert}, key = {key} }}
log = {{ {level} = {log} }}
contact_info = {{ abuse = {{ "mailto:abuse@localhost" }}, admin = {{ "xmpp:admin@localhost" }} }}

VirtualHost "{domain}"
"#,
            pidfile = path("prosody.pid"),
            data = path("data"),
            c2s = self.c2s_port,
            direct = self
                .direct_tls_port
                .map(|p| p.to_string())
                .unwrap_or_default(),
            modules = modules
                .iter()
                .map(|m| lua_str(m))
                .collect::<Vec<_>>()
                .join(", "),
            offline = if self.opts.offline {
                ""
            } else {
                ", \"offline\""
            },
            hash = match self.opts.scram {
                Scram::Sha1 => "SHA-1",
                Scram::Sha256 => "SHA-256",
            },
            require = self.opts.require_encryption,
            cert = lua_str(&certs.cert.to_string_lossy()),
            key = lua_str(&certs.key.to_string_lossy()),
            level = if std::env::var_os(DEBUG_ENV).is_some() {
                "debug"
            } else {
                "info"
            },
            log = path("prosody.log"),
            domain = self.domain,
        );
        if let Some(limit) = self.opts.stanza_size_limit {
            // A global option: it must come before the first VirtualHost.
            cfg = cfg.replacen(
                "\nVirtualHost",
                &format!("c2s_stanza_size_limit = {limit}\n\nVirtualHost"),
                1,
            );
        }
        if let (Some(share), Some(port)) = (&self.opts.file_share, self.https_port) {
            // Global options: before the first VirtualHost.
            let global = format!(
                "https_ports = {{ {port} }}\nhttps_interfaces = {{ \"127.0.0.1\" }}\n\
                 https_ssl = {{ certificate = {cert}, key = {key} }}\n\
                 http_external_url = \"https://127.0.0.1:{port}/\"\n\
                 -- Requests name 127.0.0.1 as their Host: serve them as the VirtualHost's.\n\
                 http_default_host = \"localhost\"\n\nVirtualHost",
                cert = lua_str(&certs.cert.to_string_lossy()),
                key = lua_str(&certs.key.to_string_lossy()),
            );
            cfg = cfg.replacen("https_ports = { }\n", "", 1).replacen(
                "\nVirtualHost",
                &format!("\n{global}"),
                1,
            );
            let types = share
                .allowed_types
                .iter()
                .map(|t| lua_str(t))
                .collect::<Vec<_>>()
                .join(", ");
            cfg.push_str(&format!(
                "\nComponent \"{UPLOAD_DOMAIN}\" \"http_file_share\"\n    \
                 http_host = \"localhost\"\n    http_file_share_size_limit = {}\n",
                share.size_limit
            ));
            if !types.is_empty() {
                cfg.push_str(&format!(
                    "    http_file_share_allowed_file_types = {{ {types} }}\n"
                ));
            }
        }
        if self.opts.muc {
            cfg.push_str(&format!(
                "\nComponent \"{MUC_DOMAIN}\" \"muc\"\n    restrict_room_creation = false\n    \
                 -- Rooms are usable at once, whoever joins first.\n    \
                 muc_room_locking = false\n"
            ));
        }
        cfg
    }

    /// Spawns Prosody and waits until it answers on its ports.
    fn launch(&mut self) -> Result<(), LaunchError> {
        let log_path = self.dir.join("prosody.log");
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("prosody.out"))
            .map_err(LaunchError::Spawn)?;
        // setpriv has the kernel kill Prosody when the thread that spawned it exits.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--", "prosody", "-F"])
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(LaunchError::Spawn)?)
            .stderr(out);
        self.child = Some(spawn(cmd).map_err(LaunchError::Spawn)?);
        let mut expected = vec![format!(
            "Activated service 'c2s' on [127.0.0.1]:{}",
            self.c2s_port
        )];
        if let Some(port) = self.direct_tls_port {
            expected.push(format!(
                "Activated service 'c2s_direct_tls' on [127.0.0.1]:{port}"
            ));
        }
        if let Some(port) = self.https_port {
            expected.push(format!("Activated service 'https' on [127.0.0.1]:{port}"));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(LaunchError::Exited(status));
                }
            }
            let log = read_from(&log_path, log_start);
            if log.contains("Failed to open server port") {
                return Err(LaunchError::PortTaken);
            }
            // The log line proves our Prosody holds the port, the probe that it serves it.
            if expected.iter().all(|line| log.contains(line.as_str())) && answers(self.c2s_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LaunchError::Timeout);
            }
            std::thread::sleep(POLL);
        }
    }

    fn fail(&mut self, e: LaunchError) -> ! {
        self.stop();
        panic!(
            "Prosody did not start ({e:?}) in {}; its log:\n{}",
            self.dir.display(),
            self.log()
        );
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
        if !keep_dirs() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `n` distinct free loopback ports (all bound at once, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    let ports = held
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect();
    drop(held);
    ports
}

/// The text of `path` from byte `start` on (empty if unreadable).
fn read_from(path: &Path, start: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(io::SeekFrom::Start(start)).is_ok() {
            let _ = f.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Whether the c2s port answers an opening stream header with stream features.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = s.set_write_timeout(Some(PROBE_TIMEOUT));
    let hello = format!(
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    if s.write_all(hello.as_bytes()).is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.contains("<stream:stream") && text.contains("</stream:features>") {
            let _ = s.write_all(b"</stream:stream>");
            return true;
        }
    }
    false
}

/// Spawns `cmd` from one thread that lives as long as the test process: Prosody runs under
/// `setpriv --pdeathsig`, and the kernel kills it when its spawning *thread* exits, so a
/// short-lived spawning thread (such as a test's) would take Prosody down with it.
fn spawn(cmd: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("prosody-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the spawner thread");
        tx
    });
    let (reply, answer) = mpsc::channel();
    spawner.send((cmd, reply)).expect("the spawner thread runs");
    answer.recv().expect("the spawner thread answers")
}

/// `s` as a Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
