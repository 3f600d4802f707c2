//! The client side of SCRAM-SHA-1/-256 and PLAIN (`xmpp::sasl::Client`) fed server messages.
//!
//! Input: byte 0 holds flags (hash, PLAIN, whether payloads are base64-encoded here or passed
//! as given, whether server-final comes in a challenge or in `<success>`); the rest is cut
//! at NUL bytes into username, server-first, server-final and a last `<success>` payload.
//! `%N` in server-first becomes the client's nonce and `%V` in server-final the correct
//! server signature, so the fuzzer reaches every step. This harness plays a server that
//! knows the password and computes that signature itself.
//!
//! Invariants: no panic; client-final has the RFC 5802 shape for the server's nonce; a
//! server-final is accepted exactly when its verifier is the correct signature.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ring::{hmac, pbkdf2};
use std::num::NonZeroU32;
use xrelay::xmpp::sasl::{Client, Mechanism};

mod common;
use common::replace;

const PASSWORD: &str = "pencil";
/// Iteration counts above this are skipped: PBKDF2 would dominate the run time, and the
/// parser treats all counts up to its maximum alike.
const MAX_FUZZ_ITERATIONS: u32 = 16;

fn payload(text: &[u8], encode: bool) -> String {
    if encode {
        if text.is_empty() {
            "=".to_owned()
        } else {
            STANDARD.encode(text)
        }
    } else {
        String::from_utf8_lossy(text).into_owned()
    }
}

fn field<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.split(',').find_map(|f| f.strip_prefix(name))
}

/// The signature a server knowing the password would send (RFC 5802 §3).
fn server_signature(sha256: bool, server_first: &str, auth_message: &str) -> Option<String> {
    let salt = STANDARD.decode(field(server_first, "s=")?).ok()?;
    let iterations = NonZeroU32::new(field(server_first, "i=")?.parse().ok()?)?;
    let (prf, mac) = if sha256 {
        (pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256)
    } else {
        (
            pbkdf2::PBKDF2_HMAC_SHA1,
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        )
    };
    let mut salted = vec![0u8; mac.digest_algorithm().output_len()];
    pbkdf2::derive(prf, iterations, &salt, PASSWORD.as_bytes(), &mut salted);
    let server_key = hmac::sign(&hmac::Key::new(mac, &salted), b"Server Key");
    let signature = hmac::sign(
        &hmac::Key::new(mac, server_key.as_ref()),
        auth_message.as_bytes(),
    );
    Some(STANDARD.encode(signature.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let mut parts = rest.split(|&b| b == 0);
    let username = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let server_first = parts.next().unwrap_or_default();
    let server_final = parts.next().unwrap_or_default();
    let last = parts.next();
    let sha256 = flags & 1 != 0;
    let encode = flags & 2 == 0;
    let final_in_success = flags & 4 != 0;
    let mechanism = match (flags & 8 != 0, sha256) {
        (true, _) => Mechanism::Plain,
        (false, true) => Mechanism::ScramSha256,
        (false, false) => Mechanism::ScramSha1,
    };

    let Ok((mut client, initial)) = Client::start(mechanism, &username, PASSWORD) else {
        return;
    };
    assert_eq!(client.mechanism(), mechanism);
    let initial = STANDARD
        .decode(&initial)
        .expect("the initial response is base64");

    if mechanism == Mechanism::Plain {
        let _ = client.success(Some(&payload(server_first, encode)));
        assert!(client.challenge(&payload(server_final, encode)).is_err());
        return;
    }

    let initial = String::from_utf8(initial).expect("client-first is UTF-8");
    let client_first_bare = initial
        .strip_prefix("n,,")
        .expect("client-first has a GS2 header");
    let nonce = field(client_first_bare, "r=").expect("client-first has a nonce");
    let server_first = replace(server_first, b"%N", nonce.as_bytes());
    let first_text = String::from_utf8_lossy(&server_first).into_owned();
    if first_text
        .split(',')
        .filter_map(|f| f.strip_prefix("i="))
        .any(|i| {
            i.parse::<u32>()
                .is_ok_and(|n| n > MAX_FUZZ_ITERATIONS && n <= 1_000_000)
        })
    {
        return;
    }

    let Ok(response) = client.challenge(&payload(&server_first, encode)) else {
        assert!(
            client.challenge("=").is_err(),
            "an exchange goes on after an error"
        );
        return;
    };
    // Accepted: server-first was UTF-8 and well-formed.
    let client_final = String::from_utf8(STANDARD.decode(&response).expect("base64 response"))
        .expect("client-final is UTF-8");
    let server_nonce = field(&first_text, "r=").expect("accepted server-first has a nonce");
    assert!(server_nonce.starts_with(nonce) && server_nonce.len() > nonce.len());
    let (without_proof, proof) = client_final
        .split_once(",p=")
        .expect("client-final has a proof");
    assert_eq!(without_proof, format!("c=biws,r={server_nonce}"));
    let proof = STANDARD.decode(proof).expect("the proof is base64");
    assert_eq!(proof.len(), if sha256 { 32 } else { 20 });

    let auth_message = format!("{client_first_bare},{first_text},{without_proof}");
    let signature = server_signature(sha256, &first_text, &auth_message)
        .expect("accepted server-first has a salt and a count");
    let server_final = replace(server_final, b"%V", signature.as_bytes());
    let final_text = String::from_utf8_lossy(&server_final);
    let correct = std::str::from_utf8(&server_final).is_ok()
        && final_text.split(',').next() == Some(&format!("v={signature}"));

    let accepted = if final_in_success {
        client
            .success(Some(&payload(&server_final, encode)))
            .is_ok()
    } else {
        let ok = client.challenge(&payload(&server_final, encode)).is_ok();
        let done = client.success(last.map(|l| payload(l, encode)).as_deref());
        if !ok {
            assert!(
                done.is_err(),
                "success accepted after a failed server-final"
            );
        }
        ok
    };
    if !encode {
        // A payload passed as given may decode to anything: only soundness holds.
        assert!(
            !accepted || correct,
            "a wrong server signature was accepted"
        );
    } else {
        assert_eq!(
            accepted, correct,
            "server-final {final_text:?}, signature {signature}"
        );
    }
});
