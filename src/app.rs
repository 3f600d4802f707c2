//! The state the daemon's tasks share: config, outbox, keys, invites, roster, counters and the stream's
//! status as `/health` reports it. The daemon runs every task on one thread, so interior
//! mutability is `Cell`/`RefCell`; no borrow is held across an `.await`.

use crate::config::Config;
use crate::http::auth::RateLimiter;
use crate::invites::InviteStore;
use crate::iqwait::IqWaiters;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::xmpp::jid::Jid;
use crate::xmpp::roster::Roster;
use crate::xmpp::stanza::IdGen;
use std::cell::{Cell, RefCell};

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Connecting or logging in.
    Connecting,
    /// Online: stanzas flow.
    Online,
    /// Down, waiting to reconnect.
    Offline,
}

impl StreamState {
    /// The name `/health` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Online => "online",
            StreamState::Offline => "offline",
        }
    }
}

/// A configured MUC room and how joining it went on the current stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomState {
    /// Join sent, no answer yet.
    Joining,
    /// Our own presence came back from the room.
    Joined,
    /// The room refused us (the stanza error condition).
    Failed(String),
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct App {
    /// The validated config.
    pub cfg: Config,
    /// Messages waiting for the server's acknowledgement.
    pub outbox: Outbox,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// API keys, reloaded when their file changes.
    pub keys: KeyStore,
    /// Invites, reloaded when their file changes.
    pub invites: InviteStore,
    /// The bot's contacts, as the server last told.
    pub roster: RefCell<Roster>,
    /// Failed authentication attempts per client address.
    pub limiter: RefCell<RateLimiter>,
    /// Stanza ids.
    pub ids: RefCell<IdGen>,
    /// The stream's state.
    pub stream: Cell<StreamState>,
    /// Why the stream last went down, for `/health`.
    pub last_error: RefCell<Option<String>>,
    /// Configured rooms and their join state.
    pub rooms: RefCell<Vec<(Jid, RoomState)>>,
    /// iq requests sent over `/rest`, waiting for their replies.
    pub iq_waits: IqWaiters,
    /// The queue in front of the webhook worker, when a webhook is configured.
    pub webhook: Option<crate::webhook::Queue>,
    /// Uploads running, and the server's upload service once found.
    pub uploads: crate::upload::Uploads,
}

impl App {
    /// Shared state for `cfg`, with keys and invites from their files.
    pub fn new(cfg: Config, keys: KeyStore, invites: InviteStore) -> App {
        let rooms = cfg
            .xmpp
            .rooms
            .iter()
            .map(|r| (r.clone(), RoomState::Joining))
            .collect();
        App {
            outbox: Outbox::new(cfg.outbox.capacity),
            iq_waits: IqWaiters::new(cfg.rest.max_waiting),
            cfg,
            metrics: Metrics::default(),
            keys,
            invites,
            roster: RefCell::new(Roster::new()),
            limiter: RefCell::new(RateLimiter::new()),
            ids: RefCell::new(IdGen::new()),
            stream: Cell::new(StreamState::Connecting),
            last_error: RefCell::new(None),
            rooms: RefCell::new(rooms),
            webhook: None,
            uploads: crate::upload::Uploads::default(),
        }
    }

    /// A fresh stanza id.
    pub fn next_id(&self) -> String {
        self.ids.borrow_mut().next_id()
    }

    /// Whether `id` is one of ours (bounces of our messages carry it).
    pub fn is_our_id(&self, id: &str) -> bool {
        self.ids.borrow().owns(id)
    }

    /// Record a room's join state.
    pub fn set_room(&self, room: &Jid, state: RoomState) {
        if let Some(entry) = self.rooms.borrow_mut().iter_mut().find(|(r, _)| r == room) {
            entry.1 = state;
        }
    }
}
