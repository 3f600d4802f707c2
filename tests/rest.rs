//! `/rest` (mod_rest's sending side) against a real Prosody: stanzas sent as XML, JSON and
//! plain text arrive at a second account; iq requests wait for and return the reply; every
//! refusal has mod_rest's status.

mod common;

use common::{
    http, http_section, shared, unique_user, xrelay, Daemon, HttpResponse, Prosody, TestClient,
};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const XML: &str = "application/xmpp+xml";
const JSON: &str = "application/json";

/// A daemon with a `rest` key and a recipient account.
struct Bed {
    _daemon: Daemon,
    port: u16,
    cfg: PathBuf,
    auth: String,
    bot: String,
    rcpt: TestClient,
}

fn bed(p: &Prosody, extra: &str) -> Bed {
    let bot = unique_user("restbot");
    p.register(&bot, "pw");
    let (port, http_cfg) = http_section(&p.dir);
    let cfg = p.xrelay_config_with(&bot, "pw", &[], &format!("{http_cfg}{extra}"));
    let out = xrelay(&cfg, &["key", "create", "--scope", "rest", "rest-tests"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut daemon = Daemon::start(&cfg);
    daemon.wait_for("online as", WAIT);
    let user = unique_user("rcpt");
    p.register(&user, "pw");
    Bed {
        _daemon: daemon,
        port,
        cfg,
        auth: format!("Bearer {token}"),
        bot: p.jid(&bot),
        rcpt: TestClient::connect(p, &user, "pw"),
    }
}

impl Bed {
    fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        head: &[(&str, &str)],
    ) -> HttpResponse {
        let mut h = vec![("Authorization", self.auth.as_str())];
        if !content_type.is_empty() {
            h.push(("Content-Type", content_type));
        }
        h.extend_from_slice(head);
        http(self.port, "POST", path, &h, body.as_bytes())
    }

    fn expect(&self, res: &HttpResponse, status: u16) {
        assert_eq!(res.status, status, "{}", res.body);
    }
}

fn json(res: &HttpResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|e| panic!("{e}: {}", res.body))
}

#[test]
fn stanzas_are_sent_and_iq_replies_returned() {
    let p = shared();
    let mut b = bed(p, "");
    let rcpt = b.rcpt.bare_jid();

    // XML message: re-serialized, text escaped, extra attributes dropped.
    let res = b.post(
        "/rest",
        XML,
        &format!("<message to='{rcpt}' type='chat' id='x1' foo='bar'><body>1 &lt; 2 &amp; ok</body></message>"),
        &[],
    );
    b.expect(&res, 202);
    assert_eq!(json(&res)["id"], "x1");
    let m = b.rcpt.recv_message(WAIT).expect("the XML message");
    assert_eq!(m.body.as_deref(), Some("1 < 2 & ok"));
    assert_eq!(m.id.as_deref(), Some("x1"));
    assert!(m.from.starts_with(&b.bot));

    // JSON message, and the text/plain path form.
    let res = b.post(
        "/rest",
        JSON,
        &format!(r#"{{"to":"{rcpt}","body":"from json","type":"chat"}}"#),
        &[],
    );
    b.expect(&res, 202);
    assert_eq!(
        b.rcpt.recv_message(WAIT).unwrap().body.as_deref(),
        Some("from json")
    );
    let res = b.post(
        &format!("/rest/message/headline/{rcpt}"),
        "text/plain",
        "from the path",
        &[],
    );
    b.expect(&res, 202);
    let m = b.rcpt.recv_message(WAIT).unwrap();
    assert_eq!(
        (m.body.as_deref(), m.kind.as_str()),
        (Some("from the path"), "headline")
    );

    // iq ping to the server: the result comes back as XML.
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        &[],
    );
    b.expect(&res, 200);
    assert_eq!(res.header("Content-Type"), Some(XML));
    assert!(
        res.body.contains("type='result'") && res.body.contains("id='p1'"),
        "{}",
        res.body
    );

    // disco#info of the server as JSON.
    let res = b.post(
        "/rest",
        JSON,
        r#"{"kind":"iq","type":"get","to":"localhost","disco":true}"#,
        &[],
    );
    b.expect(&res, 200);
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

    // Software version by GET, answered as JSON because Accept asks for it.
    let res = http(
        b.port,
        "GET",
        "/rest/version/localhost",
        &[("Authorization", b.auth.as_str()), ("Accept", JSON)],
        b"",
    );
    b.expect(&res, 200);
    assert_eq!(json(&res)["version"]["name"], "Prosody");

    // An iq to an account that does not exist: its error stanza is the answer (mod_rest).
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='nobody-here@localhost/x' id='e1'><query xmlns='jabber:iq:version'/></iq>",
        &[],
    );
    b.expect(&res, 200);
    assert!(res.body.contains("type='error'"), "{}", res.body);

    // An account that never answers: 504 within the requested timeout.
    let silent = b.rcpt.jid();
    let start = Instant::now();
    let res = b.post(
        "/rest",
        XML,
        &format!("<iq type='get' to='{silent}' id='s1'><query xmlns='jabber:iq:version'/></iq>"),
        &[("X-Timeout", "1")],
    );
    b.expect(&res, 504);
    assert_eq!(json(&res)["id"], "s1");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(b
        .rcpt
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("s1"))
        .is_some());
}

#[test]
fn every_refusal_and_the_bounded_waiting_set() {
    let p = shared();
    let b = bed(p, "[rest]\nmax_waiting = 1\n");
    let rcpt = b.rcpt.bare_jid();
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
        let res = b.post(path, ct, body, &[]);
        assert_eq!(res.status, *status, "{path} {ct} {body}: {}", res.body);
        let v = json(&res);
        assert_eq!(v["condition"], *condition, "{body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    let big = format!(
        "<message to='{rcpt}'><body>{}</body></message>",
        "x".repeat(70_000)
    );
    assert_eq!(b.post("/rest", XML, &big, &[]).status, 413);
    assert_eq!(
        http(
            b.port,
            "GET",
            "/rest",
            &[("Authorization", b.auth.as_str())],
            b""
        )
        .status,
        405
    );
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
    let msg_key =
        String::from_utf8(xrelay(&b.cfg, &["key", "create", "--scope", "msg"]).stdout).unwrap();
    let res = http(
        b.port,
        "POST",
        "/rest",
        &[
            ("Authorization", &format!("Bearer {}", msg_key.trim())),
            ("Content-Type", XML),
        ],
        b"<message to='a@b'><body>x</body></message>",
    );
    assert_eq!(res.status, 403);

    // One iq may wait (max_waiting = 1): a second gets 503 at once, and the slot frees when
    // the first times out.
    let silent = b.rcpt.jid();
    let port = b.port;
    let auth = b.auth.clone();
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
        &[],
    );
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.header("Retry-After").is_some());
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(first.join().unwrap().status, 504);
    let res = b.post(
        "/rest",
        XML,
        "<iq type='get' to='localhost' id='w3'><ping xmlns='urn:xmpp:ping'/></iq>",
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.body);
}
