//! The I/O shell around the pure cores: the XMPP connection, DNS lookups, TLS, hyper on
//! smol, the one-request HTTP client of webhooks and uploads, and the unix-socket client of
//! `xrelay send`.

pub mod conn;
pub mod http_client;
pub mod local;
pub mod resolve;
pub mod rt;
pub mod tls;

use smol::future::FutureExt;
use smol::Timer;
use std::future::Future;
use std::time::{Duration, Instant};

/// `work`'s output, or `None` when it has not finished within `limit` (then it is dropped,
/// which cancels it). Every bounded wait of the shells goes through here.
pub fn timeout<T>(
    limit: Duration,
    work: impl Future<Output = T>,
) -> impl Future<Output = Option<T>> {
    // A plain function around `or`: an `async fn` here would wrap every call site's future
    // in one more state machine.
    async { Some(work.await) }.or(async move {
        Timer::after(limit).await;
        None
    })
}

/// What is left until `deadline` (zero once it passed), for [`timeout`].
pub fn left_until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_that_finishes_in_time_gives_its_output() {
        assert_eq!(
            smol::block_on(timeout(Duration::from_secs(5), async { 7 })),
            Some(7)
        );
    }

    #[test]
    fn work_that_outlasts_the_limit_gives_none() {
        let never = std::future::pending::<()>();
        assert_eq!(
            smol::block_on(timeout(Duration::from_millis(10), never)),
            None
        );
    }

    #[test]
    fn a_deadline_in_the_past_leaves_no_time() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(left_until(past), Duration::ZERO);
    }
}
