//! Reconnect pacing against a real Prosody: a session that answered the bot's ping resets
//! the backoff grown during an earlier outage.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{unique_user, Daemon, Prosody, ProsodyOpts, Signal};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// Longer than the daemon's health ping comes after login (5 s), plus its answer.
const HEALTHY_AFTER: Duration = Duration::from_secs(7);
/// Enough failed attempts to grow the backoff window to several seconds.
const OUTAGE: Duration = Duration::from_secs(4);

#[test]
fn after_a_restart_and_a_healthy_session_a_crash_is_retried_within_a_second() {
    let mut p = Prosody::start(ProsodyOpts::default());
    let bot = unique_user("pacebot");
    p.register(&bot, "pw");
    // A large cap: the growing backoff of the outage must not carry over.
    let cfg = p.xrelay_config(&bot, "pw", &[("reconnect_max", "\"60s\"")]);
    let mut d = Daemon::start(&cfg);
    d.wait_for("online as", WAIT);

    // An outage of a few seconds grows the backoff (Prosody may or may not say
    // system-shutdown first; tests/ejabberd.rs checks that pause).
    p.stop();
    std::thread::sleep(OUTAGE);
    p.start_again();
    let deadline = std::time::Instant::now() + WAIT * 3;
    while d.count("online as") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    std::thread::sleep(HEALTHY_AFTER);
    let pid = p.pid().expect("Prosody runs");
    common::kill(pid, Signal::KILL);
    d.wait_for("disconnected", WAIT);
    d.wait_for("reconnecting in", WAIT);
    let pause = d.last_reconnect_pause();
    assert!(
        pause <= 1.0,
        "the backoff carried over: {pause}s\n{}",
        d.log()
    );
}
