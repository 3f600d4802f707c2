//! Invites against a real Prosody: XEP-0379 tokens made by the CLI and by `/invites_api`,
//! used by independent XMPP accounts; what gets approved (and what does not), the bot's
//! roster, the landing pages, and the invites file.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, shared, toml_str, unique_user, xrelay, Bed, Bot, Daemon, Prosody};
use common::{HttpResponse, TestClient};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
/// How long an answer that must not come is waited for, after the daemon logged its
/// decision (the answer would have been sent before the log line's stanza was handled).
const SILENCE: Duration = Duration::from_millis(500);
const PUBLIC_URL: &str = "https://router.example/xrelay";

/// A bot running xrelay with invites, its invites file and the tokens made so far.
struct Inviter {
    bot: Bot,
    invites: PathBuf,
    tokens: Vec<String>,
}

/// `invites` is extra TOML for the `[invites]` section.
fn bed(invites: &str) -> Inviter {
    let p = shared();
    let file = p.dir.join(unique_user("invites"));
    let bot = Bed::on(p)
        .section(&format!(
            "[invites]\nfile = {}\n{invites}\n",
            toml_str(&file.to_string_lossy())
        ))
        .ready_when("roster: 0 contact(s)")
        .start();
    Inviter {
        bot,
        invites: file,
        tokens: Vec::new(),
    }
}

impl Inviter {
    /// `xrelay invite create ARGS`: the printed lines.
    fn cli_invite(&mut self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["invite", "create"];
        all.extend_from_slice(args);
        let out = xrelay(&self.bot.cfg, &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        self.tokens.push(token_of(&lines[0]));
        lines
    }

    /// `xrelay key create --scope SCOPES [--expires E]`.
    fn key(&self, scopes: &str, expires: Option<&str>) -> String {
        let mut args = vec!["key", "create", "--scope", scopes];
        if let Some(e) = expires {
            args.extend(["--expires", e]);
        }
        let out = xrelay(&self.bot.cfg, &args);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn get(&self, path: &str, head: &[(&str, &str)]) -> HttpResponse {
        http(self.bot.port, "GET", path, head, b"")
    }

    /// `c` is approved: `subscribed` arrives, then the bot's own request, which `c`
    /// approves; both rosters then say `both`.
    fn expect_approved(&mut self, p: &Prosody, c: &mut TestClient) {
        let bot = self.bot.jid.clone();
        c.recv_presence(&bot, "subscribed", WAIT)
            .unwrap_or_else(|| panic!("{} was not approved", c.bare_jid()));
        c.recv_presence(&bot, "subscribe", WAIT)
            .expect("the bot subscribes back");
        c.send_presence(&bot, "subscribed");
        let mut bot_session = TestClient::connect(p, &self.bot.user, "pw");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let theirs = subscription(&c.roster(), &bot);
            let ours = subscription(&bot_session.roster(), &c.bare_jid());
            if theirs.as_deref() == Some("both") && ours.as_deref() == Some("both") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not subscribed both ways: {theirs:?} / {ours:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon logged that `c`'s request was not approved (`how`: ignored or denied),
    /// and `c` got no approval.
    fn expect_refused(&mut self, c: &mut TestClient, how: &str, why: &str) {
        self.bot.daemon.wait_for(
            &format!("subscription request from {} {how}: {why}", c.bare_jid()),
            WAIT,
        );
        let bot = self.bot.jid.clone();
        assert!(
            c.recv_presence(&bot, "subscribed", SILENCE).is_none(),
            "{} was approved",
            c.bare_jid()
        );
        let sub = subscription(&c.roster(), &bot);
        assert!(
            matches!(sub.as_deref(), None | Some("none")),
            "{}: {sub:?}",
            c.bare_jid()
        );
    }

    /// The invites file holds only hashes.
    fn check_file(&self) {
        let text = std::fs::read_to_string(&self.invites).unwrap();
        for t in &self.tokens {
            assert!(!text.contains(t.as_str()), "raw token in the file:\n{text}");
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&self.invites).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// An account that fetched its roster (so it hears subscription answers).
fn invitee(p: &Prosody, prefix: &str) -> TestClient {
    let (user, pw) = p.new_user(prefix);
    let mut c = TestClient::connect(p, &user, &pw);
    assert!(c.roster().is_empty());
    c
}

/// `c` asks to subscribe to `bot`, with `token` as XEP-0379 preauth if given.
fn subscribe(c: &mut TestClient, bot: &str, token: Option<&str>) {
    let preauth = token
        .map(|t| format!("<preauth xmlns='urn:xmpp:pars:0' token='{t}'/>"))
        .unwrap_or_default();
    c.send_raw(&format!(
        "<presence to='{bot}' type='subscribe'>{preauth}</presence>"
    ));
}

fn token_of(uri: &str) -> String {
    uri.rsplit_once("preauth=")
        .unwrap_or_else(|| panic!("no token in {uri}"))
        .1
        .to_string()
}

fn subscription(roster: &[(String, String, Option<String>)], jid: &str) -> Option<String> {
    roster
        .iter()
        .find(|(j, _, _)| j == jid)
        .map(|(_, s, _)| s.clone())
}

fn file_line(path: &Path, id: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no invite {id}"))
        .to_string()
}

#[test]
fn cli_invite_prints_an_xmpp_uri_with_a_token_of_at_least_128_bits() {
    let mut b = bed("");
    let lines = b.cli_invite(&["alice"]);
    assert_eq!(lines.len(), 1, "no public_url, no landing URL: {lines:?}");
    assert_eq!(
        lines[0],
        format!("xmpp:{}?roster;preauth={}", b.bot.jid, b.tokens[0])
    );
    assert!(b.tokens[0].len() >= 22, "at least 128 bits");
}

/// A bed whose CLI invite "alice" was used by a new account; the account and the token.
fn used_invite(b: &mut Inviter) -> (TestClient, String) {
    let p = shared();
    b.cli_invite(&["alice"]);
    let mut alice = invitee(p, "alice");
    let token = b.tokens[0].clone();
    subscribe(&mut alice, &b.bot.jid, Some(&token));
    b.expect_approved(p, &mut alice);
    b.bot.daemon.wait_for(
        &format!("used by {}: subscription approved", alice.bare_jid()),
        WAIT,
    );
    (alice, token)
}

#[test]
fn cli_invite_approves_its_invitee_and_lists_and_stores_the_use_without_the_token() {
    let mut b = bed("");
    let (alice, token) = used_invite(&mut b);
    let list = xrelay(&b.bot.cfg, &["invite", "list"]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains(&format!("used by {}", alice.bare_jid())) && list.contains("alice"),
        "{list}"
    );
    assert!(!list.contains(&token));
    let id = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(file_line(&b.invites, id).contains(&format!("used:{}", alice.bare_jid())));
    b.check_file();
}

#[test]
fn a_used_token_from_someone_else_is_ignored() {
    let p = shared();
    let mut b = bed("");
    let (_alice, token) = used_invite(&mut b);
    // Left pending (invites.unknown = "ignore").
    let mut bob = invitee(p, "bob");
    subscribe(&mut bob, &b.bot.jid, Some(&token));
    b.expect_refused(&mut bob, "ignored", "the invite was already used");
}

#[test]
fn a_request_without_a_token_is_ignored() {
    let p = shared();
    let mut b = bed("");
    let mut carol = invitee(p, "carol");
    subscribe(&mut carol, &b.bot.jid, None);
    b.expect_refused(&mut carol, "ignored", "it carries no invite token");
}

#[test]
fn a_revoked_invite_is_ignored_and_cannot_be_revoked_twice() {
    let p = shared();
    let mut b = bed("");
    b.cli_invite(&["dave"]);
    let list = String::from_utf8(xrelay(&b.bot.cfg, &["invite", "list"]).stdout).unwrap();
    let id = list
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(xrelay(&b.bot.cfg, &["invite", "revoke", id])
        .status
        .success());
    let again = xrelay(&b.bot.cfg, &["invite", "revoke", id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("invite not found"));
    let mut dave = invitee(p, "dave");
    let revoked = b.tokens[0].clone();
    subscribe(&mut dave, &b.bot.jid, Some(&revoked));
    b.expect_refused(&mut dave, "ignored", "no such invite");
    b.check_file();
}

#[test]
fn an_approved_invitee_is_in_the_roster_at_the_next_login() {
    let mut b = bed("");
    used_invite(&mut b);
    let cfg = b.bot.cfg.clone();
    let status = b.bot.daemon.terminate();
    assert!(status.success());
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("roster: 1 contact(s)", WAIT);
}

#[test]
fn expired_wrong_and_missing_tokens_are_denied() {
    let p = shared();
    let mut b = bed("unknown = \"deny\"");
    b.cli_invite(&["--ttl", "1s", "short"]);
    let expired = b.tokens[0].clone();
    let valid = b.cli_invite(&["--ttl", "1h"]);
    let valid = token_of(&valid[0]);
    std::thread::sleep(Duration::from_millis(2100));

    let bot = b.bot.jid.clone();
    for (prefix, token, why) in [
        ("late", Some(expired.as_str()), "the invite has expired"),
        ("wrong", Some("AAAAAAAAAAAAAAAAAAAAAA"), "no such invite"),
        ("none", None, "it carries no invite token"),
    ] {
        let mut c = invitee(p, prefix);
        subscribe(&mut c, &b.bot.jid, token);
        c.recv_presence(&bot, "unsubscribed", WAIT)
            .unwrap_or_else(|| panic!("{prefix}: no unsubscribed"));
        b.expect_refused(&mut c, "denied", why);
    }
    // The bot's roster holds none of them.
    let mut bot_session = TestClient::connect(p, &b.bot.user, "pw");
    assert!(bot_session.roster().is_empty());

    // A valid token still works after all that.
    let mut ok = invitee(p, "ok");
    subscribe(&mut ok, &b.bot.jid, Some(&valid));
    b.expect_approved(p, &mut ok);
    b.check_file();
}

#[test]
fn a_request_made_while_the_bot_is_offline_is_approved_at_login() {
    let p = shared();
    let mut b = bed("");
    b.cli_invite(&["later"]);
    let token = b.tokens[0].clone();
    let (cfg, jid) = (b.bot.cfg.clone(), b.bot.jid.clone());
    assert!(b.bot.daemon.terminate().success());
    let mut erin = invitee(p, "erin");
    subscribe(&mut erin, &jid, Some(&token));
    // Prosody keeps the request (with its token) and hands it over at the bot's login.
    b.bot.daemon = Daemon::start(&cfg);
    b.expect_approved(p, &mut erin);
}

/// A bed with `public_url` set.
fn public() -> Inviter {
    bed(&format!(
        "public_url = {}",
        toml_str(&format!("{PUBLIC_URL}/"))
    ))
}

/// `GET /invites_api?key=KEY` on `b`: the new token, taken from the landing page's URL.
fn api_invite(b: &mut Inviter, key: &str) -> String {
    let r = b.get(&format!("/invites_api?key={key}"), &[]);
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("Location").unwrap().to_string();
    let token = location
        .strip_prefix(&format!("{PUBLIC_URL}/invite/"))
        .unwrap_or_else(|| panic!("{location}"))
        .to_string();
    b.tokens.push(token.clone());
    token
}

#[test]
fn invites_api_get_with_a_key_answers_201_with_the_landing_page_as_location() {
    let mut b = public();
    let key = b.key("invite", None);
    let r = b.get(&format!("/invites_api?key={key}"), &[]);
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("Location").unwrap().to_string();
    let token = location
        .strip_prefix(&format!("{PUBLIC_URL}/invite/"))
        .unwrap_or_else(|| panic!("{location}"))
        .to_string();
    b.tokens.push(token.clone());
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body["uri"],
        format!("xmpp:{}?roster;preauth={token}", b.bot.jid).as_str()
    );
    assert_eq!(body["url"], location.as_str());
    b.check_file();
}

#[test]
fn invites_api_post_with_a_name_and_redirect_answers_303_and_keeps_the_name() {
    let mut b = public();
    let key = b.key("invite", None);
    let bearer = format!("Bearer {key}");
    let r = http(
        b.bot.port,
        "POST",
        "/invites_api?name=Bob%27s+phone&redirect=true",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 303, "{r:?}");
    let other = r.header("Location").unwrap().rsplit('/').next().unwrap();
    b.tokens.push(other.to_string());
    let list = String::from_utf8(xrelay(&b.bot.cfg, &["invite", "list"]).stdout).unwrap();
    assert!(list.contains("Bob's phone"), "{list}");
    b.check_file();
}

#[test]
fn cli_invite_prints_the_landing_page_when_public_url_is_set() {
    let mut b = public();
    let lines = b.cli_invite(&[]);
    assert_eq!(
        lines[1],
        format!("{PUBLIC_URL}/invite/{}", token_of(&lines[0]))
    );
}

#[test]
fn invites_api_refuses_a_missing_wrong_out_of_scope_or_expired_key() {
    let b = public();
    let msg_key = b.key("msg", None);
    let short_key = b.key("invite", Some("1s"));
    assert_eq!(b.get("/invites_api", &[]).status, 401);
    let r = b.get("/invites_api?key=nope/nope", &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some());
    assert_eq!(
        b.get(&format!("/invites_api?key={msg_key}"), &[]).status,
        403
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        b.get(&format!("/invites_api?key={short_key}"), &[]).status,
        403
    );
}

#[test]
fn a_put_on_invites_api_gets_405_naming_the_allowed_methods() {
    let b = public();
    let key = b.key("invite", None);
    let r = http(
        b.bot.port,
        "PUT",
        &format!("/invites_api?key={key}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, POST, OPTIONS"));
}

#[test]
fn an_invalid_ttl_on_invites_api_gets_422() {
    let b = public();
    let key = b.key("invite", None);
    let r = http(
        b.bot.port,
        "GET",
        &format!("/invites_api?key={key}&ttl=forever"),
        &[],
        b"",
    );
    assert_eq!(r.status, 422);
}

#[test]
fn the_landing_page_of_a_valid_invite_shows_the_uri_and_loads_nothing_else() {
    let mut b = public();
    let key = b.key("invite", None);
    let token = api_invite(&mut b, &key);
    let page = b.get(&format!("/invite/{token}"), &[]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("Content-Type")
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(page.header("Referrer-Policy"), Some("no-referrer"));
    let uri = format!("xmpp:{}?roster;preauth={token}", b.bot.jid);
    for needle in [
        b.bot.jid.as_str(),
        &format!("href=\"{uri}\""),
        &format!("<code>{uri}</code>"),
        "Open in your XMPP app",
        "Valid until",
        "name=\"viewport\"",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle:?} not in\n{}",
            page.body
        );
    }
    assert!(!page.body.contains("src=") && !page.body.contains("<link"));
}

#[test]
fn the_landing_page_of_an_unknown_token_is_404_without_a_uri() {
    let b = public();
    let unknown = b.get("/invite/AAAAAAAAAAAAAAAAAAAAAA", &[]);
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("not valid") && !unknown.body.contains("xmpp:"));
    assert_eq!(
        b.get(&format!("/invite/{}", "A".repeat(500)), &[]).status,
        404
    );
}

#[test]
fn the_landing_page_of_a_used_invite_is_410_without_the_token() {
    let p = shared();
    let mut b = public();
    let key = b.key("invite", None);
    let token = api_invite(&mut b, &key);
    let mut frank = invitee(p, "frank");
    subscribe(&mut frank, &b.bot.jid, Some(&token));
    b.expect_approved(p, &mut frank);
    let used = b.get(&format!("/invite/{token}"), &[]);
    assert_eq!(used.status, 410);
    assert!(used.body.contains("already been used") && !used.body.contains(&token));
    b.check_file();
}

#[test]
fn the_landing_page_of_an_expired_invite_is_410() {
    let mut b = public();
    let key = b.key("invite", None);
    let r = b.get(&format!("/invites_api?key={key}&ttl=1s"), &[]);
    let short = r
        .header("Location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    b.tokens.push(short.clone());
    std::thread::sleep(Duration::from_millis(2100));
    let expired = b.get(&format!("/invite/{short}"), &[]);
    assert_eq!(expired.status, 410);
    assert!(expired.body.contains("expired"));
    b.check_file();
}

#[test]
fn invites_api_without_public_url_points_at_the_xmpp_uri() {
    let p = shared();
    let mut b = bed("");
    let key = b.key("invite", None);
    let r = b.get(
        "/invites_api",
        &[("Authorization", &format!("Bearer {key}"))],
    );
    assert_eq!(r.status, 201, "{r:?}");
    let location = r.header("Location").unwrap();
    assert!(
        location.starts_with(&format!("xmpp:{}?roster;preauth=", b.bot.jid)),
        "{location}"
    );
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(body["url"].is_null());
    let token = token_of(location);
    b.tokens.push(token.clone());
    let mut gina = invitee(p, "gina");
    subscribe(&mut gina, &b.bot.jid, Some(&token));
    b.expect_approved(p, &mut gina);
    b.check_file();
}

#[test]
fn removed_contacts_resubscription_with_an_expired_used_token_is_refused() {
    const TTL: Duration = Duration::from_secs(4);
    let p = shared();
    let mut b = bed("");
    let made = std::time::Instant::now();
    b.cli_invite(&["--ttl", "4s", "short-lived"]);
    let token = b.tokens[0].clone();
    let mut c = invitee(p, "gone");
    let bot = b.bot.jid.clone();
    subscribe(&mut c, &bot, Some(&token));
    b.expect_approved(p, &mut c);
    // The contact removes the bot, and comes back with the same token once it expired.
    c.send_raw(&format!(
        "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>\
         <item jid='{bot}' subscription='remove'/></query></iq>"
    ));
    b.bot
        .daemon
        .wait_for(&format!("{}: unsubscribe", c.bare_jid()), WAIT);
    std::thread::sleep(
        (made + TTL + Duration::from_secs(1)).saturating_duration_since(std::time::Instant::now()),
    );
    subscribe(&mut c, &bot, Some(&token));
    b.expect_refused(&mut c, "ignored", "the invite has expired");
}
