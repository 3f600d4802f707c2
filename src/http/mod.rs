//! The HTTP listener: accepting connections under a cap, hyper's HTTP/1 server on each
//! (through the smol adapter in `rt`), and the socket wrapper that bounds slow clients.
//!
//! Under the cap, a connection that has not sent a complete request (a slow or idle
//! client, or a keep-alive connection between requests) gives way to a new one: a flood
//! of slow connections cannot keep real requests waiting in the backlog for their read
//! timeouts. A connection whose request is being answered keeps its slot.
//!
//! `routes` decides what each request means; `body` parses `/msg` bodies, `rest` `/rest`
//! bodies, and `auth` reads credentials and rate-limits failures; `upload` streams posted
//! files to the XEP-0363 slot (forms through `multipart`); `client` is the one-request HTTP
//! client of the webhook and of uploads, and `url` the small URL parser both sides share.
//! This module only moves bytes, over any stream: TCP, TLS over TCP (`https`), or a local
//! unix socket.
//!
//! A unix-socket client has no IP address. The failed-auth limiter counts all of them as
//! the one address [`UNIX_PEER`] (`::`, which no TCP peer can have): a local process that
//! guesses keys blocks only the socket, never a LAN client. With `http.unix_trust`, a
//! request on the socket carries [`LocalTrust`] and needs no key.

pub mod auth;
pub mod body;
pub mod framing;
pub mod https;
pub mod multipart;
pub mod rest;
pub mod routes;
pub mod upload;

use crate::app::App;
use crate::log;
use crate::net;
use crate::net::rt;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncWrite};
use smol::lock::Semaphore;
use smol::net::unix::{UnixListener, UnixStream};
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The whole request body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A body's first second is exempt from `http.min_body_rate` (connection ramp-up).
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(1);
/// The longest request head (request line and headers), and hyper's read buffer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most request headers.
pub const MAX_HEADERS: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The last value of header `name`, if it is UTF-8 (other bytes are opaque to us, RFC
/// 9110 §5.5, and read as absent).
fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(str::to_string)
}

/// The address the auth limiter sees for every unix-socket client.
pub const UNIX_PEER: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// A request extension: the request came over a local socket with `http.unix_trust`, whose
/// file mode is the access control, so it needs no API key.
#[derive(Debug, Clone, Copy)]
pub struct LocalTrust;

/// A request extension: the request came over a local socket, which no web page can reach
/// (`http.allowed_hosts` does not apply).
#[derive(Debug, Clone, Copy)]
pub struct UnixSocket;

/// A socket the daemon serves HTTP on.
pub enum Listener {
    /// TCP, with TLS when `http.tls_cert` is set.
    Tcp(TcpListener, Option<Rc<https::Https>>),
    /// A local socket; `true`: its requests need no key (`http.unix_trust`).
    Unix(UnixListener, bool),
}

/// An accepted connection, not yet served.
enum Accepted {
    Tcp(TcpStream, IpAddr, Option<Rc<https::Https>>),
    Unix(UnixStream, bool),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l, tls) => {
                let (tcp, peer) = l.accept().await?;
                // Answers are small and written at once; do not hold them for the peer's ACK.
                let _ = tcp.set_nodelay(true);
                Ok(Accepted::Tcp(tcp, peer.ip(), tls.clone()))
            }
            Self::Unix(l, trust) => Ok(Accepted::Unix(l.accept().await?.0, *trust)),
        }
    }
}

impl Accepted {
    /// Serve the connection; a TLS handshake must finish within `http.read_timeout`.
    async fn serve(self, app: Rc<App>, conn: Rc<Conn>) {
        match self {
            Self::Tcp(tcp, peer, None) => serve_connection(tcp, app, peer, conn).await,
            #[cfg(feature = "https")]
            Self::Tcp(tcp, peer, Some(tls)) => {
                // On the heap: every connection's task is as large as its largest kind, and
                // a TLS session would make each plain one pay for it.
                Box::pin(async move {
                    let handshake = tls.acceptor().accept(tcp);
                    let done = net::timeout(app.cfg.http.read_timeout, handshake).await;
                    if let Some(Ok(stream)) = done {
                        serve_connection(stream, app, peer, conn).await;
                    }
                })
                .await
            }
            // `Https::open` fails in such a build: no listener has a certificate.
            #[cfg(not(feature = "https"))]
            Accepted::Tcp(_, _, Some(_)) => {}
            Self::Unix(stream, trust) => {
                conn.unix.set(true);
                conn.trusted.set(trust);
                serve_connection(stream, app, UNIX_PEER, conn).await
            }
        }
    }
}

/// What the accept loop knows of a connection it serves.
#[derive(Debug, Default)]
pub struct Conn {
    /// The connection is on a unix socket ([`UnixSocket`]).
    unix: Cell<bool>,
    /// Requests on this connection need no key ([`LocalTrust`]).
    trusted: Cell<bool>,
    /// A request's head arrived and its answer is not written yet.
    requesting: Cell<bool>,
    /// The answer went to hyper; its next read (the next request, or the rest of an
    /// unread body) comes after the answer is written.
    answered: Cell<bool>,
    /// Requests handed to the service so far.
    requests: Cell<u64>,
    /// The number of a request that carried both `Content-Length` and `Transfer-Encoding`,
    /// or `Content-Length` twice ([`framing::Scanner`]): hyper passes it on without the
    /// extra length.
    smuggled: Cell<Option<u64>>,
}

impl Conn {
    /// A request's head arrived: keep the slot until it is answered. Returns whether it is
    /// a smuggling form hyper does not refuse itself.
    fn begin(&self) -> bool {
        self.answered.set(false);
        self.requesting.set(true);
        let n = self.requests.get();
        self.requests.set(n + 1);
        self.smuggled.get() == Some(n)
    }

    /// The answer is handed over to be written.
    fn end(&self) {
        self.answered.set(true);
    }
}

/// The socket as hyper sees it: a read that makes no progress for `read_timeout` fails,
/// so a client that trickles bytes, or an idle keep-alive connection, does not hold a slot
/// for ever (`http.read_timeout`; hyper also bounds a whole head to the same time).
#[derive(Debug)]
struct HttpIo<T> {
    io: T,
    read_timeout: Duration,
    /// When a read last made progress.
    progress: Instant,
    /// Armed lazily from `progress`, so a busy connection does not re-arm it per read.
    timer: Timer,
    armed: bool,
    conn: Rc<Conn>,
    framing: framing::Scanner,
}

impl<T: AsyncRead + Unpin> AsyncRead for HttpIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.conn.answered.replace(false) {
            this.conn.requesting.set(false);
        }
        let ready = Pin::new(&mut this.io).poll_read(cx, buf);
        if ready.is_ready() {
            this.progress = Instant::now();
            if let Poll::Ready(Ok(n)) = ready {
                this.framing.feed(&buf[..n.min(buf.len())]);
                if let Some(i) = this.framing.flagged() {
                    this.conn.smuggled.set(Some(i));
                }
            }
            return ready;
        }
        loop {
            let deadline = this.progress + this.read_timeout;
            if !this.armed {
                this.timer.set_at(deadline);
                this.armed = true;
            }
            if Pin::new(&mut this.timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.armed = false;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client too slow",
                )));
            }
            // Fired for an older deadline: the client made progress since; re-arm.
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HttpIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// Serve HTTP/1.0 and 1.1 requests from `peer` on `io` until the client closes, is too
/// slow, or sends something that is not HTTP. Generic over the stream, so that any
/// listener (TCP, TLS, a unix socket, a fuzzer's bytes) shares it; `conn` tells the
/// caller whether a request is being answered.
pub async fn serve_connection<T>(io: T, app: Rc<App>, peer: IpAddr, conn: Rc<Conn>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let read_timeout = app.cfg.http.read_timeout;
    let io = rt::Io(HttpIo {
        io,
        read_timeout,
        progress: Instant::now(),
        timer: Timer::never(),
        armed: false,
        conn: conn.clone(),
        framing: framing::Scanner::default(),
    });
    let service = service_fn(move |req| {
        let app = app.clone();
        let conn = conn.clone();
        async move {
            let mut req = req;
            if conn.unix.get() {
                req.extensions_mut().insert(UnixSocket);
            }
            if conn.trusted.get() {
                req.extensions_mut().insert(LocalTrust);
            }
            let res = if conn.begin() {
                routes::smuggled(&app)
            } else {
                routes::handle(&app, req, peer).await
            };
            conn.end();
            Ok::<_, Infallible>(res)
        }
    });
    let _ = http1::Builder::new()
        .timer(rt::SmolTimer)
        .header_read_timeout(read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .title_case_headers(true)
        .serve_connection(io, service)
        .await;
}

/// A served connection, and the means to close it when it must give way.
#[derive(Debug)]
struct Served {
    conn: Rc<Conn>,
    /// Dropping it ends the connection's task (its receiver sees the channel close).
    _close: smol::channel::Sender<()>,
}

/// The connections one listener serves, oldest first.
#[derive(Debug, Default)]
struct ServedList(RefCell<Vec<Served>>);

impl ServedList {
    fn any_waiting(&self) -> bool {
        self.0.borrow().iter().any(|s| !s.conn.requesting.get())
    }

    /// Close the oldest connection that is not answering a request, if there is one. It
    /// leaves the list at once, so that the next new connection closes another.
    fn make_room(&self) {
        let mut list = self.0.borrow_mut();
        if let Some(i) = list.iter().position(|s| !s.conn.requesting.get()) {
            drop(list.remove(i));
        }
    }

    fn remove(&self, conn: &Rc<Conn>) {
        self.0.borrow_mut().retain(|s| !Rc::ptr_eq(&s.conn, conn));
    }
}

/// Listen on the local socket `path` with file mode `mode`. A socket left by a previous run
/// is removed; any other file there is an error.
pub fn bind_unix(path: &std::path::Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The socket is made with the umask's mode; none wider than `mode`, so that no client
    // can connect in the moment before the chmod.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(!mode & 0o777));
    let bound = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(old);
    let l = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    l.set_nonblocking(true)?;
    UnixListener::try_from(l)
}

/// Accept connections on `listener` for ever, at most `http.max_connections` at once
/// across all listeners (`slots`). Beyond that, a new connection takes the slot of this
/// listener's oldest connection that is not answering a request; when every one is,
/// new connections wait in the kernel's backlog until a slot frees.
pub async fn serve(
    listener: Listener,
    app: Rc<App>,
    slots: Arc<Semaphore>,
    ex: Rc<LocalExecutor<'static>>,
) {
    let served = Rc::new(ServedList::default());
    loop {
        let mut permit = slots.try_acquire_arc();
        if permit.is_none() && !served.any_waiting() {
            permit = Some(slots.acquire_arc().await);
        }
        let accepted = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log!("http: accept failed: {e}");
                Timer::after(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let permit = match permit.or_else(|| slots.try_acquire_arc()) {
            Some(p) => p,
            None => {
                // The closed connection's task ends at once and frees its slot.
                served.make_room();
                slots.acquire_arc().await
            }
        };
        let conn = Rc::new(Conn::default());
        let (close, closed) = smol::channel::bounded::<()>(1);
        served.0.borrow_mut().push(Served {
            conn: conn.clone(),
            _close: close,
        });
        let app = app.clone();
        let served = served.clone();
        ex.spawn(async move {
            let serve = accepted.serve(app, conn.clone());
            let evicted = async {
                let _ = closed.recv().await;
            };
            serve.or(evicted).await;
            served.remove(&conn);
            drop(permit);
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("xrelay-unix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_socket_left_by_an_earlier_run_is_replaced_with_the_configured_mode() {
        let d = dir("stale");
        let path = d.join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        smol::block_on(async { bind_unix(&path, 0o640).unwrap() });
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_left_alone_and_refused() {
        let d = dir("file");
        let path = d.join("s.sock");
        std::fs::write(&path, "keep me").unwrap();
        let e = smol::block_on(async { bind_unix(&path, 0o660).unwrap_err() });
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
