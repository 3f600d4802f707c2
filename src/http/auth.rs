//! Credentials from a request, and the per-address limiter of failed attempts (sans-I/O).
//!
//! An API key `ID/SECRET` may come as `Authorization: Bearer ID/SECRET`, as Basic (user
//! `ID` with password `SECRET`, or any user with password `ID/SECRET`, so `curl -u` works
//! either way), or as the query parameter `key=ID/SECRET`.

use base64::Engine;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures from one address within [`WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in; a blocked address waits until it ends.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; when full the oldest entry gives way, so memory is fixed.
pub const MAX_TRACKED: usize = 256;

/// A presented key. `Debug` hides the secret.
pub struct Credentials {
    /// The key id.
    pub id: String,
    /// The secret half.
    pub secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials {{ id: {:?}, secret: .. }}", self.id)
    }
}

/// Credentials that are present but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Basic credentials that are not base64 of `user:password`.
    BadBasic,
    /// A key that is not `ID/SECRET`.
    BadKey,
    /// Percent-encoding that does not decode to UTF-8.
    BadEncoding,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::BadBasic => "the Basic credentials are not base64 of user:password",
            AuthError::BadKey => "the API key is not shaped ID/SECRET",
            AuthError::BadEncoding => "the key parameter is not valid percent-encoding",
        })
    }
}

impl std::error::Error for AuthError {}

fn split_token(token: &str) -> Result<Credentials, AuthError> {
    match token.split_once('/') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Credentials {
            id: id.to_string(),
            secret: secret.to_string(),
        }),
        _ => Err(AuthError::BadKey),
    }
}

/// Read credentials from the `Authorization` header or the query string. `Ok(None)` when
/// there are none (an unknown scheme counts as none, so it gets 401).
pub fn credentials(
    authorization: Option<&str>,
    query: Option<&str>,
) -> Result<Option<Credentials>, AuthError> {
    if let Some(h) = authorization.map(str::trim) {
        let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return split_token(rest).map(Some);
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| AuthError::BadBasic)?;
            let text = String::from_utf8(raw).map_err(|_| AuthError::BadBasic)?;
            let (user, pass) = text.split_once(':').ok_or(AuthError::BadBasic)?;
            if pass.contains('/') {
                return split_token(pass).map(Some);
            }
            if user.is_empty() || pass.is_empty() {
                return Err(AuthError::BadKey);
            }
            return Ok(Some(Credentials {
                id: user.to_string(),
                secret: pass.to_string(),
            }));
        }
    }
    match query.and_then(|q| query_param(q, "key")) {
        Some(Ok(token)) => split_token(&token).map(Some),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<Result<String, AuthError>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v, true))
}

/// Decode `%XX` escapes (and `+` as space when `plus_is_space`) into UTF-8 text.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, AuthError> {
    super::body::percent_decode(s.as_bytes(), plus_is_space)
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or(AuthError::BadEncoding)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: IpAddr,
    failures: u32,
    since: Instant,
}

/// Failed attempts per client address, in a fixed-size table.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Fixed capacity: a flood of addresses evicts the oldest entry, never grows memory.
    entries: heapless::Vec<Entry, MAX_TRACKED>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> RateLimiter {
        RateLimiter {
            entries: heapless::Vec::new(),
        }
    }

    /// `Err(retry_after)` while `ip` is blocked.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.entries.iter().find(|e| e.ip == ip) {
            Some(e) if e.failures >= MAX_FAILURES => {
                let end = e.since + WINDOW;
                if now < end {
                    Err(end - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Count a failure from `ip`.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            if now.duration_since(e.since) >= WINDOW {
                e.failures = 0;
                e.since = now;
            }
            e.failures += 1;
            return;
        }
        let fresh = Entry {
            ip,
            failures: 1,
            since: now,
        };
        if let Err(fresh) = self.entries.push(fresh) {
            if let Some(oldest) = self.entries.iter_mut().min_by_key(|e| e.since) {
                *oldest = fresh;
            }
        }
    }

    /// A success from `ip` clears its failures.
    pub fn record_success(&mut self, ip: IpAddr) {
        self.entries.retain(|e| e.ip != ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    fn get(auth: Option<&str>, q: Option<&str>) -> (String, String) {
        let c = credentials(auth, q).unwrap().unwrap();
        (c.id, c.secret)
    }

    #[test]
    fn every_form() {
        let want = ("id1".to_string(), "sec:ret".to_string());
        assert_eq!(get(Some("Bearer id1/sec:ret"), None), want);
        assert_eq!(get(Some("bearer  id1/sec:ret "), None), want);
        assert_eq!(get(Some(&basic("id1:sec:ret")), None), want);
        assert_eq!(get(Some(&basic("anyone:id1/sec:ret")), None), want);
        assert_eq!(get(None, Some("body=x&key=id1%2Fsec%3Aret")), want);
        assert_eq!(get(Some("Digest x"), Some("key=id1/sec:ret")), want);
        assert!(credentials(None, None).unwrap().is_none());
        assert!(credentials(Some("Digest abc"), Some("body=1"))
            .unwrap()
            .is_none());
        assert!(!format!("{:?}", credentials(Some("Bearer a/b"), None)).contains("\"b\""));
    }

    #[test]
    fn malformed() {
        assert_eq!(
            credentials(Some("Bearer nosplit"), None).unwrap_err(),
            AuthError::BadKey
        );
        assert_eq!(
            credentials(Some("Bearer /x"), None).unwrap_err(),
            AuthError::BadKey
        );
        assert_eq!(
            credentials(Some("Basic !!!"), None).unwrap_err(),
            AuthError::BadBasic
        );
        assert_eq!(
            credentials(Some(&basic("nocolon")), None).unwrap_err(),
            AuthError::BadBasic
        );
        assert_eq!(
            credentials(Some(&basic(":")), None).unwrap_err(),
            AuthError::BadKey
        );
        assert_eq!(
            credentials(None, Some("key=%zz")).unwrap_err(),
            AuthError::BadEncoding
        );
        assert_eq!(
            credentials(None, Some("key=%ff")).unwrap_err(),
            AuthError::BadEncoding
        );
        assert_eq!(
            credentials(None, Some("key=abc")).unwrap_err(),
            AuthError::BadKey
        );
        assert_eq!(percent_decode("a+b%20c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("%4", true), Err(AuthError::BadEncoding));
        assert_eq!(query_param("wait=1&x", "x"), Some(Ok(String::new())));
        assert_eq!(query_param("wait=1", "key"), None);
    }

    #[test]
    fn limiter() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let mut l = RateLimiter::new();
        for _ in 0..MAX_FAILURES - 1 {
            l.record_failure(ip, t0);
        }
        assert!(l.check(ip, t0).is_ok());
        l.record_failure(ip, t0);
        let retry = l.check(ip, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(l.check(other, t0).is_ok());
        assert!(l.check(ip, t0 + WINDOW).is_ok());
        l.record_failure(ip, t0 + WINDOW);
        assert!(l.check(ip, t0 + WINDOW).is_ok(), "a new window starts over");
        l.record_success(ip);
        assert!(l.entries.is_empty());
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(i));
            l.record_failure(a, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(l.entries.len(), MAX_TRACKED);
    }
}
