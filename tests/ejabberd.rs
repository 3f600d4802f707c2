//! The reliability scenarios and hostile stanzas against a second server, ejabberd 23.01:
//! link cuts with resumption, a graceful restart, `kill -9` of the server, stanzas from a
//! second account that must not take the bot down or start a loop, and a room rejoined
//! after a kick. One ejabberd node serves the whole file (it takes seconds to start); the
//! tests take turns on it, since one of them restarts it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::webhook::{Endpoint, Reply};
use common::{
    http, xrelay, Daemon, Ejabberd, FaultProxy, HttpResponse, Receiver, Server, TestClient,
};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);
/// Messages per scenario: enough to keep some in flight at each fault.
const MESSAGES: usize = 120;
/// Latency the proxy adds, so that messages are in flight when the link is cut.
const IN_FLIGHT_DELAY: Duration = Duration::from_millis(20);

/// The file's ejabberd node, held for the whole test.
fn server() -> MutexGuard<'static, Ejabberd> {
    static NODE: OnceLock<Mutex<Ejabberd>> = OnceLock::new();
    NODE.get_or_init(|| Mutex::new(Ejabberd::start()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `xrelay run` for a fresh account, through `proxy` if given.
struct Relay {
    daemon: Daemon,
    port: u16,
    key: String,
    jid: String,
}

fn relay(e: &Ejabberd, proxy: Option<&FaultProxy>, xmpp: &[(&str, &str)], tail: &str) -> Relay {
    let (user, pw) = e.new_user("ejbot");
    relay_as(e, &user, &pw, proxy, xmpp, tail)
}

/// [`relay`] for an existing account.
fn relay_as(
    e: &Ejabberd,
    user: &str,
    pw: &str,
    proxy: Option<&FaultProxy>,
    xmpp: &[(&str, &str)],
    tail: &str,
) -> Relay {
    let port = common::free_port();
    let keys = e.dir.join(format!("keys-{user}"));
    let proxy_port = proxy.map(|p| p.port.to_string());
    let mut keys_xmpp = vec![("reconnect_max", "\"2s\"")];
    if let Some(pp) = &proxy_port {
        keys_xmpp.push(("port", pp));
    }
    keys_xmpp.extend_from_slice(xmpp);
    let cfg = e.xrelay_config_with(
        user,
        pw,
        &keys_xmpp,
        &format!(
            "[http]\nlisten = [\"127.0.0.1:{port}\"]\n[keys]\nfile = {}\n\
             [outbox]\ncapacity = 1024\n{tail}",
            common::toml_str(&keys.to_string_lossy())
        ),
    );
    let out = xrelay(&cfg, &["key", "create", "--scope", "msg", "tests"]);
    assert!(out.status.success(), "{out:?}");
    let key = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("online as", WAIT);
    Relay {
        daemon,
        port,
        key,
        jid: e.jid(user),
    }
}

impl Relay {
    fn post(&self, to: &str, body: &str) -> HttpResponse {
        http(
            self.port,
            "POST",
            &format!("/msg/{to}"),
            &[("Authorization", &self.key), ("Content-Type", "text/plain")],
            body.as_bytes(),
        )
    }

    /// Wait until `needle` was logged `n` times.
    fn wait_count(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.daemon.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {n} times:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Post `n` messages named `prefix i`, calling `fault(i)` before each; the accepted bodies.
fn post_all(
    r: &mut Relay,
    rx: &mut Receiver,
    prefix: &str,
    n: usize,
    mut fault: impl FnMut(usize, &mut Relay),
) -> Vec<String> {
    let mut accepted = Vec::new();
    for i in 0..n {
        fault(i, r);
        let body = format!("{prefix} {i}");
        if r.post(&rx.user, &body).status / 100 == 2 {
            accepted.push(body);
        }
        rx.poll(Duration::from_millis(1));
    }
    accepted
}

#[test]
fn cuts_mid_stream_are_resumed_without_loss_or_duplicates() {
    let e = server();
    let proxy = FaultProxy::start(e.c2s_port);
    proxy.delay(IN_FLIGHT_DELAY);
    let mut r = relay(&e, Some(&proxy), &[], "");
    let mut rx = Receiver::new(&*e);
    let cut_at = [MESSAGES / 4, MESSAGES / 2, 3 * MESSAGES / 4];
    let mut cuts = 0;
    let accepted = post_all(&mut r, &mut rx, "cut", MESSAGES, |i, r| {
        if cut_at.contains(&i) {
            proxy.cut_all();
            cuts += 1;
        }
        if cut_at.contains(&i.saturating_sub(10)) {
            r.wait_count("session resumed", cuts);
        }
    });
    assert_eq!(accepted.len(), MESSAGES);
    rx.collect(&accepted);
    let (lost, dup) = rx.lost_and_duplicated(&accepted);
    assert_eq!((lost, dup), (0, 0), "{}", r.daemon.log());
    assert_eq!(r.daemon.count("session resumed"), 3, "{}", r.daemon.log());
}

#[test]
fn a_graceful_restart_loses_nothing_and_is_not_retried_at_once() {
    let mut e = server();
    let mut r = relay(&e, None, &[], "");
    let mut rx = Receiver::new(&*e);
    let mut accepted = post_all(&mut r, &mut rx, "before", MESSAGES / 2, |_, _| {});
    e.stop();
    r.daemon.wait_for("system-shutdown", WAIT);
    r.daemon.wait_for("reconnecting in", WAIT);
    let pause = r.daemon.last_reconnect_pause();
    assert!(pause >= 5.0, "retried a leaving server after {pause}s");
    for i in 0..20 {
        let body = format!("down {i}");
        if r.post(&rx.user, &body).status / 100 == 2 {
            accepted.push(body);
        }
    }
    e.start_again();
    rx.reconnect(&*e);
    accepted.extend(post_all(&mut r, &mut rx, "after", MESSAGES / 2, |_, _| {}));
    assert_eq!(accepted.len(), MESSAGES + 20);
    rx.collect(&accepted);
    let (lost, dup) = rx.lost_and_duplicated(&accepted);
    assert_eq!((lost, dup), (0, 0), "{}", r.daemon.log());
}

#[test]
fn kill_9_of_the_server_loses_nothing() {
    let mut e = server();
    let (bot, bot_pw) = e.new_user("ejbot");
    let (rcpt, rcpt_pw) = e.new_user("ejrcpt");
    // A killed node forgets accounts it had not yet written to disk: a clean stop writes them.
    e.stop();
    e.start_again();
    let mut r = relay_as(&e, &bot, &bot_pw, None, &[], "");
    let mut rx = Receiver::with_account(&*e, rcpt, rcpt_pw);
    let mut accepted = post_all(&mut r, &mut rx, "pre", MESSAGES / 2, |_, _| {});
    e.kill_9();
    for i in 0..20 {
        let body = format!("dead {i}");
        if r.post(&rx.user, &body).status / 100 == 2 {
            accepted.push(body);
        }
    }
    e.start_again();
    rx.reconnect(&*e);
    accepted.extend(post_all(&mut r, &mut rx, "post", MESSAGES / 2, |_, _| {}));
    assert_eq!(accepted.len(), MESSAGES + 20);
    rx.collect(&accepted);
    let (lost, _) = rx.lost_and_duplicated(&accepted);
    assert_eq!(lost, 0, "{}", r.daemon.log());
}

#[test]
fn hostile_stanzas_from_a_second_account_leave_the_bot_serving() {
    let e = server();
    let hook = Endpoint::start(false, |_| {
        Reply::with("application/json", r#"{"body": "echo"}"#)
    });
    let mut r = relay(
        &e,
        None,
        &[],
        &format!("[webhook]\nurl = \"{}\"\n", hook.url("/hook")),
    );
    let (user, pw) = e.new_user("ejhostile");
    let mut h = TestClient::connect(&*e, &user, &pw);
    let bot = format!("{}/xrelay", r.jid);
    let big = "A".repeat(40_000);
    let huge = "B".repeat(100_000);
    let hostile = [
        // An iq nobody handles, one of an unknown type, results nobody asked for.
        format!("<iq type='set' to='{bot}' id='h1'><x xmlns='urn:evil'/></iq>"),
        format!("<iq type='bogus' to='{bot}' id='h2'><x xmlns='urn:evil'/></iq>"),
        format!("<iq type='result' to='{bot}' id='h3'/>"),
        // A bounce that names an id the bot might have used, and presence errors.
        format!(
            "<message type='error' to='{bot}' id='00-1'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        ),
        format!("<presence type='error' to='{bot}'/>"),
        // Escaped markup, odd namespaces, a large body, a flood of small messages.
        format!(
            "<message to='{bot}'><body>&lt;/stream:stream&gt;&amp;&#x1F600;</body>\
             <x xmlns='jabber:x:oob'><url>javascript:1</url></x></message>"
        ),
        format!("<message to='{bot}'><body>{big}</body></message>"),
        format!("<message to='{bot}' type='groupchat'><body>not a room</body></message>"),
        // Over xmpp.max_stanza_bytes (64 KiB): skipped, and the iq answered, not fatal.
        format!("<message to='{bot}' id='huge'><body>{huge}</body></message>"),
        format!("<iq type='get' to='{bot}' id='h4'><query xmlns='urn:evil'>{huge}</query></iq>"),
    ];
    for s in &hostile {
        h.send_raw(s);
    }
    for i in 0..50 {
        h.send_message(&r.jid, &format!("flood {i}"));
    }
    let answer = h
        .recv_where(WAIT, |el| el.is("iq") && el.attr("id") == Some("h1"))
        .expect("the iq is answered");
    assert!(answer.raw.contains("service-unavailable"), "{}", answer.raw);
    let answer = h
        .recv_where(WAIT, |el| el.is("iq") && el.attr("id") == Some("h4"))
        .expect("the oversized iq is answered");
    assert!(answer.raw.contains("policy-violation"), "{}", answer.raw);
    r.wait_count("-byte message from", 1);
    std::thread::sleep(Duration::from_secs(1));
    // A stranger drives no webhook call, and the bot is still online and delivering.
    assert!(hook.requests().is_empty(), "{:?}", hook.requests().len());
    h.clear();
    let res = r.post(&user, "still here");
    assert_eq!(res.status, 202, "{res:?}");
    let m = h
        .recv_message(WAIT)
        .expect("the post after the hostile stanzas");
    assert_eq!(m.body.as_deref(), Some("still here"));
    assert_eq!(r.daemon.count("online as"), 1, "{}", r.daemon.log());
    r.wait_count("webhook: ignoring", 1);
    assert_eq!(r.daemon.count("webhook: ignoring"), 1, "{}", r.daemon.log());
}

#[test]
fn a_kicked_bot_is_back_in_the_room() {
    let e = server();
    let room = e.room(&common::unique_user("ejroom"));
    let (user, pw) = e.new_user("ejowner");
    let mut owner = TestClient::connect(&*e, &user, &pw);
    owner.join_room(&room, "owner");
    // ejabberd keeps a new room locked until its owner accepts the default configuration.
    owner.send_raw(&format!(
        "<iq type='set' to='{room}' id='cfg'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'/></query></iq>"
    ));
    owner
        .recv_where(WAIT, |el| el.is("iq") && el.attr("id") == Some("cfg"))
        .expect("the room is configured");
    let rooms = format!("[\"{room}\"]");
    let mut r = relay(&e, None, &[("rooms", &rooms)], "");
    r.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    owner.send_raw(&format!(
        "<iq type='set' to='{room}' id='kick'><query xmlns='http://jabber.org/protocol/muc#admin'>\
         <item nick='xrelay' role='none'><reason>testing</reason></item></query></iq>"
    ));
    r.daemon.wait_for(&format!("not in {room}: kicked"), WAIT);
    r.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    owner.clear();
    let res = http(
        r.port,
        "POST",
        &format!("/msg/{room}?wait=1"),
        &[("Authorization", &r.key), ("Content-Type", "text/plain")],
        b"back in",
    );
    assert_eq!(res.status, 200, "{res:?}");
    let m = owner.recv_message(WAIT).expect("the post arrives");
    assert_eq!(m.body.as_deref(), Some("back in"));
}

#[test]
fn a_posted_picture_goes_through_ejabberds_http_upload_and_is_announced() {
    let e = server();
    let r = relay(&e, None, &[], "");
    let (user, pw) = e.new_user("ejrcpt");
    let mut c = TestClient::connect(&*e, &user, &pw);
    let pic: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let res = http(
        r.port,
        "POST",
        &format!("/msg/{user}?wait=1&filename=cam.png"),
        &[("Authorization", &r.key), ("Content-Type", "image/png")],
        &pic,
    );
    assert_eq!(res.status, 200, "{res:?}\n{}", e.log());
    let m = c.recv_message(WAIT).expect("the announcement");
    let url = m.body.clone().unwrap_or_default();
    assert!(url.ends_with("/cam.png"), "{m:?}");
    assert!(
        m.el.child_ns("x", "jabber:x:oob").is_some(),
        "OOB: {}",
        m.raw
    );
    let got = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(e.ca_file())
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        got.status.success() && got.stdout == pic,
        "{:?}",
        got.status
    );
}
