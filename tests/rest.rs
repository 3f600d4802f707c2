//! `/rest` (mod_rest's sending side) against a real Prosody: stanzas sent as XML, JSON and
//! plain text arrive at a second account; iq requests wait for and return the reply; every
//! refusal has mod_rest's status.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, Bed, Bot, HttpResponse};
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const XML: &str = "application/xmpp+xml";
const JSON: &str = "application/json";

/// A daemon with a `rest` key (`extra` adds config sections) and a recipient account.
fn bed(extra: &str) -> Bot {
    Bed::new().section(extra).key("rest").peer("rcpt").start()
}

/// `res` has `status`.
fn expect(res: &HttpResponse, status: u16) {
    assert_eq!(res.status, status, "{}", res.body);
}

fn json(res: &HttpResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|e| panic!("{e}: {}", res.body))
}

#[test]
fn an_xml_message_is_reserialized_with_its_text_escaped_and_unknown_attributes_dropped() {
    let mut b = bed("");
    let rcpt = b.peer().bare_jid();
    let res = b.post(
        "/rest",
        XML,
        format!("<message to='{rcpt}' type='chat' id='x1' foo='bar'><body>1 &lt; 2 &amp; ok</body></message>"),
    );
    expect(&res, 202);
    assert_eq!(json(&res)["id"], "x1");
    let m = b.peer().recv_message(WAIT).expect("the XML message");
    assert_eq!(m.body.as_deref(), Some("1 < 2 & ok"));
    assert_eq!(m.id.as_deref(), Some("x1"));
    assert!(m.from.starts_with(&b.jid));
}

#[test]
fn a_json_message_is_sent() {
    let mut b = bed("");
    let rcpt = b.peer().bare_jid();
    let res = b.post(
        "/rest",
        JSON,
        format!(r#"{{"to":"{rcpt}","body":"from json","type":"chat"}}"#),
    );
    expect(&res, 202);
    assert_eq!(
        b.peer().recv_message(WAIT).unwrap().body.as_deref(),
        Some("from json")
    );
}

#[test]
fn a_text_body_on_the_path_form_is_sent_with_the_paths_type() {
    let mut b = bed("");
    let rcpt = b.peer().bare_jid();
    let res = b.post(
        &format!("/rest/message/headline/{rcpt}"),
        "text/plain",
        "from the path",
    );
    expect(&res, 202);
    let m = b.peer().recv_message(WAIT).unwrap();
    assert_eq!(
        (m.body.as_deref(), m.kind.as_str()),
        (Some("from the path"), "headline")
    );
}

#[test]
fn an_iq_ping_to_the_server_returns_the_result_as_xml() {
    let b = bed("");
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    expect(&res, 200);
    assert_eq!(res.header("Content-Type"), Some(XML));
    assert!(
        res.body.contains("type='result'") && res.body.contains("id='p1'"),
        "{}",
        res.body
    );
}

#[test]
fn a_json_disco_request_returns_the_servers_features_as_json() {
    let b = bed("");
    let res = b.post(
        "/rest",
        JSON,
        r#"{"kind":"iq","type":"get","to":"localhost","disco":true}"#,
    );
    expect(&res, 200);
    assert_eq!(res.header("Content-Type"), Some(JSON));
    let v = json(&res);
    assert_eq!(
        (v["kind"].as_str(), v["type"].as_str()),
        (Some("iq"), Some("result"))
    );
    let features: Vec<&str> = v["disco"]["features"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(features.contains(&"urn:xmpp:ping"), "{features:?}");
}

#[test]
fn a_version_get_accepting_json_is_answered_in_json() {
    let b = bed("");
    let res = b.request("GET", "/rest/version/localhost", &[("Accept", JSON)], b"");
    expect(&res, 200);
    assert_eq!(json(&res)["version"]["name"], "Prosody");
}

#[test]
fn an_iq_to_a_missing_account_returns_its_error_stanza() {
    let b = bed("");
    // Its error stanza is the answer (mod_rest).
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='nobody-here@localhost/x' id='e1'><query xmlns='jabber:iq:version'/></iq>",
    );
    expect(&res, 200);
    assert!(res.body.contains("type='error'"), "{}", res.body);
}

#[test]
fn an_iq_nobody_answers_gets_504_within_the_requested_timeout() {
    let mut b = bed("");
    // An account that never answers.
    let silent = b.peer().jid();
    let start = Instant::now();
    let res = b.request(
        "POST",
        "/rest",
        &[("Content-Type", XML), ("X-Timeout", "1")],
        format!("<iq type='get' to='{silent}' id='s1'><query xmlns='jabber:iq:version'/></iq>"),
    );
    expect(&res, 504);
    assert_eq!(json(&res)["id"], "s1");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(b
        .peer()
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("s1"))
        .is_some());
}

/// A bed where one iq may wait for its reply.
fn one_waiting() -> Bot {
    bed("[rest]\nmax_waiting = 1\n")
}

#[test]
fn each_refused_stanza_gets_mod_rests_status_and_condition() {
    let mut b = one_waiting();
    let rcpt = b.peer().bare_jid();
    let cases: [(&str, &str, String, u16, &str); 13] = [
        ("/rest", "text/html", "<p/>".into(), 415, "bad-format"),
        (
            "/rest",
            XML,
            "<message to='a@b'>".into(),
            400,
            "not-well-formed",
        ),
        ("/rest", JSON, "{\"body\":".into(), 400, "not-well-formed"),
        (
            "/rest",
            XML,
            "<message xmlns='urn:x' to='a@b'/>".into(),
            422,
            "invalid-namespace",
        ),
        (
            "/rest",
            XML,
            "<stanza to='a@b'/>".into(),
            422,
            "unsupported-stanza-type",
        ),
        (
            "/rest",
            XML,
            "<message to='a@@b'/>".into(),
            422,
            "improper-addressing",
        ),
        (
            "/rest",
            XML,
            "<iq type='result' to='localhost'/>".into(),
            422,
            "invalid-xml",
        ),
        (
            "/rest",
            XML,
            "<iq type='get' to='localhost'/>".into(),
            422,
            "bad-format",
        ),
        (
            "/rest",
            XML,
            "<iq type='get' to='localhost'><a xmlns='u:a'/><b xmlns='u:b'/></iq>".into(),
            422,
            "bad-format",
        ),
        (
            "/rest",
            XML,
            format!("<message from='{rcpt}' to='{rcpt}'/>"),
            403,
            "not-authorized",
        ),
        (
            "/rest",
            JSON,
            format!(r#"{{"kind":"iq","to":"{rcpt}","body":"x"}}"#),
            422,
            "bad-format",
        ),
        (
            "/rest/message",
            "text/plain",
            "x".into(),
            400,
            "not-well-formed",
        ),
        (
            "/rest/message/chat/a%zz",
            "text/plain",
            "x".into(),
            422,
            "improper-addressing",
        ),
    ];
    for (path, ct, body, status, condition) in &cases {
        let res = b.post(path, ct, body);
        assert_eq!(res.status, *status, "{path} {ct} {body}: {}", res.body);
        let v = json(&res);
        assert_eq!(v["condition"], *condition, "{body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

#[test]
fn a_stanza_over_the_body_limit_gets_413() {
    let mut b = one_waiting();
    let rcpt = b.peer().bare_jid();
    let big = format!(
        "<message to='{rcpt}'><body>{}</body></message>",
        "x".repeat(70_000)
    );
    assert_eq!(b.post("/rest", XML, &big).status, 413);
}

#[test]
fn a_get_on_rest_gets_405() {
    let b = one_waiting();
    assert_eq!(b.get("/rest").status, 405);
}

#[test]
fn a_post_without_credentials_gets_401() {
    let b = one_waiting();
    assert_eq!(
        http(
            b.port,
            "POST",
            "/rest",
            &[("Content-Type", XML)],
            b"<message/>"
        )
        .status,
        401
    );
}

#[test]
fn a_key_without_the_rest_scope_gets_403() {
    let b = one_waiting();
    let msg_key = b.key("msg");
    let res = http(
        b.port,
        "POST",
        "/rest",
        &[
            ("Authorization", &format!("Bearer {msg_key}")),
            ("Content-Type", XML),
        ],
        b"<message to='a@b'><body>x</body></message>",
    );
    assert_eq!(res.status, 403);
}

#[test]
fn an_iq_beyond_max_waiting_gets_503_until_the_waiting_one_times_out() {
    let mut b = one_waiting();
    // One iq may wait (max_waiting = 1): a second gets 503 at once, and the slot frees when
    // the first times out.
    let silent = b.peer().jid();
    let port = b.port;
    let auth = b.auth();
    let first = std::thread::spawn(move || {
        http(
            port,
            "POST",
            "/rest",
            &[
                ("Authorization", &auth),
                ("Content-Type", XML),
                ("X-Timeout", "2"),
            ],
            format!("<iq type='get' to='{silent}' id='w1'><query xmlns='jabber:iq:version'/></iq>")
                .as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='localhost' id='w2'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.header("Retry-After").is_some());
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(first.join().unwrap().status, 504);
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='localhost' id='w3'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_eq!(res.status, 200, "{}", res.body);
}
