//! The `http://` and `https://` URLs of the config (`webhook.url`, `invites.public_url`),
//! parsed strictly: printable ASCII only, so nothing from them can break a header line or
//! a log line. A full WHATWG parser (the `url` crate with IDNA tables) would cost more than
//! the rest of the HTTP code for URLs an administrator writes once; internationalised
//! host names are written in their `xn--` form.

use std::fmt;

/// A parsed absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https` rather than `http`.
    pub https: bool,
    /// The host as written (an IPv6 literal keeps its brackets).
    pub host: String,
    /// The port, when the URL names one.
    pub port: Option<u16>,
    /// The path, `/` at least.
    pub path: String,
    /// The query, without its `?`.
    pub query: Option<String>,
    /// The fragment, without its `#`.
    pub fragment: Option<String>,
}

/// Why a URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    Scheme,
    /// A byte that is not printable ASCII (non-ASCII, space, CR, LF, other controls).
    Character,
    /// No host, or one with characters a host cannot have.
    Host,
    /// A port that is not a number from 0 to 65535.
    Port,
    /// `user:password@` before the host.
    Credentials,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scheme => "not an http:// or https:// URL",
            Self::Character => "the URL has a byte that is not printable ASCII",
            Self::Host => "the URL names no valid host",
            Self::Port => "the URL's port is not a number up to 65535",
            Self::Credentials => "the URL has credentials",
        })
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parse `s`.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::Character);
        }
        let (scheme, rest) = s.split_once("://").ok_or(UrlError::Scheme)?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(UrlError::Scheme);
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f.to_string())),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_string())),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = split_port(authority)?;
        let valid = if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']')
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        };
        if !valid {
            return Err(UrlError::Host);
        }
        Ok(Self {
            https,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
            query,
            fragment,
        })
    }

    /// The port to connect to: the URL's, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// The host to resolve or connect to (an IPv6 literal without its brackets).
    pub fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The `Host` header: the host, and the port if the URL names one.
    pub fn host_header(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The request target: path and query.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// `host[:port]`, where an IPv6 literal's colons are inside its brackets.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), UrlError> {
    let colon = match authority.rfind(']') {
        Some(end) => authority[end..].find(':').map(|i| end + i),
        None => authority.rfind(':'),
    };
    let Some(i) = colon else {
        return Ok((authority, None));
    };
    let digits = &authority[i + 1..];
    if digits.is_empty() {
        return Ok((&authority[..i], None));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::Port);
    }
    let port = digits.parse().map_err(|_| UrlError::Port)?;
    Ok((&authority[..i], Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_an_http_url_is_found() {
        let u = Url::parse("HTTPS://Hook.Example:8443/in/x?a=1&b=%20#top").unwrap();
        assert!(u.https);
        assert_eq!(u.host, "hook.example");
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.path, "/in/x");
        assert_eq!(u.query.as_deref(), Some("a=1&b=%20"));
        assert_eq!(u.fragment.as_deref(), Some("top"));
        assert_eq!(u.host_header(), "hook.example:8443");
        assert_eq!(u.target(), "/in/x?a=1&b=%20");
    }

    #[test]
    fn defaults_fill_a_bare_host() {
        let u = Url::parse("http://h").unwrap();
        assert_eq!((u.path.as_str(), u.port_or_default()), ("/", 80));
        assert_eq!(Url::parse("https://h:").unwrap().port_or_default(), 443);
    }

    #[test]
    fn ipv6_literals_keep_brackets_in_the_host_header_only() {
        let u = Url::parse("http://[::1]:9000/p").unwrap();
        assert_eq!(u.connect_host(), "::1");
        assert_eq!(u.host_header(), "[::1]:9000");
        assert_eq!(Url::parse("http://[::1]/").unwrap().port, None);
        assert_eq!(Url::parse("http://[nope]/"), Err(UrlError::Host));
    }

    #[test]
    fn non_ascii_and_control_bytes_are_refused() {
        for bad in [
            "https://router.example/é",
            "https://router.example/\r\nX: y",
            "https://router.example/a b",
            "https://routér.example/",
        ] {
            assert_eq!(Url::parse(bad), Err(UrlError::Character), "{bad:?}");
        }
    }

    #[test]
    fn other_schemes_credentials_and_bad_ports_are_refused() {
        assert_eq!(Url::parse("ftp://h/"), Err(UrlError::Scheme));
        assert_eq!(Url::parse("router.example"), Err(UrlError::Scheme));
        assert_eq!(Url::parse("http://"), Err(UrlError::Host));
        assert_eq!(Url::parse("http://u:p@h/"), Err(UrlError::Credentials));
        assert_eq!(Url::parse("http://h:99999/"), Err(UrlError::Port));
        assert_eq!(Url::parse("http://h:8x/"), Err(UrlError::Port));
        assert_eq!(Url::parse("http://h!/"), Err(UrlError::Host));
    }
}
