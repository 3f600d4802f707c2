//! One builder for the bed most integration tests stand on: a bot account on a Prosody,
//! its xrelay config (overrides in `[xmpp]`, an HTTP port of its own, a keys file, other
//! sections), an optional API key, `xrelay run` started, and an optional second account
//! online beside it.
//!
//! ```ignore
//! let mut b = Bed::new().rooms(&[&room]).key("msg").peer("rcpt").start();
//! let r = b.post_text(&format!("/msg/{}", b.peer().bare_jid()), "hello");
//! ```

use super::{free_port, http, shared, toml_str, unique_user, xrelay, Daemon, HttpResponse};
use super::{Prosody, TestClient};
use std::path::PathBuf;
use std::time::Duration;

/// How long `start` waits for the daemon's readiness line.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The bots' password.
const PASSWORD: &str = "pw";

/// What to set up; [`Bed::start`] sets it up and returns the running [`Bot`].
pub(crate) struct Bed<'p> {
    server: &'p Prosody,
    prefix: String,
    account: Option<String>,
    xmpp: Vec<(String, String)>,
    listen: Vec<String>,
    http: String,
    sections: String,
    scope: Option<String>,
    ready: Option<String>,
    peer: Option<String>,
}

impl Bed<'static> {
    /// A bed on the test binary's shared Prosody ([`shared`]).
    pub(crate) fn new() -> Self {
        Bed::on(shared())
    }
}

impl Default for Bed<'static> {
    fn default() -> Self {
        Bed::new()
    }
}

impl<'p> Bed<'p> {
    /// A bed on `server`: a fresh account `bot-N`, no key, started once it logs
    /// `online as`.
    pub(crate) fn on(server: &'p Prosody) -> Self {
        Bed {
            server,
            prefix: "bot".into(),
            account: None,
            xmpp: Vec::new(),
            listen: Vec::new(),
            http: String::new(),
            sections: String::new(),
            scope: None,
            ready: Some("online as".into()),
            peer: None,
        }
    }

    /// Names the fresh account after `prefix`.
    pub(crate) fn named(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Uses the account `user`, registered already with the password `pw`.
    pub(crate) fn account(mut self, user: &str) -> Self {
        self.account = Some(user.into());
        self
    }

    /// Sets (or, with an empty value, removes) an `[xmpp]` key; `value` is TOML as
    /// written (`"\"1s\""`, `"5223"`).
    pub(crate) fn xmpp(mut self, key: &str, value: &str) -> Self {
        self.xmpp.push((key.into(), value.into()));
        self
    }

    /// Joins `rooms` (`xmpp.rooms`).
    pub(crate) fn rooms(self, rooms: &[&str]) -> Self {
        let list = rooms.iter().map(|r| toml_str(r)).collect::<Vec<_>>();
        self.xmpp("rooms", &format!("[{}]", list.join(", ")))
    }

    /// Adds `entry` (such as `unix:/path`) to `http.listen`, after the TCP port.
    pub(crate) fn listen(mut self, entry: &str) -> Self {
        self.listen.push(entry.into());
        self
    }

    /// Adds TOML lines to `[http]`.
    pub(crate) fn http(mut self, lines: &str) -> Self {
        push_lines(&mut self.http, lines);
        self
    }

    /// Adds a `[webhook]` section with `lines`.
    pub(crate) fn webhook(self, lines: &str) -> Self {
        self.section(&format!("[webhook]\n{lines}"))
    }

    /// Appends TOML (other sections) after `[http]` and `[keys]`.
    pub(crate) fn section(mut self, toml: &str) -> Self {
        push_lines(&mut self.sections, toml);
        self
    }

    /// Creates an API key of `scope` (e.g. `msg`, `msg,rest`) before the start.
    pub(crate) fn key(mut self, scope: &str) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Waits for a log line containing `line` instead of `online as`.
    pub(crate) fn ready_when(mut self, line: &str) -> Self {
        self.ready = Some(line.into());
        self
    }

    /// Returns as soon as the daemon is spawned.
    pub(crate) fn no_wait(mut self) -> Self {
        self.ready = None;
        self
    }

    /// Registers a second account named after `prefix` and logs it in once the daemon is
    /// ready; [`Bot::peer`] is that client.
    pub(crate) fn peer(mut self, prefix: &str) -> Self {
        self.peer = Some(prefix.into());
        self
    }

    /// Registers the account (unless given), writes the config and creates the key, without
    /// starting anything (for tests of what happens without a daemon, or of a failed start).
    pub(crate) fn write(self) -> Written {
        let p = self.server;
        let user = match &self.account {
            Some(user) => user.clone(),
            None => {
                let user = unique_user(&self.prefix);
                p.register(&user, PASSWORD);
                user
            }
        };
        let port = free_port();
        let keys = p.dir.join(format!("keys-{port}"));
        let mut listen = vec![toml_str(&format!("127.0.0.1:{port}"))];
        listen.extend(self.listen.iter().map(|l| toml_str(l)));
        let tail = format!(
            "[http]\nlisten = [{}]\n{}[keys]\nfile = {}\n{}",
            listen.join(", "),
            self.http,
            toml_str(&keys.to_string_lossy()),
            self.sections
        );
        let xmpp: Vec<(&str, &str)> = self
            .xmpp
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cfg = p.xrelay_config_with(&user, PASSWORD, &xmpp, &tail);
        let token = match &self.scope {
            Some(scope) => create_key(&cfg, scope),
            None => String::new(),
        };
        Written {
            jid: p.jid(&user),
            user,
            port,
            cfg,
            keys,
            token,
        }
    }

    /// [`Bed::write`], then starts `xrelay run`, waits for its readiness line and logs the
    /// peer in.
    pub(crate) fn start(self) -> Bot {
        let p = self.server;
        let (ready, peer) = (self.ready.clone(), self.peer.clone());
        let w = self.write();
        let mut daemon = Daemon::start(&w.cfg);
        if let Some(line) = &ready {
            daemon.wait_for(line, READY_TIMEOUT);
        }
        // After the readiness line: `online as` shows once the bot's initial presence is
        // out, and a message to its bare JID needs that presence at the server.
        let peer = peer.as_deref().map(|prefix| {
            let (name, pw) = p.new_user(prefix);
            TestClient::connect(p, &name, &pw)
        });
        Bot {
            daemon,
            written: w,
            peer,
        }
    }
}

/// A bed written by [`Bed::write`]: the account and its config, nothing running.
pub(crate) struct Written {
    /// The account's local part (password `pw`).
    pub user: String,
    /// The account's bare JID.
    pub jid: String,
    /// The HTTP port on 127.0.0.1 of the config.
    pub port: u16,
    /// The config file.
    pub cfg: PathBuf,
    /// The keys file.
    pub keys: PathBuf,
    /// The key made by [`Bed::key`], `ID/SECRET`; empty without one.
    pub token: String,
}

/// A running bed: `xrelay run` for a bot account; its account, port, config and key are
/// those of the [`Written`] bed it started from (`bot.port`, `bot.token`, …).
pub(crate) struct Bot {
    /// The running `xrelay run`.
    pub daemon: Daemon,
    written: Written,
    peer: Option<TestClient>,
}

impl std::ops::Deref for Bot {
    type Target = Written;

    fn deref(&self) -> &Written {
        &self.written
    }
}

impl Bot {
    /// The full JID of the daemon's session (xrelay binds the resource `xrelay`).
    pub(crate) fn full_jid(&self) -> String {
        format!("{}/xrelay", self.jid)
    }

    /// `Bearer ID/SECRET` of the key.
    pub(crate) fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// The second account of [`Bed::peer`].
    pub(crate) fn peer(&mut self) -> &mut TestClient {
        self.peer.as_mut().expect("the bed has a peer (Bed::peer)")
    }

    /// The bare JID of the second account of [`Bed::peer`].
    pub(crate) fn peer_jid(&self) -> String {
        self.peer
            .as_ref()
            .expect("the bed has a peer (Bed::peer)")
            .bare_jid()
    }

    /// Creates one more key of `scope`; `ID/SECRET`.
    pub(crate) fn key(&self, scope: &str) -> String {
        create_key(&self.cfg, scope)
    }

    /// A request with the key (if any) and the header lines `head`.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        head: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> HttpResponse {
        let auth = self.auth();
        let mut all = Vec::with_capacity(head.len() + 1);
        if !self.token.is_empty() {
            all.push(("Authorization", auth.as_str()));
        }
        all.extend_from_slice(head);
        http(self.port, method, path, &all, body.as_ref())
    }

    /// A POST of `content_type` with the key.
    pub(crate) fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) -> HttpResponse {
        self.request("POST", path, &[("Content-Type", content_type)], body)
    }

    /// A `text/plain` POST with the key.
    pub(crate) fn post_text(&self, path: &str, body: &str) -> HttpResponse {
        self.post(path, "text/plain", body)
    }

    /// A GET with the key.
    pub(crate) fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }
}

/// `xrelay key create --scope SCOPE tests`: the printed `ID/SECRET`.
fn create_key(cfg: &std::path::Path, scope: &str) -> String {
    let out = xrelay(cfg, &["key", "create", "--scope", scope, "tests"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a UTF-8 key")
        .trim()
        .to_string()
}

/// Appends `lines` to `toml`, ending with a line break.
fn push_lines(toml: &mut String, lines: &str) {
    if lines.is_empty() {
        return;
    }
    toml.push_str(lines);
    if !lines.ends_with('\n') {
        toml.push('\n');
    }
}
