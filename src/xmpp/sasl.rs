//! The client side of XMPP authentication (RFC 6120 §6): choosing a SASL mechanism and running
//! SCRAM-SHA-256 / SCRAM-SHA-1 (RFC 5802, RFC 7677) or PLAIN (RFC 4616) as a pure state machine.
//!
//! The caller hands in the text of `<challenge>` and `<success>` elements and sends back the text
//! this module returns; payloads use the XMPP profile's base64 (an empty payload travels as `=`).
//!
//! SASLprep (RFC 4013) is not applied: usernames and passwords go out as the UTF-8 they are given,
//! so a non-ASCII password must already be in the NFKC form the server stored. This keeps Unicode
//! normalization tables out of a binary meant for routers; ASCII credentials are unaffected.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// Highest SCRAM iteration count we accept: PBKDF2 runs on a router's CPU, so a hostile or
/// misconfigured server must not be able to make a login spin for minutes.
///
/// The lowest accepted count is 1, not RFC 7677's recommended 4096: the count is fixed when the
/// account's password is stored, and old home servers hold accounts hashed with fewer rounds;
/// refusing them would lock those users out while the exchange itself still travels inside TLS.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Longest base64 payload accepted from the server; real SCRAM messages are a few hundred bytes.
const MAX_PAYLOAD_LEN: usize = 4096;
/// Longest username accepted, the XMPP bound on a localpart (RFC 7622 §3.3.1).
const MAX_USERNAME_LEN: usize = 1023;
/// Longest password accepted, so every buffer we build stays small.
const MAX_PASSWORD_LEN: usize = 1023;
/// Most characters of server-supplied text kept in an error (it ends up in logs).
const MAX_SERVER_TEXT: usize = 200;
/// Random bytes in the client nonce; 24 bytes give 32 base64 characters, without padding.
const NONCE_BYTES: usize = 24;
/// GS2 header without channel binding or authzid (`n,,`), base64-encoded for `c=`.
const GS2_HEADER_B64: &str = "biws";

/// A SASL mechanism this client can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM with SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM with SHA-1 (RFC 5802), still the default of many servers.
    ScramSha1,
    /// The password in clear (RFC 4616); only ever chosen over TLS.
    Plain,
}

/// Supported mechanisms, strongest first.
const PREFERENCE: [Mechanism; 3] = [
    Mechanism::ScramSha256,
    Mechanism::ScramSha1,
    Mechanism::Plain,
];

impl Mechanism {
    /// The IANA name, as used in `<mechanism>` and `<auth mechanism='..'>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha1 => "SCRAM-SHA-1",
            Self::Plain => "PLAIN",
        }
    }

    fn scram_hash(self) -> Option<Hash> {
        match self {
            Self::ScramSha256 => Some(Hash::Sha256),
            Self::ScramSha1 => Some(Hash::Sha1),
            Self::Plain => None,
        }
    }
}

/// Picks the strongest supported mechanism among the server's `<mechanism>` names:
/// SCRAM-SHA-256, then SCRAM-SHA-1, then PLAIN.
///
/// PLAIN is chosen only when `tls` is true and no SCRAM is offered, so stripping SCRAM from the
/// list cannot get the password sent in clear over a plaintext stream. `-PLUS` variants need
/// channel binding, which is not supported, and are skipped.
pub fn select<'a>(
    offered: impl IntoIterator<Item = &'a str>,
    tls: bool,
) -> Result<Mechanism, SaslError> {
    let mut seen = [false; PREFERENCE.len()];
    let mut listed = String::new();
    for name in offered {
        let name = name.trim();
        if listed.len() <= MAX_SERVER_TEXT {
            if !listed.is_empty() {
                listed.push_str(", ");
            }
            listed.push_str(name);
        }
        if let Some(i) = PREFERENCE.iter().position(|m| m.name() == name) {
            seen[i] = true;
        }
    }
    match PREFERENCE
        .iter()
        .zip(seen)
        .find(|(_, s)| *s)
        .map(|(m, _)| *m)
    {
        Some(Mechanism::Plain) if !tls => Err(SaslError::PlainWithoutTls),
        Some(m) => Ok(m),
        None => Err(SaslError::NoMechanism {
            offered: server_text(&listed),
        }),
    }
}

/// Why authentication cannot go on. No variant ever carries the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The server offers nothing we can use; `offered` is its list (bounded).
    NoMechanism {
        /// The server's mechanism names, comma-separated.
        offered: String,
    },
    /// Only PLAIN is usable and the stream is not encrypted.
    PlainWithoutTls,
    /// The username is empty, too long or contains NUL.
    InvalidUsername,
    /// The password is empty, too long or contains NUL.
    InvalidPassword,
    /// The system random source failed while making the client nonce.
    Random,
    /// A payload is not valid base64, or the salt or verifier inside it is not.
    BadBase64,
    /// A decoded payload is not UTF-8.
    BadUtf8,
    /// A server message breaks the SASL or SCRAM grammar.
    Malformed(Malformed),
    /// The server demands a SCRAM extension (`m=`) we do not implement.
    MandatoryExtension,
    /// The server nonce does not extend ours, or adds nothing to it.
    NonceMismatch,
    /// The iteration count lies outside `1..=MAX_ITERATIONS`.
    IterationCount(u32),
    /// The server signature is missing or wrong: the server did not prove it knows the password.
    ServerSignature,
    /// The server ended SCRAM with `e=`; the value is its own text (bounded).
    ServerError(String),
    /// A message arrived that the exchange's current step does not allow.
    UnexpectedMessage,
}

/// How a server message breaks the SASL or SCRAM grammar (RFC 5802 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A PLAIN `<success>` carries data, which PLAIN never sends.
    PlainSuccessData,
    /// server-final has neither `v=` nor `e=`.
    NoVerifier,
    /// server-first does not start with the nonce (`r=`).
    NoNonce,
    /// server-first has no salt (`s=`) after the nonce.
    NoSalt,
    /// server-first has no iteration count (`i=`) after the salt.
    NoIterationCount,
    /// The server nonce holds a byte outside printable ASCII.
    NonceNotPrintable,
    /// The salt decodes to nothing.
    EmptySalt,
    /// The iteration count is not a plain decimal number.
    IterationCountNotDecimal,
    /// A payload is longer than the 4096 bytes xrelay reads.
    PayloadTooLong,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PlainSuccessData => "PLAIN success carries data",
            Self::NoVerifier => "server-final lacks the verifier (v=)",
            Self::NoNonce => "server-first lacks the nonce (r=)",
            Self::NoSalt => "server-first lacks the salt (s=)",
            Self::NoIterationCount => "server-first lacks the iteration count (i=)",
            Self::NonceNotPrintable => "server nonce is not printable ASCII",
            Self::EmptySalt => "server-first has an empty salt",
            Self::IterationCountNotDecimal => "iteration count is not a decimal number",
            Self::PayloadTooLong => "payload too long",
        })
    }
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMechanism { offered } => write!(
                f,
                "the server offers no supported SASL mechanism (offered: {offered})"
            ),
            Self::PlainWithoutTls => {
                f.write_str("the server offers only PLAIN, which is refused without TLS")
            }
            Self::InvalidUsername => f.write_str("the username is empty, too long or contains NUL"),
            Self::InvalidPassword => f.write_str("the password is empty, too long or contains NUL"),
            Self::Random => f.write_str("the system random source failed"),
            Self::BadBase64 => f.write_str("a SASL payload holds invalid base64"),
            Self::BadUtf8 => f.write_str("a SASL payload is not valid UTF-8"),
            Self::Malformed(what) => write!(f, "malformed SASL message: {what}"),
            Self::MandatoryExtension => {
                f.write_str("the server requires an unsupported SCRAM extension")
            }
            Self::NonceMismatch => f.write_str("the server nonce does not extend the client nonce"),
            Self::IterationCount(n) => write!(
                f,
                "the server asks for {n} SCRAM iterations, outside 1..={MAX_ITERATIONS}"
            ),
            Self::ServerSignature => {
                f.write_str("the server failed to prove it knows the password")
            }
            Self::ServerError(e) => write!(f, "the server reported SCRAM error: {e}"),
            Self::UnexpectedMessage => f.write_str("a SASL message arrived out of order"),
        }
    }
}

impl std::error::Error for SaslError {}

/// One authentication exchange, from `<auth>` to `<success>`.
pub struct Client {
    mechanism: Mechanism,
    state: State,
}

/// The exchange's step; each holds only what the next step needs.
enum State {
    /// PLAIN credentials sent; only `<success>` may follow.
    PlainSent,
    /// SCRAM client-first sent; the password waits for the salt and iteration count.
    ScramFirstSent {
        hash: Hash,
        password: String,
        nonce: String,
        client_first_bare: String,
    },
    /// Server-first accepted; waiting for the salted password ([`Client::salted`]).
    ScramSalting {
        hash: Hash,
        auth_message: String,
        without_proof: String,
    },
    /// Client-final sent; server-final comes in a challenge or in `<success>`.
    ScramFinalSent(ServerProof),
    /// Server-final arrived in a challenge and verified; an empty `<success>` may follow.
    ScramVerified(ServerProof),
    /// Succeeded or failed: nothing more is accepted.
    Done,
}

impl Client {
    /// Starts an exchange; returns the client and the payload for `<auth mechanism='..'>`.
    pub fn start(
        mechanism: Mechanism,
        username: &str,
        password: &str,
    ) -> Result<(Self, String), SaslError> {
        Self::begin(mechanism, username, password, random_nonce)
    }

    /// Same as [`Client::start`] with a fixed client nonce, to replay published exchanges.
    #[cfg(test)]
    fn start_with_nonce(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Result<(Self, String), SaslError> {
        Self::begin(mechanism, username, password, || Ok(nonce.to_owned()))
    }

    fn begin(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: impl FnOnce() -> Result<String, SaslError>,
    ) -> Result<(Self, String), SaslError> {
        if username.is_empty() || username.len() > MAX_USERNAME_LEN || username.contains('\0') {
            return Err(SaslError::InvalidUsername);
        }
        if password.is_empty() || password.len() > MAX_PASSWORD_LEN || password.contains('\0') {
            return Err(SaslError::InvalidPassword);
        }
        let (state, initial) = match mechanism.scram_hash() {
            None => (
                State::PlainSent,
                format!("\0{username}\0{password}").into_bytes(),
            ),
            Some(hash) => {
                let nonce = nonce()?;
                let client_first_bare = format!("n={},r={nonce}", escape_username(username));
                let initial = format!("n,,{client_first_bare}").into_bytes();
                let state = State::ScramFirstSent {
                    hash,
                    password: password.to_owned(),
                    nonce,
                    client_first_bare,
                };
                (state, initial)
            }
        };
        Ok((Self { mechanism, state }, encode(&initial)))
    }

    /// The mechanism this exchange runs, for `<auth mechanism='..'>`.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Answers a `<challenge>` payload (base64 text) with the `<response>` payload.
    ///
    /// Answering server-first runs PBKDF2 with the server's iteration count (at most
    /// [`MAX_ITERATIONS`]) right here, which can take a noticeable time on a slow CPU; an
    /// event loop uses [`Client::challenge_deferred`] instead. Any error ends the exchange:
    /// later calls give [`SaslError::UnexpectedMessage`].
    pub fn challenge(&mut self, payload: &str) -> Result<String, SaslError> {
        match self.challenge_deferred(payload)? {
            Answer::Response(response) => Ok(response),
            Answer::Salt(job) => self.salted(job.run()),
        }
    }

    /// Like [`Client::challenge`], but the PBKDF2 of server-first is handed back as a
    /// [`SaltJob`] to run elsewhere (a blocking thread), its result going to
    /// [`Client::salted`], so the caller's thread never spins for it.
    pub fn challenge_deferred(&mut self, payload: &str) -> Result<Answer, SaslError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::ScramFirstSent {
                hash,
                password,
                nonce,
                client_first_bare,
            } => {
                let data = decode(payload)?;
                let server_first = utf8(&data)?;
                let first = parse_server_first(server_first, &nonce)?;
                let without_proof = format!("c={GS2_HEADER_B64},r={}", first.nonce);
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let job = SaltJob {
                    hash,
                    password,
                    salt: first.salt,
                    iterations: first.iterations,
                };
                self.state = State::ScramSalting {
                    hash,
                    auth_message,
                    without_proof,
                };
                Ok(Answer::Salt(job))
            }
            State::ScramFinalSent(proof) => {
                let data = decode(payload)?;
                proof.verify(utf8(&data)?)?;
                self.state = State::ScramVerified(proof);
                Ok(Answer::Response(encode(&[])))
            }
            State::PlainSent
            | State::ScramSalting { .. }
            | State::ScramVerified(_)
            | State::Done => Err(SaslError::UnexpectedMessage),
        }
    }

    /// The `<response>` payload (client-final) once the [`SaltJob`] of
    /// [`Client::challenge_deferred`] ran.
    pub fn salted(&mut self, salted: SaltedPassword) -> Result<String, SaslError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::ScramSalting {
                hash,
                auth_message,
                without_proof,
            } => {
                let (client_final, proof) =
                    client_final(hash, &salted.0, auth_message, &without_proof);
                self.state = State::ScramFinalSent(proof);
                Ok(encode(client_final.as_bytes()))
            }
            _ => Err(SaslError::UnexpectedMessage),
        }
    }

    /// Accepts the `<success>` payload (base64 text, possibly empty or absent).
    ///
    /// For SCRAM the server signature must verify here, or must already have verified from a
    /// challenge; a success without it is an error and the login must be aborted. The exchange
    /// is over after this call, whatever its result.
    pub fn success(&mut self, payload: Option<&str>) -> Result<(), SaslError> {
        let payload = payload.unwrap_or("");
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainSent => {
                if decode(payload)?.is_empty() {
                    Ok(())
                } else {
                    Err(SaslError::Malformed(Malformed::PlainSuccessData))
                }
            }
            State::ScramFinalSent(proof) => {
                let data = decode(payload)?;
                if data.is_empty() {
                    return Err(SaslError::ServerSignature);
                }
                proof.verify(utf8(&data)?)
            }
            State::ScramVerified(proof) => {
                let data = decode(payload)?;
                if data.is_empty() {
                    return Ok(());
                }
                proof.verify(utf8(&data)?)
            }
            State::ScramFirstSent { .. } | State::ScramSalting { .. } | State::Done => {
                Err(SaslError::UnexpectedMessage)
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// The hash function a SCRAM variant is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha1,
}

impl Hash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        }
    }
}

/// What checks the server's `v=`: ServerKey and the AuthMessage it signs.
struct ServerProof {
    server_key: hmac::Key,
    auth_message: String,
}

impl ServerProof {
    /// Checks a server-final message; `hmac::verify` compares in constant time.
    fn verify(&self, server_final: &str) -> Result<(), SaslError> {
        let first = server_final.split(',').next().unwrap_or_default();
        if let Some(error) = first.strip_prefix("e=") {
            return Err(SaslError::ServerError(server_text(error)));
        }
        let verifier = first
            .strip_prefix("v=")
            .ok_or(SaslError::Malformed(Malformed::NoVerifier))?;
        let signature = STANDARD
            .decode(verifier)
            .map_err(|_| SaslError::BadBase64)?;
        hmac::verify(&self.server_key, self.auth_message.as_bytes(), &signature)
            .map_err(|_| SaslError::ServerSignature)
    }
}

/// The fields of a server-first message that the proof depends on.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: NonZeroU32,
}

/// Parses server-first (`[m=..,]r=..,s=..,i=..[,ext]`, RFC 5802 §7) against our nonce.
fn parse_server_first<'a>(
    message: &'a str,
    client_nonce: &str,
) -> Result<ServerFirst<'a>, SaslError> {
    let mut fields = message.split(',');
    let first = fields.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(SaslError::MandatoryExtension);
    }
    let nonce = first
        .strip_prefix("r=")
        .ok_or(SaslError::Malformed(Malformed::NoNonce))?;
    let salt = fields
        .next()
        .and_then(|f| f.strip_prefix("s="))
        .ok_or(SaslError::Malformed(Malformed::NoSalt))?;
    let iterations = fields
        .next()
        .and_then(|f| f.strip_prefix("i="))
        .ok_or(SaslError::Malformed(Malformed::NoIterationCount))?;
    // Any further fields are optional extensions (RFC 5802 §7), which we ignore.

    if nonce.len() <= client_nonce.len() || !nonce.starts_with(client_nonce) {
        return Err(SaslError::NonceMismatch);
    }
    if !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SaslError::Malformed(Malformed::NonceNotPrintable));
    }
    let salt = STANDARD.decode(salt).map_err(|_| SaslError::BadBase64)?;
    if salt.is_empty() {
        return Err(SaslError::Malformed(Malformed::EmptySalt));
    }
    if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SaslError::Malformed(Malformed::IterationCountNotDecimal));
    }
    // Only overflow can fail on ASCII digits; that count is far above the limit anyway.
    let count = iterations.parse::<u32>().unwrap_or(u32::MAX);
    let iterations = NonZeroU32::new(count)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or(SaslError::IterationCount(count))?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// What a challenge asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send this `<response>` payload.
    Response(String),
    /// Run this PBKDF2 (off the event loop), then pass its result to [`Client::salted`].
    Salt(SaltJob),
}

/// The PBKDF2 of SCRAM's SaltedPassword (RFC 5802 §3): seconds of CPU on a router at a
/// high iteration count, so it can run on another thread. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaltJob {
    hash: Hash,
    password: String,
    salt: Vec<u8>,
    iterations: NonZeroU32,
}

impl SaltJob {
    /// Derive the salted password.
    pub fn run(self) -> SaltedPassword {
        let mut salted = vec![0u8; self.hash.digest().output_len()];
        pbkdf2::derive(
            self.hash.pbkdf2(),
            self.iterations,
            &self.salt,
            self.password.as_bytes(),
            &mut salted,
        );
        SaltedPassword(salted)
    }

    /// The server's iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }
}

impl fmt::Debug for SaltJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltJob")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The result of a [`SaltJob`]; a secret, so its `Debug` shows nothing.
pub struct SaltedPassword(Vec<u8>);

impl fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaltedPassword(..)")
    }
}

/// Builds client-final (RFC 5802 §3) from the salted password, and what is needed to check
/// the server's answer.
fn client_final(
    hash: Hash,
    salted: &[u8],
    auth_message: String,
    without_proof: &str,
) -> (String, ServerProof) {
    let salted = hmac::Key::new(hash.hmac(), salted);
    let client_key = hmac::sign(&salted, b"Client Key");
    let stored_key = digest::digest(hash.digest(), client_key.as_ref());
    let client_signature = hmac::sign(
        &hmac::Key::new(hash.hmac(), stored_key.as_ref()),
        auth_message.as_bytes(),
    );
    let proof: Vec<u8> = client_key
        .as_ref()
        .iter()
        .zip(client_signature.as_ref())
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hmac::sign(&salted, b"Server Key");

    let message = format!("{without_proof},p={}", STANDARD.encode(proof));
    let server = ServerProof {
        server_key: hmac::Key::new(hash.hmac(), server_key.as_ref()),
        auth_message,
    };
    (message, server)
}

/// A fresh client nonce: random bytes as base64, which is printable and has no `,`.
fn random_nonce() -> Result<String, SaslError> {
    let mut raw = [0u8; NONCE_BYTES];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| SaslError::Random)?;
    Ok(STANDARD.encode(raw))
}

/// Escapes a username for `n=` (RFC 5802 §5.1): `,` and `=` would break the attribute syntax.
fn escape_username(username: &str) -> String {
    let mut out = String::with_capacity(username.len());
    for c in username.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Encodes a payload for the wire; XMPP sends an empty one as `=` (RFC 6120 §6.4.2).
fn encode(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        STANDARD.encode(data)
    }
}

/// Decodes a payload from the wire: `=` or nothing means empty; surrounding XML whitespace is
/// tolerated, the base64 itself is decoded strictly.
fn decode(payload: &str) -> Result<Vec<u8>, SaslError> {
    let payload = payload.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(SaslError::Malformed(Malformed::PayloadTooLong));
    }
    if payload.is_empty() || payload == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(payload).map_err(|_| SaslError::BadBase64)
}

fn utf8(data: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(data).map_err(|_| SaslError::BadUtf8)
}

/// Server-supplied text made safe for an error message: no control characters, bounded length.
fn server_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_SERVER_TEXT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn unb64(s: &str) -> String {
        String::from_utf8(STANDARD.decode(s).unwrap()).unwrap()
    }

    // RFC 5802 §5.
    const SHA1_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
    const SHA1_SERVER_FIRST: &str =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const SHA1_CLIENT_FINAL: &str =
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    const SHA1_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

    // RFC 7677 §3.
    const SHA256_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SHA256_SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const SHA256_CLIENT_FINAL: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SHA256_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn sha1_client() -> Client {
        let (client, first) =
            Client::start_with_nonce(Mechanism::ScramSha1, "user", "pencil", SHA1_NONCE).unwrap();
        assert_eq!(unb64(&first), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        client
    }

    /// A SHA-1 client that has answered the RFC's server-first.
    fn sha1_after_first() -> Client {
        let mut client = sha1_client();
        let reply = client.challenge(&b64(SHA1_SERVER_FIRST)).unwrap();
        assert_eq!(unb64(&reply), SHA1_CLIENT_FINAL);
        client
    }

    fn sha1_server_first_error(server_first: &str) -> SaslError {
        sha1_client().challenge(&b64(server_first)).unwrap_err()
    }

    #[test]
    fn deferred_salting_gives_the_rfc_exchange_and_hides_the_password() {
        let mut client = sha1_client();
        let Answer::Salt(job) = client.challenge_deferred(&b64(SHA1_SERVER_FIRST)).unwrap() else {
            panic!("server-first asks for the PBKDF2");
        };
        assert_eq!(job.iterations(), 4096);
        assert!(!format!("{job:?}").contains("pencil"));
        assert!(
            matches!(
                client.challenge(&b64(SHA1_SERVER_FINAL)),
                Err(SaslError::UnexpectedMessage)
            ),
            "nothing else is accepted while it runs"
        );
        let mut client = sha1_client();
        let Ok(Answer::Salt(job)) = client.challenge_deferred(&b64(SHA1_SERVER_FIRST)) else {
            panic!("server-first asks for the PBKDF2");
        };
        let salted = std::thread::spawn(move || job.run()).join().unwrap();
        assert_eq!(format!("{salted:?}"), "SaltedPassword(..)");
        assert_eq!(unb64(&client.salted(salted).unwrap()), SHA1_CLIENT_FINAL);
        client.success(Some(&b64(SHA1_SERVER_FINAL))).unwrap();
    }

    #[test]
    fn rfc5802_sha1_success_carries_server_final() {
        let mut client = sha1_after_first();
        assert_eq!(client.mechanism(), Mechanism::ScramSha1);
        client.success(Some(&b64(SHA1_SERVER_FINAL))).unwrap();
    }

    #[test]
    fn rfc5802_sha1_challenge_carries_server_final() {
        let mut client = sha1_after_first();
        assert_eq!(client.challenge(&b64(SHA1_SERVER_FINAL)).unwrap(), "=");
        client.success(None).unwrap();
    }

    #[test]
    fn server_final_repeated_in_success_is_checked_again() {
        let mut client = sha1_after_first();
        client.challenge(&b64(SHA1_SERVER_FINAL)).unwrap();
        client.success(Some(&b64(SHA1_SERVER_FINAL))).unwrap();

        let mut client = sha1_after_first();
        client.challenge(&b64(SHA1_SERVER_FINAL)).unwrap();
        assert_eq!(
            client.success(Some(&b64("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="))),
            Err(SaslError::ServerSignature)
        );
    }

    #[test]
    fn rfc7677s_exchange_succeeds_with_server_final_in_success_or_in_a_challenge() {
        let start = || {
            let (client, first) =
                Client::start_with_nonce(Mechanism::ScramSha256, "user", "pencil", SHA256_NONCE)
                    .unwrap();
            assert_eq!(unb64(&first), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
            client
        };
        let mut client = start();
        let reply = client.challenge(&b64(SHA256_SERVER_FIRST)).unwrap();
        assert_eq!(unb64(&reply), SHA256_CLIENT_FINAL);
        client.success(Some(&b64(SHA256_SERVER_FINAL))).unwrap();

        let mut client = start();
        client.challenge(&b64(SHA256_SERVER_FIRST)).unwrap();
        assert_eq!(client.challenge(&b64(SHA256_SERVER_FINAL)).unwrap(), "=");
        client.success(Some("=")).unwrap();
    }

    #[test]
    fn a_tampered_or_truncated_server_signature_is_refused() {
        let tampered = "v=rmF9pqV8S7suAoZWja4dJRkFsKA=";
        let mut client = sha1_after_first();
        assert_eq!(
            client.success(Some(&b64(tampered))),
            Err(SaslError::ServerSignature)
        );
        let mut client = sha1_after_first();
        assert_eq!(
            client.challenge(&b64(tampered)),
            Err(SaslError::ServerSignature)
        );
        // A truncated signature must not verify as a prefix.
        let mut client = sha1_after_first();
        assert_eq!(
            client.success(Some(&b64("v=rmF9pqV8S7suAoZWja4d"))),
            Err(SaslError::ServerSignature)
        );
    }

    #[test]
    fn success_without_server_signature_aborts() {
        for payload in [None, Some(""), Some("=")] {
            let mut client = sha1_after_first();
            assert_eq!(client.success(payload), Err(SaslError::ServerSignature));
        }
    }

    #[test]
    fn a_server_error_in_server_final_is_reported_clipped() {
        let mut client = sha1_after_first();
        assert_eq!(
            client.success(Some(&b64("e=invalid-proof"))),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
        let mut client = sha1_after_first();
        assert_eq!(
            client.challenge(&b64("e=other-error,x=1")),
            Err(SaslError::ServerError("other-error".into()))
        );
        let long = format!("e={}\u{1b}[2J", "x".repeat(1000));
        let mut client = sha1_after_first();
        match client.success(Some(&b64(&long))) {
            Err(SaslError::ServerError(text)) => assert_eq!(text, "x".repeat(MAX_SERVER_TEXT)),
            other => panic!("{other:?}"),
        }
        let mut client = sha1_after_first();
        assert!(matches!(
            client.success(Some(&b64("x=1"))),
            Err(SaslError::Malformed(_))
        ));
        let mut client = sha1_after_first();
        assert_eq!(
            client.success(Some(&b64("v=not base64!"))),
            Err(SaslError::BadBase64)
        );
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_is_refused() {
        assert_eq!(
            sha1_server_first_error("r=XXXX+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096"),
            SaslError::NonceMismatch
        );
        assert_eq!(
            sha1_server_first_error("r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096"),
            SaslError::NonceMismatch
        );
        assert_eq!(
            sha1_server_first_error("r=fyko+d2lbbF,s=QSXCR+Q6sek8bf92,i=4096"),
            SaslError::NonceMismatch
        );
        assert!(matches!(
            sha1_server_first_error("r=fyko+d2lbbFgONRv9qkxdawL a,s=QSXCR+Q6sek8bf92,i=4096"),
            SaslError::Malformed(_)
        ));
    }

    #[test]
    fn server_first_with_missing_or_misordered_attributes_is_malformed() {
        let r = "r=fyko+d2lbbFgONRv9qkxdawL3rfc";
        for message in [
            "",
            "s=QSXCR+Q6sek8bf92,i=4096",
            r,
            &format!("{r},i=4096"),
            &format!("{r},s=QSXCR+Q6sek8bf92"),
            &format!("{r},i=4096,s=QSXCR+Q6sek8bf92"),
            &format!("s=QSXCR+Q6sek8bf92,{r},i=4096"),
        ] {
            assert!(
                matches!(sha1_server_first_error(message), SaslError::Malformed(_)),
                "{message}"
            );
        }
    }

    #[test]
    fn extensions_after_iterations_are_ignored() {
        let mut client = sha1_client();
        let reply = client
            .challenge(&b64(&format!("{SHA1_SERVER_FIRST},x=ext")))
            .unwrap();
        // The proof covers the whole server-first, so it differs from the RFC's.
        assert!(unb64(&reply).starts_with("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p="));
        assert_ne!(unb64(&reply), SHA1_CLIENT_FINAL);
    }

    #[test]
    fn a_salt_that_is_empty_or_not_base64_is_refused() {
        let r = "r=fyko+d2lbbFgONRv9qkxdawL3rfc";
        assert_eq!(
            sha1_server_first_error(&format!("{r},s=QSXC*Q6sek8bf92,i=4096")),
            SaslError::BadBase64
        );
        assert_eq!(
            sha1_server_first_error(&format!("{r},s=QSXCR+Q6sek8bf9,i=4096")),
            SaslError::BadBase64
        );
        assert!(matches!(
            sha1_server_first_error(&format!("{r},s=,i=4096")),
            SaslError::Malformed(_)
        ));
    }

    #[test]
    fn an_iteration_count_out_of_range_or_not_a_number_is_refused() {
        let base = "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=";
        let err = |i: &str| sha1_server_first_error(&format!("{base}{i}"));
        assert_eq!(err("0"), SaslError::IterationCount(0));
        assert_eq!(err("1000001"), SaslError::IterationCount(1_000_001));
        assert_eq!(err("99999999999"), SaslError::IterationCount(u32::MAX));
        for bad in ["", "abc", "-1", "+4096", " 4096", "4096 ", "40x6", "1e3"] {
            assert!(matches!(err(bad), SaslError::Malformed(_)), "{bad:?}");
        }
        let mut client = sha1_client();
        client.challenge(&b64(&format!("{base}1"))).unwrap();
    }

    #[test]
    fn each_malformed_server_message_names_its_fault() {
        let r = "r=fyko+d2lbbFgONRv9qkxdawL3rfc";
        for (message, fault) in [
            ("s=QSXCR+Q6sek8bf92,i=4096".to_string(), Malformed::NoNonce),
            (r.to_string(), Malformed::NoSalt),
            (
                format!("{r},s=QSXCR+Q6sek8bf92"),
                Malformed::NoIterationCount,
            ),
            (
                format!("{r}\u{7f},s=QSXCR+Q6sek8bf92,i=1"),
                Malformed::NonceNotPrintable,
            ),
            (format!("{r},s=,i=4096"), Malformed::EmptySalt),
            (
                format!("{r},s=QSXCR+Q6sek8bf92,i=+1"),
                Malformed::IterationCountNotDecimal,
            ),
        ] {
            assert_eq!(
                sha1_server_first_error(&message),
                SaslError::Malformed(fault),
                "{message}"
            );
        }
        assert_eq!(
            sha1_after_first().success(Some(&b64("x=1"))),
            Err(SaslError::Malformed(Malformed::NoVerifier))
        );
        assert_eq!(
            sha1_client().challenge(&"QUFB".repeat(MAX_PAYLOAD_LEN)),
            Err(SaslError::Malformed(Malformed::PayloadTooLong))
        );
        let (mut plain, _) = Client::start(Mechanism::Plain, "bot", "secret").unwrap();
        assert_eq!(
            plain.success(Some(&b64("data"))),
            Err(SaslError::Malformed(Malformed::PlainSuccessData))
        );
    }

    #[test]
    fn malformed_server_messages_keep_their_log_text() {
        assert_eq!(
            SaslError::Malformed(Malformed::NoVerifier).to_string(),
            "malformed SASL message: server-final lacks the verifier (v=)"
        );
    }

    #[test]
    fn mandatory_extension_is_refused() {
        assert_eq!(
            sha1_server_first_error(&format!("m=ext,{SHA1_SERVER_FIRST}")),
            SaslError::MandatoryExtension
        );
    }

    #[test]
    fn payloads_not_in_base64_or_utf8_or_too_long_are_refused() {
        assert_eq!(
            sha1_client().challenge("not base64!"),
            Err(SaslError::BadBase64)
        );
        assert_eq!(sha1_client().challenge("cj1h="), Err(SaslError::BadBase64));
        assert_eq!(
            sha1_client().challenge(&STANDARD.encode([b'r', b'=', 0xff, 0xfe])),
            Err(SaslError::BadUtf8)
        );
        let mut client = sha1_after_first();
        assert_eq!(
            client.success(Some(&STANDARD.encode([b'v', b'=', 0xc3]))),
            Err(SaslError::BadUtf8)
        );
        assert!(matches!(
            sha1_client().challenge(&"QUFB".repeat(MAX_PAYLOAD_LEN)),
            Err(SaslError::Malformed(_))
        ));
    }

    #[test]
    fn errors_end_the_exchange() {
        let mut client = sha1_client();
        assert!(client.challenge("!!").is_err());
        assert_eq!(
            client.challenge(&b64(SHA1_SERVER_FIRST)),
            Err(SaslError::UnexpectedMessage)
        );
    }

    #[test]
    fn calls_out_of_order_are_unexpected_messages() {
        // Success before any challenge.
        let mut client = sha1_client();
        assert_eq!(
            client.success(Some(&b64(SHA1_SERVER_FINAL))),
            Err(SaslError::UnexpectedMessage)
        );
        // Challenge after server-final was verified.
        let mut client = sha1_after_first();
        client.challenge(&b64(SHA1_SERVER_FINAL)).unwrap();
        assert_eq!(client.challenge("="), Err(SaslError::UnexpectedMessage));
        // Anything after success.
        let mut client = sha1_after_first();
        client.success(Some(&b64(SHA1_SERVER_FINAL))).unwrap();
        assert_eq!(client.challenge("="), Err(SaslError::UnexpectedMessage));
        assert_eq!(client.success(None), Err(SaslError::UnexpectedMessage));
    }

    #[test]
    fn plain_sends_the_credentials_and_accepts_only_an_empty_success() {
        let (mut client, initial) = Client::start(Mechanism::Plain, "bot", "secret").unwrap();
        assert_eq!(client.mechanism(), Mechanism::Plain);
        assert_eq!(STANDARD.decode(initial).unwrap(), b"\0bot\0secret");
        client.success(None).unwrap();

        let (mut client, _) = Client::start(Mechanism::Plain, "bot", "secret").unwrap();
        client.success(Some("=")).unwrap();

        let (mut client, _) = Client::start(Mechanism::Plain, "bot", "secret").unwrap();
        assert_eq!(client.challenge("="), Err(SaslError::UnexpectedMessage));
        assert_eq!(client.success(None), Err(SaslError::UnexpectedMessage));

        let (mut client, _) = Client::start(Mechanism::Plain, "bot", "secret").unwrap();
        assert!(matches!(
            client.success(Some(&b64("data"))),
            Err(SaslError::Malformed(_))
        ));
    }

    #[test]
    fn the_client_nonce_is_32_printable_characters_and_new_each_time() {
        let (_, first) = Client::start(Mechanism::ScramSha256, "bot", "secret").unwrap();
        let first = unb64(&first);
        let nonce = first.strip_prefix("n,,n=bot,r=").unwrap();
        assert_eq!(nonce.len(), 32);
        assert!(nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b','));
        let (_, other) = Client::start(Mechanism::ScramSha256, "bot", "secret").unwrap();
        assert_ne!(unb64(&other), first);
    }

    #[test]
    fn credentials_are_checked() {
        for mech in PREFERENCE {
            assert_eq!(
                Client::start(mech, "", "pw").unwrap_err(),
                SaslError::InvalidUsername
            );
            assert_eq!(
                Client::start(mech, "a\0b", "pw").unwrap_err(),
                SaslError::InvalidUsername
            );
            assert_eq!(
                Client::start(mech, &"u".repeat(MAX_USERNAME_LEN + 1), "pw").unwrap_err(),
                SaslError::InvalidUsername
            );
            assert_eq!(
                Client::start(mech, "bot", "").unwrap_err(),
                SaslError::InvalidPassword
            );
            assert_eq!(
                Client::start(mech, "bot", "p\0w").unwrap_err(),
                SaslError::InvalidPassword
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_and_display() {
        let (client, _) = Client::start(Mechanism::ScramSha1, "bot", "hunter2-secret").unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
        let (client, _) = Client::start(Mechanism::Plain, "bot", "hunter2-secret").unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
        assert_eq!(
            SaslError::InvalidPassword.to_string(),
            "the password is empty, too long or contains NUL"
        );
    }

    #[test]
    fn commas_and_equals_signs_in_the_username_are_escaped() {
        assert_eq!(escape_username("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(escape_username("=,"), "=3D=2C");
        assert_eq!(escape_username("plain.user"), "plain.user");
        assert_eq!(escape_username("jürgen"), "jürgen");
        let (_, first) =
            Client::start_with_nonce(Mechanism::ScramSha1, "we,ird=", "pw", SHA1_NONCE).unwrap();
        assert_eq!(unb64(&first), format!("n,,n=we=2Cird=3D,r={SHA1_NONCE}"));
    }

    #[test]
    fn an_empty_payload_is_an_equals_sign_and_bad_base64_is_refused() {
        assert_eq!(encode(&[]), "=");
        assert_eq!(encode(b"abc"), "YWJj");
        assert_eq!(decode("=").unwrap(), b"");
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("\n  YWJj\n").unwrap(), b"abc");
        assert_eq!(decode("YWI=").unwrap(), b"ab");
        assert_eq!(decode("YWI"), Err(SaslError::BadBase64));
        assert_eq!(decode("=="), Err(SaslError::BadBase64));
        assert_eq!(decode("YW Jj"), Err(SaslError::BadBase64));
    }

    #[test]
    fn the_strongest_offered_scram_is_chosen_and_plain_only_over_tls() {
        use Mechanism::*;
        let all = [
            "PLAIN",
            "SCRAM-SHA-1",
            "SCRAM-SHA-256",
            "SCRAM-SHA-256-PLUS",
        ];
        assert_eq!(select(all, true), Ok(ScramSha256));
        assert_eq!(select(all, false), Ok(ScramSha256));
        assert_eq!(select(["PLAIN", "SCRAM-SHA-1"], false), Ok(ScramSha1));
        assert_eq!(select(["PLAIN", "SCRAM-SHA-1"], true), Ok(ScramSha1));
        assert_eq!(select([" SCRAM-SHA-1\n"], false), Ok(ScramSha1));
        assert_eq!(select(["PLAIN"], true), Ok(Plain));
        assert_eq!(select(["PLAIN"], false), Err(SaslError::PlainWithoutTls));
        assert_eq!(
            select(["SCRAM-SHA-1-PLUS", "PLAIN"], false),
            Err(SaslError::PlainWithoutTls)
        );
        assert_eq!(select(["SCRAM-SHA-1-PLUS", "PLAIN"], true), Ok(Plain));
        assert_eq!(
            select(["SCRAM-SHA-256-PLUS", "EXTERNAL", "scram-sha-1"], true),
            Err(SaslError::NoMechanism {
                offered: "SCRAM-SHA-256-PLUS, EXTERNAL, scram-sha-1".into()
            })
        );
        assert_eq!(
            select([], true),
            Err(SaslError::NoMechanism {
                offered: String::new()
            })
        );
        let many = vec!["X-LONG-NAME"; 100];
        match select(many.iter().copied(), true) {
            Err(SaslError::NoMechanism { offered }) => {
                assert_eq!(offered.chars().count(), MAX_SERVER_TEXT)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ScramSha256.name(), "SCRAM-SHA-256");
        assert_eq!(ScramSha1.name(), "SCRAM-SHA-1");
        assert_eq!(Plain.name(), "PLAIN");
    }

    /// A SHA-1 client past server-first with one iteration (fast in debug builds), and the
    /// server-final that verifies for it.
    fn cheap_after_first() -> (Client, String) {
        let mut client = sha1_client();
        client
            .challenge(&b64(
                "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1",
            ))
            .unwrap();
        let State::ScramFinalSent(proof) = &client.state else {
            panic!("client-final not sent");
        };
        let signature = hmac::sign(&proof.server_key, proof.auth_message.as_bytes());
        let server_final = b64(&format!("v={}", STANDARD.encode(signature)));
        (client, server_final)
    }

    #[test]
    fn odd_payloads_never_panic() {
        let mut inputs: Vec<String> = [
            "", "=", "==", "===", "====", "\0", "é", "\u{feff}", ",", ",,,,", "r=", "s=", "i=",
            "v=", "e=", "m=", "r=,s=,i=", "v=,e=", "=2C", "Zm9v", "Zm9", "Zm9v\0", "YQ==YQ==",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let raw: Vec<String> = inputs.clone();
        inputs.extend(raw.iter().map(|s| b64(s)));
        inputs.extend(
            [
                "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4294967296",
                "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1,",
                "r=fyko+d2lbbFgONRv9qkxdawL\u{e9}\u{e9},s=QSXCR+Q6sek8bf92,i=1",
                "r=fyko+d2lbbFgONRv9qkxdawL3rfc,,s=QSXCR+Q6sek8bf92,i=1",
                "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=rmF9",
                "v===",
            ]
            .iter()
            .map(|s| b64(s)),
        );
        // A small deterministic generator for arbitrary bytes, sent raw and as base64.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    (seed >> 56) as u8
                })
                .collect();
            inputs.push(STANDARD.encode(&bytes));
            inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        for input in &inputs {
            let _ = sha1_client().challenge(input);
            let _ = sha1_client().success(Some(input));
            let _ = cheap_after_first().0.challenge(input);
            let _ = cheap_after_first().0.success(Some(input));
            let (mut verified, server_final) = cheap_after_first();
            verified.challenge(&server_final).unwrap();
            let _ = verified.success(Some(input));
            let (mut plain, _) = Client::start(Mechanism::Plain, "bot", "pw").unwrap();
            let _ = plain.success(Some(input));
            let _ = select([input.as_str()], false);
        }
    }
}
