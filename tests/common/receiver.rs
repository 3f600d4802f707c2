//! The receiving account of the reliability scenarios: what arrived, counted by body, across
//! server restarts.

use super::{Server, TestClient, Transport};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a login may keep failing while the server starts.
const LOGIN_WAIT: Duration = Duration::from_secs(10);
/// How long [`Receiver::collect`] waits for every accepted message.
const ARRIVAL_WAIT: Duration = Duration::from_secs(30);

/// The account that receives, and what it got, by body.
pub(crate) struct Receiver {
    /// The account's localpart.
    pub user: String,
    /// How often each body arrived.
    pub got: HashMap<String, usize>,
    password: String,
    client: Option<TestClient>,
}

impl Receiver {
    /// A fresh account on `s`, online.
    pub(crate) fn new(s: &(impl Server + ?Sized)) -> Self {
        let (user, password) = s.new_user("rcpt");
        Self::with_account(s, user, password)
    }

    /// The existing account `user`, online.
    pub(crate) fn with_account(s: &(impl Server + ?Sized), user: String, password: String) -> Self {
        Self {
            client: Some(TestClient::connect(s, &user, &password)),
            user,
            password,
            got: HashMap::new(),
        }
    }

    /// Take what arrived, waiting up to `wait` for the first message.
    pub(crate) fn poll(&mut self, wait: Duration) {
        let Some(c) = &mut self.client else { return };
        let mut wait = wait;
        while let Some(m) = c.recv_message(wait) {
            *self.got.entry(m.body.unwrap_or_default()).or_default() += 1;
            wait = Duration::from_millis(1);
        }
        if c.is_closed() {
            self.client = None;
        }
    }

    /// Log in again (after a server restart), retrying while the server starts.
    pub(crate) fn reconnect(&mut self, s: &(impl Server + ?Sized)) {
        self.poll(Duration::from_millis(1));
        let deadline = Instant::now() + LOGIN_WAIT;
        loop {
            match TestClient::try_connect(s, &self.user, &self.password, Transport::StartTls) {
                Ok(c) => {
                    self.client = Some(c);
                    return;
                }
                Err(e) if Instant::now() > deadline => panic!("receiver cannot log in: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Wait until every accepted body arrived (or [`ARRIVAL_WAIT`] passed), then a little
    /// longer for late duplicates.
    pub(crate) fn collect(&mut self, accepted: &[String]) {
        let deadline = Instant::now() + ARRIVAL_WAIT;
        while accepted.iter().any(|b| !self.got.contains_key(b)) && Instant::now() < deadline {
            self.poll(Duration::from_millis(200));
        }
        self.poll(Duration::from_millis(500));
    }

    /// Of `accepted`: how many never arrived, and how many extra copies arrived.
    pub(crate) fn lost_and_duplicated(&self, accepted: &[String]) -> (usize, usize) {
        let lost = accepted
            .iter()
            .filter(|b| !self.got.contains_key(*b))
            .count();
        let dup = self.got.values().map(|&n| n.saturating_sub(1)).sum();
        (lost, dup)
    }
}
