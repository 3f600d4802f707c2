//! The HTTP listener: accepting connections under a cap, async-h1 on each, and the socket
//! wrapper that bounds slow clients.
//!
//! `routes` decides what each request means; `body` parses `/msg` bodies, `rest` `/rest`
//! bodies, and `auth` reads credentials and rate-limits failures; `client` is the webhook's
//! one-request HTTP client. This module only moves bytes.

pub mod auth;
pub mod body;
pub mod client;
pub mod rest;
pub mod routes;

use crate::app::App;
use crate::log;
use smol::io::{AsyncRead, AsyncWrite};
use smol::lock::Semaphore;
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer};
use std::future::Future;
use std::io;
use std::net::IpAddr;
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
}

/// When a read last made progress, and the timer armed from it lazily.
#[derive(Debug)]
struct Idle {
    progress: Instant,
    timer: Timer,
    armed: bool,
}

impl HttpIo {
    fn new(tcp: TcpStream, read_timeout: Duration) -> HttpIo {
        HttpIo {
            tcp,
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

/// Accept connections on `listener` for ever, at most `http.max_connections` at once
/// across all listeners (`slots`); beyond that, new connections wait in the kernel's
/// backlog until a slot frees.
pub async fn serve(
    listener: TcpListener,
    app: Rc<App>,
    slots: Arc<Semaphore>,
    ex: Rc<LocalExecutor<'static>>,
) {
    loop {
        let permit = slots.acquire_arc().await;
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log!("http: accept failed: {e}");
                Timer::after(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // async-h1 writes head and body separately: without this every keep-alive
        // response waits for the peer's delayed ACK (40 ms).
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        ex.spawn(async move {
            let io = HttpIo::new(tcp, app.cfg.http.read_timeout);
            let endpoint_io = io.clone();
            let ip: IpAddr = peer.ip();
            let _ = async_h1::accept(io, |req| {
                let app = app.clone();
                let io = endpoint_io.clone();
                async move { Ok(routes::handle(&app, req, ip, &io).await) }
            })
            .await;
            drop(permit);
        })
        .detach();
    }
}
