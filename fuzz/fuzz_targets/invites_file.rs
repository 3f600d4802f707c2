//! The invites file parser (`invites`, through `xrelay::fuzzing`).
//!
//! Invariants: no panic; at most `MAX_INVITES` invites; what the parser accepts, the writer
//! writes back in a form that parses to the same invites and is then written identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::store::invites::MAX_INVITES;
use xrelay::fuzzing::{parse_invites, render_invites};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(invites) = parse_invites(text) else {
        return;
    };
    assert!(invites.len() <= MAX_INVITES);
    let written = render_invites(&invites);
    let again = parse_invites(&written)
        .unwrap_or_else(|e| panic!("written invites file does not parse: {e}\n{written}"));
    assert_eq!(
        again, invites,
        "invites changed when written and read back:\n{written}"
    );
    assert_eq!(render_invites(&again), written);
});
