//! The async shell around [`stream::Client`]: DNS, TCP, TLS and the socket loop.
//!
//! It owns the socket and a fixed read buffer, feeds bytes to the state machine, writes what
//! it produces, sleeps until its next timer, and performs the TLS handshake when asked.
//! All protocol decisions stay in the state machine.

use super::resolve;
use super::tls::{self, TlsError};
use crate::config::XmppConfig;
use crate::xmpp::dns::{Service, Target};
use crate::xmpp::jid::Jid;
use crate::xmpp::stream::{self, Client, Event, Resumption, Settings, SmState, TlsMode};
use crate::xmpp::xml::Element;
use futures_rustls::client::TlsStream;
use rustls::ClientConfig;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Timer;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Size of the fixed socket read buffer.
pub const READ_CHUNK: usize = 4096;
/// Most addresses tried for one connection attempt.
const MAX_ADDRESSES: usize = 8;

/// A step of connecting, reported to an observer (for `xrelay check` and the log).
#[derive(Debug, Clone)]
pub enum Progress {
    /// DNS gave these targets.
    Resolved(Vec<String>),
    /// TCP connected.
    Connected(SocketAddr),
    /// TLS is up.
    Secured {
        /// "TLSv1.3" etc.
        version: String,
        /// The SPKI pin of the server's certificate.
        pin: Option<String>,
    },
    /// Logged in and bound.
    Online {
        /// The bound JID.
        jid: Jid,
        /// The SASL mechanism used.
        mechanism: &'static str,
        /// Whether stream management is on.
        sm: bool,
    },
}

/// Why connecting or the connection failed.
#[derive(Debug)]
pub enum Error {
    /// DNS resolution failed.
    Dns(resolve::ResolveError),
    /// No address accepted a TCP connection; each one's failure.
    Tcp(String),
    /// DNS gave targets but no address to connect to.
    NoAddresses,
    /// `tls = "plain"` towards an address that is not loopback.
    PlainNotLoopback(SocketAddr),
    /// The TLS handshake failed.
    Tls(TlsError),
    /// The XMPP stream failed.
    Stream(stream::Error),
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The server closed the TCP connection.
    Eof,
    /// A write did not complete in time.
    WriteTimeout,
    /// The stream reported something other than being online at the end of login (never
    /// expected: nothing else comes first).
    NotOnlineAfterLogin,
    /// The stream asked for STARTTLS on a socket that is already TLS (never expected).
    StartTlsOnTls,
    /// A failure was lost while the stream was being ended (never expected).
    Ended,
}

impl Error {
    /// The step of `xrelay check` this error belongs to.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Dns(_) => "DNS",
            Self::Tcp(_) | Self::NoAddresses | Self::PlainNotLoopback(_) => "TCP",
            Self::Tls(e) if e.is_certificate() => "TLS certificate",
            Self::Tls(_) => "TLS",
            Self::Stream(e) => match e.step() {
                stream::Step::Tls => "TLS",
                stream::Step::Authentication => "authentication",
                stream::Step::Bind => "bind",
                stream::Step::Stream => "stream",
            },
            Self::Io(_)
            | Self::Eof
            | Self::WriteTimeout
            | Self::NotOnlineAfterLogin
            | Self::StartTlsOnTls
            | Self::Ended => "stream",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(e) => write!(f, "{e}"),
            Self::Tcp(e) => write!(f, "cannot connect: {e}"),
            Self::NoAddresses => f.write_str("cannot connect: no addresses to try"),
            Self::PlainNotLoopback(a) => {
                write!(
                    f,
                    "{a} is not a loopback address; tls = \"plain\" is refused"
                )
            }
            Self::Tls(e) => write!(f, "{e}"),
            Self::Stream(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "connection error: {e}"),
            Self::Eof => f.write_str("the server closed the connection"),
            Self::WriteTimeout => f.write_str("timed out writing to the server"),
            Self::NotOnlineAfterLogin => f.write_str("protocol error: event before login"),
            Self::StartTlsOnTls => f.write_str("protocol error: STARTTLS on a TLS stream"),
            Self::Ended => f.write_str("protocol error: connection ended"),
        }
    }
}

impl std::error::Error for Error {}

impl From<stream::Error> for Error {
    fn from(e: stream::Error) -> Self {
        Self::Stream(e)
    }
}

/// The socket, plain or TLS. `Upgrading` exists only while STARTTLS swaps one for the other.
enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Upgrading,
}

fn upgrading() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "TLS upgrade in progress")
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Self::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// One live client stream.
pub struct Connection {
    client: Client,
    io: Transport,
    buf: Box<[u8; READ_CHUNK]>,
    tls: Arc<ClientConfig>,
    domain: String,
    timeout: Duration,
    unflushed: bool,
    /// One timer for the state machine's deadlines, re-armed only when a deadline comes
    /// earlier than the armed one or the timer fired: registering a timer wakes the
    /// reactor, and deadlines move on every byte received.
    timer: Timer,
    armed: Option<Instant>,
    resumption: Resumption,
    /// An event taken from the state machine whose call was cancelled before returning it
    /// (the state machine already counted it as handled, so it must not be lost).
    held: Option<Event>,
    /// How the connection ended, once it did, for the next call.
    broken: Option<Error>,
}

impl Connection {
    /// Resolve, connect, secure, log in and bind. `progress` hears about each step.
    pub async fn open(
        cfg: &XmppConfig,
        tls: Arc<ClientConfig>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, Error> {
        Self::open_resuming(cfg, tls, None, progress).await
    }

    /// [`Connection::open`], resuming `previous` instead of binding when the server can
    /// (see [`Connection::resumption`]).
    pub async fn open_resuming(
        cfg: &XmppConfig,
        tls: Arc<ClientConfig>,
        previous: Option<SmState>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, Error> {
        let domain = cfg.jid.domain().to_string();
        let targets = targets(cfg).await?;
        progress(Progress::Resolved(
            targets
                .iter()
                .map(|t| format!("{}:{}", t.host, t.port))
                .collect(),
        ));
        let tcp = connect_tcp(&targets, cfg).await?;
        if let Ok(addr) = tcp.peer_addr() {
            progress(Progress::Connected(addr));
        }
        let mut io = Transport::Tcp(tcp);
        if cfg.tls == TlsMode::Direct {
            io = Transport::Tls(Box::new(
                handshake(&tls, &domain, io, cfg.timeout, progress).await?,
            ));
        }
        let settings = Settings {
            jid: cfg.jid.clone(),
            password: cfg.password.expose().to_string(),
            resource: cfg.resource.clone(),
            tls: cfg.tls,
            max_stanza_bytes: cfg.max_stanza_bytes,
            ping_interval: cfg.ping_interval,
            timeout: cfg.timeout,
            resume: cfg.resume,
        };
        let client = match previous {
            Some(prev) => Client::resuming(settings, prev, Instant::now()),
            None => Client::new(settings, Instant::now()),
        };
        let mut conn = Self {
            client,
            io,
            buf: Box::new([0; READ_CHUNK]),
            tls,
            domain,
            timeout: cfg.timeout,
            unflushed: false,
            timer: Timer::never(),
            armed: None,
            resumption: Resumption::None,
            held: None,
            broken: None,
        };
        match conn.next_event_inner(progress).await? {
            Event::Online {
                jid,
                sm,
                resumption,
            } => {
                conn.resumption = resumption;
                progress(Progress::Online {
                    jid,
                    mechanism: conn.client.mechanism().map_or("", |m| m.name()),
                    sm,
                });
                Ok(conn)
            }
            // The state machine emits nothing else before it is online.
            _ => Err(Error::NotOnlineAfterLogin),
        }
    }

    /// What became of the session this connection was asked to resume.
    pub fn resumption(&self) -> Resumption {
        self.resumption
    }

    /// The session a later connection may resume, once this one broke.
    pub fn sm_state(&self) -> Option<SmState> {
        self.client.sm_state()
    }

    /// Queue a stanza; returns the sequence number a later [`Event::Acked`] covers.
    /// [`stream::SendError::Full`] clears once [`Connection::next_event`] has written.
    pub fn send(&mut self, stanza: &Element) -> Result<u64, stream::SendError> {
        self.client.send(stanza)
    }

    /// Queue a stanza the serializer already wrote, see [`stream::Client::send_serialized`].
    pub fn send_serialized(&mut self, xml: &[u8]) -> Result<u64, stream::SendError> {
        self.client.send_serialized(xml)
    }

    /// Ask the server to confirm everything sent so far.
    pub fn request_ack(&mut self) {
        self.client.request_ack(Instant::now());
    }

    /// Drive the socket until the next event. Cancel-safe: dropping the future loses no
    /// bytes, so it can be raced against other work.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        self.next_event_inner(&mut |_| {}).await
    }

    /// Close the stream cleanly, waiting a bounded time for the server's side. This ends
    /// the session: it cannot be resumed afterwards. Returns the last acknowledgement that
    /// arrived meanwhile (a server confirms what it got when the stream closes).
    pub async fn close(&mut self) -> Option<u64> {
        self.client.close(Instant::now());
        let mut acked = None;
        loop {
            match self.next_event().await {
                Ok(Event::Closed) | Err(_) => break,
                Ok(Event::Acked(seq)) => acked = Some(seq),
                Ok(_) => {}
            }
        }
        let _ = self.io.close().await;
        acked
    }

    async fn next_event_inner(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Event, Error> {
        loop {
            if let Some(ev) = self.held.take() {
                return Ok(ev);
            }
            if let Some(e) = self.broken.take() {
                return Err(e);
            }
            let polled = self.client.poll_event(Instant::now());
            let ev = match polled {
                Ok(ev) => ev,
                Err(e) => return Err(self.end(Error::Stream(e)).await),
            };
            match ev {
                Some(Event::StartTls) => self.upgrade(progress).await?,
                Some(Event::Salt(job)) => {
                    // Off the executor: PBKDF2 must not stall the HTTP side.
                    let salted = smol::unblock(move || job.run()).await;
                    if let Err(e) = self.client.salted(salted, Instant::now()) {
                        return Err(self.end(Error::Stream(e)).await);
                    }
                }
                Some(ev) => {
                    // Flushed first, so answers go out before the caller acts; held
                    // meanwhile, so a cancelled call loses nothing; delivered even if the
                    // flush failed (the next call reports that).
                    self.held = Some(ev);
                    if let Err(e) = self.flush().await {
                        self.broken = Some(e);
                    }
                    if let Some(ev) = self.held.take() {
                        return Ok(ev);
                    }
                }
                None => {}
            }
            self.flush().await?;
            if let Some(d) = self.client.poll_timeout() {
                if self.armed.is_none_or(|a| d < a) {
                    self.timer.set_at(d);
                    self.armed = Some(d);
                }
            }
            let n = {
                let (io, buf, timer) = (&mut self.io, &mut self.buf, &mut self.timer);
                let read = async { Some(io.read(&mut buf[..]).await) };
                let tick = async {
                    timer.await;
                    None
                };
                read.or(tick).await
            };
            match n {
                // Early or due: poll_event above decides; the next round re-arms.
                None => self.armed = None,
                Some(Ok(0)) => return Err(Error::Eof),
                Some(Ok(n)) => {
                    if let Err(e) = self.client.handle_input(&self.buf[..n], Instant::now()) {
                        return Err(self.end(Error::Stream(e)).await);
                    }
                }
                Some(Err(e)) => return Err(Error::Io(e)),
            }
        }
    }

    /// Write all pending output, each write bounded by the stream timeout.
    pub async fn flush(&mut self) -> Result<(), Error> {
        while !self.client.pending_output().is_empty() {
            let write = self.io.write(self.client.pending_output());
            match super::timeout(self.timeout, write).await {
                None => return Err(Error::WriteTimeout),
                Some(Ok(0)) => return Err(Error::Eof),
                Some(Ok(n)) => {
                    self.client.consume_output(n);
                    self.unflushed = true;
                }
                Some(Err(e)) => return Err(Error::Io(e)),
            }
        }
        if self.unflushed {
            match super::timeout(self.timeout, self.io.flush()).await {
                None => return Err(Error::WriteTimeout),
                Some(r) => r.map_err(Error::Io)?,
            }
            self.unflushed = false;
        }
        Ok(())
    }

    /// On the way out: try to deliver a stream error or closing tag (each write bounded by
    /// the timeout), then report `e`; a call cancelled meanwhile reports it next time.
    async fn end(&mut self, e: Error) -> Error {
        self.broken = Some(e);
        let _ = self.flush().await;
        self.broken.take().unwrap_or(Error::Ended)
    }

    async fn upgrade(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<(), Error> {
        self.flush().await?;
        let io = std::mem::replace(&mut self.io, Transport::Upgrading);
        let tls = handshake(&self.tls, &self.domain, io, self.timeout, progress).await?;
        self.io = Transport::Tls(Box::new(tls));
        self.client.tls_established(Instant::now());
        Ok(())
    }
}

async fn handshake(
    config: &Arc<ClientConfig>,
    domain: &str,
    io: Transport,
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<TlsStream<TcpStream>, Error> {
    let Transport::Tcp(tcp) = io else {
        return Err(Error::StartTlsOnTls);
    };
    let hs = tls::connect(config.clone(), domain, tcp);
    let tls = match super::timeout(timeout, hs).await {
        None => return Err(Error::Tls(TlsError::Handshake("timed out".into()))),
        Some(r) => r.map_err(Error::Tls)?,
    };
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("TLS")
        .replace('_', ".");
    let pin = session
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| tls::spki_pin(c).ok());
    progress(Progress::Secured { version, pin });
    Ok(tls)
}

/// Where to connect: `server`/`port` when set, else SRV, else the domain itself.
async fn targets(cfg: &XmppConfig) -> Result<Vec<Target>, Error> {
    let service = match cfg.tls {
        TlsMode::Direct => Service::DirectTls,
        TlsMode::StartTls | TlsMode::Plain => Service::StartTls,
    };
    if cfg.server.is_some() || cfg.port.is_some() {
        let default_port = match service {
            Service::DirectTls => 5223,
            Service::StartTls => 5222,
        };
        return Ok(vec![Target {
            host: cfg
                .server
                .clone()
                .unwrap_or_else(|| cfg.jid.domain().to_string()),
            port: cfg.port.unwrap_or(default_port),
        }]);
    }
    resolve::srv_targets(cfg.jid.domain(), service)
        .await
        .map_err(Error::Dns)
}

/// Try each target's addresses in order until one accepts.
async fn connect_tcp(targets: &[Target], cfg: &XmppConfig) -> Result<TcpStream, Error> {
    let mut failures = Vec::new();
    let mut tried = 0;
    let mut dns_error = None;
    for target in targets {
        let addrs = match resolve::socket_addrs(target).await {
            Ok(a) => a,
            Err(e) => {
                dns_error = Some(e);
                continue;
            }
        };
        for addr in addrs {
            if tried == MAX_ADDRESSES {
                break;
            }
            tried += 1;
            if cfg.tls == TlsMode::Plain && !addr.ip().is_loopback() {
                return Err(Error::PlainNotLoopback(addr));
            }
            match super::timeout(cfg.timeout, TcpStream::connect(addr)).await {
                Some(Ok(s)) => {
                    // Stanzas are small and latency matters more than packet count.
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Some(Err(e)) => failures.push(format!("{addr}: {e}")),
                None => failures.push(format!("{addr}: timed out")),
            }
        }
    }
    match (failures.is_empty(), dns_error) {
        (true, Some(e)) => Err(Error::Dns(e)),
        (true, None) => Err(Error::NoAddresses),
        (false, _) => Err(Error::Tcp(failures.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_address_to_try_is_a_tcp_step_failure() {
        assert_eq!(Error::NoAddresses.step(), "TCP");
        assert_eq!(
            Error::NoAddresses.to_string(),
            "cannot connect: no addresses to try"
        );
    }

    #[test]
    fn failures_of_the_shell_itself_belong_to_the_stream_step() {
        for e in [
            Error::NotOnlineAfterLogin,
            Error::StartTlsOnTls,
            Error::Ended,
        ] {
            assert_eq!(e.step(), "stream");
            assert!(e.to_string().starts_with("protocol error: "), "{e}");
        }
    }
}
