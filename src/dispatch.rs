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
    Some(match app.cfg.invites.unknown {
        UnknownSubscription::Ignore => {
            log!("subscription request from {from} ignored: {refusal}");
            Vec::new()
        }
        UnknownSubscription::Deny => {
            log!("subscription request from {from} denied: {refusal}");
            vec![stanza::presence(&from, PresenceType::Unsubscribed)]
        }
    })
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
            Forward::Busy(r) => Some(r),
            Forward::Queued | Forward::Declined => None,
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
