//! ejabberd (Debian's 23.01) instances for the tests, as a second server beside Prosody:
//! a private config, spool and log dir per instance, driven by `ejabberdctl`.
//!
//! `ejabberdctl` run as root switches to the `ejabberd` user, so the instance dir belongs to
//! that user and lives in the system temp dir (the build tree may not be reachable for it).
//! Tests that do not run as root use `sudo -n` for what needs root, as
//! `tests/setup-debian.sh` does. ejabberd daemonizes, so a small watchdog shell stops it
//! once the test process is gone.

use super::certs::certs;
use super::{keep_dirs, Server, DOMAIN, MUC_DOMAIN};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Ports are taken below the kernel's ephemeral range, which may hand a 3xxxx port to an
/// outgoing connection as its source port meanwhile.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// One ejabberd node with its own config, data and port.
pub(crate) struct Ejabberd {
    /// The STARTTLS c2s port on 127.0.0.1.
    pub c2s_port: u16,
    /// The HTTPS port of `mod_http_upload` (XEP-0363, 16 MiB) on 127.0.0.1.
    pub upload_port: u16,
    /// The instance dir: config, spool, logs.
    pub dir: PathBuf,
    running: bool,
}

impl Ejabberd {
    /// Writes the config and starts ejabberd; returns once it answers (about 5 s).
    pub(crate) fn start() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xrelay-ejabberd-p{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = as_root("rm").arg("-rf").arg(&dir).status();
        for sub in ["pki", "logs", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the ejabberd dir");
        }
        let c = certs();
        let mut bundle = Vec::new();
        for f in [&c.cert, &c.ca, &c.key] {
            bundle.extend(std::fs::read(f).expect("read the test PKI"));
        }
        std::fs::write(dir.join("pki/bundle.pem"), bundle).expect("write the bundle");
        std::fs::copy("/etc/ejabberd/inetrc", dir.join("inetrc"))
            .expect("copy inetrc (tests/setup-debian.sh installs ejabberd)");
        let c2s_port = free_low_port();
        let mut e = Self {
            c2s_port,
            upload_port: free_low_port(),
            dir,
            running: false,
        };
        std::fs::write(
            e.dir.join("ejabberdctl.cfg"),
            format!(
                "ERLANG_NODE=xrtest{}n{}@localhost\nERL_EPMD_ADDRESS=127.0.0.1\n\
                 INET_DIST_INTERFACE=127.0.0.1\nEJABBERD_PID_PATH={}\n\
                 EJABBERD_BYPASS_WARNINGS=true\n",
                std::process::id(),
                N.load(Ordering::Relaxed),
                e.dir.join("ejabberd.pid").display()
            ),
        )
        .expect("write ejabberdctl.cfg");
        std::fs::write(e.dir.join("ejabberd.yml"), e.yaml()).expect("write ejabberd.yml");
        let chown = as_root("chown")
            .args(["-R", "ejabberd:ejabberd"])
            .arg(&e.dir)
            .status()
            .expect("chown");
        let chmod = as_root("chmod").arg("700").arg(&e.dir).status();
        assert!(
            chown.success() && chmod.is_ok_and(|s| s.success()),
            "the ejabberd tests need root or passwordless sudo"
        );
        e.watchdog();
        e.start_again();
        e
    }

    fn yaml(&self) -> String {
        let dir = self.dir.display();
        let port = self.c2s_port;
        let upload = self.upload_port;
        format!(
            "hosts: [{DOMAIN}]\nloglevel: info\ncertfiles: [\"{dir}/pki/bundle.pem\"]\n\
             listen:\n  - port: {port}\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n    \
             starttls_required: true\n    max_stanza_size: 262144\n    shaper: none\n  \
             - port: {upload}\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    tls: true\n    \
             request_handlers:\n      /upload: mod_http_upload\n\
             auth_password_format: scram\nauth_scram_hash: sha256\n\
             acl:\n  local:\n    user_regexp: \"\"\n\
             access_rules:\n  local:\n    allow: local\n  c2s:\n    allow: all\n  \
             muc_create:\n    allow: local\n\
             shaper_rules:\n  c2s_shaper: none\n\
             modules:\n  mod_adhoc: {{}}\n  mod_disco: {{}}\n  mod_muc:\n    \
             host: {MUC_DOMAIN}\n    access_create: muc_create\n  mod_offline: {{}}\n  \
             mod_ping: {{}}\n  mod_roster: {{}}\n  mod_stream_mgmt:\n    resume_timeout: 300\n  \
             mod_version: {{}}\n  mod_http_upload:\n    \
             put_url: \"https://127.0.0.1:{upload}/upload\"\n    docroot: \"{dir}/spool/upload\"\n    \
             max_size: 16777216\n"
        )
    }

    /// `ejabberdctl` for this instance.
    fn ctl(&self, args: &[&str]) -> Output {
        let dir = self.dir.to_string_lossy().into_owned();
        as_root("ejabberdctl")
            .args(["--config-dir", &dir])
            .args(["--logs", &format!("{dir}/logs")])
            .args(["--spool", &format!("{dir}/spool")])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ejabberdctl (tests/setup-debian.sh installs it)")
    }

    /// Stops the node when the test process is gone (statics are never dropped).
    fn watchdog(&self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let sudo = if is_root() { "" } else { "sudo -n " };
        let rm = if keep_dirs() {
            String::new()
        } else {
            format!("; {sudo}rm -rf '{dir}'")
        };
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             {sudo}ejabberdctl --config-dir '{dir}' --logs '{dir}/logs' --spool '{dir}/spool' \
             stop >/dev/null 2>&1; sleep 3{rm}",
            pid = std::process::id()
        );
        // The outer shell exits at once; the watchdog runs on in the background.
        let started = Command::new("sh")
            .args(["-c", &format!("({script}) </dev/null >/dev/null 2>&1 &")])
            .status()
            .expect("start the ejabberd watchdog");
        assert!(started.success());
    }

    /// Starts the stopped node again with the same port, config and data.
    pub(crate) fn start_again(&mut self) {
        let out = self.ctl(&["start"]);
        assert!(out.status.success(), "ejabberdctl start: {out:?}");
        let out = self.ctl(&["started"]);
        assert!(
            out.status.success(),
            "ejabberd did not start: {out:?}\n{}",
            self.log()
        );
        self.running = true;
    }

    /// Stops the node gracefully (clients get `system-shutdown`) and waits until it is gone.
    pub(crate) fn stop(&mut self) {
        if !self.running {
            return;
        }
        let _ = self.ctl(&["stop"]);
        let _ = self.ctl(&["stopped"]);
        self.running = false;
    }

    /// Kills the node with SIGKILL: no stream is closed, nothing is saved on the way.
    pub(crate) fn kill_9(&mut self) {
        let out = as_root("cat")
            .arg(self.dir.join("ejabberd.pid"))
            .output()
            .expect("read ejabberd's pid file");
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!pid.is_empty(), "no pid file: {out:?}");
        let killed = as_root("kill").args(["-9", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid}");
        while Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.running = false;
    }

    /// The bare JID of `user`.
    pub(crate) fn jid(&self, user: &str) -> String {
        format!("{user}@{DOMAIN}")
    }

    /// The JID of room `name` on the MUC service.
    pub(crate) fn room(&self, name: &str) -> String {
        format!("{name}@{MUC_DOMAIN}")
    }

    /// An xrelay config for `user`, as [`super::Prosody::xrelay_config_with`] writes it.
    pub(crate) fn xrelay_config_with(
        &self,
        user: &str,
        password: &str,
        xmpp: &[(&str, &str)],
        tail: &str,
    ) -> PathBuf {
        let dir = super::new_dir(&format!("ejabberd-configs-{}", self.c2s_port));
        super::write_xrelay_config(self, &dir, user, password, xmpp, tail)
    }
}

impl Server for Ejabberd {
    fn domain(&self) -> &str {
        DOMAIN
    }
    fn c2s_port(&self) -> u16 {
        self.c2s_port
    }
    fn direct_tls_port(&self) -> Option<u16> {
        None
    }
    fn ca_file(&self) -> &Path {
        &certs().ca
    }
    fn log(&self) -> String {
        as_root("cat")
            .arg(self.dir.join("logs/ejabberd.log"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
    fn register(&self, user: &str, password: &str) {
        let out = self.ctl(&["register", user, DOMAIN, password]);
        assert!(out.status.success(), "register {user}: {out:?}");
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.stop();
        if !keep_dirs() {
            let _ = as_root("rm").arg("-rf").arg(&self.dir).status();
        }
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `program`, through `sudo -n` unless the tests run as root.
fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", program]);
        c
    }
}

/// A port in [`PORT_RANGE`] nobody listens on now.
fn free_low_port() -> u16 {
    let mut x = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    loop {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let span = u64::from(PORT_RANGE.end - PORT_RANGE.start);
        let port = PORT_RANGE.start + (x >> 33) as u16 % span as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
