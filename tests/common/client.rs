//! A small blocking XMPP client of the tests' own (STARTTLS or direct TLS, SASL PLAIN,
//! resource bind, presence), written apart from xrelay's XMPP code so that it checks xrelay
//! from the outside.

use super::xml::{escape, next_piece, Element, Piece};
use super::Server;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on each login step and on [`TestClient::join_room`].
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on writes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const NS_PING: &str = "urn:xmpp:ping";

/// How the client reaches Prosody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The c2s port, upgraded with STARTTLS.
    StartTls,
    /// The direct TLS port (XEP-0368).
    DirectTls,
}

/// A received top-level stanza.
#[derive(Debug, Clone)]
pub(crate) struct Stanza {
    /// Parsed.
    pub el: Element,
    /// As received.
    pub raw: String,
}

/// A received `<message>`.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// `from`, empty if absent.
    pub from: String,
    /// `to`, empty if absent.
    pub to: String,
    /// `type`, `"normal"` if absent (RFC 6121's default).
    pub kind: String,
    /// `id`, if any.
    pub id: Option<String>,
    /// The first `<body>`, unescaped.
    pub body: Option<String>,
    /// The first `<subject>`, unescaped.
    pub subject: Option<String>,
    /// The stanza as received.
    pub raw: String,
    /// The stanza parsed, for other children.
    pub el: Element,
}

impl Message {
    /// The message fields of a received `<message>` stanza.
    pub(crate) fn from_stanza(s: Stanza) -> Self {
        let attr = |name: &str| s.el.attr(name).unwrap_or_default().to_string();
        Self {
            from: attr("from"),
            to: attr("to"),
            kind: s.el.attr("type").unwrap_or("normal").to_string(),
            id: s.el.attr("id").map(str::to_string),
            body: s.el.child_text("body").map(str::to_string),
            subject: s.el.child_text("subject").map(str::to_string),
            raw: s.raw,
            el: s.el,
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

impl Conn {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Tcp(s) => Some(s),
            Self::Tls(t) => Some(&t.sock),
            Self::Gone => None,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Tls(t) => t.read(buf),
            Self::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Tls(t) => t.write(buf),
            Self::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Tls(t) => t.flush(),
            Self::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// A logged-in account that is online (initial presence processed by the server).
///
/// Incoming stanzas are queued in arrival order; each `recv_*` takes the first one that
/// matches and leaves the others queued. Server and peer pings (`urn:xmpp:ping` gets) are
/// answered automatically and not queued; other iqs are queued for the test to answer.
pub(crate) struct TestClient {
    conn: Conn,
    buf: Vec<u8>,
    queue: VecDeque<Stanza>,
    jid: String,
    domain: String,
    closed: bool,
    mechanisms: Vec<String>,
    features: Element,
}

impl TestClient {
    /// Logs in as `user` over STARTTLS and goes online; panics (with Prosody's log) on
    /// failure.
    pub(crate) fn connect(p: &(impl Server + ?Sized), user: &str, password: &str) -> Self {
        Self::connect_over(p, user, password, Transport::StartTls)
    }

    /// Like [`TestClient::connect`], over the direct TLS port.
    pub(crate) fn connect_direct_tls(
        p: &(impl Server + ?Sized),
        user: &str,
        password: &str,
    ) -> Self {
        Self::connect_over(p, user, password, Transport::DirectTls)
    }

    fn connect_over(p: &(impl Server + ?Sized), user: &str, password: &str, t: Transport) -> Self {
        Self::try_connect(p, user, password, t).unwrap_or_else(|e| {
            panic!(
                "{user} cannot log in over {t:?}: {e}\nthe server's log:\n{}",
                p.log()
            )
        })
    }

    /// Logs in as `user` and goes online, or says which step failed.
    pub(crate) fn try_connect(
        p: &(impl Server + ?Sized),
        user: &str,
        password: &str,
        transport: Transport,
    ) -> Result<Self, String> {
        static RESOURCE: AtomicUsize = AtomicUsize::new(0);
        let port = match transport {
            Transport::StartTls => p.c2s_port(),
            Transport::DirectTls => p
                .direct_tls_port()
                .ok_or("the instance has no direct TLS")?,
        };
        let tcp =
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), STEP_TIMEOUT)
                .map_err(|e| format!("connect to port {port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tcp.set_write_timeout(Some(WRITE_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut c = Self {
            conn: Conn::Tcp(tcp),
            buf: Vec::new(),
            queue: VecDeque::new(),
            jid: String::new(),
            domain: p.domain().to_string(),
            closed: false,
            mechanisms: Vec::new(),
            features: Element::default(),
        };
        if transport == Transport::DirectTls {
            c.start_tls(p.ca_file())?;
        }
        let mut features = c.open_stream()?;
        if transport == Transport::StartTls {
            if features.child("starttls").is_none() {
                return Err(format!("no STARTTLS offered: {features:?}"));
            }
            c.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")?;
            let answer = c.login_stanza()?;
            if !answer.el.is("proceed") {
                return Err(format!("STARTTLS refused: {}", answer.raw));
            }
            if !c.buf.iter().all(u8::is_ascii_whitespace) {
                return Err("plaintext data after <proceed/>".into());
            }
            c.buf.clear();
            c.start_tls(p.ca_file())?;
            features = c.open_stream()?;
        }
        c.mechanisms = features
            .child("mechanisms")
            .map(|m| m.children.iter().map(|x| x.text.clone()).collect())
            .unwrap_or_default();
        if !c.mechanisms.iter().any(|m| m == "PLAIN") {
            return Err(format!("no SASL PLAIN offered: {features:?}"));
        }
        let plain =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        c.write(
            format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
            )
            .as_bytes(),
        )?;
        let answer = c.login_stanza()?;
        if !answer.el.is("success") {
            return Err(format!("authentication failed: {}", answer.raw));
        }
        c.features = c.open_stream()?;
        if c.features.child("bind").is_none() {
            return Err(format!("no resource binding offered: {:?}", c.features));
        }
        let resource = format!("test-{}", RESOURCE.fetch_add(1, Ordering::Relaxed));
        c.write(
            format!(
                "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                 <resource>{resource}</resource></bind></iq>"
            )
            .as_bytes(),
        )?;
        let answer = c.login_stanza()?;
        c.jid = answer
            .el
            .child("bind")
            .and_then(|b| b.child_text("jid"))
            .ok_or_else(|| format!("resource binding failed: {}", answer.raw))?
            .to_string();
        // The server handles a session's stanzas in order: once the ping is answered, the
        // initial presence has been processed and messages to the bare JID reach us.
        c.write(
            format!(
                "<presence/><iq type='get' id='online' to='{}'><ping xmlns='{NS_PING}'/></iq>",
                escape(&c.domain)
            )
            .as_bytes(),
        )?;
        c.recv_where(STEP_TIMEOUT, |e| {
            e.is("iq") && e.attr("id") == Some("online")
        })
        .ok_or("no answer to the ping after initial presence")?;
        let me = c.jid.clone();
        c.queue
            .retain(|s| !(s.el.is("presence") && s.el.attr("from") == Some(me.as_str())));
        Ok(c)
    }

    /// The full JID the server bound.
    pub(crate) fn jid(&self) -> String {
        self.jid.clone()
    }

    /// The bare JID.
    pub(crate) fn bare_jid(&self) -> String {
        self.jid.split('/').next().unwrap_or_default().to_string()
    }

    /// The SASL mechanisms the server offered (after TLS).
    pub(crate) fn mechanisms(&self) -> &[String] {
        &self.mechanisms
    }

    /// The stream features after authentication (`bind`, `sm`, ...).
    pub(crate) fn features(&self) -> &Element {
        &self.features
    }

    /// Writes `xml` as is.
    pub(crate) fn send_raw(&mut self, xml: &str) {
        if let Err(e) = self.write(xml.as_bytes()) {
            panic!("{} cannot send: {e}", self.jid);
        }
    }

    /// Sends a chat message with `body` (escaped here) to `to`.
    pub(crate) fn send_message(&mut self, to: &str, body: &str) {
        self.send_raw(&format!(
            "<message type='chat' to='{}'><body>{}</body></message>",
            escape(to),
            escape(body)
        ));
    }

    /// Sends a groupchat message with `body` (escaped here) to `room` (joined before).
    pub(crate) fn send_groupchat(&mut self, room: &str, body: &str) {
        self.send_raw(&format!(
            "<message type='groupchat' to='{}'><body>{}</body></message>",
            escape(room),
            escape(body)
        ));
    }

    /// Fetches the roster as (jid, subscription, ask) per item. The session then also
    /// gets roster pushes and subscription answers (RFC 6121 §2.1.6, §3.1.6).
    pub(crate) fn roster(&mut self) -> Vec<(String, String, Option<String>)> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let id = format!("roster-{}", N.fetch_add(1, Ordering::Relaxed));
        self.send_raw(&format!(
            "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
        ));
        let result = self
            .recv_where(STEP_TIMEOUT, |e| {
                e.is("iq") && e.attr("id") == Some(id.as_str())
            })
            .unwrap_or_else(|| panic!("{} got no roster", self.jid));
        let query = result.el.child("query").cloned().unwrap_or_default();
        query
            .children
            .iter()
            .map(|i| {
                (
                    i.attr("jid").unwrap_or_default().to_string(),
                    i.attr("subscription").unwrap_or("none").to_string(),
                    i.attr("ask").map(str::to_string),
                )
            })
            .collect()
    }

    /// Sends a `<presence type='KIND'/>` to `to`.
    pub(crate) fn send_presence(&mut self, to: &str, kind: &str) {
        self.send_raw(&format!(
            "<presence to='{}' type='{}'/>",
            escape(to),
            escape(kind)
        ));
    }

    /// The next `<presence type='KIND'/>` from the bare JID `from` (any resource), or `None`
    /// after `timeout`.
    pub(crate) fn recv_presence(
        &mut self,
        from: &str,
        kind: &str,
        timeout: Duration,
    ) -> Option<Stanza> {
        self.recv_where(timeout, |e| {
            e.is("presence")
                && e.attr("type") == Some(kind)
                && e.attr("from")
                    .is_some_and(|f| f.split('/').next() == Some(from))
        })
    }

    /// The next `<message>` with a body, or `None` after `timeout`.
    pub(crate) fn recv_message(&mut self, timeout: Duration) -> Option<Message> {
        self.recv_where(timeout, |e| e.is("message") && e.child("body").is_some())
            .map(Message::from_stanza)
    }

    /// The next stanza of any kind as received, or `None` after `timeout`.
    pub(crate) fn recv_stanza(&mut self, timeout: Duration) -> Option<String> {
        self.recv_where(timeout, |_| true).map(|s| s.raw)
    }

    /// The next stanza matching `pred`, or `None` after `timeout` (or once the stream has
    /// ended and nothing queued matches).
    pub(crate) fn recv_where(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Element) -> bool,
    ) -> Option<Stanza> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.queue.iter().position(|s| pred(&s.el)) {
                return self.queue.remove(i);
            }
            if !self.read_more(deadline) {
                return None;
            }
        }
    }

    /// Drops all queued stanzas and returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        n
    }

    /// Whether the server ended the stream or the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Joins MUC `room` (`name@service`) as `nick` without history and waits for the own
    /// presence in it; panics if the room refuses. Other occupants' presences stay queued.
    pub(crate) fn join_room(&mut self, room: &str, nick: &str) {
        let me = format!("{room}/{nick}");
        self.send_raw(&format!(
            "<presence to='{}'><x xmlns='http://jabber.org/protocol/muc'>\
             <history maxstanzas='0'/></x></presence>",
            escape(&me)
        ));
        let joined = self.recv_where(STEP_TIMEOUT, |e| {
            e.is("presence") && e.attr("from").is_some_and(|f| f.eq_ignore_ascii_case(&me))
        });
        match joined {
            Some(s) if s.el.attr("type") != Some("error") => {}
            Some(s) => panic!("{} cannot join {me}: {}", self.jid, s.raw),
            None => panic!("{} got no presence from {me}", self.jid),
        }
    }

    /// DER of the certificate the server presented.
    pub(crate) fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.conn {
            Conn::Tls(t) => t.conn.peer_certificates()?.first().map(|c| c.to_vec()),
            _ => None,
        }
    }

    /// Ends the stream and waits (briefly) for the server to end its side.
    pub(crate) fn close(mut self) {
        let _ = self.write(b"</stream:stream>");
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !self.closed && self.read_more(deadline) {}
        self.closed = true;
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.conn
            .write_all(bytes)
            .and_then(|()| self.conn.flush())
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads once (until `deadline` at most) and queues the complete stanzas; `false` when
    /// nothing more can arrive in time.
    fn read_more(&mut self, deadline: Instant) -> bool {
        if self.closed {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Some(tcp) = self.conn.tcp() {
            let _ = tcp.set_read_timeout(Some(left));
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.conn.read(&mut chunk) {
            Ok(0) => self.closed = true,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.take_stanzas();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => self.closed = true,
        }
        true
    }

    /// Moves complete stanzas from the buffer to the queue, answering pings.
    fn take_stanzas(&mut self) {
        loop {
            let piece = match next_piece(&mut self.buf) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => panic!("{} got bad XML: {e}", self.jid),
            };
            let raw = match piece {
                Piece::Stanza(raw) => raw,
                Piece::StreamClose => {
                    self.closed = true;
                    return;
                }
                Piece::StreamOpen(_) => continue,
            };
            let el = Element::parse(&raw).unwrap_or_else(|e| panic!("{} got {e}", self.jid));
            let is_ping = el.is("iq")
                && el.attr("type") == Some("get")
                && el.child_ns("ping", NS_PING).is_some();
            if is_ping {
                let mut reply = String::from("<iq type='result'");
                for attr in ["id", "from"] {
                    if let Some(v) = el.attr(attr) {
                        let name = if attr == "from" { "to" } else { attr };
                        reply.push_str(&format!(" {name}='{}'", escape(v)));
                    }
                }
                reply.push_str("/>");
                let _ = self.write(reply.as_bytes());
            } else {
                self.queue.push_back(Stanza { el, raw });
            }
        }
    }

    /// Sends a stream header and returns the stream features that follow.
    fn open_stream(&mut self) -> Result<Element, String> {
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams'>",
            escape(&self.domain)
        );
        self.write(header.as_bytes())?;
        match self.login_piece()? {
            Piece::StreamOpen(_) => {}
            other => return Err(format!("expected a stream header, got {other:?}")),
        }
        let features = self.login_stanza()?;
        if features.el.is("features") {
            Ok(features.el)
        } else {
            Err(format!("expected stream features, got {}", features.raw))
        }
    }

    /// The next top-level stanza during login (no queueing, no pings yet).
    fn login_stanza(&mut self) -> Result<Stanza, String> {
        match self.login_piece()? {
            Piece::Stanza(raw) => Ok(Stanza {
                el: Element::parse(&raw)?,
                raw,
            }),
            other => Err(format!("expected a stanza, got {other:?}")),
        }
    }

    fn login_piece(&mut self) -> Result<Piece, String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(piece) = next_piece(&mut self.buf)? {
                return Ok(piece);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "timed out; received so far: {}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            if let Some(tcp) = self.conn.tcp() {
                let _ = tcp.set_read_timeout(Some(left));
            }
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Replaces the TCP connection by TLS to the server (trusting only `ca`) and completes
    /// the handshake.
    fn start_tls(&mut self, ca: &Path) -> Result<(), String> {
        let Conn::Tcp(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err("TLS is already on".into());
        };
        tcp.set_read_timeout(Some(STEP_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(self.domain.clone()).map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(tls_config(ca)?, name).map_err(|e| format!("TLS: {e}"))?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.write(b"</stream:stream>");
        }
    }
}

/// A rustls client config (ring provider) that trusts only the certificates in `ca`.
pub(crate) fn tls_config(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("read {ca:?}: {e}"))? {
        let cert = cert.map_err(|e| format!("read {ca:?}: {e}"))?;
        roots.add(cert).map_err(|e| format!("trust {ca:?}: {e}"))?;
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
