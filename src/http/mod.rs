//! The HTTP listener: accepting connections under a cap, hyper's HTTP/1 server on each
//! (through the smol adapter in `rt`), and the socket wrapper that bounds slow clients.
//!
//! Under the cap, a connection that has not sent a complete request (a slow or idle
//! client, or a keep-alive connection between requests) gives way to a new one: a flood
//! of slow connections cannot keep real requests waiting in the backlog for their read
//! timeouts. A connection whose request is being answered keeps its slot.
//!
//! `routes` decides what each request means; `body` parses `/msg` bodies, `rest` `/rest`
//! bodies, and `auth` reads credentials and rate-limits failures; `client` is the webhook's
//! one-request HTTP client and `url` the small URL parser both sides share. This module
//! only moves bytes, over any stream (TCP today; the connection code is generic over it).

pub mod auth;
pub mod body;
pub mod client;
pub mod framing;
pub mod multipart;
pub mod rest;
pub mod routes;
pub mod rt;
pub mod url;

use crate::app::App;
use crate::log;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncWrite};
use smol::lock::Semaphore;
use smol::net::TcpListener;
use smol::{LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The whole request body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest request head (request line and headers), and hyper's read buffer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most request headers.
pub const MAX_HEADERS: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What the accept loop knows of a connection it serves.
#[derive(Debug, Default)]
pub struct Conn {
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

/// Accept connections on `listener` for ever, at most `http.max_connections` at once
/// across all listeners (`slots`). Beyond that, a new connection takes the slot of this
/// listener's oldest connection that is not answering a request; when every one is,
/// new connections wait in the kernel's backlog until a slot frees.
pub async fn serve(
    listener: TcpListener,
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
        let (tcp, peer) = match listener.accept().await {
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
        // Answers are small and written at once; do not hold them for the peer's ACK.
        let _ = tcp.set_nodelay(true);
        let conn = Rc::new(Conn::default());
        let (close, closed) = smol::channel::bounded::<()>(1);
        served.0.borrow_mut().push(Served {
            conn: conn.clone(),
            _close: close,
        });
        let app = app.clone();
        let served = served.clone();
        ex.spawn(async move {
            let serve = serve_connection(tcp, app, peer.ip(), conn.clone());
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
