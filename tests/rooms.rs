//! Rooms stay joined and posts to rooms tell the truth, against a real Prosody: a second
//! account owns the room and kicks the bot, destroys and recreates the room, takes the bot's
//! nick, bans it or makes it a visitor.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{shared, unique_user, Bed, Bot, Prosody, ProsodyOpts, TestClient};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";

/// A bot configured to join `room` as `xrelay`, with a `msg` key.
fn bot(p: &Prosody, room: &str) -> Bot {
    Bed::on(p).rooms(&[room]).key("msg").start()
}

/// The bot's `/health`, with its key.
fn health_of(b: &Bot) -> serde_json::Value {
    serde_json::from_str(&b.get("/health").body).unwrap()
}

/// An account that creates `room` and owns it.
fn owner(p: &Prosody, room: &str) -> TestClient {
    let (user, pw) = p.new_user("owner");
    let mut c = TestClient::connect(p, &user, &pw);
    c.join_room(room, "owner");
    c
}

fn admin_iq(c: &mut TestClient, room: &str, ns: &str, payload: &str) {
    c.send_raw(&format!(
        "<iq type='set' to='{room}' id='adm'><query xmlns='{ns}'>{payload}</query></iq>"
    ));
    let r = c
        .recv_where(WAIT, |e| e.is("iq") && e.attr("id") == Some("adm"))
        .expect("the room answers");
    assert_eq!(r.el.attr("type"), Some("result"), "{}", r.raw);
}

#[test]
fn a_kicked_bot_is_back_in_the_room_within_the_backoff() {
    let p = shared();
    let room = p.room(&unique_user("kick"));
    let mut own = owner(p, &room);
    let mut b = bot(p, &room);
    b.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    admin_iq(
        &mut own,
        &room,
        MUC_ADMIN,
        "<item nick='xrelay' role='none'><reason>testing</reason></item>",
    );
    b.daemon
        .wait_for(&format!("not in {room}: kicked (testing)"), WAIT);
    b.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    own.clear();
    let r = b.post_text(&format!("/msg/{room}"), "back again");
    assert_eq!(r.status, 202, "{r:?}");
    let m = own.recv_message(WAIT).expect("the post arrives");
    assert_eq!(m.from, format!("{room}/xrelay"));
}

#[test]
fn a_destroyed_and_recreated_room_is_joined_again() {
    let p = shared();
    let room = p.room(&unique_user("destroy"));
    let mut own = owner(p, &room);
    let mut b = bot(p, &room);
    b.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    admin_iq(
        &mut own,
        &room,
        MUC_OWNER,
        "<destroy><reason>rebuilding</reason></destroy>",
    );
    b.daemon.wait_for(
        &format!("not in {room}: the room was destroyed (rebuilding)"),
        WAIT,
    );
    own.join_room(&room, "owner");
    b.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    assert_eq!(health_of(&b)["rooms"][0]["state"], "joined");
    own.clear();
    assert_eq!(b.post_text(&format!("/msg/{room}"), "rebuilt").status, 202);
    assert_eq!(
        own.recv_message(WAIT)
            .expect("the post arrives")
            .body
            .as_deref(),
        Some("rebuilt")
    );
}

#[test]
fn a_taken_nick_makes_the_bot_join_with_a_suffix() {
    let p = shared();
    let room = p.room(&unique_user("nick"));
    let (user, pw) = p.new_user("impostor");
    let mut other = TestClient::connect(p, &user, &pw);
    other.join_room(&room, "xrelay");
    let mut b = bot(p, &room);
    b.daemon
        .wait_for(&format!("joined {room} as xrelay-2"), WAIT);
    let health = health_of(&b);
    assert_eq!(health["rooms"][0]["state"], "joined", "{health}");
    assert_eq!(health["rooms"][0]["nick"], "xrelay-2", "{health}");
    other.clear();
    let r = b.post_text(&format!("/msg/{room}?wait=1"), "under another name");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("reflected"), "{r:?}");
    let m = other.recv_message(WAIT).expect("the post arrives");
    assert_eq!(m.from, format!("{room}/xrelay-2"));
}

#[test]
fn a_post_to_a_room_the_bot_is_banned_from_answers_503_with_the_state() {
    let p = shared();
    let room = p.room(&unique_user("ban"));
    let mut own = owner(p, &room);
    let user = unique_user("roombot");
    // Ban the bot's account before it ever joins.
    p.register(&user, "pw");
    admin_iq(
        &mut own,
        &room,
        MUC_ADMIN,
        &format!("<item jid='{}' affiliation='outcast'/>", p.jid(&user)),
    );
    let b = Bed::on(p)
        .account(&user)
        .rooms(&[&room])
        .key("msg")
        .ready_when(&format!("not in {room}: refused: forbidden"))
        .start();
    let r = b.post_text(&format!("/msg/{room}?wait=1"), "let me in");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("failed: refused: forbidden"), "{r:?}");
    assert!(r.header("Retry-After").is_some(), "{r:?}");
}

#[test]
fn a_wait_post_the_room_bounces_answers_with_the_condition() {
    let p = shared();
    let room = p.room(&unique_user("moderated"));
    let mut own = owner(p, &room);
    // A moderated room: a newcomer without membership is a visitor and may not speak.
    admin_iq(
        &mut own,
        &room,
        MUC_OWNER,
        "<x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
         <field var='muc#roomconfig_moderatedroom'><value>1</value></field></x>",
    );
    let mut b = bot(p, &room);
    b.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    let r = b.post_text(&format!("/msg/{room}?wait=1"), "may I speak?");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("forbidden"), "{r:?}");
    // A bot without voice is still in the room, and says so.
    assert_eq!(health_of(&b)["rooms"][0]["state"], "joined");
}

#[test]
fn health_shows_rooms_offline_while_the_stream_is_down_and_joined_after() {
    let mut p = Prosody::start(ProsodyOpts::default());
    let room = p.room(&unique_user("offline"));
    let mut b = bot(&p, &room);
    b.daemon.wait_for(&format!("joined {room} as xrelay"), WAIT);
    p.stop();
    b.daemon.wait_for("reconnecting in", WAIT);
    let health = health_of(&b);
    assert_eq!(health["stream"], "offline", "{health}");
    assert_eq!(health["rooms"][0]["state"], "offline", "{health}");
    p.start_again();
    b.daemon
        .wait_for(&format!("joined {room} as xrelay"), WAIT * 2);
    assert_eq!(health_of(&b)["rooms"][0]["state"], "joined");
}
