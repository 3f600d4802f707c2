//! The test bed: real Prosody instances on 127.0.0.1 with a test CA, accounts, and an
//! independent XMPP client to check what arrives.
//!
//! Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

mod client;

pub use client::TestClient;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The XMPP domain of every test instance.
pub const DOMAIN: &str = "localhost";
/// How long Prosody may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Which SCRAM hash Prosody stores (and therefore offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scram {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
}

/// What a test instance offers.
#[derive(Debug, Clone)]
pub struct ProsodyOpts {
    pub scram: Scram,
    pub smacks: bool,
    pub direct_tls: bool,
    pub muc: bool,
}

impl Default for ProsodyOpts {
    fn default() -> Self {
        ProsodyOpts {
            scram: Scram::Sha256,
            smacks: true,
            direct_tls: true,
            muc: true,
        }
    }
}

/// The test CA and the server certificate it signed, made once per test process.
struct Certs {
    dir: PathBuf,
    pin: String,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tmp_root().join(format!("certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sh = |script: &str| {
            let out = Command::new("sh")
                .arg("-ec")
                .arg(script)
                .current_dir(&dir)
                .output()
                .expect("sh runs");
            assert!(
                out.status.success(),
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
              -subj /CN=xrelay-test-ca -keyout ca.key -out ca.pem 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
              -keyout server.key -out server.csr 2>/dev/null
            printf 'basicConstraints=CA:FALSE\\nsubjectAltName=DNS:localhost,DNS:conference.localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
              -extfile ext -out server.pem 2>/dev/null");
        let pin = sh("openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der \
                      | openssl dgst -sha256 -binary | base64");
        Certs {
            dir,
            pin: pin.trim().to_string(),
        }
    })
}

fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh account name, so tests can share an instance.
pub fn unique_user(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Spawns Prosody from one thread that lives as long as the test process, so that
/// `PR_SET_PDEATHSIG` (tied to the spawning thread) kills Prosody only when the process ends.
fn spawn(cmd: Command) -> Child {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (reply, rx) = mpsc::channel();
    tx.lock().unwrap().send((cmd, reply)).unwrap();
    rx.recv().unwrap().expect("prosody starts")
}

/// One Prosody instance with its own config, data and ports.
pub struct Prosody {
    pub domain: String,
    pub c2s_port: u16,
    pub direct_tls_port: Option<u16>,
    pub dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Prosody {
    /// Write the config, start Prosody, and wait until it answers a stream header.
    pub fn start(opts: ProsodyOpts) -> Prosody {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tmp_root().join(format!(
            "prosody-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let c2s_port = free_port();
        let direct_tls_port = opts.direct_tls.then(free_port);
        let certs = certs();
        let mut modules = vec!["roster", "saslauth", "tls", "disco", "ping", "presence"];
        if opts.smacks {
            modules.push("smacks");
        }
        let quoted: Vec<String> = modules.iter().map(|m| format!("{m:?}")).collect();
        let mut cfg = format!(
            r#"-- test instance
run_as_root = true
prosody_user = "root"
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{ {direct} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s", "offline" }}
authentication = "internal_hashed"
password_hash = "{hash}"
c2s_require_encryption = true
log = {{ {level} = "{dir}/prosody.log" }}
certificates = "{certs}"
ssl = {{ certificate = "{certs}/server.pem", key = "{certs}/server.key" }}
VirtualHost "localhost"
"#,
            dir = dir.display(),
            direct = direct_tls_port.map(|p| p.to_string()).unwrap_or_default(),
            modules = quoted.join(", "),
            hash = match opts.scram {
                Scram::Sha1 => "SHA-1",
                Scram::Sha256 => "SHA-256",
            },
            level = if std::env::var_os("XRELAY_PROSODY_DEBUG").is_some() {
                "debug"
            } else {
                "info"
            },
            certs = certs.dir.display(),
        );
        if opts.muc {
            cfg.push_str(
                "Component \"conference.localhost\" \"muc\"\n    restrict_room_creation = false\n",
            );
        }
        let config = dir.join("prosody.cfg.lua");
        std::fs::write(&config, cfg).unwrap();
        let mut p = Prosody {
            domain: DOMAIN.to_string(),
            c2s_port,
            direct_tls_port,
            dir,
            config,
            child: None,
        };
        p.start_again();
        p
    }

    /// Start (again) with the same ports, config and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new("prosody");
        cmd.arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(spawn(cmd));
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Prosody did not start; its log:\n{}", self.log());
    }

    /// Whether the c2s port answers an opening stream header.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.c2s_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let hello = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
                     xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        if s.write_all(hello.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while let Ok(n @ 1..) = s.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
            if got.windows(16).any(|w| w == b"stream:features>") {
                return true;
            }
        }
        false
    }

    /// Stop with SIGTERM, and SIGKILL if it does not exit in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Create an account.
    pub fn register(&self, user: &str, password: &str) {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, DOMAIN, password])
            .output()
            .expect("prosodyctl runs");
        assert!(
            out.status.success(),
            "prosodyctl register {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The test CA's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        certs().dir.join("ca.pem")
    }

    /// Base64 SHA-256 of the server certificate's SubjectPublicKeyInfo.
    pub fn pin(&self) -> String {
        certs().pin.clone()
    }

    /// Prosody's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default()
    }

    /// Write an xrelay config for `user` and return its path. `overrides` replace or add
    /// `[xmpp]` keys (values as TOML); an empty value removes the key.
    pub fn xrelay_config(&self, user: &str, password: &str, overrides: &[(&str, &str)]) -> PathBuf {
        let ca = format!("{:?}", self.ca_file().display().to_string());
        let mut keys: Vec<(String, String)> = vec![
            ("jid".into(), format!("\"{user}@{DOMAIN}\"")),
            ("password".into(), format!("{password:?}")),
            ("server".into(), "\"127.0.0.1\"".into()),
            ("port".into(), self.c2s_port.to_string()),
            ("tls".into(), "\"starttls\"".into()),
            ("ca_file".into(), ca),
        ];
        for (k, v) in overrides {
            keys.retain(|(key, _)| key != k);
            if !v.is_empty() {
                keys.push((k.to_string(), v.to_string()));
            }
        }
        let mut text = String::from("[xmpp]\n");
        for (k, v) in keys {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let path = self.dir.join(format!("xrelay-{}.toml", unique_user(user)));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The config file path, for tests that drive prosodyctl themselves.
    pub fn config_path(&self) -> &Path {
        &self.config
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("XRELAY_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One default instance per test binary, shared by its tests (each uses fresh accounts).
/// It is killed with the test process.
pub fn shared() -> &'static Prosody {
    static SHARED: OnceLock<Prosody> = OnceLock::new();
    SHARED.get_or_init(|| Prosody::start(ProsodyOpts::default()))
}
