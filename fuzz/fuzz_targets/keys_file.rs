//! The keys file parser (`keys`, through `xrelay::fuzzing`).
//!
//! Invariants: no panic; at most `MAX_KEYS` keys; what the parser accepts, the writer writes
//! back in a form that parses to the same keys and is then written identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::fuzzing::{parse_keys, render_keys};
use xrelay::store::keys::MAX_KEYS;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = parse_keys(text) else {
        return;
    };
    assert!(keys.len() <= MAX_KEYS);
    let written = render_keys(&keys);
    let again = parse_keys(&written)
        .unwrap_or_else(|e| panic!("written keys file does not parse: {e}\n{written}"));
    assert_eq!(
        again, keys,
        "keys changed when written and read back:\n{written}"
    );
    assert_eq!(render_keys(&again), written);
});
