//! Who may use the bot, and loops that must not start, against a real Prosody: the
//! echo webhook of examples/echo_bot.py with a message to the bot itself, strangers and
//! invited contacts, `/rest` account changes, and `xrelay send` beside a running daemon.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::webhook::{Endpoint, Recorded, Reply};
use common::{http, shared, toml_str, unique_user, xrelay, Bed, Bot, TestClient};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
/// How long a loop would have to show itself.
const LOOP_WINDOW: Duration = Duration::from_secs(4);

/// A bot with `tail` (TOML) after its `[http]` and `[keys]` sections.
fn bot(tail: &str) -> Bot {
    Bed::new().section(tail).start()
}

/// `Bearer ID/SECRET` of a new key of `scope` for `b`.
fn bearer(b: &Bot, scope: &str) -> String {
    format!("Bearer {}", b.key(scope))
}

/// A POST with `key` (`Bearer …`); the status and body.
fn post(b: &Bot, key: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let r = http(
        b.port,
        "POST",
        path,
        &[("Authorization", key), ("Content-Type", content_type)],
        body.as_bytes(),
    );
    (r.status, r.body)
}

/// The Python echo bot of examples/echo_bot.py, run as it is, on its own port. Counts the
/// requests it logs.
struct EchoBot {
    child: Child,
    calls: Arc<AtomicUsize>,
}

impl Drop for EchoBot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example_echo_bot(port: u16) -> EchoBot {
    let mut child = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/echo_bot.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let stderr = child.stderr.take().unwrap();
    // http.server logs one line per request: "127.0.0.1 - - [...] "POST / HTTP/1.1" 200 -".
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"POST ") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the echo bot does not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    EchoBot { child, calls }
}

#[test]
fn a_message_to_the_bot_itself_reaches_the_echo_webhook_at_most_once() {
    let p = shared();
    let hook_port = common::free_port();
    let echo = example_echo_bot(hook_port);
    let b = bot(&format!(
        "[webhook]\nurl = \"http://127.0.0.1:{hook_port}/\"\nformat = \"json\"\nfrom = \"anyone\"\n"
    ));
    let key = bearer(&b, "msg");
    let (status, body) = post(
        &b,
        &key,
        &format!("/msg/{}", b.jid),
        "text/plain",
        "ping me",
    );
    assert_eq!(status, 202, "{body}");
    std::thread::sleep(LOOP_WINDOW);
    let calls = echo.calls.load(Ordering::SeqCst);
    assert!(calls <= 1, "{calls} webhook calls: a loop");

    // The echo still works for others.
    let (user, pw) = p.new_user("echoer");
    let mut c = TestClient::connect(p, &user, &pw);
    c.send_message(&b.jid, "hello");
    let m = c.recv_message(WAIT).expect("the echo");
    assert_eq!(m.body.as_deref(), Some("olleh"));
}

fn recording(r: &Recorded) -> Reply {
    if r.json()["kind"] == "iq" {
        return Reply::status(204);
    }
    Reply::with("application/json", r#"{"body": "seen"}"#)
}

/// A bot whose JSON webhook (messages and iqs) answers "seen", with an invites file.
fn gated_bed() -> (Endpoint, Bot) {
    let p = shared();
    let hook = Endpoint::start(false, recording);
    let invites = p.dir.join(format!("invites-{}", unique_user("acc")));
    let b = bot(&format!(
        "[webhook]\nurl = {}\nformat = \"json\"\nstanzas = [\"message\", \"iq\"]\n\
         [invites]\nfile = {}\n",
        toml_str(&hook.url("/hook")),
        toml_str(&invites.to_string_lossy())
    ));
    (hook, b)
}

#[test]
fn a_strangers_messages_and_iqs_are_refused_and_logged_once() {
    let p = shared();
    let (hook, mut b) = gated_bed();
    let (user, pw) = p.new_user("stranger");
    let mut stranger = TestClient::connect(p, &user, &pw);
    stranger.send_message(&b.jid, "let me in");
    stranger.send_message(&b.jid, "please");
    stranger.send_raw(&format!(
        "<iq type='get' to='{}/xrelay' id='q1'><query xmlns='urn:test:q'/></iq>",
        b.jid
    ));
    let err = stranger
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("q1"))
        .expect("an answer to the iq");
    assert_eq!(err.el.attr("type"), Some("error"), "{}", err.raw);
    assert!(err.raw.contains("service-unavailable"), "{}", err.raw);
    b.daemon
        .wait_for(&format!("webhook: ignoring {}", stranger.jid()), WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        b.daemon.count("webhook: ignoring"),
        1,
        "one line per sender"
    );
    assert!(hook.requests().is_empty(), "a stranger reached the webhook");
    assert!(stranger.recv_message(Duration::from_secs(1)).is_none());
}

#[test]
fn an_invited_contact_is_forwarded_to_the_webhook() {
    let p = shared();
    let (hook, mut b) = gated_bed();
    let out = xrelay(&b.cfg, &["invite", "create", "friend"]);
    assert!(out.status.success(), "{out:?}");
    let uri = String::from_utf8(out.stdout).unwrap();
    let token = uri
        .lines()
        .next()
        .and_then(|l| l.rsplit_once("preauth="))
        .map(|(_, t)| t.trim().to_string())
        .expect("a token");
    let (user, pw) = p.new_user("friend");
    let mut friend = TestClient::connect(p, &user, &pw);
    friend.roster();
    friend.send_raw(&format!(
        "<presence to='{}' type='subscribe'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></presence>",
        b.jid
    ));
    friend
        .recv_presence(&b.jid, "subscribed", WAIT)
        .expect("the invite is accepted");
    b.daemon.wait_for("subscription approved", WAIT);
    friend.send_message(&b.jid, "hello bot");
    let m = friend.recv_message(WAIT).expect("the webhook's answer");
    assert_eq!(m.body.as_deref(), Some("seen"));
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "only the contact's message");
    assert_eq!(reqs[0].json()["body"], "hello bot");
}

#[test]
fn rest_refuses_registration_and_roster_changes_with_403() {
    let b = bot("");
    let key = bearer(&b, "rest");
    let xml = "application/xmpp+xml";
    let refused = [
        "<iq type='set' to='localhost'><query xmlns='jabber:iq:register'><username>x</username><password>new</password></query></iq>",
        "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='eve@localhost'/></query></iq>",
        "<presence to='eve@localhost' type='subscribed'/>",
    ];
    for body in refused {
        let (status, answer) = post(&b, &key, "/rest", xml, body);
        assert_eq!(status, 403, "{body}: {answer}");
        assert!(answer.contains("allow_account_changes"), "{answer}");
    }
    let (status, answer) = post(
        &b,
        &key,
        "/rest",
        xml,
        "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_eq!(status, 200, "{answer}");
    // The password still works: the daemon is online with it.
    let check = xrelay(&b.cfg, &["check"]);
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn rest_allows_account_changes_when_configured() {
    let b = bot("[rest]\nallow_account_changes = true\n");
    let key = bearer(&b, "rest");
    let (status, answer) = post(
        &b,
        &key,
        "/rest",
        "application/xmpp+xml",
        "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='eve@localhost'/></query></iq>",
    );
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn xrelay_send_while_run_is_online_does_not_replace_the_daemons_session() {
    let p = shared();
    let mut b = bot("");
    let (user, pw) = p.new_user("sendee");
    let mut c = TestClient::connect(p, &user, &pw);
    for cmd in [vec!["send", &user, "from cron"], vec!["check"]] {
        let out = xrelay(&b.cfg, &cmd);
        assert!(out.status.success(), "{cmd:?}: {out:?}");
    }
    let m = c.recv_message(WAIT).expect("the sent message");
    assert_eq!(m.body.as_deref(), Some("from cron"));
    assert!(m.from.contains("/xrelay-send-"), "{}", m.from);
    std::thread::sleep(Duration::from_secs(2));
    let log = b.daemon.log();
    assert!(!log.contains("conflict"), "{log}");
    assert!(!log.contains("disconnected"), "{log}");
    assert_eq!(b.daemon.count("online as"), 1, "{log}");
}

#[test]
fn a_second_copy_with_the_same_config_is_not_fought_in_a_loop() {
    let p = shared();
    let mut first = bot("");
    let mut second = Bed::on(p).account(&first.user).start().daemon;
    first.daemon.wait_for("session replaced", WAIT);
    first.daemon.wait_for("reconnecting in", WAIT);
    let pause = first.daemon.last_reconnect_pause();
    let log = first.daemon.log();
    assert!(pause >= 5.0, "fights back after {pause}s:\n{log}");
    assert!(
        log.contains(&format!("resource of {}/xrelay", first.jid)),
        "{log}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(first.daemon.count("online as"), 1, "{}", first.daemon.log());
    assert_eq!(second.count("session replaced"), 0, "{}", second.log());
}

/// A child process killed when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_cgi_echo_example_answers_a_contact_through_a_cgi_gateway() {
    use std::os::unix::fs::PermissionsExt;
    let p = shared();
    // examples/echo.cgi.sh as it is, behind Python's CGI gateway (uhttpd's and busybox
    // httpd's stand-in: it runs executables under /cgi-bin/ with CONTENT_LENGTH set).
    let root = p.dir.join(unique_user("cgi"));
    let script = root.join("cgi-bin/echo.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/echo.cgi.sh"),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = common::free_port();
    let _gateway = Killed(
        Command::new("python3")
            .args(["-m", "http.server", "--cgi", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs"),
    );
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "no CGI gateway");
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = bot(&format!(
        "[webhook]\nurl = \"http://127.0.0.1:{port}/cgi-bin/echo.sh\"\nformat = \"xml\"\n\
         from = \"anyone\"\n"
    ));
    let (user, pw) = p.new_user("cgi");
    let mut c = TestClient::connect(p, &user, &pw);
    c.send_message(&b.jid, "hello <there> & you");
    let m = c.recv_message(WAIT).expect("the CGI script's answer");
    assert_eq!(m.body.as_deref(), Some("you said: hello <there> & you"));
}
