//! JID parsing (`xmpp::jid::Jid`).
//!
//! Invariants: no panic; the normal form parses back to itself; the parts put together give
//! the normal form and stay within RFC 7622's bounds; bare and resource changes agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xrelay::xmpp::jid::{BareJid, Jid, MAX_PART_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jid) = Jid::parse(input) else {
        assert!(BareJid::parse(input).is_err());
        return;
    };
    let normal = jid.as_str();
    assert_eq!(jid.to_string(), normal);
    assert!(normal.len() <= input.len(), "{input:?} grew to {normal:?}");
    assert_eq!(
        Jid::parse(normal).as_ref(),
        Ok(&jid),
        "{input:?} → {normal:?}"
    );

    let mut joined = String::new();
    if let Some(local) = jid.local() {
        assert!(!local.is_empty() && local.len() <= MAX_PART_BYTES);
        joined.push_str(local);
        joined.push('@');
    }
    assert!(!jid.domain().is_empty() && jid.domain().len() <= MAX_PART_BYTES);
    joined.push_str(jid.domain());
    if let Some(resource) = jid.resource() {
        assert!(!resource.is_empty() && resource.len() <= MAX_PART_BYTES);
        joined.push('/');
        joined.push_str(resource);
    }
    assert_eq!(joined, normal);

    let bare = jid.bare();
    assert!(bare.as_jid().is_bare() && bare.as_jid().resource().is_none());
    assert_eq!(bare.local(), jid.local());
    assert_eq!(bare.domain(), jid.domain());
    assert_eq!(BareJid::parse(bare.as_str()).as_ref(), Ok(&bare));
    assert_eq!(BareJid::parse(input).is_ok(), jid.is_bare());
    if let Some(resource) = jid.resource() {
        assert_eq!(bare.with_resource(resource).as_ref(), Ok(&jid));
    }
});
