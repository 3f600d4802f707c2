//! The HTTP listener: accepting connections under a cap, async-h1 on each, and the socket
//! wrapper that bounds slow clients.
//!
//! Under the cap, a connection that has not sent a complete request (a slow or idle
//! client, or a keep-alive connection between requests) gives way to a new one: a flood
//! of slow connections cannot keep real requests waiting in the backlog for their read
//! timeouts. A connection whose request is being answered keeps its slot.
//!
//! `routes` decides what each request means; `body` parses `/msg` bodies, `rest` `/rest`
//! bodies, and `auth` reads credentials and rate-limits failures; `client` is the webhook's
//! one-request HTTP client. This module only moves bytes.

pub mod auth;
pub mod body;
pub mod multipart;
pub mod client;
pub mod rest;
pub mod routes;

use crate::app::App;
use crate::log;
use smol::io::{AsyncRead, AsyncWrite};
use smol::lock::Semaphore;
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer};
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Shutdown};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The whole request body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The socket as async-h1 sees it: reads time out when idle, and reading can be stopped
/// so that async-h1 does not drain a refused body (it reads leftovers to sink otherwise).
#[derive(Debug, Clone)]
pub struct HttpIo {
    tcp: TcpStream,
    stopped: Arc<AtomicBool>,
    /// A read that makes no progress for this long ends the connection: a client that
    /// trickles bytes, or an idle keep-alive connection, does not hold a slot for ever
    /// (`http.read_timeout`; async-h1 also bounds a whole header block to 60 s).
    read_timeout: Duration,
    /// Shared by the clones async-h1 makes per request, so a keep-alive connection
    /// re-registers its idle timer at most once per timeout period.
    idle: Arc<Mutex<Idle>>,
    /// Whether a request is being answered, for the accept loop.
    conn: Arc<Conn>,
}

/// What the accept loop knows of a connection it serves.
#[derive(Debug)]
struct Conn {
    /// The socket, to close it when it must give way.
    tcp: TcpStream,
    /// A request's head arrived and its answer is not written yet.
    requesting: AtomicBool,
    /// The answer went to async-h1; its next read (the next request, or the rest of an
    /// unread body) comes after the answer is written.
    answered: AtomicBool,
}

impl Conn {
    /// A request's head arrived: keep the slot until it is answered.
    fn begin(&self) {
        self.answered.store(false, Ordering::Relaxed);
        self.requesting.store(true, Ordering::Relaxed);
    }

    /// The answer is handed over to be written.
    fn end(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    fn is_requesting(&self) -> bool {
        self.requesting.load(Ordering::Relaxed)
    }
}

/// When a read last made progress, and the timer armed from it lazily.
#[derive(Debug)]
struct Idle {
    progress: Instant,
    timer: Timer,
    armed: bool,
}

impl HttpIo {
    fn new(tcp: TcpStream, read_timeout: Duration, conn: Arc<Conn>) -> HttpIo {
        HttpIo {
            tcp,
            conn,
            stopped: Arc::new(AtomicBool::new(false)),
            read_timeout,
            idle: Arc::new(Mutex::new(Idle {
                progress: Instant::now(),
                timer: Timer::never(),
                armed: false,
            })),
        }
    }

    /// Read nothing more from this client: the response is written, then the connection
    /// closes (pair with `Connection: close`).
    pub fn stop_reading(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl AsyncRead for HttpIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.stopped.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(0));
        }
        if self.conn.answered.swap(false, Ordering::Relaxed) {
            self.conn.requesting.store(false, Ordering::Relaxed);
        }
        let ready = Pin::new(&mut self.tcp).poll_read(cx, buf);
        let Ok(mut idle) = self.idle.lock() else {
            return ready;
        };
        if ready.is_ready() {
            idle.progress = Instant::now();
            return ready;
        }
        loop {
            let deadline = idle.progress + self.read_timeout;
            if !idle.armed {
                idle.timer.set_at(deadline);
                idle.armed = true;
            }
            if Pin::new(&mut idle.timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            idle.armed = false;
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

impl AsyncWrite for HttpIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_close(cx)
    }
}

/// The connections one listener serves, oldest first.
#[derive(Debug, Default)]
struct Served(RefCell<Vec<Arc<Conn>>>);

impl Served {
    fn any_waiting(&self) -> bool {
        self.0.borrow().iter().any(|c| !c.is_requesting())
    }

    /// Close the oldest connection that is not answering a request, if there is one. It
    /// leaves the list at once, so that the next new connection closes another.
    fn make_room(&self) {
        let mut list = self.0.borrow_mut();
        if let Some(i) = list.iter().position(|c| !c.is_requesting()) {
            let _ = list.remove(i).tcp.shutdown(Shutdown::Both);
        }
    }

    fn remove(&self, conn: &Arc<Conn>) {
        self.0.borrow_mut().retain(|c| !Arc::ptr_eq(c, conn));
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
    let served = Rc::new(Served::default());
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
                // The closed connection's task ends at its next read and frees its slot.
                served.make_room();
                slots.acquire_arc().await
            }
        };
        // async-h1 writes head and body separately: without this every keep-alive
        // response waits for the peer's delayed ACK (40 ms).
        let _ = tcp.set_nodelay(true);
        let conn = Arc::new(Conn {
            tcp: tcp.clone(),
            requesting: AtomicBool::new(false),
            answered: AtomicBool::new(false),
        });
        served.0.borrow_mut().push(conn.clone());
        let app = app.clone();
        let served = served.clone();
        ex.spawn(async move {
            let io = HttpIo::new(tcp, app.cfg.http.read_timeout, conn.clone());
            let endpoint_io = io.clone();
            let ip: IpAddr = peer.ip();
            let _ = async_h1::accept(io, |req| {
                let app = app.clone();
                let io = endpoint_io.clone();
                async move {
                    io.conn.begin();
                    let res = routes::handle(&app, req, ip, &io).await;
                    io.conn.end();
                    Ok(res)
                }
            })
            .await;
            served.remove(&conn);
            drop(permit);
        })
        .detach();
    }
}
