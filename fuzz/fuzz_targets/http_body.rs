//! `/msg` requests (`http::body::parse_msg`): form, JSON and text bodies, query strings,
//! content types and methods.
//!
//! Input: byte 0 picks the method, then the recipient path segment, query, content type and
//! subject header, each ended by a line feed (absent when empty and byte 1 says so); the
//! rest is the body. Invariants: no panic; a message is never larger than the request and
//! never empty; its recipient is in normal form; an error has a 4xx status and a bounded
//! message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::http::body::{parse_msg, MsgRequest};
use xrelay::xmpp::jid::{BareJid, Jid};

/// Longest error sentence: client input is echoed only in clipped form.
const MAX_ERROR_CHARS: usize = 512;

fuzz_target!(|data: &[u8]| {
    let [method, absent, rest @ ..] = data else {
        return;
    };
    let method = ["GET", "POST", "PUT", "get"][usize::from(*method) % 4];
    let mut rest = rest;
    let mut fields: [Option<&str>; 4] = [None; 4];
    for (i, field) in fields.iter_mut().enumerate() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return;
        };
        let Ok(text) = std::str::from_utf8(&rest[..end]) else {
            return;
        };
        rest = &rest[end + 1..];
        if !(text.is_empty() && absent & (1 << i) != 0) {
            *field = Some(text);
        }
    }
    let [path_to, query, content_type, subject_header] = fields;
    let req = MsgRequest {
        method,
        path_to: path_to.unwrap_or(""),
        query,
        content_type,
        subject_header,
        body: rest,
    };
    let bot = BareJid::parse("bot@example.org").unwrap();
    let rooms = [BareJid::parse("room@conference.example.org").unwrap()];
    match parse_msg(&req, &bot, &rooms) {
        Ok(msg) => {
            assert!(!msg.body.trim().is_empty());
            assert!(msg.body.len() <= data.len());
            if let Some(subject) = &msg.subject {
                assert!(!subject.trim().is_empty() && subject.len() <= data.len());
            }
            assert_eq!(Jid::parse(msg.to.as_str()).as_ref(), Ok(&msg.to));
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 415 | 422));
            let text = e.to_string();
            assert!(
                !text.is_empty() && text.chars().count() <= MAX_ERROR_CHARS,
                "{text}"
            );
        }
    }
});
