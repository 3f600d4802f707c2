//! Drop-in compatibility with Prosody's mod_rest, mod_component_http, mod_post_msg and
//! mod_invites_api, against a real Prosody: the examples of mod_rest's README run literally
//! (its two Flask bots as webhooks, its curl lines), and every field of the JSON mapping
//! makes the trip `/rest` → XMPP → webhook (and back for iq) unchanged.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::webhook::{Endpoint, Recorded, Reply};
use common::{http, shared, toml_str, unique_user, Bed, Bot, HttpResponse};
use common::{Prosody, ProsodyOpts, TestClient};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// A bot with one key of every scope on `bed`; `webhook` (TOML lines, none if empty) is
/// its `[webhook]`.
fn bot_with(bed: Bed<'_>, webhook: &str) -> Bot {
    let bed = bed.key("msg,rest,invite");
    if webhook.is_empty() {
        return bed.start();
    }
    // The senders are strangers to the bot: these tests are about the mapping, not access.
    let from = if webhook.contains("from =") {
        ""
    } else {
        "from = \"anyone\"\n"
    };
    bed.webhook(&format!("{from}{webhook}")).start()
}

/// A bot on the shared Prosody without a webhook.
fn bot() -> Bot {
    bot_with(Bed::new(), "")
}

/// A bot on the shared Prosody with the `[webhook]` lines `webhook`.
fn hooked(webhook: &str) -> Bot {
    bot_with(Bed::new(), webhook)
}

/// The bot's HTTP base URL.
fn base(bot: &Bot) -> String {
    format!("http://127.0.0.1:{}", bot.port)
}

/// POST JSON to `/rest`, asking for JSON back.
fn rest_json(bot: &Bot, v: &Value) -> HttpResponse {
    bot.request(
        "POST",
        "/rest",
        &[("Content-Type", JSON), ("Accept", JSON)],
        v.to_string(),
    )
}

/// A second account that receives what the bot sends.
fn client(p: &Prosody) -> TestClient {
    let (user, pw) = p.new_user("compatrcpt");
    TestClient::connect(p, &user, &pw)
}

fn json_of(res: &HttpResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|e| panic!("{e}: {res:?}"))
}

/// A Flask app from `examples/`, run by Flask's own server on a free port; killed on drop.
struct Flask {
    child: Child,
    url: String,
}

impl Flask {
    fn start(file: &str) -> Self {
        let port = common::free_port();
        let app = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(file);
        let child = Command::new("python3")
            .args(["-m", "flask", "--app"])
            .arg(&app)
            .args(["run", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with Flask (tests/setup-debian.sh installs python3-flask)");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Flask did not start: {app:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }
}

impl Drop for Flask {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next message with a body from `from`.
fn reply_from(c: &mut TestClient, from: &str) -> common::Message {
    let s = c
        .recv_where(WAIT, |e| {
            e.is("message")
                && e.attr("from").is_some_and(|f| f.starts_with(from))
                && e.child("body").is_some()
        })
        .unwrap_or_else(|| panic!("no message from {from}"));
    common::Message::from_stanza(s)
}

#[test]
fn the_readmes_flask_xml_echo_bot_answers_with_the_default_format() {
    let p = shared();
    let bot_hook = Flask::start("flask_xml_echo.py");
    let bot = hooked(&format!("url = {}\n", toml_str(&bot_hook.url)));
    let mut sender = client(p);
    sender.send_message(&bot.jid, "is this the bot?");
    let m = reply_from(&mut sender, &bot.jid);
    assert_eq!(m.body.as_deref(), Some("Yes this is bot"), "{}", m.raw);
}

#[test]
fn the_readmes_flask_json_echo_bot_answers() {
    let p = shared();
    let bot_hook = Flask::start("flask_json_echo.py");
    let bot = hooked(&format!(
        "url = {}\nformat = \"json\"\n",
        toml_str(&bot_hook.url)
    ));
    let mut sender = client(p);
    sender.send_message(&bot.jid, "hi bot");
    let m = reply_from(&mut sender, &bot.jid);
    assert_eq!(m.body.as_deref(), Some("hello"), "{}", m.raw);
}

/// `examples/mod_rest_curl.sh CASE` against `bot`: curl's output.
fn readme_curl(bot: &Bot, case: &str, to: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mod_rest_curl.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg(case)
        .env("BASE", base(bot))
        .env("KEY", &bot.token)
        .env("TO", to)
        .env("SERVER", common::DOMAIN)
        .output()
        .expect("sh and curl");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_readmes_xml_curl_line_as_printed_is_refused_as_not_well_formed() {
    let bot = bot();
    let rcpt = client(shared());
    // As printed, with the stray </body>.
    let out = readme_curl(&bot, "xml", &rcpt.bare_jid());
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["condition"], "not-well-formed", "{out}");
}

#[test]
fn the_readmes_xml_curl_line_fixed_is_delivered_as_chat() {
    let bot = bot();
    let mut rcpt = client(shared());
    let out = readme_curl(&bot, "xml-fixed", &rcpt.bare_jid());
    assert!(out.contains("queued"), "{out}");
    let m = reply_from(&mut rcpt, &bot.jid);
    assert_eq!(
        (m.body.as_deref(), m.kind.as_str()),
        (Some("Hello!"), "chat")
    );
}

#[test]
fn the_readmes_json_curl_line_is_delivered() {
    let bot = bot();
    let mut rcpt = client(shared());
    let out = readme_curl(&bot, "json", &rcpt.bare_jid());
    assert!(out.contains("queued"), "{out}");
    assert_eq!(
        reply_from(&mut rcpt, &bot.jid).body.as_deref(),
        Some("Hello!")
    );
}

#[test]
fn the_readmes_ping_curl_line_returns_the_result() {
    let bot = bot();
    let rcpt = client(shared());
    let out = readme_curl(&bot, "ping", &rcpt.bare_jid());
    assert!(
        out.contains("<iq") && out.contains("type='result'"),
        "{out}"
    );
}

#[test]
fn curl_form_text_with_an_equals_sign_is_the_message() {
    let bot = bot();
    let mut rcpt = client(shared());
    let to = rcpt.bare_jid();
    for path in [format!("/msg/{to}"), format!("/rest/message/chat/{to}")] {
        let out = Command::new("curl")
            .args(["-s", "-H"])
            .arg(format!("Authorization: Bearer {}", bot.token))
            .args(["-d", "disk usage=95% on nas01"])
            .arg(format!("{}{path}", base(&bot)))
            .output()
            .expect("curl");
        assert!(out.status.success(), "{out:?}");
        let m = reply_from(&mut rcpt, &bot.jid);
        assert_eq!(m.body.as_deref(), Some("disk usage=95% on nas01"), "{path}");
    }
}

#[test]
fn a_form_with_mod_rests_fields_fills_the_path_form() {
    let bot = bot();
    let mut rcpt = client(shared());
    let to = rcpt.bare_jid();
    let res = bot.post(
        &format!("/rest/message/chat/{to}"),
        FORM,
        "body=hi+there&subject=S",
    );
    assert_eq!(res.status, 202, "{res:?}");
    let m = reply_from(&mut rcpt, &bot.jid);
    assert_eq!(
        (m.body.as_deref(), m.subject.as_deref()),
        (Some("hi there"), Some("S"))
    );
}

#[test]
fn html_in_rest_json_arrives_as_xhtml_im() {
    let bot = bot();
    let mut rcpt = client(shared());
    let to = rcpt.bare_jid();
    let res = rest_json(
        &bot,
        &json!({"kind": "message", "to": to, "body": "Hello",
                                    "html": "<p>Hello <strong>you</strong></p>"}),
    );
    assert_eq!(res.status, 202, "{res:?}");
    let m = reply_from(&mut rcpt, &bot.jid);
    let html =
        m.el.child_ns("html", "http://jabber.org/protocol/xhtml-im")
            .unwrap_or_else(|| panic!("no XHTML-IM: {}", m.raw));
    let body = html
        .child_ns("body", "http://www.w3.org/1999/xhtml")
        .unwrap_or_else(|| panic!("no XHTML body: {}", m.raw));
    assert!(body.contains("strong"), "{}", m.raw);
}

#[test]
fn broken_html_in_rest_json_is_refused_with_422() {
    let bot = bot();
    let rcpt = client(shared());
    let to = rcpt.bare_jid();
    let res = rest_json(&bot, &json!({"to": to, "body": "x", "html": "<p>unclosed"}));
    assert_eq!(res.status, 422, "{res:?}");
}

#[test]
fn mod_post_msgs_html_form_field_arrives_as_xhtml_im() {
    let bot = bot();
    let mut rcpt = client(shared());
    let to = rcpt.bare_jid();
    let res = bot.post(
        &format!("/msg/{to}"),
        FORM,
        "body=Hi&html=%3Cbody%20xmlns%3D%27http%3A%2F%2Fwww.w3.org%2F1999%2Fxhtml%27%3E%3Cp%3EHi%3C%2Fp%3E%3C%2Fbody%3E",
    );
    assert_eq!(res.status, 202, "{res:?}");
    let m = reply_from(&mut rcpt, &bot.jid);
    let html = m.el.child_ns("html", "http://jabber.org/protocol/xhtml-im");
    assert!(
        html.and_then(|h| h.child_ns("body", "http://www.w3.org/1999/xhtml"))
            .is_some_and(|b| b.contains("p")),
        "{}",
        m.raw
    );
}

#[test]
fn unknown_fields_are_ignored_and_named_in_a_header() {
    let p = shared();
    let bot = bot();
    let mut rcpt = client(p);
    let res = rest_json(
        &bot,
        &json!({"to": rcpt.bare_jid(), "body": "x", "bodyy": "y"}),
    );
    assert_eq!(res.status, 202, "{res:?}");
    assert_eq!(res.header("X-Xrelay-Ignored"), Some("bodyy"));
    assert_eq!(reply_from(&mut rcpt, &bot.jid).body.as_deref(), Some("x"));
}

#[test]
fn echo_returns_the_stanza_without_sending_it() {
    let p = shared();
    let bot = bot();
    let mut rcpt = client(p);
    let res = rest_json(&bot, &json!({"to": rcpt.bare_jid(), "body": "not sent"}));
    assert_eq!(res.status, 202);
    let _ = reply_from(&mut rcpt, &bot.jid);
    let res = bot.request(
        "POST",
        "/rest/echo",
        &[("Content-Type", JSON)],
        json!({"to": rcpt.bare_jid(), "body": "echo only", "id": "e1"}).to_string(),
    );
    assert_eq!(res.status, 200, "{res:?}");
    let v = json_of(&res);
    assert_eq!(
        (v["body"].as_str(), v["id"].as_str()),
        (Some("echo only"), Some("e1"))
    );
    assert!(rcpt
        .recv_where(Duration::from_secs(1), |e| e.is("message"))
        .is_none());
}

#[test]
fn the_commands_are_listed_by_a_get_with_the_node_as_a_query_parameter() {
    let bot = bot();
    let res = bot.request(
        "GET",
        "/rest/items/localhost?node=http%3A%2F%2Fjabber.org%2Fprotocol%2Fcommands",
        &[("Accept", JSON)],
        "",
    );
    assert_eq!(res.status, 200, "{res:?}");
    let items = json_of(&res)["items"].clone();
    assert!(
        items
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["node"] == "uptime")),
        "{items}"
    );
}

#[test]
fn the_adhoc_uptime_command_of_the_readme_completes_with_a_note() {
    let bot = bot();
    // The README's request, as printed but for the server's name.
    let res = rest_json(
        &bot,
        &json!({"command": {"node": "uptime"}, "id": "Jv-87nRaP6Mnrp8l",
                                    "kind": "iq", "to": "localhost", "type": "set"}),
    );
    assert_eq!(res.status, 200, "{res:?}");
    let v = json_of(&res);
    assert_eq!(v["command"]["status"], "completed", "{v}");
    assert_eq!(v["command"]["node"], "uptime", "{v}");
    let note = v["command"]["note"]["text"].as_str().unwrap_or_default();
    assert!(note.contains("running"), "{v}");
}

#[test]
fn a_command_given_as_a_plain_string_completes_the_same() {
    let bot = bot();
    let res = rest_json(&bot, &json!({"command": "uptime", "to": "localhost"}));
    assert_eq!(json_of(&res)["command"]["status"], "completed");
}

#[test]
fn disco_returns_the_servers_contact_addresses_as_extensions() {
    let bot = bot();
    let res = bot.request("GET", "/rest/disco/localhost", &[("Accept", JSON)], "");
    assert_eq!(res.status, 200, "{res:?}");
    let v = json_of(&res);
    let info = &v["disco"]["extensions"]["http://jabber.org/network/serverinfo"];
    assert_eq!(
        info["abuse-addresses"],
        json!(["mailto:abuse@localhost"]),
        "{v}"
    );
    assert_eq!(
        info["admin-addresses"],
        json!(["xmpp:admin@localhost"]),
        "{v}"
    );
}

#[test]
fn invites_api_answers_a_cors_preflight() {
    let bot = bot();
    let res = http(
        bot.port,
        "OPTIONS",
        "/invites_api",
        &[("Origin", "https://x")],
        b"",
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        res.header("Access-Control-Allow-Methods"),
        Some("OPTIONS, GET")
    );
    assert_eq!(res.header("Access-Control-Max-Age"), Some("7200"));
}

#[test]
fn invites_api_sends_cors_headers_with_a_refusal() {
    let bot = bot();
    let res = http(bot.port, "GET", "/invites_api", &[], b"");
    assert_eq!(res.status, 401);
    assert_eq!(res.header("Access-Control-Allow-Origin"), Some("*"));
}

/// A JSON webhook that records what it gets and answers iqs with `iq_answer`.
fn recording_hook(iq_answer: fn(&Value) -> Value) -> Endpoint {
    Endpoint::start(false, move |r: &Recorded| {
        let v = r.json();
        if v["kind"] == "iq" {
            Reply::with(JSON, &iq_answer(&v).to_string())
        } else {
            Reply::status(204)
        }
    })
}

/// The webhook's requests of `kind` from `from`, waiting for at least `n`.
fn requests_from(hook: &Endpoint, kind: &str, from: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: Vec<Value> = hook
            .requests()
            .iter()
            .map(Recorded::json)
            .filter(|v| {
                v["kind"] == kind && v["from"].as_str().is_some_and(|f| f.starts_with(from))
            })
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every field of `sent` (but `kind`, `type` and `id`, which the server may set) is in `got`,
/// equal.
fn assert_fields_equal(sent: &Value, got: &Value) {
    for (k, v) in sent.as_object().unwrap() {
        if matches!(k.as_str(), "kind" | "id") {
            continue;
        }
        assert_eq!(&got[k], v, "field {k}: sent {sent}, got {got}");
    }
}

#[test]
fn every_field_round_trips_through_rest_xmpp_and_a_json_webhook() {
    let hook = recording_hook(|req| {
        let mut answer = hook_answer_for(req);
        answer["kind"] = "iq".into();
        answer
    });
    let sender = bot();
    let receiver = hooked(&format!(
        "url = {}\nformat = \"json\"\nstanzas = [\"message\", \"presence\", \"iq\"]\n",
        toml_str(&hook.url("/"))
    ));

    let message = json!({"kind": "message", "type": "chat", "to": receiver.jid, "id": "rt-1",
        "lang": "en", "body": "round trip", "subject": "S", "thread": "T-1",
        "html": "<body><p>round <em>trip</em></p></body>",
        "oob_url": "https://example.org/file.png", "state": "active", "nick": "Sender"});
    let presence = json!({"kind": "presence", "to": receiver.full_jid(), "show": "dnd",
        "status": "busy here", "priority": 3, "join": true, "nick": "Sender"});
    for sent in [&message, &presence] {
        let res = rest_json(&sender, sent);
        assert_eq!(res.status, 202, "{res:?}");
        let kind = sent["kind"].as_str().unwrap();
        let got = requests_from(&hook, kind, &sender.jid, 1);
        let got = got
            .last()
            .unwrap_or_else(|| panic!("no {kind} reached the webhook"));
        assert_fields_equal(sent, got);
    }

    // iq payloads the bot does not answer itself go to the webhook, whose JSON answer comes
    // back to the /rest caller.
    let iqs = [
        json!({"kind": "iq", "type": "set", "to": receiver.full_jid(),
               "command": {"node": "status", "action": "execute"}}),
        json!({"kind": "iq", "type": "get", "to": receiver.full_jid(), "items": "n"}),
        json!({"kind": "iq", "type": "get", "to": receiver.full_jid(), "disco": "n"}),
    ];
    for (i, sent) in iqs.iter().enumerate() {
        let res = rest_json(&sender, sent);
        assert_eq!(res.status, 200, "{res:?}");
        let got = requests_from(&hook, "iq", &sender.jid, i + 1);
        assert_fields_equal(sent, &got[i]);
        let answer = json_of(&res);
        let payload = ["command", "items", "disco"][i];
        let expected = hook_answer_for(&got[i]);
        assert_eq!(answer[payload], expected[payload], "{answer}");
        assert_eq!(answer["type"], "result");
    }
}

/// The payload the webhook of the round-trip test answers to the iq `req` with.
fn hook_answer_for(req: &Value) -> Value {
    if req.get("command").is_some() {
        json!({"command": {"node": "status", "status": "completed", "sessionid": "s-1",
            "note": {"type": "info", "text": "all good"},
            "form": {"type": "result", "title": "Status", "fields": [
                {"var": "load", "type": "text-single", "label": "Load", "value": "0.5"},
                {"var": "peers", "type": "jid-multi", "value": ["a@b", "c@d"]}]}}})
    } else if req.get("items").is_some() {
        json!({"items": [{"jid": "a@localhost", "name": "A"},
                         {"jid": "b@localhost", "node": "n"}]})
    } else {
        json!({"disco": {"node": "n",
            "identities": [{"category": "automation", "type": "command-list", "name": "Bot"}],
            "features": ["urn:x:a", "urn:x:b"],
            "extensions": {"urn:x:form": {"colour": ["blue"], "ready": true}}}})
    }
}

/// A bot whose XML webhook answers "text" in plain text and anything else with 204.
fn text_or_nothing_bed() -> (Endpoint, Bot, TestClient) {
    let hook = Endpoint::start(false, |r: &Recorded| {
        if r.text().contains("<body>text</body>") {
            Reply::with("text/plain; charset=utf-8", "plain answer")
        } else {
            Reply::status(204)
        }
    });
    let bot = hooked(&format!("url = {}\n", toml_str(&hook.url("/"))));
    (hook, bot, client(shared()))
}

#[test]
fn a_text_answer_reaches_the_sender() {
    let (_hook, bot, mut sender) = text_or_nothing_bed();
    sender.send_message(&bot.jid, "text");
    assert_eq!(
        reply_from(&mut sender, &bot.jid).body.as_deref(),
        Some("plain answer")
    );
}

#[test]
fn a_204_to_a_message_asking_for_a_receipt_sends_the_receipt_alone() {
    let (_hook, bot, mut sender) = text_or_nothing_bed();
    sender.send_raw(&format!(
        "<message to='{}' id='r-1' type='chat'><body>receipt please</body>\
         <request xmlns='urn:xmpp:receipts'/></message>",
        bot.jid
    ));
    let r = sender
        .recv_where(WAIT, |e| e.is("message") && e.contains("received"))
        .expect("a receipt");
    let received = r.el.child_ns("received", "urn:xmpp:receipts").unwrap();
    assert_eq!(received.attr("id"), Some("r-1"), "{}", r.raw);
}

#[test]
fn the_xml_webhook_gets_the_stanza_without_the_client_namespace() {
    let (hook, bot, mut sender) = text_or_nothing_bed();
    sender.send_message(&bot.jid, "text");
    reply_from(&mut sender, &bot.jid);
    let req = hook.requests().pop().unwrap();
    assert!(req.text().starts_with("<message "), "{}", req.text());
    assert!(!req.text().contains("jabber:client"), "{}", req.text());
}

#[test]
fn a_message_stored_offline_reaches_the_webhook_with_its_delay() {
    let p = Prosody::start(ProsodyOpts {
        offline: true,
        ..ProsodyOpts::default()
    });
    let user = unique_user("offlinebot");
    p.register(&user, "pw");
    let mut sender = client(&p);
    sender.send_message(&p.jid(&user), "sent while you were away");
    // Prosody stores it; then the bot comes online and gets it with a delay stamp.
    std::thread::sleep(Duration::from_millis(300));
    let hook = Endpoint::start(false, |_| Reply::status(204));
    let webhook = format!("url = {}\nformat = \"json\"\n", toml_str(&hook.url("/")));
    let _bot = bot_with(Bed::on(&p).account(&user), &webhook);
    let got = requests_from(&hook, "message", &sender.bare_jid(), 1);
    let m = got.first().expect("the stored message reaches the webhook");
    assert_eq!(m["body"], "sent while you were away");
    let stamp = m["delay"]
        .as_str()
        .unwrap_or_else(|| panic!("no delay: {m}"));
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
}

/// A bot whose JSON webhook answers "raw" with a stanza of its own and anything else
/// with a reply to `other`; the bot, a sender and `other`.
fn component_http_bed() -> (Endpoint, Bot, TestClient, TestClient) {
    let p = shared();
    let other = client(p);
    let other_jid = other.bare_jid();
    let hook = Endpoint::start(false, move |r: &Recorded| {
        let body = r.json()["body"].as_str().unwrap_or_default().to_string();
        let answer = match body.as_str() {
            "raw" => json!({"body": "ignored", "stanza":
                "<message type='headline'><body>raw stanza</body><x xmlns='urn:test:x'/></message>"}),
            _ => json!({"to": other_jid, "body": format!("forwarded: {body}")}),
        };
        Reply::with(JSON, &answer.to_string())
    });
    let bot = hooked(&format!(
        "url = {}\nformat = \"json\"\n",
        toml_str(&hook.url("/"))
    ));
    (hook, bot, client(p), other)
}

#[test]
fn a_mod_component_http_answer_with_a_stanza_sends_that_stanza() {
    let (_hook, bot, mut sender, _other) = component_http_bed();
    sender.send_message(&bot.jid, "raw");
    let m = reply_from(&mut sender, &bot.jid);
    assert_eq!(
        (m.body.as_deref(), m.kind.as_str()),
        (Some("raw stanza"), "headline")
    );
    assert!(m.el.child_ns("x", "urn:test:x").is_some(), "{}", m.raw);
}

#[test]
fn a_mod_component_http_answer_with_a_to_goes_there() {
    let (_hook, bot, mut sender, mut other) = component_http_bed();
    sender.send_message(&bot.jid, "pass it on");
    let m = reply_from(&mut other, &bot.jid);
    assert_eq!(m.body.as_deref(), Some("forwarded: pass it on"));
}

/// A bot whose webhook (messages and iqs) answers each hostile body with a hostile
/// answer, anything else with "still here", and iqs with 202.
fn hostile_bed() -> (Endpoint, Bot) {
    let hook = Endpoint::start(false, |r: &Recorded| {
        let text = r.text();
        if text.starts_with("<iq ") {
            return Reply::status(202);
        }
        let answer = [
            ("evil-ns", r#"{"stanza": "<message xmlns='urn:evil'><body>x</body></message>"}"#),
            ("stream", r#"{"stanza": "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"}"#),
            ("two", r#"{"stanza": "<message><body>a</body></message><message/>"}"#),
            ("html", r#"{"body": "x", "html": "</body><script/><body>"}"#),
            ("iq", r#"{"stanza": "<iq type='set' to='localhost'><query xmlns='jabber:iq:roster'/></iq>"}"#),
            ("deep", &format!(r#"{{"stanza": "<message>{}</message>"}}"#, "<a>".repeat(5000))),
        ]
        .into_iter()
        .find(|(k, _)| text.contains(&format!("<body>{k}</body>")))
        .map_or(r#"{"body": "still here"}"#.to_string(), |(_, a)| a.to_string());
        Reply::with(JSON, &answer)
    });
    let bot = hooked(&format!(
        "url = {}\nstanzas = [\"message\", \"iq\"]\n",
        toml_str(&hook.url("/"))
    ));
    (hook, bot)
}

#[test]
fn hostile_webhook_answers_are_dropped_and_the_bot_keeps_serving() {
    let (_hook, mut bot) = hostile_bed();
    let mut sender = client(shared());
    for hostile in ["evil-ns", "stream", "two", "html", "iq", "deep"] {
        sender.send_message(&bot.jid, hostile);
    }
    sender.send_message(&bot.jid, "next");
    let m = reply_from(&mut sender, &bot.jid);
    assert_eq!(m.body.as_deref(), Some("still here"), "{}", m.raw);
    assert!(bot.daemon.count("unusable") >= 5, "{}", bot.daemon.log());
}

#[test]
fn an_iq_the_webhook_answers_202_gets_an_empty_result() {
    let (_hook, bot) = hostile_bed();
    let mut sender = client(shared());
    // Never left waiting.
    sender.send_raw(&format!(
        "<iq type='get' id='q-202' to='{}'><query xmlns='urn:test:q'/></iq>",
        bot.full_jid()
    ));
    let r = sender
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("q-202"))
        .expect("an answer to the iq");
    assert_eq!(r.el.attr("type"), Some("result"), "{}", r.raw);
}
