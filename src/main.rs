//! The `xrelay` command line: `run`, `check`, `send`, `key`, `invite`, as parsed by
//! [`xrelay::cli`].

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use xrelay::cli::{self, Command, USAGE};
use xrelay::config::{self, Config};
use xrelay::daemon;
use xrelay::http::upload as http_upload;
use xrelay::log;
use xrelay::net::conn::{Connection, Progress};
use xrelay::net::tls;
use xrelay::store::invites::{self, InviteFile};
use xrelay::store::keys::{self, KeyFile};
use xrelay::timefmt;
use xrelay::xmpp::jid::Jid;
use xrelay::xmpp::stanza::{self, IdGen, MessageType};
use xrelay::xmpp::stream::Event;
use xrelay::xmpp::upload;

/// Largest message `send` reads from stdin.
const MAX_SEND_BYTES: u64 = 64 * 1024;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xrelay: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Help => {
            println!(
                "xrelay {}: an HTTP door into XMPP\n\n{USAGE}",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("xrelay {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let path = cli
        .config
        .or_else(|| std::env::var_os("XRELAY_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let cfg = match Config::load(&path, std::env::var("XRELAY_PASSWORD").ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xrelay: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Run => match daemon::run(cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log!("{e}");
                ExitCode::from(1)
            }
        },
        Command::Check => check(&cfg, &path),
        Command::Send {
            kind,
            subject,
            to,
            text,
            file,
            wait,
        } => {
            let how = Sending {
                kind,
                subject: subject.as_deref(),
                file: file.as_deref(),
                wait,
            };
            send(&cfg, &how, &to, text)
        }
        Command::KeyCreate {
            scopes,
            expires,
            name,
        } => key_create(&cfg, scopes.as_deref(), expires.as_deref(), &name),
        Command::KeyList => listed(
            KeyFile::load(&cfg.keys.file).map(|f| keys::format_list(f.keys(), timefmt::now_unix())),
        ),
        Command::KeyDelete(id) => confirmed(
            KeyFile::load(&cfg.keys.file)
                .and_then(|mut f| f.delete(&id))
                .map(|()| format!("key {id} deleted")),
        ),
        Command::InviteCreate { ttl, name } => invite_create(&cfg, ttl.as_deref(), &name),
        Command::InviteList => listed(
            InviteFile::load(&cfg.invites.file)
                .map(|f| invites::format_list(f.invites(), timefmt::now_unix())),
        ),
        Command::InviteRevoke(id) => confirmed(
            InviteFile::load(&cfg.invites.file)
                .and_then(|mut f| f.revoke(&id))
                .map(|()| format!("invite {id} revoked")),
        ),
        Command::Help | Command::Version => ExitCode::SUCCESS,
    }
}

/// Make an invite and print its URI (and landing page), the only time they are shown.
fn invite_create(cfg: &Config, ttl: Option<&str>, name: &str) -> ExitCode {
    let ttl = match ttl.map(config::parse_duration).transpose() {
        Ok(Some(d)) if d.is_zero() => return fail(2, &"--ttl: the duration must not be zero"),
        Ok(d) => d.unwrap_or(cfg.invites.ttl),
        Err(e) => return fail(2, &format!("--ttl: {e}")),
    };
    let now = timefmt::now_unix();
    let created = InviteFile::load(&cfg.invites.file)
        .and_then(|mut f| f.create(name, now, now + ttl.as_secs(), cfg.invites.max));
    match created {
        Ok((invite, token)) => {
            println!("{}", invites::uri(&cfg.xmpp.jid, &token));
            if let Some(base) = &cfg.invites.public_url {
                println!("{}", invites::landing_url(base, &token));
            }
            eprintln!(
                "xrelay: invite {} created, valid once until {}; the link is shown only now",
                invite.id,
                timefmt::format_rfc3339(invite.expires)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

fn fail(code: u8, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("xrelay: {e}");
    ExitCode::from(code)
}

/// Print a listing, or fail with exit 1.
fn listed(result: Result<String, impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

/// Confirm a change on stderr, or fail with exit 1.
fn confirmed(result: Result<String, impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(note) => {
            eprintln!("xrelay: {note}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

/// Make a key and print its token, the only time it is ever shown.
fn key_create(cfg: &Config, scopes: Option<&str>, expires: Option<&str>, name: &str) -> ExitCode {
    let scopes = match keys::parse_scopes(scopes.unwrap_or("msg")) {
        Ok(s) => s,
        Err(e) => return fail(2, &e),
    };
    let now = timefmt::now_unix();
    let expires = match expires.map(config::parse_duration).transpose() {
        Ok(d) => d.map(|d| now + d.as_secs()),
        Err(e) => return fail(2, &format!("--expires: {e}")),
    };
    let created =
        KeyFile::load(&cfg.keys.file).and_then(|mut f| f.create(&scopes, expires, name, now));
    match created {
        Ok((_, token)) => {
            println!("{token}");
            eprintln!("xrelay: key created; the secret is shown only now");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

/// Connect step by step and report each step on stdout.
fn check(cfg: &Config, path: &std::path::Path) -> ExitCode {
    println!("config: {} ok", path.display());
    let started = Instant::now();
    let tls = match tls::client_config(&cfg.xmpp.trust()) {
        Ok(t) => t,
        Err(e) => {
            println!(
                "FAILED at step TLS certificate: {}",
                log::one_line(&e.to_string())
            );
            return ExitCode::from(1);
        }
    };
    let mut report = |p: Progress| match p {
        Progress::Resolved(t) => println!("DNS: {}", t.join(", ")),
        Progress::Connected(a) => println!("TCP: connected to {a}"),
        Progress::Secured { version, pin } => {
            println!("TLS: {version}, certificate verified");
            if let Some(pin) = pin {
                println!("TLS: server key pin_sha256 = \"{pin}\"");
            }
        }
        Progress::Online { jid, mechanism, sm } => {
            println!("authentication: {mechanism} ok");
            println!(
                "bind: {jid}, stream management {}",
                if sm { "on" } else { "not offered" }
            );
        }
    };
    let xmpp = own_resource(cfg, "check");
    smol::block_on(async {
        match Connection::open(&xmpp, tls, &mut report).await {
            Ok(mut conn) => {
                conn.close().await;
                println!("ok: online in {} ms", started.elapsed().as_millis());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!(
                    "FAILED at step {}: {}",
                    e.step(),
                    log::one_line(&e.to_string())
                );
                ExitCode::from(1)
            }
        }
    })
}

/// How `send` sends, from its options.
struct Sending<'a> {
    kind: Option<MessageType>,
    subject: Option<&'a str>,
    file: Option<&'a std::path::Path>,
    /// Wait for the server's acknowledgement (always, on the command's own login).
    wait: bool,
}

/// Send one message: through the daemon's socket when one is configured and answers, else
/// on a login of its own, waiting until the server confirmed it.
fn send(cfg: &Config, how: &Sending<'_>, to: &str, text: Option<String>) -> ExitCode {
    let kind = how.kind;
    let subject = how.subject;
    let to = match recipient(cfg, to) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("xrelay: invalid recipient {to:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match text {
        Some(t) => t,
        None if how.file.is_some() => String::new(),
        None => match read_stdin() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("xrelay: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if text.trim().is_empty() && how.file.is_none() {
        eprintln!("xrelay: the message is empty");
        return ExitCode::from(2);
    }
    for socket in &cfg.http.unix {
        match via_daemon(socket, how, &to, &text) {
            Some(code) => return code,
            None => continue,
        }
    }
    let file = match how.file.map(|p| open_upload(cfg, p)).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xrelay: {e}");
            return ExitCode::from(1);
        }
    };
    let kind = kind.unwrap_or(if to.is_bare() && cfg.xmpp.rooms.contains(&to.bare()) {
        MessageType::Groupchat
    } else {
        MessageType::Chat
    });
    let tls = match tls::client_config(&cfg.xmpp.trust()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xrelay: {e}");
            return ExitCode::from(1);
        }
    };
    let xmpp = own_resource(cfg, "send");
    smol::block_on(async {
        let mut conn = match Connection::open(&xmpp, tls, &mut |_| {}).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "xrelay: connection failed ({}): {}",
                    e.step(),
                    log::one_line(&e.to_string())
                );
                return ExitCode::from(1);
            }
        };
        let mut ids = IdGen::new();
        let msg = match file {
            None => stanza::message(&to, kind, &ids.next_id(), &text, subject),
            Some(file) => {
                let url = match upload_file(&mut conn, cfg, &mut ids, file).await {
                    Ok(url) => url,
                    Err(e) => {
                        eprintln!("xrelay: the upload failed: {e}");
                        return ExitCode::from(1);
                    }
                };
                let text = Some(text.as_str()).filter(|t| !t.trim().is_empty());
                let mut msg = upload::announcement(&to, kind, &ids.next_id(), &url, text);
                if let Some(s) = subject {
                    msg.push_child(
                        xrelay::xmpp::xml::Element::new("subject", stanza::NS_CLIENT).text(s),
                    );
                }
                msg
            }
        };
        let Ok(seq) = conn.send(&msg) else {
            eprintln!("xrelay: the stream went offline before sending");
            return ExitCode::from(1);
        };
        conn.request_ack();
        loop {
            match conn.next_event().await {
                Ok(Event::Acked(n)) if n >= seq => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!(
                        "xrelay: not confirmed by the server: {}",
                        log::one_line(&e.to_string())
                    );
                    return ExitCode::from(1);
                }
            }
        }
        conn.close().await;
        ExitCode::SUCCESS
    })
}

/// A file to upload on the command's own login: open, its size within `upload.max_bytes`,
/// its type by its name.
struct Upload {
    file: std::fs::File,
    name: String,
    size: u64,
    media_type: &'static str,
}

fn open_upload(cfg: &Config, path: &std::path::Path) -> Result<Upload, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    http_upload::check_size_with(cfg.upload.max_bytes, meta.len()).map_err(|e| e.to_string())?;
    Ok(Upload {
        name: upload::clean_filename(&path.to_string_lossy()),
        media_type: upload::content_type_of(path),
        size: meta.len(),
        file,
    })
}

/// Upload `file` over the command's own stream (disco, slot, PUT) within `upload.timeout`;
/// the GET URL.
async fn upload_file(
    conn: &mut Connection,
    cfg: &Config,
    ids: &mut IdGen,
    file: Upload,
) -> Result<String, String> {
    let work = async {
        let server = cfg.xmpp.jid.domain().to_owned();
        let id = ids.next_id();
        let items = iq(conn, upload::items_request(&id, &server), &id).await?;
        let mut service = None;
        for jid in std::iter::once(server).chain(upload::item_jids(&items)) {
            let id = ids.next_id();
            let info = iq(conn, upload::info_request(&id, &jid), &id).await?;
            if let Some(s) = upload::service_from_info(&jid, &info) {
                service = Some(s);
                break;
            }
        }
        let service = service.ok_or_else(|| http_upload::UploadError::NoService.to_string())?;
        if let Some(max) = service.max_file_size.filter(|m| file.size > *m) {
            return Err(http_upload::UploadError::TooLarge {
                size: file.size,
                max,
            }
            .to_string());
        }
        let id = ids.next_id();
        let request =
            upload::slot_request(&id, &service.jid, &file.name, file.size, file.media_type);
        let reply = iq(conn, request, &id).await?;
        let slot = upload::parse_slot(&reply).map_err(|e| e.to_string())?;
        let trust = config::Trust::for_endpoints(cfg.xmpp.ca_file.as_deref());
        let tls = tls::client_config(&trust).map_err(|e| e.to_string())?;
        let body =
            xrelay::net::http_client::boxed(xrelay::upload::DiskFile::new(file.file, file.size));
        xrelay::upload::put(tls, &slot, file.size, file.media_type, body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(slot.get)
    };
    xrelay::net::timeout(cfg.upload.timeout, work)
        .await
        .unwrap_or_else(|| Err(http_upload::UploadError::Timeout.to_string()))
}

/// Send an iq and wait for the stanza that answers it (same id).
async fn iq(
    conn: &mut Connection,
    request: xrelay::xmpp::xml::Element,
    id: &str,
) -> Result<xrelay::xmpp::xml::Element, String> {
    conn.send(&request)
        .map_err(|_| "the stream went offline".to_string())?;
    loop {
        match conn.next_event().await {
            Ok(Event::Stanza(el)) if el.name() == "iq" && el.get_attr("id") == Some(id) => {
                return Ok(el)
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Post the message through the daemon listening on `socket`; `None` when nobody answers
/// there (the caller then logs in itself). Exit 0 only for 200 (or 202 with `--no-wait`).
fn via_daemon(
    socket: &std::path::Path,
    how: &Sending<'_>,
    to: &Jid,
    text: &str,
) -> Option<ExitCode> {
    use xrelay::net::local::{self, Body, LocalError};
    let target = format!(
        "/msg/{}{}",
        xrelay::xmpp::jid::uri_escape(&to.to_string()),
        if how.wait { "?wait=1" } else { "" }
    );
    let answer = match how.file {
        Some(path) => {
            let opened = std::fs::File::open(path).and_then(|f| {
                let len = f.metadata()?.len();
                Ok((f, len))
            });
            let (mut f, len) = match opened {
                Ok(x) => x,
                Err(e) => return Some(fail(1, &format!("{}: {e}", path.display()))),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = Some(text).filter(|t| !t.trim().is_empty());
            let body = Body::File {
                file: &mut f,
                len,
                content_type: upload::content_type_of(path),
                name: &name,
                text,
            };
            local::post(socket, &target, &[], body)
        }
        None => {
            let mut json = serde_json::json!({ "body": text });
            if let Some(k) = how.kind {
                json["type"] = k.as_str().into();
            }
            if let Some(s) = how.subject {
                json["subject"] = s.into();
            }
            let bytes = json.to_string();
            let body = Body::Bytes(bytes.as_bytes(), "application/json");
            local::post(socket, &target, &[], body)
        }
    };
    match answer {
        Err(LocalError::Unavailable(_)) => None,
        // Nothing was queued: the socket wants a key, which the command does not have.
        Ok(a) if a.status == 401 => {
            eprintln!(
                "xrelay: the daemon's socket {} needs a key (http.unix_trust = true lets local \
                 users in); logging in instead",
                socket.display()
            );
            None
        }
        Err(e) => Some(fail(1, &e)),
        Ok(a) if a.status == 200 || (a.status == 202 && !how.wait) => Some(ExitCode::SUCCESS),
        Ok(a) => Some(fail(
            1,
            &format!("the daemon answered {}: {}", a.status, a.reason()),
        )),
    }
}

/// The stream settings of a one-shot command: its own resource (the configured one plus
/// `-send-`/`-check-` and a random suffix), so it never replaces the running daemon's
/// session, and no resumption.
fn own_resource(cfg: &Config, command: &str) -> config::XmppConfig {
    // Without OS randomness the suffix is fixed; two commands at once then replace each
    // other, but never the daemon.
    let bytes = xrelay::secret::random::<4>().unwrap_or_default();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut xmpp = cfg.xmpp.clone();
    xmpp.resource = format!("{}-{command}-{suffix}", cfg.xmpp.resource);
    xmpp.resume = false;
    xmpp
}

/// A bare localpart means a user on the bot's own domain.
fn recipient(cfg: &Config, to: &str) -> Result<Jid, xrelay::xmpp::jid::JidError> {
    if to.contains('@') {
        Jid::parse(to)
    } else {
        Jid::parse(&format!("{to}@{}", cfg.xmpp.jid.domain()))
    }
}

fn read_stdin() -> Result<String, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_SEND_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if buf.len() as u64 > MAX_SEND_BYTES {
        return Err("the message on stdin is larger than 64 KiB".into());
    }
    let mut text = String::from_utf8(buf).map_err(|_| "stdin is not valid UTF-8".to_string())?;
    // `echo text | xrelay send` should not send the shell's newline.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}
