//! The configured MUC rooms (XEP-0045), sans-I/O: whether the bot is in each, the nick it
//! uses there, when to try again after losing a room, and which groupchat messages are its
//! own posts reflected back. The daemon feeds it the presences from the rooms and the
//! clock, and sends the join presences it returns.
//!
//! A room is lost on a kick, a ban, the room's destruction, a nick conflict or any
//! presence error; it is joined again after a pause that doubles per failed attempt (from
//! [`RETRY_START`] up to `xmpp.reconnect_max`). A nick conflict retries with the nick plus
//! `-2`, `-3`, … at once.

use crate::xmpp::jid::{BareJid, Jid};
use crate::xmpp::stanza::{self, PresenceType, NS_CLIENT, NS_MUC};
use crate::xmpp::xml::Element;
use smol::channel::{Receiver, Sender};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// MUC user extension: status codes, items, destruction.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0421 anonymous unique occupant identifiers.
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
/// First pause before joining a lost room again.
pub const RETRY_START: Duration = Duration::from_secs(1);
/// A join the room has not answered within this time counts as failed (and is retried).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Nick suffixes tried after conflicts before starting over with the plain nick.
const MAX_NICK_SUFFIX: u32 = 9;
/// Longest reason kept from a room's presence.
const MAX_REASON_CHARS: usize = 200;

/// Where the bot is with one room on the current session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomState {
    /// Join sent, no answer yet.
    Joining,
    /// Our own presence came back from the room.
    Joined,
    /// Lost or refused (the reason); joined again at the retry time.
    Failed(String),
}

impl RoomState {
    /// The name `/health` shows.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Joined => "joined",
            Self::Failed(_) => "failed",
        }
    }
}

/// One configured room.
#[derive(Debug, Clone)]
pub struct Room {
    /// The room's bare JID.
    pub jid: BareJid,
    /// The state on the current session.
    pub state: RoomState,
    /// The nick in use (or being tried).
    pub nick: String,
    /// Our XEP-0421 occupant id, when the room offers them.
    occupant_id: Option<String>,
    /// Failed attempts since the last successful join.
    failures: u32,
    /// Nick conflicts in a row.
    conflicts: u32,
    /// When to join again once failed; when to give up waiting while joining.
    retry_at: Option<Instant>,
}

/// What a room presence meant, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The bot is in the room under this nick.
    Joined(BareJid, String),
    /// The bot lost or could not enter the room: why, and the pause before the next try.
    Lost(BareJid, String, Duration),
}

/// All configured rooms.
#[derive(Debug)]
pub struct Rooms {
    rooms: Vec<Room>,
    nick: String,
    max: Duration,
}

impl Rooms {
    /// The rooms in `jids`, joined as `nick`; retries wait at most `max`.
    pub fn new(jids: &[BareJid], nick: &str, max: Duration) -> Self {
        Self {
            rooms: jids
                .iter()
                .map(|j| Room {
                    jid: j.clone(),
                    state: RoomState::Joining,
                    nick: nick.to_string(),
                    occupant_id: None,
                    failures: 0,
                    conflicts: 0,
                    retry_at: None,
                })
                .collect(),
            nick: nick.to_string(),
            max,
        }
    }

    /// The rooms, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.iter()
    }

    /// The room `jid`, if configured.
    pub fn get(&self, jid: &BareJid) -> Option<&Room> {
        self.rooms.iter().find(|r| r.jid == *jid)
    }

    /// A new session (nothing kept on the server): the join presence for every room.
    pub fn join_all(&mut self, now: Instant) -> Vec<Element> {
        let base = self.nick.clone();
        self.rooms
            .iter_mut()
            .map(|r| {
                r.state = RoomState::Joining;
                r.retry_at = Some(now + JOIN_TIMEOUT);
                r.occupant_id = None;
                r.conflicts = 0;
                r.nick = base.clone();
                join(&r.jid, &r.nick)
            })
            .collect()
    }

    /// Joins the rooms have not answered within [`JOIN_TIMEOUT`]: they count as lost.
    pub fn timeouts(&mut self, now: Instant) -> Vec<Change> {
        let max = self.max;
        self.rooms
            .iter_mut()
            .filter(|r| r.state == RoomState::Joining && r.retry_at.is_some_and(|t| t <= now))
            .map(|r| {
                let pause = r.backoff(max);
                r.lose("no answer to the join".into(), pause, now)
            })
            .collect()
    }

    /// The join presences of the lost rooms whose retry time has come.
    pub fn due(&mut self, now: Instant) -> Vec<Element> {
        self.rooms
            .iter_mut()
            .filter(|r| {
                matches!(r.state, RoomState::Failed(_)) && r.retry_at.is_some_and(|t| t <= now)
            })
            .map(|r| {
                r.retry_at = Some(now + JOIN_TIMEOUT);
                r.state = RoomState::Joining;
                join(&r.jid, &r.nick)
            })
            .collect()
    }

    /// The earliest time [`Rooms::timeouts`] or [`Rooms::due`] has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        self.rooms.iter().filter_map(|r| r.retry_at).min()
    }

    /// A presence from `from`; `None` when it is not about us in a configured room.
    pub fn presence(&mut self, from: &Jid, el: &Element, now: Instant) -> Option<Change> {
        let max = self.max;
        let base = self.nick.clone();
        let room = self.rooms.iter_mut().find(|r| r.jid == from.bare())?;
        let x = el.get_child("x", NS_MUC_USER);
        let codes: Vec<&str> = x
            .map(|x| {
                x.children()
                    .filter(|c| c.name() == "status")
                    .filter_map(|c| c.get_attr("code"))
                    .collect()
            })
            .unwrap_or_default();
        let kind = stanza::presence_type(el);
        // Errors come from the occupant JID we tried or from the room itself.
        let about_us = codes.contains(&"110")
            || from.resource() == Some(room.nick.as_str())
            || (kind == Some(PresenceType::Error) && from.resource().is_none());
        if !about_us {
            return None;
        }
        match kind {
            Some(PresenceType::Available) => {
                if let Some(nick) = from.resource() {
                    // The service may have changed our nick (status 210).
                    room.nick = nick.to_string();
                }
                room.occupant_id = el
                    .get_child("occupant-id", NS_OCCUPANT_ID)
                    .and_then(|o| o.get_attr("id"))
                    .map(str::to_string);
                let news = room.state != RoomState::Joined;
                room.state = RoomState::Joined;
                room.failures = 0;
                room.conflicts = 0;
                room.retry_at = None;
                news.then(|| Change::Joined(room.jid.clone(), room.nick.clone()))
            }
            Some(PresenceType::Error) => {
                let cond = condition(el);
                let pause = if cond == "conflict" {
                    room.conflicts = (room.conflicts + 1) % (MAX_NICK_SUFFIX + 1);
                    match room.conflicts {
                        // Every suffix was taken: start over, but not in a tight loop.
                        0 => {
                            room.nick = base;
                            room.backoff(max)
                        }
                        n => {
                            room.nick = format!("{base}-{}", n + 1);
                            Duration::ZERO
                        }
                    }
                } else {
                    room.backoff(max)
                };
                let why = format!("refused: {cond}");
                Some(room.lose(why, pause, now))
            }
            Some(PresenceType::Unavailable) => {
                if codes.contains(&"303") {
                    // A nick change of ours, followed by presence under the new nick.
                    return None;
                }
                let why = unavailable_reason(x, &codes);
                let pause = room.backoff(max);
                Some(room.lose(why, pause, now))
            }
            _ => None,
        }
    }

    /// Whether `el`, a groupchat message, is one of our posts reflected by its room:
    /// it carries an id we sent (`ours`), our XEP-0421 occupant id, or comes from our nick.
    pub fn is_own_echo(&self, el: &Element, ours: impl Fn(&str) -> bool) -> bool {
        let Some(from) = el.get_attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return false;
        };
        let Some(room) = self.get(&from.bare()) else {
            return false;
        };
        if from.resource().is_none() {
            // The room itself (subject, announcements).
            return false;
        }
        let occupant = el
            .get_child("occupant-id", NS_OCCUPANT_ID)
            .and_then(|o| o.get_attr("id"));
        el.get_attr("id").is_some_and(ours)
            || (occupant.is_some() && occupant == room.occupant_id.as_deref())
            || from.resource() == Some(room.nick.as_str())
    }
}

impl Room {
    /// The pause before the next attempt, doubling per failure.
    fn backoff(&mut self, max: Duration) -> Duration {
        let pause = RETRY_START
            .saturating_mul(1u32 << self.failures.min(16))
            .min(max.max(RETRY_START));
        self.failures = self.failures.saturating_add(1);
        pause
    }

    fn lose(&mut self, why: String, pause: Duration, now: Instant) -> Change {
        self.state = RoomState::Failed(why.clone());
        self.occupant_id = None;
        self.retry_at = Some(now + pause);
        Change::Lost(self.jid.clone(), why, pause)
    }
}

/// MUC join presence (XEP-0045 §7.2), asking for no history.
pub fn join(room: &BareJid, nick: &str) -> Element {
    let to = room
        .with_resource(nick)
        .map_or_else(|_| room.to_string(), |j| j.to_string());
    Element::new("presence", NS_CLIENT).attr("to", &to).child(
        Element::new("x", NS_MUC).child(Element::new("history", NS_MUC).attr("maxstanzas", "0")),
    )
}

/// Why our occupant left, from the status codes (XEP-0045 §15.6) or a `<destroy/>`.
fn unavailable_reason(x: Option<&Element>, codes: &[&str]) -> String {
    let item_reason = x
        .and_then(|x| x.get_child("item", NS_MUC_USER))
        .and_then(|i| i.get_child("reason", NS_MUC_USER))
        .map(Element::text_content);
    if let Some(d) = x.and_then(|x| x.get_child("destroy", NS_MUC_USER)) {
        let reason = d
            .get_child("reason", NS_MUC_USER)
            .map(Element::text_content);
        return with_reason("the room was destroyed", reason);
    }
    let what = if codes.contains(&"301") {
        "banned"
    } else if codes.contains(&"307") {
        "kicked"
    } else if codes.contains(&"321") {
        "removed: affiliation changed"
    } else if codes.contains(&"322") {
        "removed: the room is now members-only"
    } else if codes.contains(&"332") {
        "removed: the room service is shutting down"
    } else if codes.contains(&"333") {
        "removed: technical problem"
    } else {
        "left the room"
    };
    with_reason(what, item_reason)
}

fn with_reason(what: &str, reason: Option<String>) -> String {
    match reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
    {
        Some(r) => format!(
            "{what} ({})",
            r.chars().take(MAX_REASON_CHARS).collect::<String>()
        ),
        None => what.to_string(),
    }
}

/// The condition of a stanza error, e.g. `conflict`.
pub fn condition(el: &Element) -> String {
    el.get_child("error", NS_CLIENT)
        .and_then(|e| e.children().find(|c| c.name() != "text"))
        .map_or_else(|| "unknown error".to_string(), |c| c.name().to_string())
}

/// The HTTP status and the condition for a room post the room bounced with `cond`.
pub fn bounce_status(cond: &str) -> (u16, &'static str) {
    const KNOWN: [&str; 12] = [
        "forbidden",
        "not-acceptable",
        "not-allowed",
        "not-authorized",
        "registration-required",
        "item-not-found",
        "service-unavailable",
        "recipient-unavailable",
        "remote-server-not-found",
        "remote-server-timeout",
        "resource-constraint",
        "policy-violation",
    ];
    let condition = KNOWN
        .into_iter()
        .find(|k| *k == cond)
        .unwrap_or("undefined-condition");
    let status = match condition {
        "forbidden"
        | "not-acceptable"
        | "not-allowed"
        | "not-authorized"
        | "registration-required"
        | "policy-violation" => 403,
        "item-not-found" | "remote-server-not-found" => 404,
        "service-unavailable" | "resource-constraint" => 503,
        _ => 502,
    };
    (status, condition)
}

/// The outcome a `?wait=1` room post waits for: reflected (`Ok`) or bounced (the error
/// condition).
pub type Reflection = Result<(), String>;

/// Room posts waiting to be reflected back, by message id; at most `max` at once.
#[derive(Debug)]
pub struct Reflections {
    waits: RefCell<Vec<(String, Sender<Reflection>)>>,
    max: usize,
}

/// The waiting list is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyWaiting;

impl Reflections {
    /// Room for `max` waiting posts.
    pub fn new(max: usize) -> Self {
        Self {
            waits: RefCell::new(Vec::new()),
            max,
        }
    }

    /// Wait for the message `id` to come back.
    pub fn wait(&self, id: &str) -> Result<Receiver<Reflection>, TooManyWaiting> {
        let mut waits = self.waits.borrow_mut();
        // Posts whose HTTP request timed out dropped their receiver.
        waits.retain(|(_, tx)| !tx.is_closed());
        if waits.len() >= self.max {
            return Err(TooManyWaiting);
        }
        let (tx, rx) = smol::channel::bounded(1);
        waits.push((id.to_string(), tx));
        Ok(rx)
    }

    /// The message `id` came back (or bounced); `false` when nobody waited for it.
    pub fn complete(&self, id: &str, outcome: Reflection) -> bool {
        let mut waits = self.waits.borrow_mut();
        let Some(i) = waits.iter().position(|(w, _)| w == id) else {
            return false;
        };
        let (_, tx) = waits.swap_remove(i);
        let _ = tx.try_send(outcome);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::xml::parse_document;

    const ROOM: &str = "ops@conference.example.org";

    fn el(s: &str) -> Element {
        parse_document(s.as_bytes(), 1 << 16).unwrap()
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn room_jid() -> BareJid {
        BareJid::parse(ROOM).unwrap()
    }

    fn rooms() -> Rooms {
        let mut r = Rooms::new(&[room_jid()], "bot", Duration::from_secs(60));
        r.join_all(Instant::now());
        r
    }

    fn feed(r: &mut Rooms, xml: &str, now: Instant) -> Option<Change> {
        let e = el(xml);
        let from = jid(e.get_attr("from").unwrap());
        r.presence(&from, &e, now)
    }

    fn self_presence(extra: &str) -> String {
        format!(
            "<presence xmlns='jabber:client' from='{ROOM}/bot'><x xmlns='{NS_MUC_USER}'>\
             <item affiliation='none' role='participant'/><status code='110'/></x>{extra}</presence>"
        )
    }

    fn nick_taken(nick: &str) -> String {
        format!(
            "<presence xmlns='jabber:client' from='{ROOM}/{nick}' type='error'>\
             <error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </presence>"
        )
    }

    fn state(r: &Rooms) -> RoomState {
        r.get(&room_jid()).unwrap().state.clone()
    }

    #[test]
    fn own_presence_marks_the_room_joined() {
        let mut r = rooms();
        let now = Instant::now();
        let c = feed(&mut r, &self_presence(""), now);
        assert_eq!(c, Some(Change::Joined(room_jid(), "bot".into())));
        assert_eq!(state(&r), RoomState::Joined);
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn other_occupants_do_not_change_the_state() {
        let mut r = rooms();
        let c = feed(
            &mut r,
            &format!("<presence xmlns='jabber:client' from='{ROOM}/alice' type='unavailable'/>"),
            Instant::now(),
        );
        assert_eq!(c, None);
        assert_eq!(state(&r), RoomState::Joining);
    }

    #[test]
    fn a_kick_is_logged_with_its_reason_and_rejoined_after_the_backoff() {
        let mut r = rooms();
        let now = Instant::now();
        feed(&mut r, &self_presence(""), now);
        let kick = format!(
            "<presence xmlns='jabber:client' from='{ROOM}/bot' type='unavailable'>\
             <x xmlns='{NS_MUC_USER}'><item role='none'><reason>spam</reason></item>\
             <status code='307'/><status code='110'/></x></presence>"
        );
        let c = feed(&mut r, &kick, now);
        assert_eq!(
            c,
            Some(Change::Lost(
                room_jid(),
                "kicked (spam)".into(),
                RETRY_START
            ))
        );
        assert!(r.due(now).is_empty());
        let joins = r.due(now + RETRY_START);
        assert_eq!(joins.len(), 1);
        assert_eq!(joins[0].get_attr("to"), Some(&*format!("{ROOM}/bot")));
        assert_eq!(state(&r), RoomState::Joining);
    }

    #[test]
    fn repeated_failures_double_the_pause_up_to_the_cap() {
        let mut r = Rooms::new(&[room_jid()], "bot", Duration::from_secs(5));
        r.join_all(Instant::now());
        let now = Instant::now();
        let refused = format!(
            "<presence xmlns='jabber:client' from='{ROOM}/bot' type='error'>\
             <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </presence>"
        );
        let pauses: Vec<_> = (0..4)
            .map(|_| match feed(&mut r, &refused, now) {
                Some(Change::Lost(_, why, p)) => {
                    assert_eq!(why, "refused: forbidden");
                    p.as_secs()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pauses, [1, 2, 4, 5]);
        feed(&mut r, &self_presence(""), now);
        assert!(
            matches!(feed(&mut r, &refused, now), Some(Change::Lost(_, _, p)) if p == RETRY_START)
        );
    }

    #[test]
    fn destruction_names_the_reason() {
        let mut r = rooms();
        let now = Instant::now();
        feed(&mut r, &self_presence(""), now);
        let gone = format!(
            "<presence xmlns='jabber:client' from='{ROOM}/bot' type='unavailable'>\
             <x xmlns='{NS_MUC_USER}'><item affiliation='none' role='none'/>\
             <destroy><reason>moved</reason></destroy></x></presence>"
        );
        assert!(matches!(
            feed(&mut r, &gone, now),
            Some(Change::Lost(_, why, _)) if why == "the room was destroyed (moved)"
        ));
    }

    #[test]
    fn a_nick_conflict_retries_at_once_with_a_suffix() {
        let mut r = rooms();
        let now = Instant::now();
        let taken = nick_taken("bot");
        assert!(feed(&mut r, &taken, now).is_some());
        let joins = r.due(now);
        assert_eq!(joins[0].get_attr("to"), Some(&*format!("{ROOM}/bot-2")));
        feed(&mut r, &nick_taken("bot-2"), now);
        assert_eq!(
            r.due(now)[0].get_attr("to"),
            Some(&*format!("{ROOM}/bot-3"))
        );
        let joined = self_presence("").replace("/bot'", "/bot-3'");
        assert_eq!(
            feed(&mut r, &joined, now),
            Some(Change::Joined(room_jid(), "bot-3".into()))
        );
    }

    #[test]
    fn when_every_suffix_is_taken_the_plain_nick_is_tried_again_after_a_pause() {
        let mut r = rooms();
        let now = Instant::now();
        let mut nick = "bot".to_string();
        for _ in 0..MAX_NICK_SUFFIX {
            assert!(matches!(
                feed(&mut r, &nick_taken(&nick), now),
                Some(Change::Lost(_, _, p)) if p.is_zero()
            ));
            nick = r.get(&room_jid()).unwrap().nick.clone();
        }
        assert_eq!(nick, "bot-10");
        assert!(matches!(
            feed(&mut r, &nick_taken(&nick), now),
            Some(Change::Lost(_, _, p)) if p == RETRY_START
        ));
        assert!(r.due(now).is_empty());
        assert_eq!(
            r.due(now + RETRY_START)[0].get_attr("to"),
            Some(&*format!("{ROOM}/bot"))
        );
    }

    #[test]
    fn an_unanswered_join_counts_as_failed_and_is_sent_again() {
        let mut r = Rooms::new(&[room_jid()], "bot", Duration::from_secs(60));
        let t0 = Instant::now();
        r.join_all(t0);
        assert!(r.timeouts(t0 + JOIN_TIMEOUT / 2).is_empty());
        assert_eq!(
            r.timeouts(t0 + JOIN_TIMEOUT),
            [Change::Lost(
                room_jid(),
                "no answer to the join".into(),
                RETRY_START
            )]
        );
        assert!(r.due(t0 + JOIN_TIMEOUT).is_empty());
        assert_eq!(r.due(t0 + JOIN_TIMEOUT + RETRY_START).len(), 1);
        assert_eq!(state(&r), RoomState::Joining);
    }

    #[test]
    fn a_new_session_joins_every_room_with_the_configured_nick() {
        let mut r = rooms();
        let now = Instant::now();
        let taken = nick_taken("bot");
        feed(&mut r, &taken, now);
        let joins = r.join_all(now);
        assert_eq!(joins[0].get_attr("to"), Some(&*format!("{ROOM}/bot")));
        assert_eq!(r.next_due(), Some(now + JOIN_TIMEOUT));
    }

    #[test]
    fn echoes_are_recognised_by_id_occupant_id_or_nick() {
        let mut r = rooms();
        feed(
            &mut r,
            &self_presence("<occupant-id xmlns='urn:xmpp:occupant-id:0' id='me'/>"),
            Instant::now(),
        );
        let ours = |id: &str| id == "our-1";
        let msg = |from: &str, id: &str, occ: &str| {
            el(&format!(
                "<message xmlns='jabber:client' type='groupchat' from='{ROOM}/{from}' id='{id}'>\
                 <body>x</body>{occ}</message>"
            ))
        };
        let occ = |id: &str| format!("<occupant-id xmlns='urn:xmpp:occupant-id:0' id='{id}'/>");
        assert!(r.is_own_echo(&msg("renamed", "our-1", ""), ours));
        assert!(r.is_own_echo(&msg("renamed", "x", &occ("me")), ours));
        assert!(r.is_own_echo(&msg("bot", "x", ""), ours));
        assert!(!r.is_own_echo(&msg("alice", "x", &occ("alice")), ours));
        let from_room = el(&format!(
            "<message xmlns='jabber:client' type='groupchat' from='{ROOM}' id='our-1'/>"
        ));
        assert!(!r.is_own_echo(&from_room, ours));
    }

    #[test]
    fn a_bounce_not_in_the_room_is_forbidden() {
        assert_eq!(bounce_status("not-acceptable"), (403, "not-acceptable"));
        assert_eq!(bounce_status("item-not-found"), (404, "item-not-found"));
        assert_eq!(bounce_status("x-custom"), (502, "undefined-condition"));
    }

    #[test]
    fn reflections_complete_their_waiter_once_and_are_bounded() {
        let w = Reflections::new(1);
        let rx = w.wait("a").unwrap();
        assert_eq!(w.wait("b").unwrap_err(), TooManyWaiting);
        assert!(w.complete("a", Err("forbidden".into())));
        assert!(!w.complete("a", Ok(())));
        assert_eq!(rx.try_recv().unwrap(), Err("forbidden".into()));
        drop(rx);
        let rx = w.wait("c").unwrap();
        drop(rx);
        assert!(w.wait("d").is_ok());
    }

    #[test]
    fn our_presence_with_a_type_rfc_6121_does_not_define_changes_nothing() {
        let mut r = rooms();
        for kind in ["available", "Unavailable", "subscribe"] {
            let p =
                self_presence("").replacen("<presence ", &format!("<presence type='{kind}' "), 1);
            assert_eq!(feed(&mut r, &p, Instant::now()), None, "{kind}");
            assert_eq!(state(&r), RoomState::Joining, "{kind}");
        }
    }
}
