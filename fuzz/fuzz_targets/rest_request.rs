//! `/rest` requests as the listener hands them to `http::rest::parse`: method, path (with
//! the `/rest/{kind}/{type}/{to}` and `/rest/{payload}/{to}` forms), media type and body.
//!
//! Input: byte 0 picks the method and the media type; the rest is cut at the first NUL into
//! the path and the body (for GET, also the query string).
//!
//! Invariants: no panic; an accepted request is one message, presence or iq in jabber:client
//! with only `to`, `id`, `type` and `xml:lang` on it (an iq of type get or set with exactly
//! one child), whose serialization parses back to the same bytes; a refusal has one of the
//! statuses mod_rest uses and a sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::http::rest::{parse, RestRequest};
use xrelay::xmpp::jid::Jid;
use xrelay::xmpp::xml::{parse_document, CLIENT_NS};

const TYPES: [Option<&str>; 7] = [
    None,
    Some("application/xmpp+xml"),
    Some("application/json"),
    Some("text/plain; charset=utf-8"),
    Some("text/html"),
    Some(""),
    Some("application/x-www-form-urlencoded"),
];

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let (path, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let req = RestRequest {
        method: if flags & 1 == 0 { "POST" } else { "GET" },
        path,
        // A GET's payload fields come in the query: the body stands in for it.
        query: (flags & 1 == 1)
            .then(|| std::str::from_utf8(body).ok())
            .flatten(),
        content_type: TYPES[usize::from(flags >> 1) % TYPES.len()],
        body,
    };
    let bot = Jid::parse("bot@example.org/xrelay").unwrap();
    match parse(&req, &bot) {
        Ok(parsed) => {
            assert!(!parsed.echo || req.method == "POST");
            let el = parsed.stanza;
            assert!(matches!(el.name(), "message" | "presence" | "iq"));
            assert_eq!(el.ns(), CLIENT_NS);
            assert!(el
                .attrs()
                .all(|(k, _)| matches!(k, "to" | "id" | "type" | "xml:lang")));
            if el.name() == "iq" {
                assert!(matches!(el.get_attr("type"), Some("get" | "set")));
                assert_eq!(el.children().count(), 1);
            }
            let bytes = el.to_bytes(CLIENT_NS);
            let back = parse_document(&bytes, bytes.len().max(1024) * 2)
                .expect("what xrelay sends parses back");
            assert_eq!(back.to_bytes(CLIENT_NS), bytes);
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 403 | 415 | 422), "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
});
