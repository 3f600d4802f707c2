//! A small blocking XMPP client of the tests' own. Its login (STARTTLS, PLAIN, bind) is
//! written out here by hand rather than going through xrelay's stream code, so it checks
//! xrelay from the outside; only the framing of what Prosody sends reuses xrelay's parser.

use super::{Prosody, DOMAIN};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xrelay::xmpp::xml::{Element, Framer, StreamEvent};

const NS_CLIENT: &str = "jabber:client";

/// A message as received.
#[derive(Debug, Clone)]
pub struct Message {
    pub from: String,
    pub to: String,
    pub kind: String,
    pub body: Option<String>,
    pub subject: Option<String>,
    pub raw: String,
}

/// A logged-in account with initial presence sent.
pub struct TestClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    framer: Framer,
    jid: String,
    /// Stanzas read but not yet asked for.
    pending: Vec<Element>,
}

fn read_until(s: &mut impl Read, framer: &mut Framer, want: &str) -> Element {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(ev) = framer.next_event().expect("well-formed server XML") {
            if let StreamEvent::Element(e) = ev {
                if e.name() == want {
                    return e;
                }
            }
        }
        let n = s.read(&mut buf).expect("server answers");
        assert!(n > 0, "server closed while waiting for <{want}>");
        framer.feed(&buf[..n]).unwrap();
    }
}

fn header() -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
}

impl TestClient {
    /// Log in as `user` and send initial presence.
    pub fn connect(p: &Prosody, user: &str, password: &str) -> TestClient {
        let mut tcp = TcpStream::connect(("127.0.0.1", p.c2s_port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut framer = Framer::new(1 << 20);
        tcp.write_all(header().as_bytes()).unwrap();
        read_until(&mut tcp, &mut framer, "features");
        tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .unwrap();
        read_until(&mut tcp, &mut framer, "proceed");
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(p.ca_file()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let conn = ClientConnection::new(
            Arc::new(config),
            ServerName::try_from(DOMAIN.to_string()).unwrap(),
        )
        .unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut framer = Framer::new(1 << 20);
        tls.write_all(header().as_bytes()).unwrap();
        read_until(&mut tls, &mut framer, "features");
        let plain =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        tls.write_all(
            format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
            )
            .as_bytes(),
        )
        .unwrap();
        let result = read_until(&mut tls, &mut framer, "success");
        assert_eq!(result.name(), "success");
        let mut framer = Framer::new(1 << 20);
        tls.write_all(header().as_bytes()).unwrap();
        read_until(&mut tls, &mut framer, "features");
        tls.write_all(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
              <resource>test</resource></bind></iq>",
        )
        .unwrap();
        let bound = read_until(&mut tls, &mut framer, "iq");
        let jid = bound
            .children()
            .next()
            .and_then(|b| b.children().next())
            .map(|j| j.text_content())
            .expect("bound JID");
        tls.write_all(b"<presence/>").unwrap();
        TestClient {
            tls,
            framer,
            jid,
            pending: Vec::new(),
        }
    }

    /// The full JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The bare JID.
    pub fn bare_jid(&self) -> String {
        self.jid.split('/').next().unwrap_or_default().to_string()
    }

    /// Write raw XML.
    pub fn send_raw(&mut self, xml: &str) {
        self.tls.write_all(xml.as_bytes()).unwrap();
        self.tls.flush().unwrap();
    }

    /// The next stanza matching `pred`, answering server pings on the way.
    fn next_matching(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Element) -> bool,
    ) -> Option<Element> {
        if let Some(i) = self.pending.iter().position(&pred) {
            return Some(self.pending.remove(i));
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            while let Some(ev) = self.framer.next_event().expect("well-formed server XML") {
                let StreamEvent::Element(e) = ev else {
                    continue;
                };
                if e.name() == "iq"
                    && e.get_attr("type") == Some("get")
                    && e.children().any(|c| c.name() == "ping")
                {
                    let id = e.get_attr("id").unwrap_or_default().to_string();
                    let from = e.get_attr("from").unwrap_or(DOMAIN).to_string();
                    self.send_raw(&format!("<iq type='result' id='{id}' to='{from}'/>"));
                    continue;
                }
                if pred(&e) {
                    return Some(e);
                }
                self.pending.push(e);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.tls
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.tls.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.feed(&buf[..n]).unwrap(),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// The next `<message>` with a body.
    pub fn recv_message(&mut self, timeout: Duration) -> Option<Message> {
        let e = self.next_matching(timeout, |e| {
            e.name() == "message" && e.get_child("body", NS_CLIENT).is_some()
        })?;
        Some(Message {
            from: e.get_attr("from").unwrap_or_default().to_string(),
            to: e.get_attr("to").unwrap_or_default().to_string(),
            kind: e.get_attr("type").unwrap_or("normal").to_string(),
            body: e.get_child("body", NS_CLIENT).map(|b| b.text_content()),
            subject: e.get_child("subject", NS_CLIENT).map(|b| b.text_content()),
            raw: String::from_utf8(e.to_bytes(NS_CLIENT)).unwrap(),
        })
    }

    /// The next stanza of any kind, serialized.
    pub fn recv_stanza(&mut self, timeout: Duration) -> Option<String> {
        self.next_matching(timeout, |e| e.name() != "presence")
            .map(|e| String::from_utf8(e.to_bytes(NS_CLIENT)).unwrap())
    }

    /// Join a MUC room and wait for our own presence in it.
    pub fn join_room(&mut self, room: &str, nick: &str) {
        self.send_raw(&format!(
            "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        let me = format!("{room}/{nick}");
        self.next_matching(Duration::from_secs(10), |e| {
            e.name() == "presence" && e.get_attr("from") == Some(me.as_str())
        })
        .expect("joined the room");
    }
}
