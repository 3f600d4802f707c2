//! The client stream state machine (`xmpp::stream::Client`) fed whatever a server sends
//! after the TCP (or TLS) connection is up.
//!
//! Input: byte 0 picks the TLS mode and the stanza limit, byte 1 how far the clock moves
//! between reads; the rest is cut at NUL bytes (never valid in XML) into reads, in which
//! `%I` becomes the id of the client's latest stanza (ids have a random prefix) so that
//! binding can be answered. The harness plays the shell: it completes STARTTLS when asked,
//! sends a message and asks for an acknowledgement once online, and writes out whatever is
//! pending.
//!
//! Invariants: no panic; after an error nothing more happens; what the client writes stays
//! within a constant factor of what the server sent (no amplification).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use xrelay::xmpp::stream::TlsMode;
use xrelay::xmpp::jid::{BareJid, Jid};
use xrelay::xmpp::stanza::{message, MessageType};
use xrelay::xmpp::stream::{Client, Event, Settings};

mod common;
use common::replace;

/// Output per input byte: an `<r/>` (26 bytes) is answered by an `<a h='..'/>` (42 bytes),
/// a ping by its result; login steps and the harness's own stanzas fit the constant.
const MAX_GROWTH: usize = 4;
const SLACK: usize = 4096;

/// The value of the last attribute starting with `prefix` (`" id='"`) in `out`.
fn last_attr<'a>(out: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let start = out.windows(prefix.len()).rposition(|w| w == prefix)? + prefix.len();
    let len = out[start..].iter().position(|&b| b == b'\'')?;
    Some(&out[start..start + len])
}

fuzz_target!(|data: &[u8]| {
    let [flags, clock, rest @ ..] = data else {
        return;
    };
    let tls = match flags % 3 {
        0 => TlsMode::StartTls,
        1 => TlsMode::Direct,
        _ => TlsMode::Plain,
    };
    let settings = Settings {
        jid: BareJid::parse("bot@example.org").unwrap(),
        password: "pass".into(),
        resource: "xrelay".into(),
        tls,
        max_stanza_bytes: 256 << (flags / 3 % 6),
        ping_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(30),
        // Asking for resumption changes what `<enabled/>` and a later `<resumed/>` mean.
        resume: flags / 18 % 2 == 0,
    };
    let step = Duration::from_millis(u64::from(*clock) * 250);
    let mut now = Instant::now();
    let mut client = Client::new(settings, now);
    let mut written = 0;
    let mut dead = false;
    let to = Jid::parse("alice@example.org").unwrap();
    let mut last_id = Vec::new();
    let mut read_total = 0;
    for read in rest.split(|&b| b == 0) {
        let out = client.pending_output();
        written += out.len();
        if let Some(id) = last_attr(out, b" id='") {
            last_id = id.to_vec();
        }
        client.consume_output(usize::MAX);
        let read = replace(read, b"%I", &last_id);
        let read = read.as_slice();
        read_total += read.len();
        if dead {
            assert_eq!(
                client.poll_event(now),
                Ok(None),
                "events after the stream ended"
            );
            break;
        }
        if client.handle_input(read, now).is_err() {
            dead = true;
            continue;
        }
        loop {
            match client.poll_event(now) {
                Ok(Some(Event::StartTls)) => client.tls_established(now),
                Ok(Some(Event::Salt(job))) => {
                    if client.salted(job.run(), now).is_err() {
                        dead = true;
                        break;
                    }
                }
                Ok(Some(Event::Online { .. })) => {
                    assert!(client.is_online());
                    let msg = message(&to, MessageType::Chat, "m1", "hello", None);
                    assert!(client.send(&msg).is_ok());
                    client.request_ack(now);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    dead = true;
                    assert!(!client.is_online());
                    break;
                }
            }
        }
        now += step;
    }
    written += client.pending_output().len();
    assert!(
        written <= MAX_GROWTH * read_total + SLACK,
        "{read_total} bytes in, {written} bytes out"
    );
});
