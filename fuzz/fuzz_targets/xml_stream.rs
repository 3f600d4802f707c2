//! The server's XML stream (`xmpp::xml::Framer`) and standalone stanza documents
//! (`xml::parse_document`, used for HTTP bodies).
//!
//! Input: byte 0 picks the stanza limit, byte 1 seeds how the rest is cut into reads.
//! Invariants: no panic; the events do not depend on how the bytes were cut; every element
//! serializes to bytes that parse back to the same element, within a constant factor of
//! what was read (plus the limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::xmpp::xml::{parse_document, Element, Framer, StreamEvent, XmlError, CLIENT_NS};

/// How many bytes a serialized element may take per byte of input: the escaping serializer
/// writes at most 6 bytes for one (`'` → `&apos;`). Namespace declarations it adds where a
/// prefix was reused are bounded by the limit itself.
const MAX_GROWTH: usize = 6;

fn run(
    framer: &mut Framer,
    input: &[u8],
    cuts: &mut impl FnMut() -> usize,
) -> (Vec<StreamEvent>, Option<XmlError>) {
    let mut events = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = cuts().clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if let Err(e) = framer.feed(chunk) {
            return (events, Some(e));
        }
        loop {
            match framer.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn check_round_trip(el: &Element, read: usize, limit: usize) {
    let bytes = el.to_bytes(CLIENT_NS);
    assert!(
        bytes.len() <= MAX_GROWTH * read + limit,
        "{} bytes read serialize to {}",
        read,
        bytes.len()
    );
    let again = parse_document(&bytes, bytes.len().max(limit))
        .unwrap_or_else(|e| panic!("serialized element does not parse: {e}: {bytes:?}"));
    assert_eq!(&again, el, "round trip changed the element: {bytes:?}");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limit = 16 + usize::from(data[0]) * 64;
    let mut seed = u32::from(data[1]) | 1;
    let input = &data[2..];

    let mut whole = Framer::new(limit);
    let (events, error) = run(&mut whole, input, &mut || usize::MAX);

    let mut cut = Framer::new(limit);
    let (cut_events, cut_error) = run(&mut cut, input, &mut || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 7 + 1) as usize
    });
    assert_eq!(events, cut_events, "events depend on how the input was cut");
    // Which error an oversized item hits first (its size or a syntax error past the limit)
    // depends on where the reads end; that it fails does not.
    match (&error, &cut_error) {
        (Some(XmlError::TooLarge { .. }), Some(_)) | (Some(_), Some(XmlError::TooLarge { .. })) => {
        }
        _ => assert_eq!(
            error, cut_error,
            "the outcome depends on how the input was cut"
        ),
    }

    for ev in &events {
        if let StreamEvent::Element(el) = ev {
            check_round_trip(el, input.len(), limit);
        }
    }

    if let Ok(el) = parse_document(input, limit) {
        check_round_trip(&el, input.len(), limit);
    }
});
