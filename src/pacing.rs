//! Reconnect pacing, sans-I/O: how long the daemon waits before the next connection
//! attempt, given how the previous session went. The daemon reports what happened
//! ([`Pacing::healthy`], [`Pacing::ended`]) and asks for the next pause; the clock and the
//! jitter are inputs, so the rules are tested without sleeping.
//!
//! The rules:
//! - Failures back off exponentially (with jitter) from [`START`] up to `xmpp.reconnect_max`.
//! - A session that was online and answered a ping proves the server is fine: the next
//!   outage starts again from [`START`].
//! - A `system-shutdown` or `see-other-host` stream error means the server is going away:
//!   the first retry waits at least [`SHUTDOWN_MIN`], so a dying server is not logged into
//!   again.
//! - A `conflict` (another login took our resource, typically a second copy of the daemon
//!   with the same config) switches to "replaced" pacing: pauses grow from
//!   [`REPLACED_START`] up to `xmpp.reconnect_max` and healthy pings do not reset them, so
//!   two copies do not take the session from each other in a tight loop. A session that
//!   stays up [`REPLACED_CLEAR_AFTER`] ends it.

use std::time::Duration;

/// First pause of ordinary backoff.
pub const START: Duration = Duration::from_secs(1);
/// Least pause after the server announced it is going away.
pub const SHUTDOWN_MIN: Duration = Duration::from_secs(5);
/// First pause after our session was replaced by another login.
pub const REPLACED_START: Duration = Duration::from_secs(10);
/// How long a session must stay up to end "replaced" pacing.
pub const REPLACED_CLEAR_AFTER: Duration = Duration::from_secs(60);

/// How a connection attempt or session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It failed or broke off (network, timeout, any other error).
    Failed,
    /// The server is shutting down or sends us elsewhere (`system-shutdown`,
    /// `see-other-host`).
    ServerLeaving,
    /// Another login replaced our session (`conflict`).
    Replaced,
}

impl End {
    /// The kind of end a stream error condition means.
    pub fn from_condition(condition: &str) -> Self {
        match condition {
            "system-shutdown" | "see-other-host" => Self::ServerLeaving,
            "conflict" => Self::Replaced,
            _ => Self::Failed,
        }
    }
}

/// The pacing state between connection attempts.
#[derive(Debug)]
pub struct Pacing {
    window: Duration,
    max: Duration,
    replaced: bool,
}

impl Pacing {
    /// Pacing that never pauses longer than `max`.
    pub fn new(max: Duration) -> Self {
        Self {
            window: START.min(max),
            max,
            replaced: false,
        }
    }

    /// The session is online and answered a ping: the next outage starts from the
    /// minimum (unless our session is being taken over by another login).
    pub fn healthy(&mut self) {
        if !self.replaced {
            self.window = START.min(self.max);
        }
    }

    /// Whether pauses follow the "replaced" rule.
    pub fn is_replaced(&self) -> bool {
        self.replaced
    }

    /// A session (or attempt) ended after being online for `online` (zero when it never
    /// was); returns the pause before the next attempt. `jitter` is uniform in [0, 1]: the
    /// pause is drawn from the upper half of the window, so devices restarted together
    /// spread out.
    pub fn ended(&mut self, how: End, online: Duration, jitter: f64) -> Duration {
        if self.replaced && online >= REPLACED_CLEAR_AFTER {
            self.replaced = false;
            self.window = START.min(self.max);
        }
        if how == End::Replaced && !self.replaced {
            self.replaced = true;
            self.window = self.window.max(REPLACED_START).min(self.max);
        }
        let w = self.window;
        self.window = (self.window * 2).min(self.max);
        let pause = w / 2 + w.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        match how {
            End::ServerLeaving => pause.max(SHUTDOWN_MIN),
            _ => pause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(300);
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn pauses(p: &mut Pacing, how: End, n: usize) -> Vec<Duration> {
        (0..n).map(|_| p.ended(how, Duration::ZERO, 1.0)).collect()
    }

    #[test]
    fn failures_double_the_pause_up_to_the_cap() {
        let mut p = Pacing::new(S(10));
        assert_eq!(
            pauses(&mut p, End::Failed, 6),
            [S(1), S(2), S(4), S(8), S(10), S(10)]
        );
    }

    #[test]
    fn jitter_draws_from_the_upper_half_of_the_window() {
        let mut p = Pacing::new(MAX);
        assert_eq!(p.ended(End::Failed, Duration::ZERO, 0.0), S(1) / 2);
        assert_eq!(p.ended(End::Failed, Duration::ZERO, 0.5), S(2) * 3 / 4);
    }

    #[test]
    fn a_session_that_answered_a_ping_restarts_the_backoff_from_the_minimum() {
        let mut p = Pacing::new(MAX);
        pauses(&mut p, End::Failed, 5);
        p.healthy();
        assert_eq!(p.ended(End::Failed, S(18), 1.0), S(1));
    }

    #[test]
    fn backoff_carries_over_when_no_session_proved_healthy() {
        let mut p = Pacing::new(MAX);
        pauses(&mut p, End::Failed, 3);
        assert_eq!(p.ended(End::Failed, S(2), 1.0), S(8));
    }

    #[test]
    fn a_leaving_server_is_not_retried_within_the_first_seconds() {
        let mut p = Pacing::new(MAX);
        p.healthy();
        for how in ["system-shutdown", "see-other-host"] {
            let pause = p.ended(End::from_condition(how), S(100), 0.0);
            assert!(pause >= SHUTDOWN_MIN, "{how}: {pause:?}");
            p.healthy();
        }
    }

    #[test]
    fn a_leaving_server_waits_the_minimum_even_under_a_smaller_cap() {
        let mut p = Pacing::new(Duration::from_secs(2));
        assert_eq!(p.ended(End::ServerLeaving, S(100), 1.0), SHUTDOWN_MIN);
    }

    #[test]
    fn a_replaced_session_backs_off_growing_and_pings_do_not_reset_it() {
        let mut p = Pacing::new(S(120));
        assert_eq!(p.ended(End::Replaced, S(5), 1.0), REPLACED_START);
        assert!(p.is_replaced());
        p.healthy();
        assert_eq!(p.ended(End::Replaced, S(5), 1.0), REPLACED_START * 2);
        p.healthy();
        assert_eq!(p.ended(End::Failed, S(5), 1.0), REPLACED_START * 4);
        assert_eq!(p.ended(End::Replaced, S(5), 1.0), S(80));
        assert_eq!(p.ended(End::Replaced, S(5), 1.0), S(120));
    }

    #[test]
    fn replaced_pacing_ends_after_a_session_that_stayed_up_a_minute() {
        let mut p = Pacing::new(MAX);
        pauses(&mut p, End::Replaced, 3);
        assert_eq!(p.ended(End::Failed, REPLACED_CLEAR_AFTER, 1.0), START);
        assert!(!p.is_replaced());
    }

    #[test]
    fn replaced_pacing_respects_a_small_cap() {
        let mut p = Pacing::new(S(3));
        assert_eq!(p.ended(End::Replaced, Duration::ZERO, 1.0), S(3));
    }

    #[test]
    fn other_stream_errors_are_ordinary_failures() {
        assert_eq!(End::from_condition("policy-violation"), End::Failed);
        assert_eq!(End::from_condition("conflict"), End::Replaced);
    }
}
