//! `/rest` bodies: stanzas as XML (`xml::parse_document`) and as JSON
//! (`jsonmap::from_json`), and the JSON form of stanzas (`jsonmap::to_json`).
//!
//! Invariants: no panic; a stanza made from JSON serializes to XML that parses back and
//! serializes identically, within a constant factor of the input; its JSON form maps back to
//! a stanza with the same JSON form; the JSON form of a parsed XML stanza stays within a constant factor of
//! the XML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use xrelay::xmpp::jsonmap::{from_json, to_json};
use xrelay::xmpp::xml::{parse_document, Element, CLIENT_NS};

/// The `/rest` body limit (`http.max_body_bytes` default).
const LIMIT: usize = 64 * 1024;
/// Output bytes per input byte: escaping writes at most 6 for 1 (`'` → `&apos;`, a control
/// character → `\u0001`); each JSON field adds at most a few tags, covered by the constant.
const MAX_GROWTH: usize = 6;
const SLACK: usize = 512;

/// A stanza built from JSON: stable when serialized, and its JSON form maps back to it.
fn check_stanza(el: &Element, input_len: usize) {
    let bytes = el.to_bytes(CLIENT_NS);
    assert!(
        bytes.len() <= MAX_GROWTH * input_len + SLACK,
        "{input_len} → {} bytes",
        bytes.len()
    );
    let back = parse_document(&bytes, bytes.len().max(LIMIT))
        .unwrap_or_else(|e| panic!("a stanza from JSON does not parse: {e}: {bytes:?}"));
    assert_eq!(back.to_bytes(CLIENT_NS), bytes, "serializing is not stable");
    let json = to_json(el);
    let value = Value::Object(json.clone());
    let again = from_json(&value)
        .unwrap_or_else(|e| panic!("the JSON form of a stanza from JSON is refused: {e}: {value}"));
    // Defaults may become explicit (a message without type is "normal"); nothing else moves.
    assert_eq!(
        to_json(&again),
        json,
        "the JSON form is not stable: {value}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if let Ok(el) = from_json(&value) {
            check_stanza(&el, data.len());
        }
    }
    if let Ok(el) = parse_document(data, LIMIT) {
        let json = Value::Object(to_json(&el));
        let text = json.to_string();
        assert!(
            text.len() <= MAX_GROWTH * data.len() + SLACK,
            "{} → {}",
            data.len(),
            text.len()
        );
        if let Ok(mapped) = from_json(&json) {
            check_stanza(&mapped, text.len());
        }
    }
});
