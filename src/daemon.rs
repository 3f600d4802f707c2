//! `xrelay run`: the HTTP listeners and one XMPP stream kept online (reconnecting with
//! backoff, resuming the session when the server can) on a single-threaded executor, until
//! SIGTERM or SIGINT; SIGHUP reloads keys and invites.
//!
//! The online loop moves outbox entries onto the stream, feeds acknowledgements back into
//! the outbox, reads the roster, joins the configured rooms, approves subscription requests
//! that carry a valid invite token, and answers what arrives.
//!
//! Stopping is graceful: the first SIGTERM or SIGINT closes the HTTP listeners and gives
//! the outbox `outbox.grace` to be acknowledged (reconnecting if need be), then the stream
//! is closed; a second signal stops at once.

use crate::app::{App, StreamState};
use crate::config::Config;
use crate::dispatch;
use crate::http;
use crate::log;
use crate::metrics;
use crate::net;
use crate::net::conn::{self, Connection, Progress};
use crate::net::tls;
use crate::outbox::{Limits, Outbox};
use crate::pacing::{End, Pacing};
use crate::spool::{Budget, Spool};
use crate::store::invites::{self, InviteStore};
use crate::store::keys::KeyStore;
use crate::webhook;
use crate::xmpp::stanza::{self, NS_CLIENT};
use crate::xmpp::stream::{Error as StreamErr, Event, Resumption, SmState};
use crate::xmpp::xml::Element;
use async_signal::{Signal, Signals};
use smol::future::FutureExt;
use smol::lock::Semaphore;
use smol::stream::StreamExt;
use smol::{LocalExecutor, Task, Timer};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after going online the daemon pings the server itself: an answer proves the
/// session healthy, and the next outage's backoff starts from the minimum.
const HEALTH_PROBE_AFTER: Duration = Duration::from_secs(5);
/// Time the clean close of the stream still gets once the grace period is over.
const CLOSE_AFTER_GRACE: Duration = Duration::from_secs(1);

/// Why the daemon could not run.
#[derive(Debug)]
pub enum RunError {
    /// The TLS trust settings are unusable (e.g. an unreadable `ca_file`).
    Tls(tls::TlsError),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
    /// The keys file is unusable.
    Keys(crate::store::keys::KeysError),
    /// The invites file is unusable.
    Invites(invites::InvitesError),
    /// An HTTP listen address could not be bound.
    Listen(std::net::SocketAddr, std::io::Error),
    /// The outbox spool cannot be used.
    Spool(crate::spool::SpoolError),
    /// A local socket could not be made.
    Unix(std::path::PathBuf, std::io::Error),
    /// The HTTPS certificate or key is unusable.
    Https(http::https::HttpsError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "{e}"),
            Self::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            Self::Keys(e) => write!(f, "{e}"),
            Self::Invites(e) => write!(f, "{e}"),
            Self::Listen(a, e) => write!(f, "cannot listen on {a}: {e}"),
            Self::Spool(e) => write!(f, "{e}"),
            Self::Unix(p, e) => write!(f, "cannot listen on unix:{}: {e}", p.display()),
            Self::Https(e) => write!(f, "config error: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Uniform in [0, 1], for the reconnect jitter.
fn jitter() -> f64 {
    // Without OS randomness the jitter is merely zero; the pacing still works.
    let b = crate::secret::random::<2>().unwrap_or_default();
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// The log line of a connection step.
fn progress_line(p: Progress) -> String {
    match p {
        Progress::Resolved(t) => format!("connecting to {}", t.join(", ")),
        Progress::Connected(a) => format!("connected to {a}"),
        Progress::Secured { version, .. } => format!("secured with {version}"),
        Progress::Online { jid, mechanism, sm } => format!(
            "online as {jid} ({mechanism}{})",
            if sm { ", stream management" } else { "" }
        ),
    }
}

/// Run until a termination signal. Returns when the stream was closed cleanly.
pub fn run(cfg: Config) -> Result<(), RunError> {
    let tls = tls::client_config(&cfg.xmpp.trust()).map_err(RunError::Tls)?;
    let keys = KeyStore::open(&cfg.keys.file).map_err(RunError::Keys)?;
    let invites = InviteStore::open(&cfg.invites.file).map_err(RunError::Invites)?;
    let signals =
        Signals::new([Signal::Term, Signal::Int, Signal::Hup]).map_err(RunError::Signals)?;
    let https = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
        (Some(cert), Some(key)) => Some(Rc::new(
            http::https::Https::open(cert, key).map_err(RunError::Https)?,
        )),
        _ => None,
    };
    let mut listeners = Vec::new();
    for path in &cfg.http.unix {
        let l = http::bind_unix(path, cfg.http.unix_mode)
            .map_err(|e| RunError::Unix(path.clone(), e))?;
        log!(
            "http: listening on unix:{} (mode {:o}{})",
            path.display(),
            cfg.http.unix_mode,
            if cfg.http.unix_trust {
                ", trusted: no key needed"
            } else {
                ""
            }
        );
        listeners.push(http::Listener::Unix(l, cfg.http.unix_trust));
    }
    for addr in &cfg.http.listen {
        let l = std::net::TcpListener::bind(addr)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                smol::net::TcpListener::try_from(l)
            })
            .map_err(|e| RunError::Listen(*addr, e))?;
        log!(
            "http: listening on {}{addr}",
            if https.is_some() { "https://" } else { "" }
        );
        listeners.push(http::Listener::Tcp(l, https.clone()));
    }
    let slots = Arc::new(Semaphore::new(cfg.http.max_connections));
    let hook = match &cfg.webhook {
        Some(w) => {
            let trust = crate::config::Trust::for_endpoints(cfg.xmpp.ca_file.as_deref());
            let tls = tls::client_config(&trust).map_err(RunError::Tls)?;
            Some(webhook::new(
                w.clone(),
                tls,
                cfg.xmpp.max_stanza_bytes,
                cfg.outbox.max_bytes,
            ))
        }
        None => None,
    };
    let spool = match &cfg.outbox.spool {
        // A spooled stanza was built from a body of at most `max_body_bytes` (or a
        // webhook answer of at most `max_stanza_bytes`); escaping at most sextuples it.
        // It is at most `max_outgoing_bytes`, which the one-line form (a line feed
        // becomes `&#10;`) at most quintuples.
        Some(path) => Some(
            Spool::open(
                path,
                (cfg.http.max_body_bytes.max(cfg.xmpp.max_stanza_bytes) * 6)
                    .max(cfg.xmpp.max_outgoing_bytes * 5)
                    + 4096,
                Budget {
                    entries: cfg.outbox.capacity,
                    bytes: cfg.outbox.max_bytes,
                },
            )
            .map_err(RunError::Spool)?,
        ),
        None => None,
    };
    let mut app = App::new(cfg, keys, invites);
    if let Some((spool, replay)) = spool {
        if replay.skipped > 0 {
            log!(
                "outbox spool: skipped {} damaged line(s) (a write cut short by a crash)",
                replay.skipped
            );
        }
        if !replay.entries.is_empty() {
            log!(
                "outbox spool: {} message(s) from before the restart queued again, {} more \
                 wait on disk for room",
                replay.entries.len(),
                spool.backlog()
            );
        }
        app.outbox = Outbox::with_spool(Limits::of(&app.cfg), spool, replay.entries);
    }
    let ex = Rc::new(LocalExecutor::new());
    let (queue, worker) = match hook {
        Some((hook, queue, rx)) => (Some(queue), Some((hook, rx))),
        None => (None, None),
    };
    let app = Rc::new(app);
    if let Some((hook, rx)) = worker {
        let app = app.clone();
        ex.spawn(async move { webhook::run_worker(hook, rx, &app).await })
            .detach();
    }
    let mut http_tasks: Vec<Task<()>> = listeners
        .into_iter()
        .map(|l| ex.spawn(http::serve(l, app.clone(), slots.clone(), ex.clone())))
        .collect();
    let mut stopper = Stopper {
        signals,
        deadline: None,
        https,
    };
    smol::block_on(ex.run(async {
        let mut pacing = Pacing::new(app.cfg.xmpp.reconnect_max);
        let mut reconnecting = false;
        // The session the next connection tries to resume.
        let mut previous: Option<SmState> = None;
        // "online as" waits until the initial presence is on the wire (see `serve`), so
        // that a message sent to the bot once the line shows finds it available.
        let online_line = Cell::new(None);
        let mut progress = |p: Progress| match p {
            Progress::Online { .. } => online_line.set(Some(progress_line(p))),
            p => log!("{}", progress_line(p)),
        };
        'run: loop {
            if stopper.deadline.is_some() && app.outbox.depth() == 0 {
                break 'run;
            }
            app.stream.set(StreamState::Connecting);
            let open = Connection::open_resuming(
                &app.cfg.xmpp,
                tls.clone(),
                previous.clone(),
                &mut progress,
            );
            let Some(opened) = until_stop(&app, &mut http_tasks, &mut stopper, open).await else {
                break 'run;
            };
            let (how, online) = match opened {
                Ok(mut conn) => {
                    if reconnecting {
                        metrics::inc(&app.metrics.reconnects);
                    }
                    reconnecting = true;
                    let started = Instant::now();
                    let end = serve(
                        &app,
                        queue.as_ref(),
                        &mut conn,
                        online_line.take(),
                        &mut stopper,
                        &mut http_tasks,
                        &mut pacing,
                    )
                    .await;
                    previous = conn.sm_state();
                    drop(conn);
                    match end {
                        None => break 'run,
                        Some(e) => {
                            log!("disconnected: {e}");
                            *app.last_error.borrow_mut() = Some(log::one_line(&e.to_string()));
                            take_out_poison(&app, &e);
                            (how_it_ended(&app, &e, &pacing), started.elapsed())
                        }
                    }
                }
                Err(e) => {
                    log!("connection failed ({}): {e}", e.step());
                    *app.last_error.borrow_mut() =
                        Some(log::one_line(&format!("{}: {e}", e.step())));
                    (how_it_ended(&app, &e, &pacing), Duration::ZERO)
                }
            };
            app.stream.set(StreamState::Offline);
            let delay = pacing.ended(how, online, jitter());
            log!("reconnecting in {:.1}s", delay.as_secs_f64());
            let wait = Timer::after(delay);
            if until_stop(&app, &mut http_tasks, &mut stopper, wait)
                .await
                .is_none()
            {
                break 'run;
            }
        }
        log_stopped(&app);
        Ok(())
    }))
}

/// `work`'s output, with stop signals handled meanwhile: the first begins the shutdown and
/// `work` goes on while messages wait; `None` when the daemon is to stop now (a second
/// signal, the grace period over, or nothing left to deliver).
fn until_stop<'a, T>(
    app: &'a App,
    http_tasks: &'a mut Vec<Task<()>>,
    stopper: &'a mut Stopper,
    work: impl Future<Output = T> + 'a,
) -> impl Future<Output = Option<T>> + 'a {
    // Only this race is generic; the signal handling is one function for every caller.
    async { Some(work.await) }.or(async {
        stop_now(app, http_tasks, stopper).await;
        None
    })
}

/// Returns when the daemon is to stop now; the first signal on the way begins the
/// shutdown.
async fn stop_now(app: &App, http_tasks: &mut Vec<Task<()>>, stopper: &mut Stopper) {
    loop {
        match stopper.next(app).await {
            Stop::Begin => {
                begin_shutdown(app, http_tasks, stopper).await;
                if app.outbox.depth() == 0 {
                    return;
                }
            }
            Stop::Now => return,
        }
    }
}

/// After a stream error, let the outbox find a stanza the server refuses every time.
fn take_out_poison(app: &App, e: &conn::Error) {
    let conn::Error::Stream(StreamErr::StreamError { condition, .. }) = e else {
        return;
    };
    if let Some(p) = app.outbox.stream_error(condition) {
        metrics::inc(&app.metrics.poisoned);
        log!(
            "message {} to {} ({} bytes) failed and left the queue: the server ended the \
             stream ({condition}) right after it twice",
            p.id,
            p.to,
            p.bytes
        );
    }
}

/// What the end of a session or attempt means for the pacing; logs who took the session
/// over when another login replaced it.
fn how_it_ended(app: &App, e: &conn::Error, pacing: &Pacing) -> End {
    let conn::Error::Stream(StreamErr::StreamError { condition, text }) = e else {
        return End::Failed;
    };
    let how = End::from_condition(condition);
    if how == End::Replaced {
        let resource = &app.cfg.xmpp.resource;
        let jid = app
            .cfg
            .xmpp
            .jid
            .with_resource(resource)
            .map_or_else(|_| resource.clone(), |j| j.to_string());
        log!(
            "session replaced: another login took the resource of {jid}{}; {}",
            text.as_ref()
                .map_or_else(String::new, |t| format!(" (server: {t})")),
            if pacing.is_replaced() {
                "still backing off"
            } else {
                "backing off instead of taking it back at once (is a second copy running \
                 with the same config?)"
            }
        );
    }
    how
}

/// What a stop signal asks for.
enum Stop {
    /// The first SIGTERM or SIGINT: take no new messages, deliver what is queued.
    Begin,
    /// Stop now: a second signal, or the grace period is over.
    Now,
}

/// The stop signals and, once the first arrived, the end of the grace period.
struct Stopper {
    signals: Signals,
    /// When shutting down: when to give up on the outbox.
    deadline: Option<Instant>,
    /// The HTTPS certificate, reread on SIGHUP.
    https: Option<Rc<http::https::Https>>,
}

impl Stopper {
    /// Wait for the next reason to stop; SIGHUP on the way reloads keys and invites.
    async fn next(&mut self, app: &App) -> Stop {
        let deadline = self.deadline;
        let signals = &mut self.signals;
        let https = &self.https;
        let signal = async {
            while let Some(sig) = signals.next().await {
                match sig {
                    Ok(Signal::Hup) => {
                        reload_files(app);
                        if let Some(h) = https {
                            h.reload();
                        }
                    }
                    _ => break,
                }
            }
            if deadline.is_some() {
                Stop::Now
            } else {
                Stop::Begin
            }
        };
        match deadline {
            Some(d) => {
                signal
                    .or(async {
                        Timer::at(d).await;
                        Stop::Now
                    })
                    .await
            }
            None => signal.await,
        }
    }

    fn stopping(&self) -> bool {
        self.deadline.is_some()
    }
}

/// The first stop signal: close the HTTP listeners (requests in progress finish), refuse
/// new messages, and give the outbox `outbox.grace` to be acknowledged.
async fn begin_shutdown(app: &App, http_tasks: &mut Vec<Task<()>>, stopper: &mut Stopper) {
    // Cancelling returns once a listener's future (and with it the socket) is dropped.
    for t in http_tasks.drain(..) {
        t.cancel().await;
    }
    app.outbox.close();
    let grace = app.cfg.outbox.grace;
    stopper.deadline = Some(Instant::now() + grace);
    match app.outbox.depth() {
        0 => log!("shutting down"),
        n => log!(
            "shutting down: waiting up to {}s for the server to acknowledge {n} message(s)",
            grace.as_secs()
        ),
    }
}

/// The last line: what could not be delivered, and whether it is kept.
fn log_stopped(app: &App) {
    match app.outbox.depth() {
        0 => log!("stopped"),
        n if app.outbox.is_spooled() => {
            log!("stopped: {n} message(s) not delivered, kept in the spool for the next start")
        }
        n => log!("stopped: {n} message(s) not delivered and lost"),
    }
}

fn reload_files(app: &App) {
    match app.keys.reload() {
        Ok(()) => log!("keys reloaded"),
        Err(e) => log!("{}", crate::store::keys::revoked_all(&e)),
    }
    match app.invites.reload() {
        Ok(()) => log!("invites reloaded"),
        Err(e) => log!("{}", invites::refused_all(&e)),
    }
}

/// What woke the online loop.
enum Wake {
    Event(Result<Event, conn::Error>),
    Stop(Stop),
    Pushed,
    /// A timer: the health ping is due or a lost room's retry time came.
    Tick,
}

/// Serve one online stream. `None`: stopped and closed cleanly.
async fn serve(
    app: &App,
    webhook: Option<&webhook::Queue>,
    conn: &mut Connection,
    online_line: Option<String>,
    stopper: &mut Stopper,
    http_tasks: &mut Vec<Task<()>>,
    pacing: &mut Pacing,
) -> Option<conn::Error> {
    app.stream.set(StreamState::Online);
    *app.last_error.borrow_mut() = None;
    let resumption = conn.resumption();
    let acked = match resumption {
        Resumption::None => None,
        Resumption::Resumed { acked } => Some(acked),
        Resumption::Failed { acked } => acked,
    };
    let (confirmed, resent) = app.outbox.restart(acked);
    app.metrics
        .delivered
        .fetch_add(confirmed, Ordering::Relaxed);
    let queued = app.outbox.depth() - resent;
    match resumption {
        Resumption::None if resent + queued == 0 => {}
        Resumption::None => {
            log!("new session: {resent} unacknowledged message(s) sent again, {queued} waiting")
        }
        Resumption::Resumed { .. } => log!(
            "session resumed: {confirmed} message(s) confirmed, {resent} sent again, \
             {queued} waiting"
        ),
        Resumption::Failed { acked } => {
            let confirmed = match acked {
                Some(_) => format!("{confirmed} message(s) confirmed by the server's count, "),
                None => String::new(),
            };
            let unacked = if acked.is_some() {
                ""
            } else {
                " unacknowledged"
            };
            log!(
                "session not resumed, new session: {confirmed}{resent}{unacked} message(s) \
                 sent again, {queued} waiting"
            )
        }
    }
    // A resumed session keeps its presence, roster and rooms on the server. A new one
    // asks for the roster first (RFC 6121 §2.2: the session then gets roster pushes),
    // then sends initial presence, so the server routes messages and pending
    // subscription requests to us, then joins the rooms. `open` returns only once the
    // stream is online, so these sends cannot be refused.
    if !matches!(resumption, Resumption::Resumed { .. }) {
        let _ = conn.send(&app.roster.borrow_mut().request(&app.next_id()));
        let _ = conn.send(&Element::new("presence", NS_CLIENT));
        let joins = app.rooms.borrow_mut().join_all(Instant::now());
        for join in joins {
            let _ = conn.send(&join);
        }
        if let Err(e) = conn.flush().await {
            return Some(e);
        }
    }
    if let Some(line) = online_line {
        log!("{line}");
    }
    // Our own ping, once the session settled: its answer proves the session healthy.
    let mut probe = Some((Instant::now() + HEALTH_PROBE_AFTER, app.next_id()));
    let mut probe_sent = false;
    loop {
        if stopper.stopping() && app.outbox.depth() == 0 {
            close(app, conn, stopper).await;
            return None;
        }
        if app.outbox.send_pending(|xml| conn.send_serialized(xml)) > 0 {
            conn.request_ack();
        }
        let ev = async { Wake::Event(conn.next_event().await) };
        let stop = async { Wake::Stop(stopper.next(app).await) };
        let pushed = async {
            app.outbox.pushed().await;
            Wake::Pushed
        };
        let due = [
            probe.as_ref().filter(|_| !probe_sent).map(|p| p.0),
            app.rooms.borrow().next_due(),
        ]
        .into_iter()
        .flatten()
        .min();
        let tick = async {
            match due {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
            Wake::Tick
        };
        match ev.or(stop).or(pushed).or(tick).await {
            Wake::Pushed => {}
            Wake::Tick => {
                let now = Instant::now();
                if let Some((_, id)) = probe.as_ref().filter(|p| !probe_sent && p.0 <= now) {
                    let _ = conn.send(&stanza::ping(Some(app.cfg.xmpp.jid.domain()), id));
                    probe_sent = true;
                }
                let lost = app.rooms.borrow_mut().timeouts(now);
                for change in lost {
                    dispatch::log_room(change);
                }
                let joins = app.rooms.borrow_mut().due(now);
                for join in joins {
                    let _ = conn.send(&join);
                }
            }
            Wake::Stop(Stop::Begin) => begin_shutdown(app, http_tasks, stopper).await,
            Wake::Stop(Stop::Now) => {
                close(app, conn, stopper).await;
                return None;
            }
            Wake::Event(Ok(Event::Acked(seq))) => {
                let n = app.outbox.ack(seq);
                app.metrics.delivered.fetch_add(n, Ordering::Relaxed);
            }
            Wake::Event(Ok(Event::Stanza(el))) => {
                if probe_sent
                    && probe
                        .as_ref()
                        .is_some_and(|(_, id)| dispatch::is_reply_to(&el, id))
                {
                    // Any answer, even an error, shows the server serves this session.
                    pacing.healthy();
                    probe = None;
                    continue;
                }
                for reply in dispatch::stanza(app, webhook, &el) {
                    // Online while events flow; a full buffer only delays the answer's
                    // peer, who retries: iq errors are not worth blocking the stream for.
                    let _ = conn.send(&reply);
                }
            }
            Wake::Event(Ok(Event::Skipped(s))) => log!(
                "skipped a {}-byte {} from {}: {}",
                s.bytes,
                s.name,
                s.from.as_deref().unwrap_or("the server"),
                s.why
            ),
            Wake::Event(Ok(_)) => {}
            Wake::Event(Err(e)) => return Some(e),
        }
    }
}

/// Close the stream cleanly within what is left of the grace period, and at least
/// [`CLOSE_AFTER_GRACE`]: a dead link must not hold up the exit for `xmpp.timeout`.
async fn close(app: &App, conn: &mut Connection, stopper: &Stopper) {
    let now = Instant::now();
    let until = stopper
        .deadline
        .map_or(now, |d| d.max(now))
        .max(now + CLOSE_AFTER_GRACE);
    if let Some(seq) = net::timeout(net::left_until(until), conn.close())
        .await
        .flatten()
    {
        let n = app.outbox.ack(seq);
        app.metrics.delivered.fetch_add(n, Ordering::Relaxed);
    }
}
