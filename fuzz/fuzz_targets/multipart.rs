//! `multipart/form-data` decoding (`http::multipart::Decoder`), as uploads feed it.
//!
//! Input: byte 0 picks the size of the pieces the body is fed in (1 to 256 bytes), the rest
//! is the body (boundary `XB`). Invariants: no panic; feeding in pieces gives the same
//! events and the same outcome as feeding the whole body at once; the data passed on is
//! never more than the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::http::multipart::{Decoder, Event};

const CONTENT_TYPE: &str = "multipart/form-data; boundary=XB";

/// The events of `body` fed in pieces of `step` bytes, adjacent data joined, and whether
/// the form was complete (an error ends the decoding).
fn decode(body: &[u8], step: usize) -> (Vec<Event>, Result<(), String>) {
    let mut d = Decoder::new(CONTENT_TYPE).expect("a valid boundary");
    let mut events = Vec::new();
    let mut outcome = Ok(());
    for piece in body.chunks(step) {
        if let Err(e) = d.feed(piece, &mut events) {
            outcome = Err(e.to_string());
            break;
        }
    }
    if outcome.is_ok() {
        outcome = d.finish().map_err(|e| e.to_string());
    }
    let mut joined: Vec<Event> = Vec::new();
    for e in events {
        match (joined.last_mut(), e) {
            (Some(Event::Data(prev)), Event::Data(more)) => prev.extend(more),
            (_, e) => joined.push(e),
        }
    }
    (joined, outcome)
}

fuzz_target!(|data: &[u8]| {
    let [step, body @ ..] = data else {
        return;
    };
    let step = usize::from(*step) + 1;
    let (whole, whole_outcome) = decode(body, body.len().max(1));
    let (pieces, pieces_outcome) = decode(body, step);
    let data_bytes: usize = pieces
        .iter()
        .map(|e| match e {
            Event::Data(d) => d.len(),
            _ => 0,
        })
        .sum();
    assert!(data_bytes <= body.len());
    // An error may come at a different point, but a complete form decodes the same.
    assert_eq!(whole_outcome.is_ok(), pieces_outcome.is_ok());
    if whole_outcome.is_ok() {
        assert_eq!(whole, pieces);
    }
});
