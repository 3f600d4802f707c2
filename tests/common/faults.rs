//! A fault-injecting TCP proxy for the tests, in the spirit of smoltcp's fault injector:
//! it sits between xrelay and Prosody, forwards bytes both ways, and on command cuts every
//! connection, stalls them (nothing moves, nothing is closed: only a ping timeout can
//! notice), or delays every byte.
//!
//! Each connection has a reader and a writer thread per direction; readers stamp what they
//! read, writers hold it until `stamp + delay`. While stalled, readers stop reading (so
//! TCP's own backpressure builds up as on a dead link) and writers hold what they have.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a stalled thread looks whether the stall is over.
const STALL_POLL: Duration = Duration::from_millis(5);

/// One proxied connection: both sockets, and whether it was cut.
struct Link {
    client: TcpStream,
    server: TcpStream,
    cut: AtomicBool,
}

impl Link {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

#[derive(Default)]
struct Shared {
    stalled: AtomicBool,
    delay_us: AtomicU64,
    links: Mutex<Vec<Arc<Link>>>,
    accepted: AtomicUsize,
    closing: AtomicBool,
}

impl Shared {
    /// Wait while stalled; false once the link is cut.
    fn wait_unstalled(&self, link: &Link) -> bool {
        while self.stalled.load(Ordering::SeqCst) && !link.cut.load(Ordering::SeqCst) {
            thread::sleep(STALL_POLL);
        }
        !link.cut.load(Ordering::SeqCst)
    }
}

/// The proxy; connect to `127.0.0.1:port` to reach the target. Dropping it cuts every
/// connection and stops listening.
pub(crate) struct FaultProxy {
    /// The port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward every connection to
    /// `127.0.0.1:target_port`.
    pub(crate) fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                for client in listener.incoming() {
                    if sh.closing.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let target = SocketAddr::from(([127, 0, 0, 1], target_port));
                    // A target that is down refuses: so does the proxy, by closing.
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    sh.accepted.fetch_add(1, Ordering::SeqCst);
                    splice(&sh, client, server);
                }
            })
            .expect("start the proxy thread");
        Self { port, shared }
    }

    /// Cut every open connection: both sides see the connection closed, and bytes in
    /// flight are dropped.
    pub(crate) fn cut_all(&self) {
        let links = std::mem::take(&mut *self.shared.links.lock().unwrap());
        for l in links {
            l.cut();
        }
    }

    /// Stop (`true`) or restart (`false`) all traffic, on open and new connections alike,
    /// without closing anything.
    pub(crate) fn stall(&self, on: bool) {
        self.shared.stalled.store(on, Ordering::SeqCst);
    }

    /// Deliver every byte `d` after it was read (both directions).
    pub(crate) fn delay(&self, d: Duration) {
        self.shared
            .delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.stall(false);
        self.cut_all();
    }
}

/// Forward both directions of a new connection.
fn splice(sh: &Arc<Shared>, client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let link = Arc::new(Link {
        client,
        server,
        cut: AtomicBool::new(false),
    });
    {
        let mut links = sh.links.lock().unwrap();
        links.retain(|l| !l.cut.load(Ordering::SeqCst));
        links.push(link.clone());
    }
    pump(sh.clone(), link.clone(), c2, true);
    pump(sh.clone(), link, s2, false);
}

/// One direction: a reader of `from` and a writer to the other socket of `link`.
fn pump(sh: Arc<Shared>, link: Arc<Link>, mut from: TcpStream, from_client: bool) {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    let (rsh, rlink) = (sh.clone(), link.clone());
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if !rsh.wait_unstalled(&rlink) {
                return;
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now(), None));
                    return;
                }
                Ok(n) => {
                    if tx.send((Instant::now(), Some(buf[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        let mut to = if from_client {
            &link.server
        } else {
            &link.client
        };
        for (read_at, data) in rx {
            let delay = Duration::from_micros(sh.delay_us.load(Ordering::SeqCst));
            if let Some(wait) = (read_at + delay).checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if !sh.wait_unstalled(&link) {
                return;
            }
            match data {
                Some(d) => {
                    if to.write_all(&d).is_err() {
                        link.cut();
                        return;
                    }
                }
                None => {
                    // An orderly close travels on as one.
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
            }
        }
    });
}
