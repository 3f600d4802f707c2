//! The config file: loading, validation and defaults.
//!
//! Every key of the contract's config is known here; an unknown key, a value of the wrong
//! type or out of range is an error naming the key and its line, so a typo never silently
//! falls back to a default.

pub mod toml;

pub use crate::secret::Secret;
use crate::store::hashfile;
use crate::store::invites::MAX_INVITES;
use crate::url::{Url, UrlError};
use crate::xmpp::jid::BareJid;
use crate::xmpp::stream::TlsMode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Entry, Value};

/// Where the config is read from when neither `-c` nor `XRELAY_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/xrelay/xrelay.toml";
/// Largest config file accepted: a config is a few hundred bytes; anything huge is a mistake.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `password_file` accepted.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 4096;
/// Default bound on one incoming stanza.
pub const DEFAULT_MAX_STANZA_BYTES: usize = 64 * 1024;
/// Smallest allowed stanza bound: stream features and roster results must fit.
pub const MIN_MAX_STANZA_BYTES: usize = 4 * 1024;
/// Largest allowed stanza bound, so memory stays small on a router.
pub const MAX_MAX_STANZA_BYTES: usize = 16 * 1024 * 1024;
/// Default bound on one outgoing stanza: Prosody's default `c2s_stanza_size_limit`.
pub const DEFAULT_MAX_OUTGOING_BYTES: usize = 256 * 1024;
/// Default bound on the outbox's serialized stanzas.
pub const DEFAULT_OUTBOX_MAX_BYTES: usize = 1024 * 1024;

/// Length of a SHA-256 digest, the size of one pin.
pub const PIN_LEN: usize = 32;

/// Which servers the client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The built-in Mozilla root store (webpki-roots), for devices without a CA bundle.
    Roots,
    /// Only the roots in this PEM bundle.
    CaFile(PathBuf),
    /// Only end-entity certificates whose SubjectPublicKeyInfo has one of these SHA-256 digests;
    /// names and dates are not checked, so a self-signed home server can be trusted exactly.
    Pins(Vec<[u8; PIN_LEN]>),
}

impl Trust {
    /// How a webhook or upload endpoint's certificate is checked: the stream's CA file if
    /// set, else the built-in roots (pins name the XMPP server's key, not the endpoint's).
    pub fn for_endpoints(ca_file: Option<&Path>) -> Self {
        ca_file.map_or(Self::Roots, |p| Self::CaFile(p.to_path_buf()))
    }
}

/// A pin that is not the standard base64 of a SHA-256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPin;

impl fmt::Display for BadPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a pin must be the standard base64 of a SHA-256 digest (44 characters)")
    }
}

impl std::error::Error for BadPin {}

/// Decodes a pin: the standard base64 (44 characters, padded) of the SHA-256 of a
/// SubjectPublicKeyInfo, as `openssl ... | openssl dgst -sha256 -binary | base64` prints it.
pub fn parse_pin(text: &str) -> Result<[u8; PIN_LEN], BadPin> {
    let bytes = STANDARD.decode(text).map_err(|_| BadPin)?;
    bytes.try_into().map_err(|_| BadPin)
}

/// `[xmpp]`: the bot account and how to reach its server.
#[derive(Debug, Clone)]
pub struct XmppConfig {
    /// The bot's bare JID.
    pub jid: BareJid,
    /// Its password.
    pub password: Secret,
    /// Host to connect to instead of SRV lookup.
    pub server: Option<String>,
    /// Port to connect to instead of SRV lookup's.
    pub port: Option<u16>,
    /// How the stream is secured.
    pub tls: TlsMode,
    /// Trust anchors replacing the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// SPKI pins replacing certificate-chain verification.
    pub pins: Vec<[u8; 32]>,
    /// The resource to bind.
    pub resource: String,
    /// MUC rooms to join.
    pub rooms: Vec<BareJid>,
    /// Nickname in rooms.
    pub nick: String,
    /// Bound on one incoming stanza; a larger stanza is skipped (an iq request answered
    /// with `policy-violation`), anything else larger ends the stream.
    pub max_stanza_bytes: usize,
    /// Bound on one outgoing stanza as serialized; a larger message is refused with 413.
    pub max_outgoing_bytes: usize,
    /// Silence after which a ping is sent.
    pub ping_interval: Duration,
    /// How long a ping (and each login step) may take before the connection counts as dead.
    pub timeout: Duration,
    /// Longest pause between reconnection attempts.
    pub reconnect_max: Duration,
    /// Resume the session after a broken connection (XEP-0198 §5).
    pub resume: bool,
}

impl XmppConfig {
    /// How the server's certificate is checked.
    pub fn trust(&self) -> Trust {
        if !self.pins.is_empty() {
            Trust::Pins(self.pins.clone())
        } else if let Some(path) = &self.ca_file {
            Trust::CaFile(path.clone())
        } else {
            Trust::Roots
        }
    }
}

/// `[http]`: the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// A client read that makes no progress for this long ends its connection.
    pub read_timeout: Duration,
    /// After the first second of a request body, the bytes per second it must keep up
    /// (0: no minimum).
    pub min_body_rate: usize,
    /// Most requests answered at once for one API key.
    pub max_per_key: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the auth limiter).
    pub trusted_proxies: Vec<IpAddr>,
    /// Local sockets to listen on (`unix:/path` entries of `listen`).
    pub unix: Vec<PathBuf>,
    /// The file mode of the local sockets.
    pub unix_mode: u32,
    /// Requests on the local sockets need no API key (the file mode is the access control).
    pub unix_trust: bool,
    /// The certificate chain (PEM) that makes the TCP listeners HTTPS, with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The hosts a request may name in `Host` (empty: any); others get 421.
    pub allowed_hosts: Vec<crate::access::clients::AllowedHost>,
}

/// The default `http.unix_mode`: the owner and its group (e.g. the `xrelay` group).
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// One `http.listen` entry.
enum ListenAt {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn parse_listen(s: &str) -> Result<ListenAt, String> {
    match s.strip_prefix("unix:") {
        Some(p) if p.starts_with('/') => Ok(ListenAt::Unix(PathBuf::from(p))),
        Some(_) => Err("expected an absolute path, e.g. \"unix:/run/xrelay/xrelay.sock\"".into()),
        None => parse_addr(s).map(ListenAt::Tcp),
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !s.is_empty())
        .ok_or_else(|| "expected an octal file mode, e.g. \"0660\"".into())
}

/// Longest `outbox.grace`: service managers kill a daemon that takes longer to stop.
pub const MAX_GRACE: Duration = Duration::from_secs(3600);

/// `[outbox]`: stanzas waiting for the server's acknowledgement.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// How many stanzas may wait.
    pub capacity: usize,
    /// How many bytes of serialized stanzas may wait.
    pub max_bytes: usize,
    /// A message sent later than this after it was accepted carries an XEP-0203 delay stamp.
    pub stamp_after: Duration,
    /// A file that keeps accepted stanzas until they are acknowledged, across restarts.
    pub spool: Option<PathBuf>,
    /// How long a stop signal waits for the outbox to be acknowledged.
    pub grace: Duration,
}

/// `[rest]`: `POST /rest` and the iq requests waiting for their reply.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// How long an iq waits for its reply unless `X-Timeout` says otherwise.
    pub timeout: Duration,
    /// The longest wait `X-Timeout` may ask for.
    pub max_timeout: Duration,
    /// iq requests waiting at once; beyond it `/rest` answers 503.
    pub max_waiting: usize,
    /// Whether `/rest` may send account changes (XEP-0077 registration and password
    /// changes, roster edits, subscription presences).
    pub allow_account_changes: bool,
}

/// `[upload]`: files posted to `/msg` go to the server's XEP-0363 upload service.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// The largest file taken (the server's own limit applies too).
    pub max_bytes: u64,
    /// Uploads at once; beyond it `/msg` answers 503.
    pub concurrency: usize,
    /// How long one upload (slot request and PUT) may take.
    pub timeout: Duration,
}

/// The default `upload.max_bytes`: a camera snapshot or a short clip.
pub const DEFAULT_UPLOAD_BYTES: u64 = 10 << 20;

/// The body format of webhook requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// mod_rest's JSON mapping.
    Json,
    /// The stanza as `application/xmpp+xml`.
    Xml,
}

/// `[webhook]`: where incoming stanzas are posted.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The endpoint (a template with `{kind}`, `{type}`, `{from}`, `{to}`).
    pub url: String,
    /// Request body format.
    pub format: WebhookFormat,
    /// Which stanza kinds are forwarded.
    pub stanzas: Vec<String>,
    /// Connect plus response time limit.
    pub timeout: Duration,
    /// HMAC key for the signature header.
    pub secret: Option<Secret>,
    /// Bearer token towards the endpoint.
    pub bearer: Option<Secret>,
    /// How often a failed connection to the endpoint is retried before the sender gets an
    /// error.
    pub retries: u32,
    /// Stanzas waiting for the endpoint; beyond it senders get `resource-constraint`.
    pub queue: usize,
    /// Whose stanzas reach the endpoint.
    pub from: crate::access::Access,
}

/// `[keys]`: the API keys file.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// Path of the keys file.
    pub file: PathBuf,
}

/// What becomes of a subscription request that carries no valid invite token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSubscription {
    /// Leave it unanswered (it stays pending on the server).
    Ignore,
    /// Refuse it with `unsubscribed`.
    Deny,
}

/// `[invites]`: the invites file and links.
#[derive(Debug, Clone)]
pub struct InvitesConfig {
    /// Path of the invites file.
    pub file: PathBuf,
    /// Default lifetime of an invite.
    pub ttl: Duration,
    /// Base URL for landing-page links, without a trailing `/`.
    pub public_url: Option<String>,
    /// Subscription requests without a valid token.
    pub unknown: UnknownSubscription,
    /// Most invites the file holds.
    pub max: usize,
}

/// The whole config.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[xmpp]`
    pub xmpp: XmppConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[outbox]`
    pub outbox: OutboxConfig,
    /// `[rest]`
    pub rest: RestConfig,
    /// `[webhook]`, if configured.
    pub webhook: Option<WebhookConfig>,
    /// `[upload]`
    pub upload: UploadConfig,
    /// `[keys]`
    pub keys: KeysConfig,
    /// `[invites]`
    pub invites: InvitesConfig,
}

/// A config problem, naming the key and line where there is one.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The file is not one xrelay may trust (owner, type, size).
    File(hashfile::FileError),
    /// The file is not valid in our TOML subset.
    Syntax(toml::TomlError),
    /// A key is unknown, missing, or has a bad value.
    Key {
        /// `table.key`.
        key: String,
        /// The line, when the key is in the file.
        line: Option<usize>,
        /// What is wrong.
        msg: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, err } => {
                write!(f, "cannot read config {}: {err}", path.display())
            }
            Self::File(e) => write!(f, "{e}"),
            Self::Syntax(e) => write!(f, "config syntax error on {e}"),
            Self::Key {
                key,
                line: Some(l),
                msg,
            } => write!(f, "config key {key} (line {l}): {msg}"),
            Self::Key {
                key,
                line: None,
                msg,
            } => write!(f, "config key {key}: {msg}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a config file. `password_env` is the value of `XRELAY_PASSWORD`.
    pub fn load(path: &Path, password_env: Option<String>) -> Result<Self, ConfigError> {
        let read_err = |err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        };
        let (data, meta) = match hashfile::read_checked(path, MAX_CONFIG_BYTES) {
            Ok(read) => read,
            Err(hashfile::Cause::Io(e)) => return Err(read_err(e)),
            Err(cause) => {
                return Err(ConfigError::File(hashfile::FileError {
                    what: "config",
                    path: path.to_path_buf(),
                    cause,
                }))
            }
        };
        let text = String::from_utf8(data)
            .map_err(|_| read_err(std::io::Error::other("the file is not UTF-8")))?;
        Self::parse_file(&text, password_env, Some((path, &meta)))
    }

    /// Validate config text (see [`Config::load`]).
    pub fn parse(text: &str, password_env: Option<String>) -> Result<Self, ConfigError> {
        Self::parse_file(text, password_env, None)
    }

    /// Validate config text read from `file` (its path and metadata), if from a file.
    fn parse_file(
        text: &str,
        password_env: Option<String>,
        file: Option<(&Path, &std::fs::Metadata)>,
    ) -> Result<Self, ConfigError> {
        let entries = toml::parse(text).map_err(ConfigError::Syntax)?;
        if let Some(e) = entries.iter().find(|e| !is_known(&e.table, &e.key)) {
            return Err(ConfigError::Key {
                key: if e.table.is_empty() {
                    e.key.clone()
                } else {
                    format!("{}.{}", e.table, e.key)
                },
                line: Some(e.line),
                msg: "unknown key".into(),
            });
        }
        let t = Tables { entries };
        if let (Some((path, meta)), Some(line)) = (file, t.line_of("xmpp", "password")) {
            if hashfile::check_shared_secret(meta).is_err() {
                return Err(ConfigError::Key {
                    key: "xmpp.password".into(),
                    line: Some(line),
                    msg: format!(
                        "the config {} holds the password and is open to group or others \
                         (mode {:o}); run chmod 600 {}, or move the password to password_file",
                        path.display(),
                        std::os::unix::fs::MetadataExt::mode(meta) & 0o777,
                        path.display()
                    ),
                });
            }
        }
        let max_connections = t.int("http", "max_connections", 1, 65536)?.unwrap_or(64);
        let (listen, unix) = match t.list("http", "listen", parse_listen)? {
            None => (vec![SocketAddr::from(([127, 0, 0, 1], 5280))], Vec::new()),
            Some(entries) => {
                let (mut tcp, mut unix) = (Vec::new(), Vec::new());
                for e in entries {
                    match e {
                        ListenAt::Tcp(a) => tcp.push(a),
                        ListenAt::Unix(p) => unix.push(p),
                    }
                }
                (tcp, unix)
            }
        };
        let unix_mode = match t.string("http", "unix_mode")? {
            Some(m) => parse_mode(&m).map_err(|e| t.bad("http", "unix_mode", e))?,
            None => DEFAULT_UNIX_MODE,
        };
        let (tls_cert, tls_key) = (t.path("http", "tls_cert")?, t.path("http", "tls_key")?);
        if tls_cert.is_some() != tls_key.is_some() {
            let key = if tls_cert.is_some() {
                "tls_key"
            } else {
                "tls_cert"
            };
            return Err(t.bad(
                "http",
                key,
                "https needs both http.tls_cert and http.tls_key",
            ));
        }
        let cfg = Self {
            xmpp: xmpp_section(&t, password_env)?,
            http: HttpConfig {
                listen,
                max_body_bytes: t
                    .int("http", "max_body_bytes", 1, 64 << 20)?
                    .unwrap_or(65536),
                max_connections,
                read_timeout: t
                    .duration("http", "read_timeout")?
                    .unwrap_or(Duration::from_secs(10)),
                min_body_rate: t.int("http", "min_body_rate", 0, 1 << 30)?.unwrap_or(1024),
                max_per_key: t
                    .int("http", "max_per_key", 1, 65536)?
                    .unwrap_or((max_connections / 4).max(1)),
                trusted_proxies: t
                    .list("http", "trusted_proxies", |s| {
                        s.parse::<IpAddr>()
                            .map_err(|_| "expected an IP address, e.g. \"127.0.0.1\"".into())
                    })?
                    .unwrap_or_default(),
                unix,
                unix_mode,
                unix_trust: t.bool("http", "unix_trust")?.unwrap_or(false),
                tls_cert,
                tls_key,
                allowed_hosts: allowed_hosts(&t)?,
            },
            outbox: OutboxConfig {
                capacity: t.int("outbox", "capacity", 1, 1 << 20)?.unwrap_or(256),
                max_bytes: t
                    .int("outbox", "max_bytes", 1024, 1 << 30)?
                    .unwrap_or(DEFAULT_OUTBOX_MAX_BYTES),
                stamp_after: t
                    .duration("outbox", "stamp_after")?
                    .unwrap_or(Duration::from_secs(5)),
                spool: t.path("outbox", "spool")?,
                grace: match t.duration("outbox", "grace")? {
                    Some(g) if g > MAX_GRACE => {
                        return Err(t.bad("outbox", "grace", "at most 1h"));
                    }
                    g => g.unwrap_or(Duration::from_secs(10)),
                },
            },
            rest: rest_section(&t)?,
            webhook: webhook_section(&t)?,
            upload: UploadConfig {
                max_bytes: t
                    .int("upload", "max_bytes", 1, 1 << 30)?
                    .map_or(DEFAULT_UPLOAD_BYTES, |n| n as u64),
                concurrency: t.int("upload", "concurrency", 1, 64)?.unwrap_or(1),
                timeout: t
                    .duration("upload", "timeout")?
                    .unwrap_or(Duration::from_secs(120)),
            },
            keys: KeysConfig {
                file: t
                    .path("keys", "file")?
                    .unwrap_or_else(|| "/etc/xrelay/keys".into()),
            },
            invites: invites_section(&t)?,
        };
        if cfg.outbox.max_bytes < cfg.xmpp.max_outgoing_bytes {
            return Err(t.bad(
                "outbox",
                "max_bytes",
                format!(
                    "must be at least xmpp.max_outgoing_bytes ({}), or the largest message \
                     could never be queued",
                    cfg.xmpp.max_outgoing_bytes
                ),
            ));
        }
        Ok(cfg)
    }
}

/// `http.allowed_hosts`: unset allows any host; an empty list would refuse every request,
/// so it is an error rather than a silent lock-out.
fn allowed_hosts(t: &Tables) -> Result<Vec<crate::access::clients::AllowedHost>, ConfigError> {
    let list = t.list("http", "allowed_hosts", |s| {
        crate::access::clients::AllowedHost::parse(s).map_err(String::from)
    })?;
    match list {
        Some(l) if l.is_empty() => Err(t.bad(
            "http",
            "allowed_hosts",
            "an empty list refuses every request; leave the key out to allow any host",
        )),
        l => Ok(l.unwrap_or_default()),
    }
}

fn xmpp_section(t: &Tables, password_env: Option<String>) -> Result<XmppConfig, ConfigError> {
    let jid_text = t
        .string("xmpp", "jid")?
        .ok_or_else(|| t.missing("xmpp", "jid"))?;
    let jid = BareJid::parse(&jid_text).map_err(|e| t.bad("xmpp", "jid", e.to_string()))?;
    if jid.local().is_none() {
        return Err(t.bad(
            "xmpp",
            "jid",
            "the bot's address needs a user part (bot@domain)",
        ));
    }
    let password = password(t, password_env)?;
    let server = t.string("xmpp", "server")?;
    let port = t.int("xmpp", "port", 1, 65535)?.map(|p| p as u16);
    let tls = match t.string("xmpp", "tls")?.as_deref() {
        None | Some("starttls") => TlsMode::StartTls,
        Some("direct") => TlsMode::Direct,
        Some("plain") => TlsMode::Plain,
        Some(_) => {
            return Err(t.bad(
                "xmpp",
                "tls",
                "expected \"starttls\", \"direct\" or \"plain\"",
            ))
        }
    };
    if tls == TlsMode::Plain && !server.as_deref().is_some_and(is_loopback_host) {
        return Err(t.bad(
            "xmpp",
            "tls",
            "\"plain\" sends the password unencrypted and is allowed only with server set to a \
             loopback address (127.0.0.1, ::1 or localhost)",
        ));
    }
    let pins = t
        .list("xmpp", "pin_sha256", |s| {
            parse_pin(s).map_err(|e| e.to_string())
        })?
        .unwrap_or_default();
    let rooms = t
        .list("xmpp", "rooms", |s| {
            BareJid::parse(s)
                .map_err(|e| e.to_string())
                .and_then(|j| match j.local() {
                    Some(_) => Ok(j),
                    None => Err("a room address needs a room name (room@service)".into()),
                })
        })?
        .unwrap_or_default();
    let resource = t
        .string("xmpp", "resource")?
        .unwrap_or_else(|| "xrelay".into());
    if jid.with_resource(&resource).is_err() {
        return Err(t.bad("xmpp", "resource", "not a valid resource"));
    }
    let nick = t.string("xmpp", "nick")?.unwrap_or_else(|| "xrelay".into());
    if nick.is_empty()
        || rooms
            .first()
            .is_some_and(|r| r.with_resource(&nick).is_err())
    {
        return Err(t.bad("xmpp", "nick", "not a valid room nickname"));
    }
    Ok(XmppConfig {
        jid,
        password,
        server,
        port,
        tls,
        ca_file: t.path("xmpp", "ca_file")?,
        pins,
        resource,
        rooms,
        nick,
        max_stanza_bytes: t
            .int(
                "xmpp",
                "max_stanza_bytes",
                MIN_MAX_STANZA_BYTES,
                MAX_MAX_STANZA_BYTES,
            )?
            .unwrap_or(DEFAULT_MAX_STANZA_BYTES),
        max_outgoing_bytes: t
            .int("xmpp", "max_outgoing_bytes", 1024, MAX_MAX_STANZA_BYTES)?
            .unwrap_or(DEFAULT_MAX_OUTGOING_BYTES),
        ping_interval: t
            .duration("xmpp", "ping_interval")?
            .unwrap_or(Duration::from_secs(60)),
        timeout: t
            .duration("xmpp", "timeout")?
            .unwrap_or(Duration::from_secs(20)),
        reconnect_max: t
            .duration("xmpp", "reconnect_max")?
            .unwrap_or(Duration::from_secs(300)),
        resume: t.bool("xmpp", "resume")?.unwrap_or(true),
    })
}

fn password(t: &Tables, password_env: Option<String>) -> Result<Secret, ConfigError> {
    let inline = t.string("xmpp", "password")?;
    let file = t.path("xmpp", "password_file")?;
    if inline.is_some() && file.is_some() {
        return Err(t.bad(
            "xmpp",
            "password_file",
            "set either password or password_file, not both",
        ));
    }
    if let Some(p) = password_env.filter(|p| !p.is_empty()) {
        return Ok(Secret::new(p));
    }
    if let Some(p) = inline {
        return Ok(Secret::new(p));
    }
    let Some(path) = file else {
        return Err(t.missing_msg(
            "xmpp",
            "password",
            "missing: set password, password_file, or the environment variable XRELAY_PASSWORD",
        ));
    };
    let text = hashfile::read_checked(&path, MAX_PASSWORD_FILE_BYTES)
        .and_then(|(data, meta)| {
            hashfile::check_shared_secret(&meta)?;
            String::from_utf8(data)
                .map_err(|_| hashfile::Cause::Io(std::io::Error::other("not UTF-8")))
        })
        .map_err(|cause| {
            let e = hashfile::FileError {
                what: "password",
                path: path.clone(),
                cause,
            };
            t.bad("xmpp", "password_file", format!("cannot use it: {e}"))
        })?;
    let p = text.trim_end_matches(['\n', '\r']);
    if p.is_empty() {
        return Err(t.bad("xmpp", "password_file", "the file is empty"));
    }
    Ok(Secret::new(p.to_string()))
}

fn rest_section(t: &Tables) -> Result<RestConfig, ConfigError> {
    let max_timeout = t
        .duration("rest", "max_timeout")?
        .unwrap_or(Duration::from_secs(120));
    if max_timeout > Duration::from_secs(3600) {
        return Err(t.bad("rest", "max_timeout", "expected at most 1h"));
    }
    let timeout = t
        .duration("rest", "timeout")?
        .unwrap_or(Duration::from_secs(30).min(max_timeout));
    if timeout > max_timeout {
        return Err(t.bad("rest", "timeout", "expected at most rest.max_timeout"));
    }
    Ok(RestConfig {
        timeout,
        max_timeout,
        max_waiting: t.int("rest", "max_waiting", 1, 4096)?.unwrap_or(16),
        allow_account_changes: t.bool("rest", "allow_account_changes")?.unwrap_or(false),
    })
}

fn webhook_section(t: &Tables) -> Result<Option<WebhookConfig>, ConfigError> {
    let Some(url) = t.string("webhook", "url")? else {
        if let Some(e) = t.entries.iter().find(|e| e.table == "webhook") {
            let (line, key) = (e.line, e.key.clone());
            return Err(ConfigError::Key {
                key: format!("webhook.{key}"),
                line: Some(line),
                msg: "the [webhook] section needs a url".into(),
            });
        }
        return Ok(None);
    };
    // The placeholders are filled per stanza; a sample fill must give a usable URL.
    let placeholders = ["{kind}", "{type}", "{from}", "{to}"];
    // A value chosen by whoever sends the bot a stanza must not pick the host.
    let path_start = path_start(&url);
    if placeholders
        .iter()
        .any(|p| url.find(p).is_some_and(|i| i < path_start))
    {
        return Err(t.bad(
            "webhook",
            "url",
            "placeholders ({kind}, {type}, {from}, {to}) may be used only in the path and \
             the query, not in the scheme or host",
        ));
    }
    let sample = placeholders
        .iter()
        .fold(url.clone(), |u, p| u.replace(p, "x"));
    match Url::parse(&sample) {
        Ok(_) => {}
        Err(UrlError::Credentials) => {
            return Err(t.bad(
                "webhook",
                "url",
                "credentials in the URL are not supported; use bearer",
            ))
        }
        Err(_) => {
            return Err(t.bad(
                "webhook",
                "url",
                "expected an http:// or https:// URL of printable ASCII",
            ))
        }
    }
    let format = match t.string("webhook", "format")?.as_deref() {
        Some("json") => WebhookFormat::Json,
        // mod_rest's rest_callback_content_type defaults to application/xmpp+xml.
        None | Some("xml") => WebhookFormat::Xml,
        Some(_) => return Err(t.bad("webhook", "format", "expected \"json\" or \"xml\"")),
    };
    let stanzas = t
        .list("webhook", "stanzas", |s| match s {
            "message" | "presence" | "iq" => Ok(s.to_string()),
            _ => Err("expected \"message\", \"presence\" or \"iq\"".into()),
        })?
        .unwrap_or_else(|| vec!["message".into()]);
    Ok(Some(WebhookConfig {
        url,
        format,
        stanzas,
        timeout: t
            .duration("webhook", "timeout")?
            .unwrap_or(Duration::from_secs(10)),
        secret: match t.string("webhook", "secret")? {
            Some(s) if s.is_empty() => {
                return Err(t.bad(
                    "webhook",
                    "secret",
                    "an empty secret signs nothing; remove the key, or set a long random value",
                ))
            }
            s => s.map(Secret::new),
        },
        bearer: match t.string("webhook", "bearer")? {
            // It goes into a header line: no spaces or control characters.
            Some(b) if b.is_empty() || !b.bytes().all(|c| c.is_ascii_graphic()) => {
                return Err(t.bad(
                    "webhook",
                    "bearer",
                    "expected printable ASCII without spaces",
                ))
            }
            b => b.map(Secret::new),
        },
        retries: t
            .int("webhook", "retries", 0, 10)?
            .map_or(2, |n| u32::try_from(n).unwrap_or(2)),
        queue: t.int("webhook", "queue", 1, 4096)?.unwrap_or(16),
        from: webhook_from(t)?,
    }))
}

/// Where the path of `url` starts: after `scheme://` and the authority.
fn path_start(url: &str) -> usize {
    let authority = url.find("://").map_or(0, |i| i + 3);
    url[authority..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority + i)
}

impl WebhookConfig {
    /// Whether requests go over plain `http://` to a host other than this machine.
    pub fn is_plain_http_to_another_host(&self) -> bool {
        let Some(rest) = self.url.strip_prefix("http://") else {
            return false;
        };
        let authority = &rest[..path_start(&self.url) - "http://".len()];
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        !is_loopback_host(host)
    }
}

/// `webhook.from`: `"contacts"` (the default), `"anyone"`, or a list of bare JIDs and domains.
fn webhook_from(t: &Tables) -> Result<crate::access::Access, ConfigError> {
    use crate::access::Access;
    match t.take("webhook", "from") {
        None => Ok(Access::Contacts),
        Some((Value::Array(_), _)) => Ok(Access::List(
            t.list("webhook", "from", Access::entry)?
                .unwrap_or_default(),
        )),
        Some((Value::Str(s), _)) => match s.as_str() {
            "contacts" => Ok(Access::Contacts),
            "anyone" => Ok(Access::Anyone),
            _ => Err(t.bad(
                "webhook",
                "from",
                "expected \"contacts\", \"anyone\" or a list of JIDs and domains",
            )),
        },
        Some((v, _)) => Err(t.wrong_type("webhook", "from", "a string or an array", &v)),
    }
}

fn invites_section(t: &Tables) -> Result<InvitesConfig, ConfigError> {
    let public_url = match t.string("invites", "public_url")? {
        None => None,
        Some(u) => {
            // It goes into `Location:` headers and pages: printable ASCII only.
            let parsed = Url::parse(&u)
                .ok()
                .filter(|p| p.query.is_none() && p.fragment.is_none());
            if parsed.is_none() {
                return Err(t.bad(
                    "invites",
                    "public_url",
                    "expected an http:// or https:// URL of printable ASCII without query, \
                     fragment or credentials",
                ));
            }
            Some(u.trim_end_matches('/').to_string())
        }
    };
    let unknown = match t.string("invites", "unknown")?.as_deref() {
        None | Some("ignore") => UnknownSubscription::Ignore,
        Some("deny") => UnknownSubscription::Deny,
        Some(_) => return Err(t.bad("invites", "unknown", "expected \"ignore\" or \"deny\"")),
    };
    Ok(InvitesConfig {
        file: t
            .path("invites", "file")?
            .unwrap_or_else(|| "/etc/xrelay/invites".into()),
        ttl: t
            .duration("invites", "ttl")?
            .unwrap_or(Duration::from_secs(7 * 86400)),
        public_url,
        unknown,
        max: t.int("invites", "max", 1, MAX_INVITES)?.unwrap_or(256),
    })
}

/// Whether `host` names this machine, for the `tls = "plain"` rule.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| "expected IP:PORT, e.g. \"127.0.0.1:5280\" or \"[::]:5280\"".into())
}

/// Parse `30s`, `5m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err =
        || format!("expected a duration such as \"30s\", \"5m\", \"2h\" or \"7d\", got {s:?}");
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let n: u64 = s[..unit_at].parse().map_err(|_| err())?;
    let mult = match &s[unit_at..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(err()),
    };
    n.checked_mul(mult)
        .filter(|&secs| secs <= 10 * 365 * 86400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is longer than ten years"))
}

/// Every key the config knows, by table. Checked before anything else, so a misspelt key
/// is reported as such rather than as the correct key missing.
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "xmpp",
        &[
            "jid",
            "password",
            "password_file",
            "server",
            "port",
            "tls",
            "ca_file",
            "pin_sha256",
            "resource",
            "rooms",
            "nick",
            "max_stanza_bytes",
            "max_outgoing_bytes",
            "ping_interval",
            "timeout",
            "reconnect_max",
            "resume",
        ],
    ),
    ("upload", &["max_bytes", "concurrency", "timeout"]),
    (
        "http",
        &[
            "listen",
            "max_body_bytes",
            "max_connections",
            "read_timeout",
            "min_body_rate",
            "max_per_key",
            "trusted_proxies",
            "unix_mode",
            "unix_trust",
            "tls_cert",
            "tls_key",
            "allowed_hosts",
        ],
    ),
    (
        "outbox",
        &["capacity", "max_bytes", "spool", "grace", "stamp_after"],
    ),
    (
        "rest",
        &[
            "timeout",
            "max_timeout",
            "max_waiting",
            "allow_account_changes",
        ],
    ),
    (
        "webhook",
        &[
            "url", "format", "stanzas", "timeout", "secret", "bearer", "retries", "queue", "from",
        ],
    ),
    ("keys", &["file"]),
    ("invites", &["file", "ttl", "public_url", "unknown", "max"]),
];

fn is_known(table: &str, key: &str) -> bool {
    KNOWN_KEYS
        .iter()
        .any(|(t, keys)| *t == table && keys.contains(&key))
}

/// The entries of a document.
struct Tables {
    entries: Vec<Entry>,
}

impl Tables {
    fn take(&self, table: &str, key: &str) -> Option<(Value, usize)> {
        debug_assert!(
            is_known(table, key),
            "{table}.{key} missing from KNOWN_KEYS"
        );
        self.entries
            .iter()
            .find(|e| e.table == table && e.key == key)
            .map(|e| (e.value.clone(), e.line))
    }

    fn line_of(&self, table: &str, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.table == table && e.key == key)
            .map(|e| e.line)
    }

    fn bad(&self, table: &str, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            key: format!("{table}.{key}"),
            line: self.line_of(table, key),
            msg: msg.into(),
        }
    }

    fn missing(&self, table: &str, key: &str) -> ConfigError {
        self.missing_msg(table, key, "missing")
    }

    fn missing_msg(&self, table: &str, key: &str, msg: &str) -> ConfigError {
        ConfigError::Key {
            key: format!("{table}.{key}"),
            line: None,
            msg: msg.into(),
        }
    }

    fn wrong_type(&self, table: &str, key: &str, want: &str, got: &Value) -> ConfigError {
        self.bad(
            table,
            key,
            format!("expected {want}, got {}", got.type_name()),
        )
    }

    fn string(&self, table: &str, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(table, key) {
            None => Ok(None),
            Some((Value::Str(s), _)) => Ok(Some(s)),
            Some((v, _)) => Err(self.wrong_type(table, key, "a string", &v)),
        }
    }

    fn bool(&self, table: &str, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(table, key) {
            None => Ok(None),
            Some((Value::Bool(b), _)) => Ok(Some(b)),
            Some((v, _)) => Err(self.wrong_type(table, key, "true or false", &v)),
        }
    }

    fn path(&self, table: &str, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        match self.string(table, key)? {
            Some(s) if s.is_empty() => Err(self.bad(table, key, "the path is empty")),
            s => Ok(s.map(PathBuf::from)),
        }
    }

    fn int(
        &self,
        table: &str,
        key: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<usize>, ConfigError> {
        match self.take(table, key) {
            None => Ok(None),
            Some((Value::Int(n), _)) => usize::try_from(n)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| {
                    self.bad(table, key, format!("expected a number from {min} to {max}"))
                }),
            Some((v, _)) => Err(self.wrong_type(table, key, "an integer", &v)),
        }
    }

    fn duration(&self, table: &str, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.string(table, key)? {
            None => Ok(None),
            Some(s) => match parse_duration(&s) {
                Ok(d) if d.is_zero() => Err(self.bad(table, key, "the duration must not be zero")),
                Ok(d) => Ok(Some(d)),
                Err(m) => Err(self.bad(table, key, m)),
            },
        }
    }

    /// An array of strings, each converted by `f`.
    fn list<T>(
        &self,
        table: &str,
        key: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        let Some((v, _)) = self.take(table, key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(self.wrong_type(table, key, "an array of strings", &v));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let Value::Str(s) = item else {
                return Err(self.wrong_type(table, key, "an array of strings", item));
            };
            out.push(f(s).map_err(|m| self.bad(table, key, format!("{s:?}: {m}")))?);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MINIMAL: &str = "[xmpp]\njid = \"bot@example.org\"\npassword = \"pw\"\n";

    fn err(text: &str) -> String {
        Config::parse(text, None).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_config_gets_every_default() {
        let c = Config::parse(MINIMAL, None).unwrap();
        assert_eq!(c.xmpp.jid.as_str(), "bot@example.org");
        assert_eq!(c.xmpp.password.expose(), "pw");
        assert_eq!(c.xmpp.tls, TlsMode::StartTls);
        assert_eq!(c.xmpp.resource, "xrelay");
        assert_eq!(c.xmpp.max_stanza_bytes, DEFAULT_MAX_STANZA_BYTES);
        assert!(matches!(c.xmpp.trust(), Trust::Roots));
        assert_eq!(c.http.listen, vec!["127.0.0.1:5280".parse().unwrap()]);
        assert_eq!(c.http.max_body_bytes, 65536);
        assert_eq!(c.http.max_connections, 64);
        assert_eq!(c.http.min_body_rate, 1024);
        assert_eq!(c.http.max_per_key, 16);
        assert!(c.http.trusted_proxies.is_empty());
        assert!(c.http.allowed_hosts.is_empty());
        assert_eq!(c.outbox.capacity, 256);
        assert!(c.outbox.spool.is_none());
        assert_eq!(c.outbox.grace, Duration::from_secs(10));
        assert!(c.xmpp.resume);
        assert!(c.webhook.is_none());
        assert_eq!(c.rest.timeout, Duration::from_secs(30));
        assert_eq!(c.rest.max_timeout, Duration::from_secs(120));
        assert_eq!(c.rest.max_waiting, 16);
        assert_eq!(c.invites.ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.invites.unknown, UnknownSubscription::Ignore);
        assert_eq!(c.invites.max, 256);
        assert!(c.invites.public_url.is_none());
        assert!(
            !format!("{c:?}").contains("pw\""),
            "Debug must not show the password"
        );
    }

    #[test]
    fn contract_example_loads() {
        let text = r#"
[xmpp]
jid = "bot@example.org"
password = "..."
# server = "xmpp.example.org"
port = 5222
tls = "starttls"
ca_file = "/etc/ssl/certs/ca-certificates.crt"
resource = "xrelay"
rooms = ["alerts@conference.example.org"]
nick = "xrelay"

[http]
listen = ["127.0.0.1:5280", "[::1]:5280"]
max_body_bytes = 65536
max_connections = 64

[outbox]
capacity = 256

[webhook]
url = "http://127.0.0.1:9999/stanzas"
format = "json"
stanzas = ["message"]
timeout = "10s"
secret = "s"
retries = 3
queue = 4

[keys]
file = "/etc/xrelay/keys"

[invites]
file = "/etc/xrelay/invites"
ttl = "7d"
public_url = "https://router.example/"
unknown = "deny"
max = 10
"#;
        let c = Config::parse(text, None).unwrap();
        assert_eq!(c.xmpp.port, Some(5222));
        assert_eq!(c.xmpp.rooms[0].as_str(), "alerts@conference.example.org");
        assert!(matches!(c.xmpp.trust(), Trust::CaFile(_)));
        assert_eq!(c.http.listen.len(), 2);
        let w = c.webhook.unwrap();
        assert_eq!(w.format, WebhookFormat::Json);
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert_eq!((w.retries, w.queue), (3, 4));
        assert_eq!(
            c.invites.public_url.as_deref(),
            Some("https://router.example")
        );
        assert_eq!(c.invites.unknown, UnknownSubscription::Deny);
        assert_eq!(c.invites.max, 10);
    }

    #[test]
    fn webhook_format_defaults_to_xml_as_mod_rest() {
        let text = format!("{MINIMAL}[webhook]\nurl = \"http://127.0.0.1:9/\"\n");
        let w = Config::parse(&text, None).unwrap().webhook.unwrap();
        assert_eq!(w.format, WebhookFormat::Xml);
    }

    #[test]
    fn the_password_comes_from_the_environment_the_config_or_a_file_but_not_two() {
        let c = Config::parse(MINIMAL, Some("from-env".into())).unwrap();
        assert_eq!(c.xmpp.password.expose(), "from-env");
        let dir = std::env::temp_dir().join(format!("xrelay-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pf = dir.join("pw");
        std::fs::write(&pf, "file-pw\n").unwrap();
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!("[xmpp]\njid = \"bot@x\"\npassword_file = {:?}\n", pf);
        let c = Config::parse(&text, None).unwrap();
        assert_eq!(c.xmpp.password.expose(), "file-pw");
        let e = err("[xmpp]\njid = \"bot@x\"\n");
        assert!(
            e.contains("xmpp.password") && e.contains("XRELAY_PASSWORD"),
            "{e}"
        );
        let both = format!("{text}password = \"x\"\n");
        assert!(err(&both).contains("not both"));
        let missing = "[xmpp]\njid = \"bot@x\"\npassword_file = \"/nonexistent/pw\"\n";
        assert!(err(missing).contains("xmpp.password_file (line 3)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn world_readable_password_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("xrelay-cfg-pf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pf = dir.join("pw");
        std::fs::write(&pf, "file-pw\n").unwrap();
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!("[xmpp]\njid = \"bot@x\"\npassword_file = {:?}\n", pf);
        let e = err(&text);
        assert!(
            e.contains("xmpp.password_file (line 3)")
                && e.contains(&pf.display().to_string())
                && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readable_config_holding_the_password_is_refused() {
        let dir = std::env::temp_dir().join(format!("xrelay-cfg-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("xrelay.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::load(&path, None).unwrap_err().to_string();
        assert!(
            e.contains("xmpp.password (line 3)")
                && e.contains(&path.display().to_string())
                && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert!(
            Config::load(&path, None).is_err(),
            "the group may not change it"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Config::load(&path, None).is_ok());
        // root:GROUP 0640, GROUP being the one xrelay runs as: the packaged layout. The test
        // made the file with its own uid and gid, so that is the case when it runs as root.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            Config::load(&path, None).is_ok(),
            rustix::process::geteuid().is_root()
        );
        // Without a password in it, a config may be readable by all.
        std::fs::write(&path, "[xmpp]\njid = \"bot@x\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Config::load(&path, Some("env".into())).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unix_listen_entries_are_kept_apart_from_tcp_addresses() {
        let c = Config::parse(
            &format!(
                "{MINIMAL}[http]\nlisten = [\"127.0.0.1:1\", \"unix:/run/x.sock\"]\n\
                 unix_mode = \"0600\"\nunix_trust = true\n"
            ),
            None,
        )
        .unwrap();
        assert_eq!(c.http.listen, vec!["127.0.0.1:1".parse().unwrap()]);
        assert_eq!(c.http.unix, vec![PathBuf::from("/run/x.sock")]);
        assert_eq!((c.http.unix_mode, c.http.unix_trust), (0o600, true));
    }

    #[test]
    fn a_relative_socket_path_or_a_bad_mode_is_refused() {
        let e = err(&format!("{MINIMAL}[http]\nlisten = [\"unix:x.sock\"]\n"));
        assert!(e.contains("absolute path"), "{e}");
        let e = err(&format!("{MINIMAL}[http]\nunix_mode = \"rw\"\n"));
        assert!(e.contains("octal file mode"), "{e}");
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let e = err(&format!("{MINIMAL}[http]\ntls_cert = \"/c.pem\"\n"));
        assert!(e.contains("http.tls_key"), "{e}");
    }

    #[test]
    fn webhook_placeholders_only_in_path_and_query_and_no_empty_secret() {
        for url in [
            "http://{from}/x",
            "http://h{to}:80/x",
            "https://x.{kind}.example/",
            "http://h:{type}/",
        ] {
            let e = err(&format!("{MINIMAL}[webhook]\nurl = {url:?}\n"));
            assert!(e.contains("only in the path and the query"), "{url}: {e}");
        }
        let ok = format!("{MINIMAL}[webhook]\nurl = \"http://h:1/{{kind}}?t={{type}}\"\n");
        assert!(Config::parse(&ok, None).is_ok());
        let e = err(&format!(
            "{MINIMAL}[webhook]\nurl = \"http://h/\"\nsecret = \"\"\n"
        ));
        assert!(e.contains("webhook.secret (line 6)"), "{e}");
    }

    #[test]
    fn plain_http_to_another_host_is_noticed() {
        let plain = |url: &str| {
            let text = format!("{MINIMAL}[webhook]\nurl = {url:?}\n");
            Config::parse(&text, None)
                .unwrap()
                .webhook
                .unwrap()
                .is_plain_http_to_another_host()
        };
        assert!(plain("http://hooks.example/x"));
        assert!(plain("http://192.168.1.5:8080/x"));
        assert!(!plain("http://127.0.0.1:9999/x"));
        assert!(!plain("http://[::1]:9999/"));
        assert!(!plain("http://localhost/{kind}"));
        assert!(!plain("https://hooks.example/x"));
    }

    #[test]
    fn errors_name_key_and_line() {
        let cases = [
            (
                format!("{MINIMAL}colour = \"red\"\n"),
                "xmpp.colour (line 4): unknown key",
            ),
            (
                format!("{MINIMAL}[http]\nmax_body_bytes = \"big\"\n"),
                "http.max_body_bytes (line 5): expected an integer",
            ),
            (
                format!("{MINIMAL}port = 70000\n"),
                "xmpp.port (line 4): expected a number from 1 to 65535",
            ),
            (format!("{MINIMAL}tls = \"maybe\"\n"), "xmpp.tls (line 4)"),
            (format!("{MINIMAL}tls = \"plain\"\n"), "loopback"),
            (
                format!("{MINIMAL}pin_sha256 = [\"nope\"]\n"),
                "xmpp.pin_sha256 (line 4)",
            ),
            (
                format!("{MINIMAL}rooms = [\"conference.x\"]\n"),
                "room name",
            ),
            (format!("{MINIMAL}rooms = \"a@b\"\n"), "array of strings"),
            (
                format!("{MINIMAL}timeout = \"10\"\n"),
                "xmpp.timeout (line 4): expected a duration",
            ),
            (format!("{MINIMAL}timeout = \"0s\"\n"), "zero"),
            (
                format!("{MINIMAL}[http]\nlisten = [\"localhost\"]\n"),
                "IP:PORT",
            ),
            (
                format!("{MINIMAL}[webhook]\nformat = \"xml\"\n"),
                "needs a url",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"ftp://x\"\n"),
                "http://",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"http://\"\n"),
                "http://",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"https://u:p@h/\"\n"),
                "use bearer",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"http://h/\"\nbearer = \"a\\r\\nX: y\"\n"),
                "webhook.bearer (line 6): expected printable ASCII",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"http://h/\"\nfrom = \"friends\"\n"),
                "webhook.from (line 6): expected \"contacts\", \"anyone\" or a list",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"http://h/\"\nfrom = [\"a@b/c\"]\n"),
                "webhook.from (line 6): \"a@b/c\": \"a@b/c\" is not a bare JID or a domain",
            ),
            (
                format!("{MINIMAL}[webhook]\nurl = \"http://h/\"\nqueue = 0\n"),
                "webhook.queue (line 6): expected a number from 1 to 4096",
            ),
            (
                format!("{MINIMAL}[invites]\npublic_url = \"router.example\"\n"),
                "invites.public_url (line 5): expected an http:// or https:// URL",
            ),
            (
                format!("{MINIMAL}[invites]\npublic_url = \"https://r.example/?a=b\"\n"),
                "invites.public_url (line 5)",
            ),
            (
                format!("{MINIMAL}[invites]\npublic_url = \"https://r\u{e9}.example/\"\n"),
                "invites.public_url (line 5): expected an http:// or https:// URL of printable",
            ),
            (
                format!("{MINIMAL}[invites]\npublic_url = \"https://r.example/\\r\\nX: y\"\n"),
                "invites.public_url (line 5)",
            ),
            (
                format!("{MINIMAL}[http]\ntrusted_proxies = [\"proxy\"]\n"),
                "http.trusted_proxies (line 5): \"proxy\": expected an IP address",
            ),
            (
                format!("{MINIMAL}[http]\nallowed_hosts = [\"*.lan\"]\n"),
                "http.allowed_hosts (line 5): \"*.lan\": expected a host name",
            ),
            (
                format!("{MINIMAL}[http]\nallowed_hosts = []\n"),
                "http.allowed_hosts (line 5): an empty list refuses every request",
            ),
            (
                format!("{MINIMAL}[invites]\nunknown = \"accept\"\n"),
                "invites.unknown (line 5): expected \"ignore\" or \"deny\"",
            ),
            (
                format!("{MINIMAL}[invites]\nmax = 0\n"),
                "invites.max (line 5): expected a number from 1 to 4096",
            ),
            (
                format!("{MINIMAL}[invites]\nttl = \"0d\"\n"),
                "invites.ttl (line 5)",
            ),
            (
                format!("{MINIMAL}[rest]\ntimeout = \"5m\"\nmax_timeout = \"1m\"\n"),
                "rest.timeout (line 5): expected at most rest.max_timeout",
            ),
            (
                format!("{MINIMAL}[rest]\nmax_timeout = \"2h\"\n"),
                "rest.max_timeout (line 5): expected at most 1h",
            ),
            (
                format!("{MINIMAL}[rest]\nmax_waiting = 0\n"),
                "rest.max_waiting (line 5): expected a number from 1 to 4096",
            ),
            (
                format!("{MINIMAL}[nosuch]\nk = 1\n"),
                "nosuch.k (line 5): unknown key",
            ),
            (
                "[xmpp]\njid = \"example.org\"\npassword = \"p\"\n".into(),
                "user part",
            ),
            (
                "[xmpp]\njid = \"bot@x/res\"\npassword = \"p\"\n".into(),
                "xmpp.jid (line 2)",
            ),
            ("[xmpp]\npassword = \"p\"\n".into(), "xmpp.jid: missing"),
            ("[xmpp]\njid = \n".into(), "syntax error on line 2"),
        ];
        for (text, needle) in cases {
            let e = err(&text);
            assert!(e.contains(needle), "{text:?}\n=> {e}\n(wanted {needle:?})");
        }
    }

    #[test]
    fn resume_spool_and_grace_are_read_and_checked() {
        let text = format!(
            "{MINIMAL}resume = false\n[outbox]\ncapacity = 8\nspool = \"/var/lib/xrelay/spool\"\n\
             grace = \"1m\"\n"
        );
        let c = Config::parse(&text, None).unwrap();
        assert!(!c.xmpp.resume);
        assert_eq!(
            c.outbox.spool.as_deref(),
            Some(Path::new("/var/lib/xrelay/spool"))
        );
        assert_eq!(c.outbox.grace, Duration::from_secs(60));
        let cases = [
            (
                format!("{MINIMAL}resume = \"yes\"\n"),
                "xmpp.resume (line 4): expected true or false, got a string",
            ),
            (
                format!("{MINIMAL}resume = 1\n"),
                "xmpp.resume (line 4): expected true or false",
            ),
            (
                format!("{MINIMAL}[outbox]\nspool = \"\"\n"),
                "outbox.spool (line 5): the path is empty",
            ),
            (
                format!("{MINIMAL}[outbox]\nspool = true\n"),
                "outbox.spool (line 5): expected a string",
            ),
            (
                format!("{MINIMAL}[outbox]\ngrace = \"0s\"\n"),
                "outbox.grace (line 5): the duration must not be zero",
            ),
            (
                format!("{MINIMAL}[outbox]\ngrace = \"2h\"\n"),
                "outbox.grace (line 5): at most 1h",
            ),
            (
                format!("{MINIMAL}[outbox]\ngrace = 10\n"),
                "outbox.grace (line 5): expected a string",
            ),
            (
                format!("{MINIMAL}[outbox]\nspool_dir = \"/x\"\n"),
                "outbox.spool_dir (line 5): unknown key",
            ),
        ];
        for (text, needle) in cases {
            let e = err(&text);
            assert!(e.contains(needle), "{text:?}\n=> {e}\n(wanted {needle:?})");
        }
    }

    #[test]
    fn size_keys_default_and_must_fit_together() {
        let c = Config::parse(MINIMAL, None).unwrap();
        assert_eq!(c.xmpp.max_outgoing_bytes, 256 * 1024);
        assert_eq!(c.outbox.max_bytes, 1024 * 1024);
        assert_eq!(c.outbox.stamp_after, Duration::from_secs(5));
        let text = format!(
            "{MINIMAL}max_outgoing_bytes = 20000\n[outbox]\nmax_bytes = 40000\nstamp_after = \"2s\"\n"
        );
        let c = Config::parse(&text, None).unwrap();
        assert_eq!(c.xmpp.max_outgoing_bytes, 20000);
        assert_eq!(c.outbox.max_bytes, 40000);
        assert_eq!(c.outbox.stamp_after, Duration::from_secs(2));
        let text = format!("{MINIMAL}[outbox]\nmax_bytes = 40000\n");
        let e = Config::parse(&text, None).unwrap_err().to_string();
        assert!(
            e.contains("outbox.max_bytes") && e.contains("262144"),
            "{e}"
        );
    }

    #[test]
    fn webhook_senders_default_to_contacts_and_take_a_word_or_a_list() {
        use crate::access::Access;
        let hook = |extra: &str| {
            Config::parse(
                &format!("{MINIMAL}[webhook]\nurl = \"http://h/\"\n{extra}"),
                None,
            )
            .unwrap()
            .webhook
            .unwrap()
            .from
        };
        assert_eq!(hook(""), Access::Contacts);
        assert_eq!(hook("from = \"anyone\"\n"), Access::Anyone);
        assert_eq!(
            hook("from = [\"al@x.org\", \"corp.example\"]\n"),
            Access::List(vec![
                BareJid::parse("al@x.org").unwrap(),
                BareJid::parse("corp.example").unwrap()
            ])
        );
        let c = Config::parse(MINIMAL, None).unwrap();
        assert!(!c.rest.allow_account_changes);
        let c = Config::parse(
            &format!("{MINIMAL}[rest]\nallow_account_changes = true\n"),
            None,
        );
        assert!(c.unwrap().rest.allow_account_changes);
    }

    #[test]
    fn plain_tls_is_allowed_only_towards_loopback() {
        for server in ["127.0.0.1", "::1", "localhost", "[::1]"] {
            let text = format!("{MINIMAL}tls = \"plain\"\nserver = \"{server}\"\n");
            assert_eq!(Config::parse(&text, None).unwrap().xmpp.tls, TlsMode::Plain);
        }
        let text = format!("{MINIMAL}tls = \"plain\"\nserver = \"10.0.0.1\"\n");
        assert!(err(&text).contains("loopback"));
    }

    #[test]
    fn durations_are_a_whole_number_and_one_unit_of_s_m_h_or_d() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604800)));
        for bad in [
            "",
            "s",
            "10",
            "1.5h",
            "-1s",
            "1w",
            "10 s",
            "99999999999999999999s",
            "5000d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// The example config at the top of the repository, every key in it commented or not.
    const EXAMPLE: &str = include_str!("../../xrelay.example.toml");

    /// The `(table, key)` pairs the example names: `key = ...` lines, commented or not,
    /// under a `[table]` header, commented or not.
    fn example_keys() -> Vec<(String, String)> {
        let mut table = String::new();
        let mut found = Vec::new();
        for line in EXAMPLE.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = name.to_string();
            } else if let Some((key, _)) = line.split_once(" = ") {
                found.push((table.clone(), key.to_string()));
            }
        }
        found
    }

    #[test]
    fn the_example_config_loads() {
        let cfg = Config::parse(EXAMPLE, Some("pw".into())).expect("xrelay.example.toml loads");
        assert_eq!(cfg.xmpp.jid.to_string(), "bot@example.org");
    }

    #[test]
    fn the_example_config_names_every_known_key() {
        let found = example_keys();
        for (table, keys) in KNOWN_KEYS {
            for key in *keys {
                assert!(
                    found.iter().any(|(t, k)| t == table && k == key),
                    "xrelay.example.toml does not name {table}.{key}"
                );
            }
        }
    }

    #[test]
    fn pins_parse_only_from_44_base64_characters() {
        const LEAF_PIN: &str = "0RWky7cYcVEKqLqXsVF/EuC2V0Sf0SevKRDIUCwjbck=";
        assert_eq!(parse_pin(LEAF_PIN).unwrap()[..3], [0xd1, 0x15, 0xa4]);
        let short = STANDARD.encode([7u8; 31]);
        let long = STANDARD.encode([7u8; 33]);
        let unpadded = LEAF_PIN.trim_end_matches('=');
        let url_safe = STANDARD
            .encode([0xfb; 32])
            .replace('+', "-")
            .replace('/', "_");
        for bad in [
            "",
            "not base64!",
            short.as_str(),
            long.as_str(),
            unpadded,
            &url_safe,
            " 0RWky7cYcVEKqLqXsVF/EuC2V0Sf0SevKRDIUCwjbck=",
        ] {
            assert!(matches!(parse_pin(bad), Err(BadPin)), "{bad:?}");
        }
        assert_eq!(
            BadPin.to_string(),
            "a pin must be the standard base64 of a SHA-256 digest (44 characters)"
        );
    }
}
