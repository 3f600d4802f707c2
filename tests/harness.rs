//! Smoke tests of the test bed itself: Prosody instances, certificates, accounts and the
//! independent test client.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::client::{tls_config, Transport};
use common::xml::{next_piece, Element, Piece};
use common::{shared, unique_user, Prosody, ProsodyOpts, Scram, TestClient, DOMAIN};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Options for a lean extra instance (the shared one covers the defaults).
fn lean(scram: Scram) -> ProsodyOpts {
    ProsodyOpts {
        scram,
        smacks: false,
        direct_tls: false,
        muc: false,
        ..ProsodyOpts::default()
    }
}

#[test]
fn splitter_and_parser_handle_any_chunking() {
    let input = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost'>\
        <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>\
        </starttls></stream:features> \n<message a='x>y' b=\"it's\"><body>1 &lt; 2 &amp; \
        &#x263A; ü <![CDATA[<raw>]]></body><!-- c --></message><presence/></stream:stream>";
    for chunk in [1, 2, 3, 7, input.len()] {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for part in input.as_bytes().chunks(chunk) {
            buf.extend_from_slice(part);
            while let Some(p) = next_piece(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 5, "chunk {chunk}: {got:?}");
        let Piece::StreamOpen(open) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(open.attr("id"), Some("s1"));
        let Piece::Stanza(features) = &got[1] else {
            panic!("{got:?}")
        };
        assert!(Element::parse(features).unwrap().contains("required"));
        let Piece::Stanza(msg) = &got[2] else {
            panic!("{got:?}")
        };
        let m = Element::parse(msg).unwrap();
        assert_eq!(m.attr("a"), Some("x>y"));
        assert_eq!(m.attr("b"), Some("it's"));
        assert_eq!(m.child_text("body"), Some("1 < 2 & \u{263A} ü <raw>"));
        assert_eq!(got[3], Piece::Stanza("<presence/>".into()));
        assert_eq!(got[4], Piece::StreamClose);
    }
}

#[test]
fn shared_instance_delivers_text_intact() {
    let p = shared();
    let (a, a_pw) = p.new_user("alice");
    let (b, b_pw) = p.new_user("bob");
    let mut alice = TestClient::connect(p, &a, &a_pw);
    let mut bob = TestClient::connect(p, &b, &b_pw);
    assert_eq!(bob.bare_jid(), p.jid(&b));
    assert!(alice.jid().starts_with(&format!("{a}@{DOMAIN}/")));
    let text = "1 < 2 & \"quoted\" 'single' </body><evil/> ünïcödé 😀\nsecond line";
    alice.send_message(&bob.bare_jid(), text);
    let m = bob.recv_message(WAIT).expect("the message arrives");
    assert_eq!(m.body.as_deref(), Some(text));
    assert_eq!(m.from, alice.jid());
    assert_eq!(m.kind, "chat");
    // Offered on the default instance: SCRAM-SHA-256 and PLAIN, stream management.
    assert!(bob.mechanisms().iter().any(|m| m == "SCRAM-SHA-256"));
    assert!(bob.features().child("sm").is_some(), "{:?}", bob.features());
}

#[test]
fn message_to_an_offline_account_bounces() {
    let p = shared();
    let (a, a_pw) = p.new_user("sender");
    let (absent, _) = p.new_user("absent");
    let mut alice = TestClient::connect(p, &a, &a_pw);
    alice.send_message(&p.jid(&absent), "nobody home");
    let bounce = alice
        .recv_where(WAIT, |e| e.is("message") && e.attr("type") == Some("error"))
        .expect("an error bounce");
    assert_eq!(bounce.el.attr("from"), Some(p.jid(&absent).as_str()));
}

#[test]
fn sha1_instance_without_encryption_requirement_offers_scram_sha1() {
    let p = Prosody::start(ProsodyOpts {
        require_encryption: false,
        ..lean(Scram::Sha1)
    });
    let (u, pw) = p.new_user("sha1");
    let c = TestClient::connect(&p, &u, &pw);
    assert!(
        c.mechanisms().iter().any(|m| m == "SCRAM-SHA-1"),
        "{:?}",
        c.mechanisms()
    );
    assert!(!c.mechanisms().iter().any(|m| m == "SCRAM-SHA-256"));
    assert!(c.features().child("sm").is_none(), "smacks is off");
    // Without TLS the server offers SCRAM (not PLAIN) and does not insist on STARTTLS.
    let features = plaintext_features(p.c2s_port);
    assert!(features
        .child("starttls")
        .unwrap()
        .child("required")
        .is_none());
    let plain_mechs: Vec<&str> = features
        .child("mechanisms")
        .map(|m| m.children.iter().map(|x| x.text.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(plain_mechs, ["SCRAM-SHA-1"]);
    assert!(p.direct_tls_port.is_none());
}

#[test]
fn default_instance_requires_starttls() {
    let features = plaintext_features(shared().c2s_port);
    assert!(features
        .child("starttls")
        .unwrap()
        .child("required")
        .is_some());
    assert!(features.child("mechanisms").is_none(), "{features:?}");
}

/// The stream features a plaintext client sees on `port`.
fn plaintext_features(port: u16) -> Element {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(piece) = next_piece(&mut buf).unwrap() {
            if let Piece::Stanza(raw) = piece {
                return Element::parse(&raw).unwrap();
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the features");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn direct_tls_presents_the_pinned_certificate_for_name_and_address() {
    let p = shared();
    let (u, pw) = p.new_user("direct");
    let c = TestClient::connect_direct_tls(p, &u, &pw);
    let der = c.peer_certificate().expect("a TLS peer certificate");
    let der = rustls::pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).unwrap();
    let spki = cert.subject_public_key_info();
    let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
        p.pin()
    );
    // The certificate also verifies for the loopback address (a config with server = IP).
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls_config(p.ca_file()).unwrap(), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", p.direct_tls_port.unwrap())).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
}

#[test]
fn stop_and_start_again_keep_ports_and_accounts() {
    let mut p = Prosody::start(lean(Scram::Sha256));
    let (u, pw) = p.new_user("restart");
    let mut before = TestClient::connect(&p, &u, &pw);
    let port = p.c2s_port;
    let started = Instant::now();
    p.stop();
    assert!(!p.is_running());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "SIGTERM is enough"
    );
    // Prosody may or may not get a <system-shutdown/> stream error out before it exits.
    while let Some(goodbye) = before.recv_stanza(WAIT) {
        assert!(goodbye.contains("system-shutdown"), "{goodbye}");
    }
    assert!(before.is_closed(), "the stream ends with the server");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    p.start_again();
    assert_eq!(p.c2s_port, port);
    let after = TestClient::try_connect(&p, &u, &pw, Transport::StartTls).unwrap();
    assert!(after.jid().starts_with(&p.jid(&u)));
    assert_eq!(p.log().matches("Hello and welcome to Prosody").count(), 2);
}

#[test]
fn muc_rooms_can_be_created_and_joined() {
    let p = shared();
    let room = p.room(&unique_user("room"));
    let (a, a_pw) = p.new_user("muc-a");
    let (b, b_pw) = p.new_user("muc-b");
    let mut alice = TestClient::connect(p, &a, &a_pw);
    let mut bob = TestClient::connect(p, &b, &b_pw);
    alice.join_room(&room, "Alice");
    bob.join_room(&room, "Bob");
    alice.send_groupchat(&room, "hello <room> & all");
    let m = bob.recv_message(WAIT).expect("the groupchat arrives");
    assert_eq!(m.from, format!("{room}/Alice"));
    assert_eq!(m.kind, "groupchat");
    assert_eq!(m.body.as_deref(), Some("hello <room> & all"));
}

#[test]
fn wrong_password_is_refused() {
    let p = shared();
    let (u, _) = p.new_user("wrong");
    let err = TestClient::try_connect(p, &u, "not-the-password", Transport::StartTls)
        .err()
        .expect("refused");
    assert!(err.contains("not-authorized"), "{err}");
}

#[test]
fn xrelay_config_overrides_removes_and_appends() {
    let p = shared();
    let path = p.xrelay_config_with(
        "bot",
        "pa\"ss\\word",
        &[
            ("tls", "\"direct\""),
            ("ca_file", ""),
            ("rooms", "[\"r@x\"]"),
        ],
        "[http]\nlisten = [\"127.0.0.1:1\"]",
    );
    let text = std::fs::read_to_string(path).unwrap();
    let expected = format!(
        "[xmpp]\njid = \"bot@localhost\"\npassword = \"pa\\\"ss\\\\word\"\n\
         server = \"127.0.0.1\"\nport = {}\ntls = \"direct\"\nrooms = [\"r@x\"]\n\n\
         [http]\nlisten = [\"127.0.0.1:1\"]\n",
        p.c2s_port
    );
    assert_eq!(text, expected);
    let plain = std::fs::read_to_string(p.xrelay_config("bot", "pw", &[])).unwrap();
    assert!(plain.contains(&format!("ca_file = \"{}\"", p.ca_file().display())));
    assert!(plain.contains("tls = \"starttls\""));
}

/// Run by `shared_instance_dies_with_the_test_process` in a child test process.
#[test]
#[ignore = "runs only as the child process of another test"]
fn child_starts_the_shared_instance() {
    println!("PROSODY_PID={}", shared().pid().unwrap());
}

#[test]
fn shared_instance_dies_with_the_test_process() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_starts_the_shared_instance",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PROSODY_PID="))
        .expect("the child reports Prosody's pid")
        .parse()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "Prosody {pid} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` runs (a zombie waiting for its reaper counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}

#[test]
fn pings_from_peers_are_answered() {
    let p = shared();
    let (a, a_pw) = p.new_user("pinger");
    let (b, b_pw) = p.new_user("pinged");
    let mut alice = TestClient::connect(p, &a, &a_pw);
    let bob = TestClient::connect(p, &b, &b_pw);
    alice.send_raw(&format!(
        "<iq type='get' id='p1' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
        bob.jid()
    ));
    // Bob answers while he waits for anything himself, until Alice has her answer.
    let (done, stop) = std::sync::mpsc::channel::<()>();
    let waiter = std::thread::spawn(move || {
        let mut bob = bob;
        let mut queued = Vec::new();
        while stop.try_recv().is_err() {
            queued.extend(bob.recv_stanza(Duration::from_millis(20)));
        }
        queued
    });
    let pong = alice
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("p1"))
        .expect("an answer");
    done.send(()).unwrap();
    assert_eq!(pong.el.attr("type"), Some("result"), "{}", pong.raw);
    let queued = waiter.join().unwrap();
    assert!(queued.is_empty(), "the ping is not queued: {queued:?}");
}
