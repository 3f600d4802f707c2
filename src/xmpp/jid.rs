//! JIDs (RFC 7622): parsing, validation and the normal form used for comparisons.
//!
//! Validation is the structural part of RFC 7622 plus the characters its PRECIS profiles
//! forbid in ASCII; full Unicode PRECIS tables are left to the server, which rejects what it
//! does not accept with a stanza error. ASCII letters in the localpart and domain are
//! lower-cased, so `Alice@Example.ORG` and `alice@example.org` compare equal.

use std::fmt;

/// RFC 7622 §3.1: each part is at most 1023 octets.
pub const MAX_PART_BYTES: usize = 1023;

/// A validated JID, stored in its normal form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jid {
    s: String,
    /// Byte index of '@' if there is a localpart.
    at: Option<usize>,
    /// Byte index of '/' if there is a resource.
    slash: Option<usize>,
}

/// A part of a JID, as an error names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JidPart {
    /// The localpart (before '@').
    Local,
    /// The domain.
    Domain,
    /// The resource (after '/').
    Resource,
}

impl fmt::Display for JidPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Local => "user part",
            Self::Domain => "domain",
            Self::Resource => "resource",
        })
    }
}

/// Why a string is not a JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JidError {
    /// The input is empty.
    Empty,
    /// The domain part is missing or empty.
    EmptyDomain,
    /// The domain has an empty label: two dots in a row, or a dot first or last (one final
    /// dot, the DNS root, is allowed and dropped).
    EmptyLabel,
    /// An '@' with nothing before it.
    EmptyLocal,
    /// A '/' with nothing after it.
    EmptyResource,
    /// A part is longer than RFC 7622 allows.
    TooLong(JidPart),
    /// A character that is not allowed in that part.
    BadChar {
        /// Which part.
        part: JidPart,
        /// The offending character.
        ch: char,
    },
    /// A full JID was given where a bare JID is needed.
    NotBare,
    /// A JID without a localpart was given where an account is needed.
    NoLocal,
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the address is empty"),
            Self::EmptyDomain => f.write_str("the address has no domain"),
            Self::EmptyLabel => f.write_str("the domain has two dots in a row or a dot at an end"),
            Self::EmptyLocal => f.write_str("the address has nothing before '@'"),
            Self::EmptyResource => f.write_str("the address has nothing after '/'"),
            Self::TooLong(part) => write!(f, "the {part} is longer than 1023 bytes"),
            Self::BadChar { part, ch } => {
                write!(
                    f,
                    "the {part} contains a character that is not allowed: {ch:?}"
                )
            }
            Self::NotBare => f.write_str("the address must not have a resource"),
            Self::NoLocal => f.write_str("the address needs a user part (user@domain)"),
        }
    }
}

impl std::error::Error for JidError {}

impl Jid {
    /// Parse and normalize `local@domain/resource` (local and resource optional).
    pub fn parse(input: &str) -> Result<Self, JidError> {
        if input.is_empty() {
            return Err(JidError::Empty);
        }
        // RFC 7622 §3.1: the first '/' starts the resource; the '@' before it ends the local.
        let (bare, resource) = match input.find('/') {
            Some(i) => (&input[..i], Some(&input[i + 1..])),
            None => (input, None),
        };
        let (local, domain) = match bare.find('@') {
            Some(i) => (Some(&bare[..i]), &bare[i + 1..]),
            None => (None, bare),
        };
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() {
            return Err(JidError::EmptyDomain);
        }
        // Otherwise "a.." would normalize to "a.", which parses as another JID, "a".
        if domain.split('.').any(str::is_empty) {
            return Err(JidError::EmptyLabel);
        }
        check_part(domain, JidPart::Domain, |c| {
            c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | '"' | '<' | '>' | '\'')
        })?;
        let mut s = String::with_capacity(input.len());
        let at = match local {
            Some("") => return Err(JidError::EmptyLocal),
            Some(l) => {
                check_part(l, JidPart::Local, |c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
                })?;
                push_lower(&mut s, l);
                let at = s.len();
                s.push('@');
                Some(at)
            }
            None => None,
        };
        push_lower(&mut s, domain);
        let slash = match resource {
            Some("") => return Err(JidError::EmptyResource),
            Some(r) => {
                check_part(r, JidPart::Resource, char::is_control)?;
                let slash = s.len();
                s.push('/');
                s.push_str(r);
                Some(slash)
            }
            None => None,
        };
        Ok(Self { s, at, slash })
    }

    /// The localpart, if any.
    pub fn local(&self) -> Option<&str> {
        self.at.map(|at| &self.s[..at])
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        let start = self.at.map_or(0, |at| at + 1);
        let end = self.slash.unwrap_or(self.s.len());
        &self.s[start..end]
    }

    /// The resource, if any.
    pub fn resource(&self) -> Option<&str> {
        self.slash.map(|i| &self.s[i + 1..])
    }

    /// The JID without its resource.
    pub fn bare(&self) -> BareJid {
        BareJid(match self.slash {
            Some(i) => Self {
                s: self.s[..i].to_string(),
                at: self.at,
                slash: None,
            },
            None => self.clone(),
        })
    }

    /// Whether this JID has no resource.
    pub fn is_bare(&self) -> bool {
        self.slash.is_none()
    }

    /// The JID with `resource` set (replacing any resource it had).
    pub fn with_resource(&self, resource: &str) -> Result<Self, JidError> {
        let b = self.bare();
        Self::parse(&format!("{b}/{resource}"))
    }

    /// The normal form as text.
    pub fn as_str(&self) -> &str {
        &self.s
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

/// A JID without a resource (an account, a room or a domain): what the config, the roster,
/// `webhook.from` and the invites file hold. It cannot carry a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BareJid(Jid);

impl BareJid {
    /// Parse and normalize `local@domain` (local optional); a resource is refused.
    pub fn parse(input: &str) -> Result<Self, JidError> {
        let j = Jid::parse(input)?;
        if j.slash.is_some() {
            return Err(JidError::NotBare);
        }
        Ok(Self(j))
    }

    /// The localpart, if any.
    pub fn local(&self) -> Option<&str> {
        self.0.local()
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The full JID with `resource`.
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        self.0.with_resource(resource)
    }

    /// The same address as a [`Jid`], for what takes any JID.
    pub fn as_jid(&self) -> &Jid {
        &self.0
    }

    /// The normal form as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<BareJid> for Jid {
    fn from(b: BareJid) -> Self {
        b.0
    }
}

fn check_part(part: &str, name: JidPart, forbidden: impl Fn(char) -> bool) -> Result<(), JidError> {
    if part.len() > MAX_PART_BYTES {
        return Err(JidError::TooLong(name));
    }
    match part.chars().find(|&c| forbidden(c) || is_noncharacter(c)) {
        Some(ch) => Err(JidError::BadChar { part: name, ch }),
        None => Ok(()),
    }
}

/// Characters XML cannot carry or that are never valid in identifiers.
fn is_noncharacter(c: char) -> bool {
    matches!(c, '\u{FFFE}' | '\u{FFFF}' | '\u{FDD0}'..='\u{FDEF}')
}

fn push_lower(s: &mut String, part: &str) {
    s.extend(part.chars().map(|c| c.to_ascii_lowercase()));
}

/// Percent-encode all but RFC 3986 unreserved characters and `@`: a JID as it stands in an
/// `xmpp:` URI (RFC 5122) or in one URL path segment.
pub fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jid_splits_into_lower_cased_local_and_domain_parts_and_a_resource() {
        let j = Jid::parse("Alice@Example.ORG/Phone 1").unwrap();
        assert_eq!(j.local(), Some("alice"));
        assert_eq!(j.domain(), "example.org");
        assert_eq!(j.resource(), Some("Phone 1"));
        assert_eq!(j.as_str(), "alice@example.org/Phone 1");
        assert_eq!(j.bare().as_str(), "alice@example.org");
        assert!(!j.is_bare());
        let d = Jid::parse("example.org.").unwrap();
        assert_eq!(d.local(), None);
        assert_eq!(d.domain(), "example.org");
        assert_eq!(d.resource(), None);
        // The first '/' starts the resource, so an '@' after it belongs to the resource.
        let r = Jid::parse("a@b/c@d/e").unwrap();
        assert_eq!(r.local(), Some("a"));
        assert_eq!(r.resource(), Some("c@d/e"));
        let w = Jid::parse("room@conference.x")
            .unwrap()
            .with_resource("nick");
        assert_eq!(w.unwrap().as_str(), "room@conference.x/nick");
        assert_eq!(Jid::parse("é@b").unwrap().local(), Some("é"));
        assert_eq!(Jid::parse("[::1]").unwrap().domain(), "[::1]");
    }

    #[test]
    fn normal_form_parses_to_itself() {
        for input in [
            "Example.ORG.",
            "A@B.c./R.",
            "[::1]/x",
            "é@b/..",
            "a@1.2.3.4",
        ] {
            let j = Jid::parse(input).unwrap();
            assert_eq!(Jid::parse(j.as_str()), Ok(j.clone()), "{input}");
        }
    }

    #[test]
    fn malformed_jids_get_their_named_error() {
        use JidError::*;
        assert_eq!(Jid::parse(""), Err(Empty));
        assert_eq!(Jid::parse("a@"), Err(EmptyDomain));
        assert_eq!(Jid::parse("@b"), Err(EmptyLocal));
        assert_eq!(Jid::parse("a@b/"), Err(EmptyResource));
        assert_eq!(Jid::parse("/r"), Err(EmptyDomain));
        assert_eq!(Jid::parse("a@."), Err(EmptyDomain));
        for bad in ["oo../s", "a@b..", "a@.b", "a@b..c", "..", "a@b.c../r"] {
            assert_eq!(Jid::parse(bad), Err(EmptyLabel), "{bad}");
        }
        assert_eq!(BareJid::parse("a@b/c"), Err(NotBare));
        assert!(matches!(Jid::parse("a b@c"), Err(BadChar { ch: ' ', .. })));
        assert!(matches!(Jid::parse("a<b@c"), Err(BadChar { ch: '<', .. })));
        assert!(matches!(Jid::parse("a@b@c"), Err(BadChar { ch: '@', .. })));
        assert!(matches!(Jid::parse("a@b c"), Err(BadChar { .. })));
        assert!(matches!(Jid::parse("a@b/\u{0}"), Err(BadChar { .. })));
        assert!(matches!(Jid::parse("a@b\u{FFFF}"), Err(BadChar { .. })));
        let long = "x".repeat(1024);
        assert_eq!(
            Jid::parse(&format!("{long}@b")),
            Err(TooLong(JidPart::Local))
        );
        assert_eq!(Jid::parse(&long), Err(TooLong(JidPart::Domain)));
        assert_eq!(
            Jid::parse(&format!("a@b/{long}")),
            Err(TooLong(JidPart::Resource))
        );
        for e in [
            Empty,
            NotBare,
            NoLocal,
            TooLong(JidPart::Domain),
            EmptyLabel,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn errors_name_the_part_in_words() {
        assert_eq!(
            JidError::TooLong(JidPart::Local).to_string(),
            "the user part is longer than 1023 bytes"
        );
        assert_eq!(
            JidError::BadChar {
                part: JidPart::Resource,
                ch: '\0'
            }
            .to_string(),
            "the resource contains a character that is not allowed: '\\0'"
        );
    }

    #[test]
    fn a_bare_jid_refuses_a_resource_and_is_normalized() {
        assert_eq!(BareJid::parse("a@b/c"), Err(JidError::NotBare));
        assert_eq!(BareJid::parse("a@b/"), Err(JidError::EmptyResource));
        let b = BareJid::parse("Alice@Example.ORG.").unwrap();
        assert_eq!(b.as_str(), "alice@example.org");
        assert_eq!(b.to_string(), "alice@example.org");
        assert_eq!(b.local(), Some("alice"));
        assert_eq!(b.domain(), "example.org");
        let d = BareJid::parse("conference.example.org").unwrap();
        assert_eq!((d.local(), d.domain()), (None, "conference.example.org"));
    }

    #[test]
    fn a_full_jid_made_bare_keeps_all_but_its_resource() {
        let full = Jid::parse("Room@Conference.x/Nick").unwrap();
        assert_eq!(full.bare(), BareJid::parse("room@conference.x").unwrap());
        assert_eq!(full.bare().as_jid().resource(), None);
        let bare = Jid::parse("room@conference.x").unwrap();
        assert_eq!(*bare.bare().as_jid(), bare);
        assert_eq!(Jid::from(bare.bare()), bare);
    }

    #[test]
    fn a_bare_jid_with_a_resource_is_the_full_jid() {
        let room = BareJid::parse("room@conference.x").unwrap();
        let full = room.with_resource("nick").unwrap();
        assert_eq!(full.as_str(), "room@conference.x/nick");
        assert_eq!(full.bare(), room);
        assert_eq!(
            room.with_resource("a\u{0}"),
            Err(JidError::BadChar {
                part: JidPart::Resource,
                ch: '\u{0}'
            })
        );
    }
}
