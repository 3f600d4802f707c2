//! `xrelay run`: keep the bot online, reconnecting with backoff, until SIGTERM or SIGINT.

use crate::config::Config;
use crate::log;
use crate::xmpp::conn::{self, Connection, Progress};
use crate::xmpp::stanza::{self, NS_CLIENT};
use crate::xmpp::stream::Event;
use crate::xmpp::tls;
use crate::xmpp::xml::Element;
use async_signal::{Signal, Signals};
use smol::future::FutureExt;
use smol::stream::StreamExt;
use smol::Timer;
use std::fmt;
use std::time::{Duration, Instant};

/// First pause before reconnecting.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// A connection that stayed up this long resets the backoff: a server that drops us right
/// after login must not be hammered at the first step forever.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Why the daemon could not run.
#[derive(Debug)]
pub enum RunError {
    /// The TLS trust settings are unusable (e.g. an unreadable `ca_file`).
    Tls(tls::TlsError),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Tls(e) => write!(f, "{e}"),
            RunError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Exponential backoff with jitter: each pause is drawn from the upper half of a window that
/// doubles from one second up to a cap, so many devices restarted together spread out.
#[derive(Debug)]
pub struct Backoff {
    window: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff that never pauses longer than `max`.
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            window: BACKOFF_START.min(max),
            max,
        }
    }

    /// The next pause.
    pub fn next_delay(&mut self) -> Duration {
        let w = self.window;
        self.window = (self.window * 2).min(self.max);
        w / 2 + w.mul_f64(f64::from(random_u16()) / f64::from(u16::MAX) / 2.0)
    }

    /// Start again from one second.
    pub fn reset(&mut self) {
        self.window = BACKOFF_START.min(self.max);
    }
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    // Without OS randomness the jitter is merely zero; the backoff still works.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_le_bytes(b)
}

/// Log one line per connection step, as the daemon's state changes.
pub fn log_progress(p: Progress) {
    match p {
        Progress::Resolved(t) => log!("connecting to {}", t.join(", ")),
        Progress::Connected(a) => log!("connected to {a}"),
        Progress::Secured { version, .. } => log!("secured with {version}"),
        Progress::Online { jid, mechanism, sm } => log!(
            "online as {jid} ({mechanism}{})",
            if sm { ", stream management" } else { "" }
        ),
    }
}

/// Run until a termination signal. Returns when the stream was closed cleanly.
pub fn run(cfg: &Config) -> Result<(), RunError> {
    let tls = tls::client_config(&cfg.xmpp.trust()).map_err(RunError::Tls)?;
    let mut signals = Signals::new([Signal::Term, Signal::Int]).map_err(RunError::Signals)?;
    smol::block_on(async {
        let mut backoff = Backoff::new(cfg.xmpp.reconnect_max);
        loop {
            let open =
                async { Some(Connection::open(&cfg.xmpp, tls.clone(), &mut log_progress).await) };
            let stop = async {
                signals.next().await;
                None
            };
            match open.or(stop).await {
                None => {
                    log!("stopped");
                    return Ok(());
                }
                Some(Ok(conn)) => {
                    let started = Instant::now();
                    match serve(conn, &mut signals).await {
                        None => {
                            log!("stopped");
                            return Ok(());
                        }
                        Some(e) => log!("disconnected: {e}"),
                    }
                    if started.elapsed() >= STABLE_AFTER {
                        backoff.reset();
                    }
                }
                Some(Err(e)) => log!("connection failed ({}): {e}", e.step()),
            }
            let delay = backoff.next_delay();
            log!("reconnecting in {:.1}s", delay.as_secs_f64());
            let wait = async {
                Timer::after(delay).await;
                false
            };
            let stop = async {
                signals.next().await;
                true
            };
            if wait.or(stop).await {
                log!("stopped");
                return Ok(());
            }
        }
    })
}

/// Serve one online stream. `None`: stopped by a signal and closed cleanly.
async fn serve(mut conn: Connection, signals: &mut Signals) -> Option<conn::Error> {
    // Initial presence, so the server routes messages to us. `open` returns only once the
    // stream is online, so the send cannot be refused.
    let _ = conn.send(&Element::new("presence", NS_CLIENT));
    loop {
        let ev = async { Some(conn.next_event().await) };
        let stop = async {
            signals.next().await;
            None
        };
        match ev.or(stop).await {
            None => {
                log!("shutting down");
                conn.close().await;
                return None;
            }
            Some(Ok(Event::Stanza(el))) => {
                if let Some(reply) = answer(&el) {
                    // The stream is online while events flow, so this cannot fail.
                    let _ = conn.send(&reply);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Some(e),
        }
    }
}

/// RFC 6120 §8.2.3: every iq get/set gets an answer; what xrelay does not handle is
/// `service-unavailable`.
fn answer(el: &Element) -> Option<Element> {
    (el.name() == "iq" && matches!(el.get_attr("type"), Some("get" | "set")))
        .then(|| stanza::error_reply(el, "cancel", "service-unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let expect = [1, 2, 4, 8, 10, 10];
        for w in expect {
            let d = b.next_delay();
            let w = Duration::from_secs(w);
            assert!(d >= w / 2 && d <= w, "{d:?} not in [{:?}, {w:?}]", w / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        let mut tiny = Backoff::new(Duration::from_millis(100));
        assert!(tiny.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn unhandled_iq_gets_service_unavailable() {
        let iq = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "1")
            .attr("from", "a@b/c");
        let r = answer(&iq).unwrap();
        assert_eq!(r.get_attr("type"), Some("error"));
        let result = Element::new("iq", NS_CLIENT).attr("type", "result");
        assert!(answer(&result).is_none());
        assert!(answer(&Element::new("message", NS_CLIENT)).is_none());
    }
}
