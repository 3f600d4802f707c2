//! Credentials from a request (sans-I/O); whether its client is then served is decided in
//! `access::clients`.
//!
//! An API key `ID/SECRET` may come as `Authorization: Bearer ID/SECRET`, as Basic (user
//! `ID` with password `SECRET`, or any user with password `ID/SECRET`, so `curl -u` works
//! either way), or as the query parameter `key=ID/SECRET`.

use base64::Engine;
use std::fmt;

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
            Self::BadBasic => "the Basic credentials are not base64 of user:password",
            Self::BadKey => "the API key is not shaped ID/SECRET",
            Self::BadEncoding => "the key parameter is not valid percent-encoding",
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
    fn credentials_are_read_from_bearer_basic_or_the_key_parameter() {
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
    fn malformed_credentials_are_refused_with_their_error() {
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
}
