//! The state the daemon's tasks share: config, outbox, keys, invites, roster, counters and the stream's
//! status as `/health` reports it. The daemon runs every task on one thread, so interior
//! mutability is `Cell`/`RefCell`; no borrow is held across an `.await`.

use crate::access::clients::{InFlight, RateLimiter};
use crate::config::Config;
use crate::iqwait::IqWaiters;
use crate::metrics::Metrics;
use crate::outbox::{Limits, Outbox};
pub use crate::rooms::RoomState;
use crate::rooms::{Reflections, Rooms};
use crate::store::invites::InviteStore;
use crate::store::keys::KeyStore;
use crate::xmpp::jid::{BareJid, Jid};
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
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
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
    /// Requests being answered per API key (`http.max_per_key`).
    pub in_flight: InFlight,
    /// Stanza ids.
    pub ids: RefCell<IdGen>,
    /// The stream's state.
    pub stream: Cell<StreamState>,
    /// Why the stream last went down, for `/health`.
    pub last_error: RefCell<Option<String>>,
    /// Configured rooms, their join state and nick.
    pub rooms: RefCell<Rooms>,
    /// `?wait=1` room posts waiting for the room to reflect them.
    pub reflections: Reflections,
    /// Senders refused recently, so each is logged once a minute.
    pub refused: RefCell<crate::access::RefusalLog>,
    /// iq requests sent over `/rest`, waiting for their replies.
    pub iq_waits: IqWaiters,
    /// Uploads running, and the server's upload service once found.
    pub uploads: crate::upload::Uploads,
}

impl App {
    /// Shared state for `cfg`, with keys and invites from their files.
    pub fn new(cfg: Config, keys: KeyStore, invites: InviteStore) -> Self {
        let rooms = Rooms::new(&cfg.xmpp.rooms, &cfg.xmpp.nick, cfg.xmpp.reconnect_max);
        Self {
            outbox: Outbox::new(Limits::of(&cfg)),
            iq_waits: IqWaiters::new(cfg.rest.max_waiting),
            reflections: Reflections::new(cfg.outbox.capacity),
            cfg,
            metrics: Metrics::default(),
            keys,
            invites,
            roster: RefCell::new(Roster::new()),
            limiter: RefCell::new(RateLimiter::new()),
            in_flight: InFlight::default(),
            ids: RefCell::new(IdGen::new()),
            stream: Cell::new(StreamState::Connecting),
            last_error: RefCell::new(None),
            rooms: RefCell::new(rooms),
            refused: RefCell::new(crate::access::RefusalLog::default()),
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

    /// What `/health` shows for each room: its state (`offline` while the stream is not
    /// online), the nick in use, and why it was lost.
    pub fn room_states(&self) -> Vec<(BareJid, &'static str, String, Option<String>)> {
        let online = self.stream.get() == StreamState::Online;
        self.rooms
            .borrow()
            .iter()
            .map(|r| {
                let (state, why) = match &r.state {
                    _ if !online => ("offline", None),
                    RoomState::Failed(why) => ("failed", Some(why.clone())),
                    s => (s.as_str(), None),
                };
                (r.jid.clone(), state, r.nick.clone(), why)
            })
            .collect()
    }

    /// Why a post to `room` cannot be delivered now: `None` when the bot is in it, joining
    /// it, or the stream is offline (the post then waits in the outbox and follows the
    /// join on the next session); else the room's state and reason. `None` for non-rooms.
    pub fn room_refusal(&self, room: &Jid) -> Option<String> {
        if self.stream.get() != StreamState::Online {
            return None;
        }
        let room = room.is_bare().then(|| room.bare())?;
        match &self.rooms.borrow().get(&room)?.state {
            RoomState::Failed(why) => Some(format!(
                "not in the room {room} (failed: {why}); it is joined again automatically"
            )),
            _ => None,
        }
    }
}
