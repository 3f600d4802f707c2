//! What the daemon does with each stanza from the server, synchronously: stanza in,
//! replies out. Roster results and pushes, subscription requests (approved with a valid
//! invite token), our rooms' presences and echoes, failures of our own messages, iq
//! replies someone waits for over `/rest`, and answers to ping, disco#info and version;
//! the rest goes to the webhook when `webhook.from` lets its sender reach it.

use crate::access::{self, Origin};
use crate::app::App;
use crate::config::{UnknownSubscription, WebhookConfig};
use crate::log;
use crate::metrics;
use crate::rooms::{self, Change};
use crate::store::invites::{self, Refusal};
use crate::webhook::{self, Queue};
use crate::xmpp::jid::Jid;
use crate::xmpp::jsonmap;
use crate::xmpp::roster::{Outcome, Subscription, MAX_ROSTER_ITEMS};
use crate::xmpp::stanza::{self, IqType, MessageType, PresenceType, NS_CLIENT, NS_PING};
use crate::xmpp::xml::Element;
use std::time::Instant;

/// Whether `el` is the answer (result or error) to our iq `id`.
pub fn is_reply_to(el: &Element, id: &str) -> bool {
    el.name() == "iq"
        && stanza::iq_type(el).is_some_and(IqType::is_response)
        && el.get_attr("id") == Some(id)
}

/// What to send for a stanza from the server: the roster's answers, an invite's approval,
/// or what `inbound` makes of anything else (offered to `webhook` when there is one).
pub fn stanza(app: &App, webhook: Option<&Queue>, el: &Element) -> Vec<Element> {
    roster_iq(app, el)
        .or_else(|| invite_presence(app, el))
        .unwrap_or_else(|| inbound(app, webhook, el).into_iter().collect())
}

/// React to an inbound stanza; returns the answer to send, if any.
fn inbound(app: &App, webhook: Option<&Queue>, el: &Element) -> Option<Element> {
    if app.iq_waits.complete(el, &app.cfg.xmpp.jid) {
        return None;
    }
    let from = el.get_attr("from").and_then(|f| Jid::parse(f).ok());
    // No `from` means our own account (RFC 6120 §8.1.2.1): nothing of ours is a room echo
    // or a room presence to track, and `forward` never sends it out again.
    let own = from.as_ref().is_none_or(|f| f.bare() == app.cfg.xmpp.jid);
    match el.name() {
        "message" if stanza::is_error(el) => {
            let id = el.get_attr("id").filter(|id| app.is_our_id(id))?;
            metrics::inc(&app.metrics.failed);
            let cond = rooms::condition(el);
            log!(
                "message {id} to {} failed: {cond}",
                el.get_attr("from").unwrap_or_default(),
            );
            app.reflections.complete(id, Err(cond));
            None
        }
        "message" => {
            if own {
                return None;
            }
            if stanza::message_type(el) == Some(MessageType::Groupchat) {
                let echo = app.rooms.borrow().is_own_echo(el, |id| app.is_our_id(id));
                if echo {
                    if let Some(id) = el.get_attr("id") {
                        app.reflections.complete(id, Ok(()));
                    }
                    return None;
                }
            }
            carries_content(el)
                .then(|| forward(app, webhook, el).reply())
                .flatten()
        }
        "presence" => {
            let from = from.filter(|_| !own)?;
            if app.rooms.borrow().get(&from.bare()).is_some() {
                room_presence(app, &from, el);
                return None;
            }
            // Nobody waits for an answer to a presence; a refusal is only logged.
            let _ = forward(app, webhook, el);
            None
        }
        "iq" => builtin_answer(el).or_else(|| match forward(app, webhook, el) {
            Forward::Declined => answer(el),
            other => other.reply(),
        }),
        _ => None,
    }
}

/// Whether `from` may reach the webhook (`webhook.from`); a refusal is logged once a
/// minute per sender.
fn admitted(app: &App, cfg: &WebhookConfig, from: &Jid, kind: Option<MessageType>) -> bool {
    let bare = from.bare();
    let origin = match app.rooms.borrow().get(&bare) {
        Some(_) if kind == Some(MessageType::Groupchat) => Origin::RoomMessage,
        Some(_) => Origin::RoomOccupant,
        None => Origin::Other,
    };
    let contact = app
        .roster
        .borrow()
        .get(&bare)
        .is_some_and(|s| matches!(s, Subscription::From | Subscription::Both));
    if access::permits(&cfg.from, from, origin, contact) {
        return true;
    }
    if app
        .refused
        .borrow_mut()
        .should_log(bare.as_str(), Instant::now())
    {
        log!(
            "webhook: ignoring {from}: not allowed by webhook.from (further refusals of this \
             sender are not logged for a minute)"
        );
    }
    false
}

/// The answer to our roster request, or a roster push (answered); `None` for other
/// stanzas.
fn roster_iq(app: &App, el: &Element) -> Option<Vec<Element>> {
    let outcome = app.roster.borrow_mut().handle(el, &app.cfg.xmpp.jid)?;
    Some(match outcome {
        Outcome::Loaded(n, false) => {
            log!("roster: {n} contact(s)");
            Vec::new()
        }
        Outcome::Loaded(n, true) => {
            log!("roster: {n} contact(s), tracking the first {MAX_ROSTER_ITEMS}");
            Vec::new()
        }
        Outcome::Failed(condition) => {
            log!("roster not available: {condition}");
            Vec::new()
        }
        Outcome::Answer(reply) => vec![reply],
    })
}

/// Subscription presences (RFC 6121 §3), which never go to the webhook (a request's
/// invite token is a secret). A `subscribe` with a valid invite token (XEP-0379) is
/// approved, the bot subscribes back, and the invite is used up; without one it is left
/// pending or denied (`invites.unknown`). Nothing else is ever approved. `None` for other
/// stanzas.
fn invite_presence(app: &App, el: &Element) -> Option<Vec<Element>> {
    let kind = stanza::presence_type(el).filter(|k| k.is_subscription())?;
    if el.name() != "presence" {
        return None;
    }
    let Some(from) = el.get_attr("from").and_then(|f| Jid::parse(f).ok()) else {
        return Some(Vec::new());
    };
    let from = from.bare();
    if kind != PresenceType::Subscribe {
        log!("{from}: {kind}");
        return Some(Vec::new());
    }
    let refusal = match invites::preauth_token(el) {
        None => "it carries no invite token".to_string(),
        Some(token) => match app.invites.redeem(token, &from, crate::timefmt::now_unix()) {
            Ok(invite) => {
                log!("invite {} used by {from}: subscription approved", invite.id);
                let mut out = vec![stanza::presence(&from, PresenceType::Subscribed)];
                let subscribed = app
                    .roster
                    .borrow()
                    .get(&from)
                    .is_some_and(|s| s.to_contact());
                if !subscribed {
                    out.push(stanza::presence(&from, PresenceType::Subscribe));
                }
                return Some(out);
            }
            Err(e @ Refusal::NotSaved(_)) => {
                // Unanswered, the request stays pending and comes back after a reconnect.
                log!("subscription request from {from} left pending: {e}");
                return Some(Vec::new());
            }
            Err(e) => e.to_string(),
        },
    };
    let (what, answer) = match app.cfg.invites.unknown {
        UnknownSubscription::Ignore => ("ignored", Vec::new()),
        UnknownSubscription::Deny => (
            "denied",
            vec![stanza::presence(&from, PresenceType::Unsubscribed)],
        ),
    };
    log!("subscription request from {from} {what}: {refusal}");
    Some(answer)
}

/// Messages worth a webhook call: chat states, receipts and markers alone are not (they
/// would cost one call per keystroke).
fn carries_content(el: &Element) -> bool {
    el.children().any(|c| {
        (c.ns() == NS_CLIENT && matches!(c.name(), "body" | "subject")) || c.ns() == jsonmap::NS_OOB
    })
}

/// What became of a stanza offered to the webhook.
enum Forward {
    /// In the webhook's queue; the webhook's answer is the reply.
    Queued,
    /// The queue is full: the sender gets this error.
    Busy(Element),
    /// No webhook, or not one for this stanza.
    Declined,
}

impl Forward {
    /// The reply to send now, if any.
    fn reply(self) -> Option<Element> {
        match self {
            Self::Busy(r) => Some(r),
            Self::Queued | Self::Declined => None,
        }
    }
}

/// Offer `el` to the webhook, if it wants it and its sender may reach it.
fn forward(app: &App, webhook: Option<&Queue>, el: &Element) -> Forward {
    let (Some(queue), Some(cfg)) = (webhook, &app.cfg.webhook) else {
        return Forward::Declined;
    };
    if !webhook::mapping::wants(cfg, el) {
        return Forward::Declined;
    }
    // Our own stanzas never go out again (a loop), nor those `webhook.from` does not allow.
    let from = el.get_attr("from").and_then(|f| Jid::parse(f).ok());
    let Some(from) = from.filter(|f| f.bare() != app.cfg.xmpp.jid) else {
        return Forward::Declined;
    };
    if !admitted(app, cfg, &from, stanza::message_type(el)) {
        return Forward::Declined;
    }
    if queue.offer(el.clone()) {
        return Forward::Queued;
    }
    metrics::inc(&app.metrics.webhook.rejected);
    log!(
        "webhook: queue full, refused the {} from {}",
        el.name(),
        el.get_attr("from").unwrap_or_default()
    );
    Forward::Busy(webhook::mapping::busy_reply(el))
}

/// Presence from one of our rooms: track whether we are in, and log what changed.
fn room_presence(app: &App, from: &Jid, el: &Element) {
    let change = app.rooms.borrow_mut().presence(from, el, Instant::now());
    if let Some(change) = change {
        log_room(change);
    }
}

/// Log what changed in a room.
pub fn log_room(change: Change) {
    match change {
        Change::Joined(room, nick) => log!("joined {room} as {nick}"),
        Change::Lost(room, why, pause) => log!(
            "not in {room}: {why}; joining again in {:.1}s",
            pause.as_secs_f64()
        ),
    }
}

/// What xrelay answers itself, as every client should: XEP-0199 ping, XEP-0030 disco#info
/// and XEP-0092 version.
fn builtin_answer(el: &Element) -> Option<Element> {
    if stanza::iq_type(el) != Some(IqType::Get) {
        return None;
    }
    let payload = el.children().next()?;
    let result = stanza::iq_result(el);
    match (payload.ns(), payload.name()) {
        (NS_PING, "ping") => Some(result),
        (jsonmap::NS_DISCO_INFO, "query") if payload.get_attr("node").is_none() => {
            let mut q = Element::new("query", jsonmap::NS_DISCO_INFO).child(
                Element::new("identity", jsonmap::NS_DISCO_INFO)
                    .attr("category", "client")
                    .attr("type", "bot")
                    .attr("name", "xrelay"),
            );
            for var in [jsonmap::NS_DISCO_INFO, NS_PING, jsonmap::NS_VERSION] {
                q.push_child(Element::new("feature", jsonmap::NS_DISCO_INFO).attr("var", var));
            }
            Some(result.child(q))
        }
        (jsonmap::NS_VERSION, "query") => Some(
            result.child(
                Element::new("query", jsonmap::NS_VERSION)
                    .child(Element::new("name", jsonmap::NS_VERSION).text("xrelay"))
                    .child(
                        Element::new("version", jsonmap::NS_VERSION)
                            .text(env!("CARGO_PKG_VERSION")),
                    ),
            ),
        ),
        _ => None,
    }
}

/// RFC 6120 §8.2.3: every iq get/set gets an answer; what xrelay does not handle is
/// `service-unavailable`.
fn answer(el: &Element) -> Option<Element> {
    (el.name() == "iq" && stanza::iq_type(el).is_some_and(IqType::is_request))
        .then(|| stanza::error_reply(el, "cancel", "service-unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::rooms::RoomState;
    use crate::store::hashfile::test_dir;
    use crate::store::invites::{InviteStore, NS_PARS};
    use crate::store::keys::KeyStore;
    use crate::webhook::QueueRx;
    use crate::xmpp::jid::BareJid;
    use crate::xmpp::roster::NS_ROSTER;
    use crate::xmpp::stanza::NS_STANZA_ERRORS;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const BOT: &str = "bot@example.org";
    const ALICE: &str = "alice@example.org/phone";
    const STRANGER: &str = "mallory@example.net/x";
    const ROOM: &str = "ops@conference.example.org";
    /// Our occupant address in `ROOM` (the default nick).
    const OUR_OCCUPANT: &str = "ops@conference.example.org/xrelay";
    const WEBHOOK_ALL_STANZAS: &str = "stanzas = [\"message\", \"presence\", \"iq\"]\n";
    const QUEUE_BYTES: usize = 1 << 16;

    /// A bot in `ROOM` with its keys and invites files in a temp dir of its own, and
    /// maybe a webhook whose queue the test reads.
    struct Bed {
        app: App,
        hook: Option<(Queue, QueueRx)>,
        dir: PathBuf,
    }

    impl Bed {
        /// No webhook; requests without a valid invite token are left pending.
        fn new() -> Self {
            Self::with("", None, QUEUE_BYTES)
        }

        /// A webhook taking every kind of stanza from `from` (a TOML value).
        fn hooked(from: &str) -> Self {
            let webhook = format!("{WEBHOOK_ALL_STANZAS}from = {from}\n");
            Self::with("", Some(&webhook), QUEUE_BYTES)
        }

        /// `invites`: more lines of `[invites]`; `webhook`: lines of `[webhook]` besides
        /// its url (`None`: no webhook), its queue holding `queue_bytes`.
        fn with(invites: &str, webhook: Option<&str>, queue_bytes: usize) -> Self {
            static BEDS: AtomicUsize = AtomicUsize::new(0);
            let dir = test_dir(&format!(
                "dispatch-{}",
                BEDS.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let (keys, invites_file) = (dir.join("keys"), dir.join("invites"));
            let mut text = format!(
                "[xmpp]\njid = \"{BOT}\"\npassword = \"pw\"\nrooms = [\"{ROOM}\"]\n\
                 [keys]\nfile = \"{}\"\n[invites]\nfile = \"{}\"\n{invites}",
                keys.display(),
                invites_file.display()
            );
            if let Some(w) = webhook {
                text.push_str(&format!(
                    "[webhook]\nurl = \"http://127.0.0.1:9/hook\"\n{w}"
                ));
            }
            let cfg = Config::parse(&text, None).unwrap();
            let app = App::new(
                cfg,
                KeyStore::open(&keys).unwrap(),
                InviteStore::open(&invites_file).unwrap(),
            );
            let hook = app.cfg.webhook.clone().map(|w| {
                let tls = crate::net::tls::client_config(&crate::config::Trust::Roots).unwrap();
                let (_, queue, rx) = webhook::new(w, tls, 1 << 16, queue_bytes);
                (queue, rx)
            });
            Self { app, hook, dir }
        }

        /// What the bot sends for `el`.
        fn send(&self, el: &Element) -> Vec<Element> {
            stanza(&self.app, self.hook.as_ref().map(|(q, _)| q), el)
        }

        /// The next stanza in the webhook's queue.
        fn queued(&self) -> Option<Element> {
            self.hook.as_ref()?.1.try_next()
        }

        /// The token of an invite made two hours ago that expires `secs` from now
        /// (negative: it has expired).
        fn invite(&self, secs: i64) -> String {
            let now = crate::timefmt::now_unix();
            let expires = now.checked_add_signed(secs).unwrap();
            let (_, token) = self
                .app
                .invites
                .create("friend", now - 7200, expires, 16)
                .unwrap();
            token
        }

        /// Make `jid` a contact with `subscription`, through a roster push.
        fn contact(&self, jid: &str, subscription: &str) {
            let replies = self.send(&roster_push(jid, subscription));
            assert_eq!(replies.len(), 1, "the push is acknowledged");
        }
    }

    impl Drop for Bed {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn message(from: &str, kind: &str) -> Element {
        Element::new("message", NS_CLIENT)
            .attr("from", from)
            .attr("to", BOT)
            .attr("type", kind)
            .attr("id", "m1")
            .child(Element::new("body", NS_CLIENT).text("hi"))
    }

    fn iq(from: &str, kind: &str, payload: Element) -> Element {
        Element::new("iq", NS_CLIENT)
            .attr("from", from)
            .attr("to", BOT)
            .attr("type", kind)
            .attr("id", "q1")
            .child(payload)
    }

    fn presence(from: &str) -> Element {
        Element::new("presence", NS_CLIENT)
            .attr("from", from)
            .attr("to", BOT)
    }

    fn subscribe(from: &str, token: Option<&str>) -> Element {
        let p = presence(from).attr("type", "subscribe");
        match token {
            Some(t) => p.child(Element::new("preauth", NS_PARS).attr("token", t)),
            None => p,
        }
    }

    /// A roster push from the server (no `from`).
    fn roster_push(jid: &str, subscription: &str) -> Element {
        Element::new("iq", NS_CLIENT)
            .attr("type", "set")
            .attr("id", "push1")
            .child(
                Element::new("query", NS_ROSTER).child(
                    Element::new("item", NS_ROSTER)
                        .attr("jid", jid)
                        .attr("subscription", subscription),
                ),
            )
    }

    /// A stanza error of `kind` with `condition` from `from`, answering our `id`.
    fn bounce(kind: &str, from: &str, id: &str, condition: &str) -> Element {
        Element::new(kind, NS_CLIENT)
            .attr("from", from)
            .attr("to", BOT)
            .attr("type", "error")
            .attr("id", id)
            .child(
                Element::new("error", NS_CLIENT)
                    .attr("type", "cancel")
                    .child(Element::new(condition, NS_STANZA_ERRORS)),
            )
    }

    /// The error condition of a reply.
    fn condition(reply: &Element) -> Option<&str> {
        Some(
            reply
                .get_child("error", NS_CLIENT)?
                .children()
                .next()?
                .name(),
        )
    }

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn bare(s: &str) -> BareJid {
        BareJid::parse(s).unwrap()
    }

    fn count(c: &AtomicUsize) -> usize {
        c.load(Ordering::Relaxed)
    }

    fn only(replies: Vec<Element>) -> Element {
        assert_eq!(replies.len(), 1, "one reply: {replies:?}");
        replies.into_iter().next().unwrap()
    }

    // Built-in answers.

    #[test]
    fn a_ping_from_anyone_gets_an_empty_result() {
        let bed = Bed::new();
        let r = only(bed.send(&iq(STRANGER, "get", Element::new("ping", NS_PING))));
        assert_eq!(r.name(), "iq");
        assert_eq!(r.get_attr("type"), Some("result"));
        assert_eq!(r.get_attr("id"), Some("q1"));
        assert_eq!(r.get_attr("to"), Some(STRANGER));
        assert_eq!(r.children().count(), 0);
    }

    #[test]
    fn a_ping_is_answered_by_xrelay_and_not_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let r = only(bed.send(&iq(ALICE, "get", Element::new("ping", NS_PING))));
        assert_eq!(r.get_attr("type"), Some("result"));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_disco_info_query_names_a_bot_with_ping_version_and_disco_info() {
        let bed = Bed::new();
        let query = Element::new("query", jsonmap::NS_DISCO_INFO);
        let r = only(bed.send(&iq(STRANGER, "get", query)));
        assert_eq!(r.get_attr("type"), Some("result"));
        let q = r.get_child("query", jsonmap::NS_DISCO_INFO).unwrap();
        let identity = q.get_child("identity", jsonmap::NS_DISCO_INFO).unwrap();
        assert_eq!(identity.get_attr("category"), Some("client"));
        assert_eq!(identity.get_attr("type"), Some("bot"));
        let features: Vec<&str> = q
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.get_attr("var"))
            .collect();
        assert_eq!(
            features,
            [jsonmap::NS_DISCO_INFO, NS_PING, jsonmap::NS_VERSION]
        );
    }

    #[test]
    fn a_disco_info_query_for_a_node_gets_service_unavailable() {
        let bed = Bed::new();
        let query = Element::new("query", jsonmap::NS_DISCO_INFO).attr("node", "x");
        let r = only(bed.send(&iq(STRANGER, "get", query)));
        assert_eq!(r.get_attr("type"), Some("error"));
        assert_eq!(condition(&r), Some("service-unavailable"));
    }

    #[test]
    fn a_version_query_gets_xrelay_and_its_version() {
        let bed = Bed::new();
        let query = Element::new("query", jsonmap::NS_VERSION);
        let r = only(bed.send(&iq(STRANGER, "get", query)));
        let q = r.get_child("query", jsonmap::NS_VERSION).unwrap();
        let text = |n| q.get_child(n, jsonmap::NS_VERSION).unwrap().text_content();
        assert_eq!(text("name"), "xrelay");
        assert_eq!(text("version"), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn a_ping_set_is_not_a_ping_and_gets_service_unavailable() {
        let bed = Bed::new();
        let r = only(bed.send(&iq(STRANGER, "set", Element::new("ping", NS_PING))));
        assert_eq!(condition(&r), Some("service-unavailable"));
    }

    // iqs nobody handles.

    #[test]
    fn an_unhandled_iq_get_gets_service_unavailable() {
        let bed = Bed::new();
        let r = only(bed.send(&iq(ALICE, "get", Element::new("query", "urn:x"))));
        assert_eq!(r.get_attr("type"), Some("error"));
        assert_eq!(r.get_attr("id"), Some("q1"));
        assert_eq!(r.get_attr("to"), Some(ALICE));
        let error = r.get_child("error", NS_CLIENT).unwrap();
        assert_eq!(error.get_attr("type"), Some("cancel"));
        assert_eq!(condition(&r), Some("service-unavailable"));
    }

    #[test]
    fn an_unhandled_iq_set_gets_service_unavailable() {
        let bed = Bed::new();
        let r = only(bed.send(&iq(ALICE, "set", Element::new("query", "urn:x"))));
        assert_eq!(condition(&r), Some("service-unavailable"));
    }

    #[test]
    fn an_iq_get_without_a_payload_gets_service_unavailable() {
        let bed = Bed::new();
        let empty = Element::new("iq", NS_CLIENT)
            .attr("from", ALICE)
            .attr("type", "get")
            .attr("id", "q1");
        assert_eq!(
            condition(&only(bed.send(&empty))),
            Some("service-unavailable")
        );
    }

    #[test]
    fn an_iq_result_nobody_waits_for_gets_no_answer() {
        let bed = Bed::hooked("\"anyone\"");
        let result = Element::new("iq", NS_CLIENT)
            .attr("from", STRANGER)
            .attr("type", "result")
            .attr("id", "q1");
        assert!(bed.send(&result).is_empty());
        assert!(bed.queued().is_none());
    }

    #[test]
    fn an_iq_error_nobody_waits_for_gets_no_answer() {
        let bed = Bed::new();
        let error = bounce("iq", STRANGER, "q1", "item-not-found");
        assert!(bed.send(&error).is_empty());
    }

    #[test]
    fn an_iq_get_from_an_allowed_sender_goes_to_the_webhook_which_answers_it_later() {
        let bed = Bed::hooked("\"anyone\"");
        let request = iq(STRANGER, "get", Element::new("query", "urn:x"));
        assert!(bed.send(&request).is_empty());
        assert_eq!(bed.queued(), Some(request));
    }

    #[test]
    fn an_iq_get_from_a_stranger_gets_service_unavailable_when_only_contacts_may() {
        let bed = Bed::hooked("\"contacts\"");
        let r = only(bed.send(&iq(STRANGER, "get", Element::new("query", "urn:x"))));
        assert_eq!(condition(&r), Some("service-unavailable"));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn an_iq_get_gets_service_unavailable_when_the_webhook_takes_only_messages() {
        let bed = Bed::with("", Some("from = \"anyone\"\n"), QUEUE_BYTES);
        let r = only(bed.send(&iq(ALICE, "get", Element::new("query", "urn:x"))));
        assert_eq!(condition(&r), Some("service-unavailable"));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn an_iq_get_from_another_resource_of_our_account_is_not_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let own = format!("{BOT}/other");
        let r = only(bed.send(&iq(&own, "get", Element::new("query", "urn:x"))));
        assert_eq!(condition(&r), Some("service-unavailable"));
        assert!(bed.queued().is_none());
    }

    // Replies awaited over /rest.

    #[test]
    fn an_iq_reply_awaited_over_rest_goes_to_its_waiter_and_nowhere_else() {
        let bed = Bed::hooked("\"anyone\"");
        let waiting = bed.app.iq_waits.wait("q1", jid(ALICE)).unwrap();
        let reply = iq(ALICE, "result", Element::new("query", "urn:x"));
        assert!(bed.send(&reply).is_empty());
        let got = smol::future::block_on(smol::future::poll_once(waiting.reply()));
        assert_eq!(got, Some(Some(reply)));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn an_iq_reply_from_another_address_than_asked_is_not_handed_to_the_waiter() {
        let bed = Bed::new();
        let waiting = bed.app.iq_waits.wait("q1", jid(ALICE)).unwrap();
        let forged = iq(STRANGER, "result", Element::new("query", "urn:x"));
        assert!(bed.send(&forged).is_empty());
        let got = smol::future::block_on(smol::future::poll_once(waiting.reply()));
        assert_eq!(got, None, "still waiting");
    }

    // The roster.

    #[test]
    fn the_answer_to_our_roster_request_loads_the_contacts_and_sends_nothing() {
        let bed = Bed::new();
        let request = bed.app.roster.borrow_mut().request("r1");
        let result = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr("id", request.get_attr("id").unwrap())
            .child(
                Element::new("query", NS_ROSTER).child(
                    Element::new("item", NS_ROSTER)
                        .attr("jid", "alice@example.org")
                        .attr("subscription", "both"),
                ),
            );
        assert!(bed.send(&result).is_empty());
        let alice = bed.app.roster.borrow().get(&bare("alice@example.org"));
        assert_eq!(alice, Some(Subscription::Both));
    }

    #[test]
    fn a_refused_roster_request_sends_nothing() {
        let bed = Bed::new();
        bed.app.roster.borrow_mut().request("r1");
        let refused = bounce("iq", BOT, "r1", "service-unavailable");
        assert!(bed.send(&refused).is_empty());
    }

    #[test]
    fn a_roster_push_from_the_server_is_applied_and_acknowledged() {
        let bed = Bed::new();
        let r = only(bed.send(&roster_push("alice@example.org", "from")));
        assert_eq!(r.get_attr("type"), Some("result"));
        assert_eq!(r.get_attr("id"), Some("push1"));
        let alice = bed.app.roster.borrow().get(&bare("alice@example.org"));
        assert_eq!(alice, Some(Subscription::From));
    }

    #[test]
    fn a_roster_push_from_a_stranger_is_refused_and_not_applied() {
        let bed = Bed::new();
        let forged = roster_push("mallory@example.net", "both").attr("from", STRANGER);
        let r = only(bed.send(&forged));
        assert_eq!(condition(&r), Some("service-unavailable"));
        assert_eq!(
            bed.app.roster.borrow().get(&bare("mallory@example.net")),
            None
        );
    }

    // Subscription requests and invites.

    #[test]
    fn a_subscribe_with_a_valid_invite_token_is_approved_and_subscribed_back() {
        let bed = Bed::new();
        let token = bed.invite(3600);
        let replies = bed.send(&subscribe("alice@example.org", Some(&token)));
        let kinds: Vec<_> = replies
            .iter()
            .map(|r| (r.get_attr("to"), r.get_attr("type")))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some("alice@example.org"), Some("subscribed")),
                (Some("alice@example.org"), Some("subscribe")),
            ]
        );
    }

    #[test]
    fn a_subscribe_from_a_full_jid_is_approved_for_its_bare_jid() {
        let bed = Bed::new();
        let token = bed.invite(3600);
        let replies = bed.send(&subscribe(ALICE, Some(&token)));
        assert_eq!(replies[0].get_attr("to"), Some("alice@example.org"));
    }

    #[test]
    fn a_valid_token_from_someone_we_follow_is_approved_without_subscribing_back() {
        let bed = Bed::new();
        bed.contact("alice@example.org", "to");
        let token = bed.invite(3600);
        let r = only(bed.send(&subscribe("alice@example.org", Some(&token))));
        assert_eq!(r.get_attr("type"), Some("subscribed"));
    }

    #[test]
    fn an_invite_token_is_used_up_by_its_first_contact() {
        let bed = Bed::with("unknown = \"deny\"\n", None, QUEUE_BYTES);
        let token = bed.invite(3600);
        bed.send(&subscribe("alice@example.org", Some(&token)));
        let r = only(bed.send(&subscribe("bob@example.org", Some(&token))));
        assert_eq!(r.get_attr("type"), Some("unsubscribed"));
    }

    #[test]
    fn an_invite_token_approves_its_own_contact_again_while_unexpired() {
        let bed = Bed::new();
        let token = bed.invite(3600);
        bed.send(&subscribe("alice@example.org", Some(&token)));
        let again = bed.send(&subscribe("alice@example.org", Some(&token)));
        assert_eq!(again[0].get_attr("type"), Some("subscribed"));
    }

    #[test]
    fn a_subscribe_with_an_expired_invite_token_is_denied_when_unknown_is_deny() {
        let bed = Bed::with("unknown = \"deny\"\n", None, QUEUE_BYTES);
        let token = bed.invite(-3600);
        let r = only(bed.send(&subscribe("alice@example.org", Some(&token))));
        assert_eq!(r.get_attr("type"), Some("unsubscribed"));
    }

    #[test]
    fn a_subscribe_with_an_unknown_token_is_denied_when_unknown_is_deny() {
        let bed = Bed::with("unknown = \"deny\"\n", None, QUEUE_BYTES);
        bed.invite(3600);
        let r = only(bed.send(&subscribe("alice@example.org", Some("guessed"))));
        assert_eq!(r.get_attr("to"), Some("alice@example.org"));
        assert_eq!(r.get_attr("type"), Some("unsubscribed"));
    }

    #[test]
    fn a_subscribe_without_a_token_is_denied_when_unknown_is_deny() {
        let bed = Bed::with("unknown = \"deny\"\n", None, QUEUE_BYTES);
        let r = only(bed.send(&subscribe("alice@example.org", None)));
        assert_eq!(r.get_attr("type"), Some("unsubscribed"));
    }

    #[test]
    fn a_subscribe_without_a_token_is_left_pending_by_default() {
        let bed = Bed::new();
        assert!(bed.send(&subscribe("alice@example.org", None)).is_empty());
    }

    #[test]
    fn a_subscribe_without_a_valid_from_gets_no_answer() {
        let bed = Bed::with("unknown = \"deny\"\n", None, QUEUE_BYTES);
        assert!(bed.send(&subscribe("@@", None)).is_empty());
    }

    #[test]
    fn a_subscription_request_never_reaches_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let token = bed.invite(3600);
        bed.send(&subscribe("alice@example.org", Some(&token)));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn an_unsubscribe_gets_no_answer_and_never_reaches_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let unsubscribe = presence("alice@example.org").attr("type", "unsubscribe");
        assert!(bed.send(&unsubscribe).is_empty());
        assert!(bed.queued().is_none());
    }

    // Rooms.

    #[test]
    fn a_presence_from_our_nick_in_a_room_marks_it_joined() {
        let bed = Bed::new();
        assert!(bed.send(&presence(OUR_OCCUPANT)).is_empty());
        let rooms = bed.app.rooms.borrow();
        assert_eq!(rooms.get(&bare(ROOM)).unwrap().state, RoomState::Joined);
    }

    #[test]
    fn an_error_presence_from_a_room_marks_it_failed() {
        let bed = Bed::new();
        bed.send(&bounce("presence", ROOM, "j1", "forbidden"));
        let rooms = bed.app.rooms.borrow();
        let state = &rooms.get(&bare(ROOM)).unwrap().state;
        assert!(matches!(state, RoomState::Failed(why) if why.contains("forbidden")));
    }

    #[test]
    fn a_presence_from_another_occupant_of_our_room_is_not_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let other = format!("{ROOM}/alice");
        assert!(bed.send(&presence(&other)).is_empty());
        assert!(bed.queued().is_none());
    }

    #[test]
    fn our_own_room_echo_completes_the_waiting_post_and_is_not_forwarded() {
        let bed = Bed::hooked("\"anyone\"");
        let id = bed.app.next_id();
        let waiting = bed.app.reflections.wait(&id).unwrap();
        let echo = message(OUR_OCCUPANT, "groupchat").attr("id", &id);
        assert!(bed.send(&echo).is_empty());
        assert_eq!(waiting.try_recv(), Ok(Ok(())));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_room_message_reaches_the_webhook_even_when_only_contacts_may() {
        let bed = Bed::hooked("\"contacts\"");
        let post = message(&format!("{ROOM}/alice"), "groupchat");
        assert!(bed.send(&post).is_empty());
        assert_eq!(bed.queued(), Some(post));
    }

    #[test]
    fn a_private_message_from_a_room_occupant_is_not_offered_when_only_contacts_may() {
        let bed = Bed::hooked("\"contacts\"");
        let private = message(&format!("{ROOM}/alice"), "chat");
        assert!(bed.send(&private).is_empty());
        assert!(bed.queued().is_none());
    }

    // Failures of our own messages.

    #[test]
    fn a_bounce_of_our_room_post_completes_the_waiting_post_with_its_condition() {
        let bed = Bed::new();
        let id = bed.app.next_id();
        let waiting = bed.app.reflections.wait(&id).unwrap();
        assert!(bed
            .send(&bounce("message", ROOM, &id, "forbidden"))
            .is_empty());
        assert_eq!(waiting.try_recv(), Ok(Err("forbidden".to_string())));
    }

    #[test]
    fn a_bounce_of_our_message_counts_as_failed() {
        let bed = Bed::new();
        let id = bed.app.next_id();
        bed.send(&bounce("message", ALICE, &id, "service-unavailable"));
        assert_eq!(count(&bed.app.metrics.failed), 1);
    }

    #[test]
    fn an_error_message_with_an_id_not_ours_is_not_counted_nor_forwarded() {
        let bed = Bed::hooked("\"anyone\"");
        let error = bounce("message", ALICE, "not-ours", "service-unavailable");
        assert!(bed.send(&error).is_empty());
        assert_eq!(count(&bed.app.metrics.failed), 0);
        assert!(bed.queued().is_none());
    }

    // Messages to the webhook.

    #[test]
    fn a_message_from_a_contact_is_offered_to_the_webhook() {
        let bed = Bed::hooked("\"contacts\"");
        bed.contact("alice@example.org", "from");
        let msg = message(ALICE, "chat");
        assert!(bed.send(&msg).is_empty());
        assert_eq!(bed.queued(), Some(msg));
    }

    #[test]
    fn a_message_from_someone_we_only_follow_is_not_offered_when_only_contacts_may() {
        let bed = Bed::hooked("\"contacts\"");
        bed.contact("alice@example.org", "to");
        bed.send(&message(ALICE, "chat"));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_message_from_a_stranger_is_not_offered_to_the_webhook_when_only_contacts_may() {
        let bed = Bed::hooked("\"contacts\"");
        assert!(bed.send(&message(STRANGER, "chat")).is_empty());
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_message_from_a_listed_domain_is_offered_to_the_webhook() {
        let bed = Bed::hooked("[\"example.net\"]");
        bed.send(&message(STRANGER, "chat"));
        assert!(bed.queued().is_some());
    }

    #[test]
    fn a_message_from_an_unlisted_address_is_not_offered_to_the_webhook() {
        let bed = Bed::hooked("[\"bob@example.net\"]");
        bed.send(&message(STRANGER, "chat"));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_message_from_anyone_is_offered_when_the_webhook_is_open_to_anyone() {
        let bed = Bed::hooked("\"anyone\"");
        bed.send(&message(STRANGER, "normal"));
        assert!(bed.queued().is_some());
    }

    #[test]
    fn a_chat_state_alone_is_not_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let typing = Element::new("message", NS_CLIENT)
            .attr("from", ALICE)
            .attr("type", "chat")
            .child(Element::new(
                "composing",
                "http://jabber.org/protocol/chatstates",
            ));
        assert!(bed.send(&typing).is_empty());
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_message_with_only_a_subject_is_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let subject = Element::new("message", NS_CLIENT)
            .attr("from", ALICE)
            .child(Element::new("subject", NS_CLIENT).text("news"));
        bed.send(&subject);
        assert!(bed.queued().is_some());
    }

    #[test]
    fn a_message_with_only_an_oob_link_is_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let link = Element::new("message", NS_CLIENT)
            .attr("from", ALICE)
            .child(
                Element::new("x", jsonmap::NS_OOB)
                    .child(Element::new("url", jsonmap::NS_OOB).text("https://example.org/f")),
            );
        bed.send(&link);
        assert!(bed.queued().is_some());
    }

    #[test]
    fn a_message_from_another_resource_of_our_account_is_not_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        assert!(bed
            .send(&message(&format!("{BOT}/other"), "chat"))
            .is_empty());
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_message_without_from_is_not_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let mut msg = message(ALICE, "chat");
        msg.remove_attr("from");
        assert!(bed.send(&msg).is_empty());
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_message_without_a_webhook_gets_no_answer() {
        let bed = Bed::new();
        assert!(bed.send(&message(ALICE, "chat")).is_empty());
    }

    #[test]
    fn a_message_is_not_offered_to_a_webhook_that_takes_only_presences() {
        let hook = "stanzas = [\"presence\"]\nfrom = \"anyone\"\n";
        let bed = Bed::with("", Some(hook), QUEUE_BYTES);
        bed.send(&message(ALICE, "chat"));
        assert!(bed.queued().is_none());
    }

    #[test]
    fn a_presence_from_an_allowed_sender_is_offered_to_the_webhook() {
        let bed = Bed::hooked("\"anyone\"");
        let available = presence(ALICE);
        assert!(bed.send(&available).is_empty());
        assert_eq!(bed.queued(), Some(available));
    }

    // A full queue.

    #[test]
    fn a_full_webhook_queue_answers_the_sender_with_an_error() {
        let hook = format!("{WEBHOOK_ALL_STANZAS}from = \"anyone\"\n");
        let bed = Bed::with("", Some(&hook), 0);
        let r = only(bed.send(&message(ALICE, "chat")));
        assert_eq!(r.name(), "message");
        assert_eq!(r.get_attr("to"), Some(ALICE));
        assert_eq!(r.get_attr("id"), Some("m1"));
        assert_eq!(r.get_attr("type"), Some("error"));
        let error = r.get_child("error", NS_CLIENT).unwrap();
        assert_eq!(error.get_attr("type"), Some("wait"));
        assert_eq!(condition(&r), Some("resource-constraint"));
    }

    #[test]
    fn a_full_webhook_queue_counts_the_refusal() {
        let hook = format!("{WEBHOOK_ALL_STANZAS}from = \"anyone\"\n");
        let bed = Bed::with("", Some(&hook), 0);
        bed.send(&message(ALICE, "chat"));
        assert_eq!(count(&bed.app.metrics.webhook.rejected), 1);
    }

    #[test]
    fn a_full_webhook_queue_answers_an_iq_with_resource_constraint() {
        let hook = format!("{WEBHOOK_ALL_STANZAS}from = \"anyone\"\n");
        let bed = Bed::with("", Some(&hook), 0);
        let r = only(bed.send(&iq(ALICE, "get", Element::new("query", "urn:x"))));
        assert_eq!(r.get_attr("type"), Some("error"));
        assert_eq!(condition(&r), Some("resource-constraint"));
    }

    #[test]
    fn a_presence_refused_by_a_full_webhook_queue_gets_no_answer() {
        let hook = format!("{WEBHOOK_ALL_STANZAS}from = \"anyone\"\n");
        let bed = Bed::with("", Some(&hook), 0);
        assert!(bed.send(&presence(ALICE)).is_empty());
    }

    // is_reply_to.

    #[test]
    fn a_result_with_our_id_is_the_reply_to_our_iq() {
        let result = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr("id", "p1");
        assert!(is_reply_to(&result, "p1"));
    }

    #[test]
    fn an_error_with_our_id_is_the_reply_to_our_iq() {
        assert!(is_reply_to(
            &bounce("iq", BOT, "p1", "feature-not-implemented"),
            "p1"
        ));
    }

    #[test]
    fn a_get_with_our_id_is_not_a_reply() {
        let get = iq(STRANGER, "get", Element::new("ping", NS_PING)).attr("id", "p1");
        assert!(!is_reply_to(&get, "p1"));
    }

    #[test]
    fn a_result_with_another_id_is_not_the_reply_to_our_iq() {
        let result = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr("id", "p2");
        assert!(!is_reply_to(&result, "p1"));
    }
}
