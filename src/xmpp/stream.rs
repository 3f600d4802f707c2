//! The client stream as a sans-I/O state machine (RFC 6120, XEP-0198, XEP-0199).
//!
//! [`Client`] owns the protocol from the first stream header to `</stream:stream>`:
//! STARTTLS negotiation, SASL, resource binding, stream management, keepalive pings and
//! acknowledgements. It never touches a socket or a clock: the shell feeds it bytes with
//! [`Client::handle_input`], writes what [`Client::pending_output`] holds, tells it the time,
//! and performs the TLS handshake when [`Event::StartTls`] asks for it. Every step can
//! therefore be tested with byte transcripts.

use super::jid::{BareJid, Jid, JidError};
use super::sasl::{self, Mechanism, SaslError};
use super::stanza::{
    self, IdGen, IqType, NS_BIND, NS_CLIENT, NS_PING, NS_SASL, NS_SESSION, NS_SM, NS_STREAM,
    NS_STREAM_ERRORS, NS_TLS,
};
use super::xml::{
    write_stream_header, Element, Framer, Skipped, StreamEvent, XmlError, STREAM_CLOSE,
};
use std::fmt;
use std::time::{Duration, Instant};

/// How the stream is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP upgraded with STARTTLS (port 5222).
    StartTls,
    /// TLS from the first byte (XEP-0368, port 5223).
    Direct,
    /// No TLS; allowed only towards a loopback server.
    Plain,
}

/// Longest text kept from a server's error element, so a hostile server cannot fill logs.
const MAX_ERROR_TEXT: usize = 200;
/// Output that may wait for the socket before [`Client::send`] refuses more: a slow server
/// pushes back instead of growing memory.
pub const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// What the state machine needs to know about the account and its limits. `Debug` hides
/// the password.
#[derive(Clone)]
pub struct Settings {
    /// The account's bare JID.
    pub jid: BareJid,
    /// The account's password.
    pub password: String,
    /// The resource to bind.
    pub resource: String,
    /// How the stream is secured.
    pub tls: TlsMode,
    /// Bound on one incoming stanza.
    pub max_stanza_bytes: usize,
    /// Silence after which a ping is sent.
    pub ping_interval: Duration,
    /// How long any login step or ping may take.
    pub timeout: Duration,
    /// Ask the server to keep the session for resumption (XEP-0198 §5).
    pub resume: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("jid", &self.jid)
            .field("password", &"..")
            .field("resource", &self.resource)
            .field("tls", &self.tls)
            .field("max_stanza_bytes", &self.max_stanza_bytes)
            .field("ping_interval", &self.ping_interval)
            .field("timeout", &self.timeout)
            .field("resume", &self.resume)
            .finish()
    }
}

/// A stream-management session that a new connection may resume (XEP-0198 §5): the
/// server's resumption id, the bound JID and both counters. Sequence numbers continue
/// across connections, so what an [`Event::Acked`] of one stream covered stays comparable
/// with the numbers of the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmState {
    id: String,
    jid: Jid,
    /// Stanzas we handled (the `h` we report when resuming).
    inbound: u32,
    /// The last `h` the server reported.
    last_h: u32,
    /// Our last sequence number.
    seq: u64,
    /// The highest sequence number the server confirmed.
    acked: u64,
}

/// How a stream came online with respect to an earlier session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumption {
    /// There was no earlier session to resume.
    None,
    /// The earlier session continues (presence, roster and rooms included): stanzas up to
    /// `acked` reached the server, later ones did not and must be sent again.
    Resumed {
        /// The highest sequence number of the earlier session the server processed.
        acked: u64,
    },
    /// The earlier session is gone and this is a new one: everything unacknowledged must be
    /// sent again. `acked` is what the server still knew of the old session (its `h` in
    /// `<failed/>`, XEP-0198 §5), when it said.
    Failed {
        /// The highest sequence number of the earlier session the server processed.
        acked: Option<u64>,
    },
}

/// What the shell must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Run the TLS handshake on the socket now, then call [`Client::tls_established`].
    StartTls,
    /// Logged in and bound (or resumed): stanzas may be sent.
    Online {
        /// The full JID the server bound.
        jid: Jid,
        /// Whether XEP-0198 acknowledgements are in use.
        sm: bool,
        /// What became of the earlier session, if one was to be resumed.
        resumption: Resumption,
    },
    /// A stanza for the application.
    Stanza(Element),
    /// An incoming stanza over `xmpp.max_stanza_bytes` (or too deep) was read past: counted
    /// as handled (XEP-0198), an iq get/set answered with `policy-violation`. For the log.
    Skipped(Skipped),
    /// The server has processed every stanza up to this sequence number.
    Acked(u64),
    /// The stream ended cleanly after [`Client::close`].
    Closed,
    /// Run this PBKDF2 of the SCRAM login off the event loop (it may take a second on a
    /// router), then hand the result to [`Client::salted`].
    Salt(sasl::SaltJob),
}

/// The login step an error belongs to, for `xrelay check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// STARTTLS negotiation.
    Tls,
    /// SASL.
    Authentication,
    /// Resource binding and session setup.
    Bind,
    /// The stream itself, once online or before any step.
    Stream,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls => "TLS",
            Self::Authentication => "authentication",
            Self::Bind => "bind",
            Self::Stream => "stream",
        })
    }
}

/// Why the stream failed. After any error the stream is over; the shell reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server's XML broke the rules; we sent the matching stream error.
    Xml(XmlError),
    /// The server ended the stream with a stream error.
    StreamError {
        /// The RFC 6120 condition.
        condition: String,
        /// The server's text, if any.
        text: Option<String>,
    },
    /// The server closed the stream without being asked to.
    ServerClosed,
    /// The server does not offer STARTTLS and plaintext is not allowed.
    TlsNotOffered,
    /// The server answered `<starttls/>` with a failure.
    TlsRefused,
    /// A SASL problem on our side (no usable mechanism, bad server message, bad signature).
    Sasl(SaslError),
    /// The server rejected the credentials.
    AuthFailed {
        /// The SASL condition, e.g. `not-authorized`.
        condition: String,
        /// The server's text, if any.
        text: Option<String>,
    },
    /// Binding the resource failed.
    Bind(BindError),
    /// The server sent something that does not fit the protocol at this point.
    Protocol(Violation),
    /// No answer to a keepalive ping in time: the link is dead.
    PingTimeout,
    /// A login step took longer than the timeout.
    LoginTimeout,
    /// The server acknowledged more stanzas than were sent.
    AckTooHigh,
}

/// Why binding the resource (or the session after it) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// The server offers no resource binding after authentication.
    NotOffered,
    /// The server refused to bind the resource; its stanza error condition, e.g. `conflict`.
    Refused(String),
    /// The server's bind result holds no JID.
    NoJid,
    /// The server bound a JID that does not parse.
    InvalidJid(JidError),
    /// The server refused the session it asked for (RFC 3921); its stanza error condition.
    SessionRefused(String),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOffered => f.write_str("the server does not offer resource binding"),
            Self::Refused(condition) => f.write_str(condition),
            Self::NoJid => f.write_str("the server's answer has no JID"),
            Self::InvalidJid(e) => write!(f, "the server bound an invalid JID: {e}"),
            Self::SessionRefused(condition) => write!(f, "session: {condition}"),
        }
    }
}

/// How the server broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A stream header arrived where none may.
    UnexpectedHeader,
    /// An element arrived that the login step does not expect.
    UnexpectedElement,
    /// Something other than a challenge, success or failure arrived during SASL.
    UnexpectedAuthElement,
    /// A `<resumed/>` without a valid `h`.
    ResumedWithoutH,
    /// An `<a/>` without a valid `h`.
    AckWithoutH,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnexpectedHeader => "unexpected stream header",
            Self::UnexpectedElement => "unexpected element during login",
            Self::UnexpectedAuthElement => "unexpected element during authentication",
            Self::ResumedWithoutH => "a <resumed/> without a valid h",
            Self::AckWithoutH => "an <a/> without a valid h",
        })
    }
}

impl Error {
    /// The login step this error belongs to.
    pub fn step(&self) -> Step {
        match self {
            Self::TlsNotOffered | Self::TlsRefused => Step::Tls,
            Self::Sasl(_) | Self::AuthFailed { .. } => Step::Authentication,
            Self::Bind(_) => Step::Bind,
            _ => Step::Stream,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xml(e) => write!(f, "bad XML from the server: {e}"),
            Self::StreamError { condition, text } => {
                write!(f, "the server ended the stream: {condition}")?;
                text.as_ref().map_or(Ok(()), |t| write!(f, " ({t})"))
            }
            Self::ServerClosed => f.write_str("the server closed the stream"),
            Self::TlsNotOffered => f.write_str(
                "the server does not offer STARTTLS; refusing to continue without encryption",
            ),
            Self::TlsRefused => f.write_str("the server refused STARTTLS"),
            Self::Sasl(e) => write!(f, "{e}"),
            Self::AuthFailed { condition, text } => {
                write!(f, "the server rejected the login: {condition}")?;
                text.as_ref().map_or(Ok(()), |t| write!(f, " ({t})"))
            }
            Self::Bind(e) => write!(f, "resource binding failed: {e}"),
            Self::Protocol(v) => write!(f, "protocol error: {v}"),
            Self::PingTimeout => f.write_str("timed out waiting for a ping reply"),
            Self::LoginTimeout => f.write_str("timed out waiting for the server during login"),
            Self::AckTooHigh => f.write_str("the server acknowledged more stanzas than were sent"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a stanza was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The stream is not online.
    NotOnline,
    /// The socket has not taken what was queued before; write it first.
    Full,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOnline => "the stream is not online",
            Self::Full => "the stream's output buffer is full",
        })
    }
}

impl std::error::Error for SendError {}

/// How far the login got; each stage starts with a fresh stream header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Initial,
    Secured,
    Authenticated,
}

#[derive(Debug)]
enum Phase {
    Header(Stage),
    Features(Stage),
    Proceed,
    Handshake,
    Auth(sasl::Client),
    Bind(String),
    Session(String),
    Resume,
    EnableSm,
    Online,
    Closing,
    Closed,
}

/// XEP-0198 counters, present once the server enabled stream management.
#[derive(Debug)]
struct Sm {
    /// The resumption id, when the server keeps the session for resumption.
    id: Option<String>,
    /// Stanzas received since enabling (the `h` we report).
    inbound: u32,
    /// The last `h` the server reported.
    last_h: u32,
}

/// An outstanding ping: a keepalive or an acknowledgement probe.
#[derive(Debug)]
struct Probe {
    id: String,
    sent: Instant,
    /// For acknowledgement pings (no XEP-0198): the sequence number it confirms.
    seq: u64,
}

/// The client stream state machine.
#[derive(Debug)]
pub struct Client {
    settings: Settings,
    phase: Phase,
    framer: Framer,
    out: Vec<u8>,
    ids: IdGen,
    secure: bool,
    mechanism: Option<Mechanism>,
    bound: Option<Jid>,
    sm_offered: bool,
    session_needed: bool,
    sm: Option<Sm>,
    /// The session to resume during login, until the server answered.
    previous: Option<SmState>,
    /// What became of `previous`.
    resumption: Resumption,
    /// Stanzas written since online (each gets the next number).
    seq: u64,
    /// Highest sequence number the server confirmed.
    acked: u64,
    last_rx: Instant,
    keepalive: Option<Probe>,
    ack_probe: Option<Probe>,
    /// An acknowledgement was asked for while one was outstanding.
    ack_wanted: bool,
    close_deadline: Option<Instant>,
    /// Whether our `</stream:stream>` is written (at most once).
    sent_close: bool,
}

impl Client {
    /// Start a stream that tries to resume `previous` after authentication (and starts a
    /// new session when the server cannot resume it).
    pub fn resuming(settings: Settings, previous: SmState, now: Instant) -> Self {
        let mut c = Self::new(settings, now);
        // A new session numbers on from the old one, so late acknowledgements of the old
        // stream can never be mistaken for the new one's.
        c.seq = previous.seq;
        c.acked = previous.seq;
        c.resumption = Resumption::Failed { acked: None };
        c.previous = Some(previous);
        c
    }

    /// Start a stream. With `TlsMode::Direct` the shell has already completed the TLS
    /// handshake; otherwise the stream starts in plaintext.
    pub fn new(settings: Settings, now: Instant) -> Self {
        let secure = settings.tls == TlsMode::Direct;
        let stage = if secure {
            Stage::Secured
        } else {
            Stage::Initial
        };
        let mut c = Self {
            framer: Framer::new(settings.max_stanza_bytes),
            settings,
            phase: Phase::Header(stage),
            out: Vec::with_capacity(1024),
            ids: IdGen::new(),
            secure,
            mechanism: None,
            bound: None,
            sm_offered: false,
            session_needed: false,
            sm: None,
            previous: None,
            resumption: Resumption::None,
            seq: 0,
            acked: 0,
            last_rx: now,
            keepalive: None,
            ack_probe: None,
            ack_wanted: false,
            close_deadline: None,
            sent_close: false,
        };
        c.write_header();
        c
    }

    /// Bytes waiting to be written to the socket.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Mark `n` bytes of [`Client::pending_output`] as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), Error> {
        if let Err(e) = self.framer.feed(data) {
            return Err(self.fail_xml(e));
        }
        if !data.is_empty() {
            self.last_rx = now;
        }
        Ok(())
    }

    /// The TLS handshake asked for by [`Event::StartTls`] succeeded.
    pub fn tls_established(&mut self, now: Instant) {
        if let Phase::Handshake = self.phase {
            self.secure = true;
            self.last_rx = now;
            self.phase = Phase::Header(Stage::Secured);
            self.write_header();
        }
    }

    /// The SASL mechanism in use, once authentication started.
    pub fn mechanism(&self) -> Option<Mechanism> {
        self.mechanism
    }

    /// Whether the stream is online.
    pub fn is_online(&self) -> bool {
        matches!(self.phase, Phase::Online)
    }

    /// The session a later connection may resume: present once the server enabled
    /// stream management with resumption. Meaningful after the stream broke.
    pub fn sm_state(&self) -> Option<SmState> {
        let sm = self.sm.as_ref()?;
        Some(SmState {
            id: sm.id.clone()?,
            jid: self.bound.clone()?,
            inbound: sm.inbound,
            last_h: sm.last_h,
            seq: self.seq,
            acked: self.acked,
        })
    }

    /// Queue a stanza. Returns its sequence number, which a later [`Event::Acked`] covers.
    pub fn send(&mut self, stanza: &Element) -> Result<u64, SendError> {
        if !self.is_online() {
            return Err(SendError::NotOnline);
        }
        if self.out.len() >= MAX_PENDING_OUTPUT {
            return Err(SendError::Full);
        }
        Ok(self.write_stanza(stanza))
    }

    /// Queue a stanza as [`Element::write_to`] serialized it (with `jabber:client` as the
    /// namespace in scope); only the serializer's output may be passed, so that no text
    /// can become markup. Returns its sequence number, as [`Client::send`].
    pub fn send_serialized(&mut self, xml: &[u8]) -> Result<u64, SendError> {
        if !self.is_online() {
            return Err(SendError::NotOnline);
        }
        if self.out.len() >= MAX_PENDING_OUTPUT {
            return Err(SendError::Full);
        }
        self.out.extend_from_slice(xml);
        self.seq += 1;
        Ok(self.seq)
    }

    /// Ask the server to confirm everything sent so far: `<r/>` with XEP-0198, else a ping
    /// whose answer proves the server processed what came before it.
    pub fn request_ack(&mut self, now: Instant) {
        if !self.is_online() || self.acked >= self.seq {
            return;
        }
        if self.ack_probe.is_some() {
            self.ack_wanted = true;
            return;
        }
        self.ack_wanted = false;
        if self.sm.is_some() {
            self.out.extend_from_slice(b"<r xmlns='urn:xmpp:sm:3'/>");
            self.ack_probe = Some(Probe {
                id: String::new(),
                sent: now,
                seq: self.seq,
            });
        } else {
            let id = self.ids.next_id();
            let ping = stanza::ping(Some(self.settings.jid.domain()), &id);
            let seq = self.write_stanza(&ping);
            self.ack_probe = Some(Probe { id, sent: now, seq });
        }
    }

    /// Close the stream cleanly; [`Event::Closed`] follows when the server closes its side.
    pub fn close(&mut self, now: Instant) {
        match self.phase {
            Phase::Closing | Phase::Closed => {}
            _ => {
                self.write_close();
                self.phase = Phase::Closing;
                self.close_deadline = Some(now + self.settings.timeout);
            }
        }
    }

    /// When [`Client::poll_event`] must be called again even if no bytes arrive.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closed | Phase::Handshake => None,
            Phase::Closing => self.close_deadline,
            Phase::Online => Some(match &self.keepalive {
                Some(p) if self.last_rx <= p.sent => p.sent + self.settings.timeout,
                _ => self.last_rx + self.settings.ping_interval,
            }),
            _ => Some(self.last_rx + self.settings.timeout),
        }
    }

    /// Process timers and the next complete element. `Ok(None)`: nothing to do until more
    /// bytes arrive or [`Client::poll_timeout`] passes. Any `Err` ends the stream; what
    /// [`Client::pending_output`] then holds (a stream error, the closing tag) should be
    /// written before the socket is dropped.
    pub fn poll_event(&mut self, now: Instant) -> Result<Option<Event>, Error> {
        if let Phase::Closed = self.phase {
            return Ok(None);
        }
        if let Some(ev) = self.check_timers(now)? {
            return Ok(Some(ev));
        }
        loop {
            let ev = match self.framer.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail_xml(e)),
            };
            let result = match ev {
                StreamEvent::Open(_) => self.on_header(),
                StreamEvent::Close => self.on_close(),
                StreamEvent::Element(el) => self.on_element(el, now),
                StreamEvent::Skipped(skipped) => self.on_skipped(skipped),
            };
            match result {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    fn check_timers(&mut self, now: Instant) -> Result<Option<Event>, Error> {
        match self.phase {
            Phase::Online => {
                match &self.keepalive {
                    Some(p) if self.last_rx <= p.sent => {
                        if now >= p.sent + self.settings.timeout {
                            return Err(self.abandon(Error::PingTimeout));
                        }
                    }
                    _ => {
                        if now >= self.last_rx + self.settings.ping_interval {
                            let id = self.ids.next_id();
                            let ping = stanza::ping(Some(self.settings.jid.domain()), &id);
                            self.write_stanza(&ping);
                            self.keepalive = Some(Probe {
                                id,
                                sent: now,
                                seq: 0,
                            });
                        }
                    }
                }
                Ok(None)
            }
            Phase::Closing => {
                if self.close_deadline.is_some_and(|d| now >= d) {
                    self.phase = Phase::Closed;
                    return Ok(Some(Event::Closed));
                }
                Ok(None)
            }
            Phase::Closed | Phase::Handshake => Ok(None),
            _ => {
                if now >= self.last_rx + self.settings.timeout {
                    return Err(self.abandon(Error::LoginTimeout));
                }
                Ok(None)
            }
        }
    }

    fn on_header(&mut self) -> Result<Option<Event>, Error> {
        match self.phase {
            Phase::Header(stage) => {
                self.phase = Phase::Features(stage);
                Ok(None)
            }
            _ => Err(Error::Protocol(Violation::UnexpectedHeader)),
        }
    }

    fn on_close(&mut self) -> Result<Option<Event>, Error> {
        match self.phase {
            Phase::Closing => {
                self.phase = Phase::Closed;
                Ok(Some(Event::Closed))
            }
            _ => Err(Error::ServerClosed),
        }
    }

    fn on_element(&mut self, el: Element, now: Instant) -> Result<Option<Event>, Error> {
        if el.is("error", NS_STREAM) {
            return Err(stream_error(&el));
        }
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Features(stage) if el.is("features", NS_STREAM) => {
                self.on_features(stage, &el)?;
                Ok(None)
            }
            Phase::Proceed if el.is("proceed", NS_TLS) => {
                self.framer.reset();
                self.phase = Phase::Handshake;
                Ok(Some(Event::StartTls))
            }
            Phase::Proceed if el.is("failure", NS_TLS) => Err(Error::TlsRefused),
            Phase::Auth(sasl) => self.on_sasl(sasl, &el),
            Phase::Bind(id) if is_reply(&el, &id) => self.on_bind(&el),
            Phase::Session(id) if is_reply(&el, &id) => {
                if stanza::iq_type(&el) != Some(IqType::Result) {
                    return Err(Error::Bind(BindError::SessionRefused(stanza_condition(
                        &el,
                    ))));
                }
                Ok(self.after_bind())
            }
            Phase::Resume if el.is("resumed", NS_SM) => self.on_resumed(&el),
            Phase::Resume if el.is("failed", NS_SM) => {
                self.on_resume_failed(&el);
                Ok(None)
            }
            Phase::EnableSm if el.is("enabled", NS_SM) => {
                let resumable = matches!(el.get_attr("resume"), Some("true" | "1"));
                self.sm = Some(Sm {
                    id: el
                        .get_attr("id")
                        .filter(|id| resumable && !id.is_empty())
                        .map(str::to_string),
                    inbound: 0,
                    last_h: 0,
                });
                Ok(self.go_online(true))
            }
            Phase::EnableSm if el.is("failed", NS_SM) => Ok(self.go_online(false)),
            phase @ (Phase::Online | Phase::Closing) => {
                self.phase = phase;
                self.on_online(el, now)
            }
            _ => Err(Error::Protocol(Violation::UnexpectedElement)),
        }
    }

    fn on_features(&mut self, stage: Stage, features: &Element) -> Result<(), Error> {
        match stage {
            Stage::Initial if self.settings.tls != TlsMode::Plain => {
                if features.get_child("starttls", NS_TLS).is_none() {
                    return Err(Error::TlsNotOffered);
                }
                self.out
                    .extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
                self.phase = Phase::Proceed;
                Ok(())
            }
            Stage::Initial | Stage::Secured => {
                let mechs: Vec<String> = features
                    .get_child("mechanisms", NS_SASL)
                    .map(|m| {
                        m.children()
                            .filter(|c| c.is("mechanism", NS_SASL))
                            .map(|c| c.text_content())
                            .collect()
                    })
                    .unwrap_or_default();
                let mech = sasl::select(mechs.iter().map(String::as_str), self.secure)
                    .map_err(Error::Sasl)?;
                let user = self.settings.jid.local().unwrap_or_default();
                let (client, initial) = sasl::Client::start(mech, user, &self.settings.password)
                    .map_err(Error::Sasl)?;
                self.mechanism = Some(mech);
                let auth = Element::new("auth", NS_SASL)
                    .attr("mechanism", mech.name())
                    .text(&initial);
                auth.write_to(&mut self.out, NS_CLIENT);
                self.phase = Phase::Auth(client);
                Ok(())
            }
            Stage::Authenticated => {
                if features.get_child("bind", NS_BIND).is_none() {
                    return Err(Error::Bind(BindError::NotOffered));
                }
                self.sm_offered = features.get_child("sm", NS_SM).is_some();
                self.session_needed = features
                    .get_child("session", NS_SESSION)
                    .is_some_and(|s| s.get_child("optional", NS_SESSION).is_none());
                match &self.previous {
                    Some(prev) if self.sm_offered => {
                        Element::new("resume", NS_SM)
                            .attr("h", &prev.inbound.to_string())
                            .attr("previd", &prev.id)
                            .write_to(&mut self.out, NS_CLIENT);
                        self.phase = Phase::Resume;
                    }
                    _ => self.bind(),
                }
                Ok(())
            }
        }
    }

    fn bind(&mut self) {
        let id = self.ids.next_id();
        let bind = Element::new("bind", NS_BIND)
            .child(Element::new("resource", NS_BIND).text(&self.settings.resource));
        stanza::iq(IqType::Set, None, &id, bind).write_to(&mut self.out, NS_CLIENT);
        self.phase = Phase::Bind(id);
    }

    /// What the server's `h` for the previous session means in our sequence numbers, if
    /// it is plausible.
    fn previous_acked(prev: &SmState, h: u32) -> Option<u64> {
        let acked = prev.acked + u64::from(h.wrapping_sub(prev.last_h));
        (acked <= prev.seq).then_some(acked)
    }

    /// `<resumed h='..'/>`: the old session continues; stanzas past `h` are resent by the
    /// application, numbered on from `h`.
    fn on_resumed(&mut self, el: &Element) -> Result<Option<Event>, Error> {
        // Never without a session: the login enters `Phase::Resume` only with one.
        let Some(prev) = self.previous.take() else {
            return Err(Error::Protocol(Violation::UnexpectedElement));
        };
        let h: u32 = el
            .get_attr("h")
            .and_then(|h| h.parse().ok())
            .ok_or(Error::Protocol(Violation::ResumedWithoutH))?;
        let acked = Self::previous_acked(&prev, h).ok_or(Error::AckTooHigh)?;
        self.seq = acked;
        self.acked = acked;
        self.bound = Some(prev.jid);
        self.sm = Some(Sm {
            id: Some(prev.id),
            inbound: prev.inbound,
            last_h: h,
        });
        self.resumption = Resumption::Resumed { acked };
        Ok(self.go_online(true))
    }

    /// `<failed/>` to our `<resume/>`: bind a new session. The server may still say how
    /// many stanzas of the old one it processed; an implausible `h` counts as unknown
    /// (everything is resent: a duplicate is better than a loss).
    fn on_resume_failed(&mut self, el: &Element) {
        let acked = self.previous.take().and_then(|prev| {
            el.get_attr("h")
                .and_then(|h| h.parse().ok())
                .and_then(|h| Self::previous_acked(&prev, h))
        });
        self.resumption = Resumption::Failed { acked };
        self.bind();
    }

    fn on_sasl(&mut self, mut client: sasl::Client, el: &Element) -> Result<Option<Event>, Error> {
        if el.is("challenge", NS_SASL) {
            let answer = client
                .challenge_deferred(&el.text_content())
                .map_err(Error::Sasl)?;
            self.phase = Phase::Auth(client);
            match answer {
                sasl::Answer::Response(response) => {
                    self.write_sasl_response(&response);
                    Ok(None)
                }
                sasl::Answer::Salt(job) => Ok(Some(Event::Salt(job))),
            }
        } else if el.is("success", NS_SASL) {
            let data = el.text_content();
            let data = (!data.is_empty()).then_some(data.as_str());
            client.success(data).map_err(Error::Sasl)?;
            self.framer.reset();
            self.phase = Phase::Header(Stage::Authenticated);
            self.write_header();
            Ok(None)
        } else if el.is("failure", NS_SASL) {
            let condition = el
                .children()
                .find(|c| c.name() != "text")
                .map_or("failure", |c| c.name())
                .to_string();
            Err(Error::AuthFailed {
                condition,
                text: error_text(el, NS_SASL),
            })
        } else {
            Err(Error::Protocol(Violation::UnexpectedAuthElement))
        }
    }

    /// The result of the [`Event::Salt`] job: the login goes on. The time it took is not
    /// the server's, so the login timeout starts again.
    pub fn salted(&mut self, salted: sasl::SaltedPassword, now: Instant) -> Result<(), Error> {
        let Phase::Auth(client) = &mut self.phase else {
            return Ok(());
        };
        match client.salted(salted) {
            Ok(response) => {
                self.last_rx = now;
                self.write_sasl_response(&response);
                Ok(())
            }
            Err(e) => Err(self.fail(Error::Sasl(e))),
        }
    }

    fn write_sasl_response(&mut self, response: &str) {
        Element::new("response", NS_SASL)
            .text(response)
            .write_to(&mut self.out, NS_CLIENT);
    }

    fn on_bind(&mut self, el: &Element) -> Result<Option<Event>, Error> {
        if stanza::iq_type(el) != Some(IqType::Result) {
            return Err(Error::Bind(BindError::Refused(stanza_condition(el))));
        }
        let jid = el
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .map(|j| j.text_content())
            .ok_or(Error::Bind(BindError::NoJid))?;
        let jid = Jid::parse(&jid).map_err(|e| Error::Bind(BindError::InvalidJid(e)))?;
        self.bound = Some(jid);
        if self.session_needed {
            let id = self.ids.next_id();
            stanza::iq(IqType::Set, None, &id, Element::new("session", NS_SESSION))
                .write_to(&mut self.out, NS_CLIENT);
            self.phase = Phase::Session(id);
            return Ok(None);
        }
        Ok(self.after_bind())
    }

    fn after_bind(&mut self) -> Option<Event> {
        if self.sm_offered {
            self.out.extend_from_slice(if self.settings.resume {
                b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>".as_slice()
            } else {
                b"<enable xmlns='urn:xmpp:sm:3'/>".as_slice()
            });
            self.phase = Phase::EnableSm;
            return None;
        }
        self.go_online(false)
    }

    fn go_online(&mut self, sm: bool) -> Option<Event> {
        self.phase = Phase::Online;
        let jid = self.bound.clone()?;
        Some(Event::Online {
            jid,
            sm,
            resumption: self.resumption,
        })
    }

    fn on_online(&mut self, el: Element, now: Instant) -> Result<Option<Event>, Error> {
        if el.ns() == NS_SM {
            return self.on_sm(&el, now);
        }
        if el.ns() != NS_CLIENT || !matches!(el.name(), "message" | "presence" | "iq") {
            // Unknown nonzas are ignored, as RFC 6120 §8 lets a client do.
            return Ok(None);
        }
        if let Some(sm) = &mut self.sm {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
        if el.name() != "iq" {
            return Ok(Some(Event::Stanza(el)));
        }
        match stanza::iq_type(&el) {
            Some(IqType::Get) if el.get_child("ping", NS_PING).is_some() => {
                if self.is_online() {
                    self.write_stanza(&stanza::iq_result(&el));
                }
                Ok(None)
            }
            Some(IqType::Result | IqType::Error) => {
                let id = el.get_attr("id");
                if id.is_some() && self.keepalive.as_ref().map(|p| p.id.as_str()) == id {
                    self.keepalive = None;
                    return Ok(None);
                }
                if let Some(p) = self
                    .ack_probe
                    .as_ref()
                    .filter(|p| Some(p.id.as_str()) == id)
                {
                    let seq = p.seq;
                    self.ack_probe = None;
                    return Ok(self.acked_up_to(seq, now));
                }
                Ok(Some(Event::Stanza(el)))
            }
            _ => Ok(Some(Event::Stanza(el))),
        }
    }

    /// A stanza too large to keep counts as handled, so the server neither resends it on
    /// resumption nor waits for it; an iq request gets an error, as RFC 6120 §8.2.3 asks.
    /// Before the stream is online nothing may be that large.
    fn on_skipped(&mut self, skipped: Skipped) -> Result<Option<Event>, Error> {
        if !matches!(self.phase, Phase::Online | Phase::Closing) {
            return Err(self.fail_xml(skipped.why));
        }
        if let Some(sm) = &mut self.sm {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
        let request = skipped.name == "iq"
            && skipped
                .kind
                .as_deref()
                .and_then(IqType::parse)
                .is_some_and(IqType::is_request);
        if let (true, Some(id), true) = (request, &skipped.id, self.is_online()) {
            let mut iq = Element::new("iq", NS_CLIENT).attr("id", id);
            if let Some(from) = &skipped.from {
                iq.set_attr("from", from);
            }
            let text = skipped.why.to_string();
            let reply = stanza::error_reply_text(&iq, "modify", "policy-violation", &text);
            self.write_stanza(&reply);
        }
        Ok(Some(Event::Skipped(skipped)))
    }

    fn on_sm(&mut self, el: &Element, now: Instant) -> Result<Option<Event>, Error> {
        let Some(sm) = &mut self.sm else {
            return Ok(None);
        };
        match el.name() {
            "r" => {
                let h = sm.inbound;
                self.out
                    .extend_from_slice(format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>").as_bytes());
                Ok(None)
            }
            "a" => {
                let h: u32 = el
                    .get_attr("h")
                    .and_then(|h| h.parse().ok())
                    .ok_or(Error::Protocol(Violation::AckWithoutH))?;
                let delta = h.wrapping_sub(sm.last_h);
                sm.last_h = h;
                let acked = self.acked + u64::from(delta);
                if acked > self.seq {
                    return Err(Error::AckTooHigh);
                }
                self.ack_probe = None;
                Ok(self.acked_up_to(acked, now))
            }
            _ => Ok(None),
        }
    }

    /// Record an acknowledgement and, if more was asked for meanwhile, probe again.
    fn acked_up_to(&mut self, seq: u64, now: Instant) -> Option<Event> {
        let ev = (seq > self.acked).then(|| {
            self.acked = seq;
            Event::Acked(seq)
        });
        if self.ack_wanted {
            self.request_ack(now);
        }
        ev
    }

    fn write_stanza(&mut self, stanza: &Element) -> u64 {
        stanza.write_to(&mut self.out, NS_CLIENT);
        self.seq += 1;
        self.seq
    }

    fn write_header(&mut self) {
        // RFC 6120 §4.7.1: include `from` only once the stream is protected.
        let from = self.secure.then(|| self.settings.jid.as_str());
        write_stream_header(&mut self.out, self.settings.jid.domain(), from);
    }

    /// Our side found bad XML: tell the server why, then end the stream.
    fn fail_xml(&mut self, e: XmlError) -> Error {
        Element::new("error", NS_STREAM)
            .child(Element::new(e.condition(), NS_STREAM_ERRORS))
            .write_to(&mut self.out, NS_CLIENT);
        self.fail(Error::Xml(e))
    }

    fn fail(&mut self, e: Error) -> Error {
        self.write_close();
        self.phase = Phase::Closed;
        e
    }

    /// Give up on a link that stopped answering, without a closing tag: the server would
    /// end the session on it (XEP-0198 §5), and it may arrive late over a link that comes
    /// back, after the next connection resumed the session.
    fn abandon(&mut self, e: Error) -> Error {
        self.phase = Phase::Closed;
        e
    }

    fn write_close(&mut self) {
        if !self.sent_close {
            self.out.extend_from_slice(STREAM_CLOSE);
            self.sent_close = true;
        }
    }
}

fn is_reply(el: &Element, id: &str) -> bool {
    el.is("iq", NS_CLIENT)
        && el.get_attr("id") == Some(id)
        && stanza::iq_type(el).is_some_and(IqType::is_response)
}

fn bounded(mut s: String) -> String {
    if s.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn error_text(el: &Element, ns: &str) -> Option<String> {
    // Kept as the server sent it (bounded); whatever shows it escapes it (`log::one_line`).
    el.get_child("text", ns).map(|t| bounded(t.text_content()))
}

fn stream_error(el: &Element) -> Error {
    let condition = el
        .children()
        .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
        .map_or("undefined-condition", |c| c.name())
        .to_string();
    Error::StreamError {
        condition: bounded(condition),
        text: error_text(el, NS_STREAM_ERRORS),
    }
}

/// The condition of a stanza error, e.g. `conflict`.
fn stanza_condition(el: &Element) -> String {
    el.get_child("error", NS_CLIENT)
        .and_then(|e| e.children().next())
        .map_or_else(
            || "unknown error".to_string(),
            |c| bounded(c.name().to_string()),
        )
}

#[cfg(test)]
mod tests;
