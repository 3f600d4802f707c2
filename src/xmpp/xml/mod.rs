//! XML for the XMPP stream: the element tree every stanza in and out is made of, and what its
//! three parts share (namespaces, the depth bound, names, the error type).
//!
//! - `serializer`: the only way outgoing stanzas become bytes, escaping so that no text can
//!   ever turn into markup; the client's stream header and close.
//! - `framer`: the incremental, bounded reader of the server's stream under the restricted
//!   XML of RFC 6120 (§4, §11). A small resumable scanner of our own finds where each
//!   top-level item (XML declaration, stream header, stanza, stream close) ends, enforcing the
//!   size and nesting bounds before anything is parsed, so "need more bytes" and "malformed"
//!   never get confused and every byte is scanned once. Standalone documents (HTTP bodies) go
//!   through the same framer ([`parse_document`]).
//! - `parser`: builds an element from the complete bytes the framer found, with quick-xml.
//!
//! The parts depend on each other in one direction only: the framer on the parser, both on the
//! serializer (the parser bounds what an element will cost once written), all three on this
//! module. Everything public is re-exported here, so callers name `xmpp::xml::X`.

use std::fmt;
use std::sync::Arc;

mod framer;
mod parser;
mod serializer;
#[cfg(test)]
mod testing;

pub use framer::{parse_document, DocError, Framer, Skipped, StreamEvent, StreamHeader};
pub use serializer::{escape_into, write_stream_header, STREAM_CLOSE};

/// Namespace of the stream root and of `<stream:features>`, `<stream:error>` (RFC 6120 §4.8.1).
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";
/// Content namespace of a client stream (RFC 6120 §4.8.2).
pub const CLIENT_NS: &str = "jabber:client";
/// Namespace bound to the `xml` prefix by the XML namespaces recommendation.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Deepest element nesting accepted from the server, counting the stanza itself as level 1;
/// keeps recursion over parsed trees (building, serializing, dropping) bounded.
pub const MAX_DEPTH: usize = 32;

/// An XML element with its namespace resolved: the tree of every stanza, in and out.
///
/// Names are local names without prefixes (the namespace is carried in `ns`); the only prefixed
/// attribute is `xml:lang`. Callers that take names from input check them with
/// [`is_valid_name`]; as a last line of defence the serializer leaves out any element or
/// attribute whose name is not valid, so a name can never inject markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    /// Shared with the parser's binding and every element in the same namespace: a long
    /// namespace inherited by many small elements is held once, not once per element.
    ns: Arc<str>,
    attrs: Vec<(String, String)>,
    nodes: Vec<Node>,
}

/// A child of an [`Element`]: a nested element or character data (unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A nested element.
    Element(Element),
    /// Character data; adjacent text is always merged into one node.
    Text(String),
}

impl Element {
    /// An empty element `name` in namespace `ns`.
    pub fn new(name: &str, ns: &str) -> Self {
        Self {
            name: name.to_owned(),
            ns: Arc::from(ns),
            attrs: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Builder form of [`Element::set_attr`].
    pub fn attr(mut self, name: &str, value: &str) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Sets attribute `name`, replacing any previous value.
    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => {
                v.clear();
                v.push_str(value);
            }
            None => self.attrs.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Removes attribute `name`, if present.
    pub fn remove_attr(&mut self, name: &str) {
        self.attrs.retain(|(k, _)| k != name);
    }

    /// Builder form of [`Element::push_child`].
    pub fn child(mut self, child: Self) -> Self {
        self.push_child(child);
        self
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Self) {
        self.nodes.push(Node::Element(child));
    }

    /// Builder form of [`Element::push_text`].
    pub fn text(mut self, text: &str) -> Self {
        self.push_text(text);
        self
    }

    /// Appends character data, merged with text right before it so that the tree has the shape
    /// a parser would give it.
    pub fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.nodes.last_mut() {
            Some(Node::Text(last)) => last.push_str(text),
            _ => self.nodes.push(Node::Text(text.to_owned())),
        }
    }

    /// Local name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Namespace URI.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Value of attribute `name` (`xml:lang` included under that name).
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All attributes, in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// All children, elements and text, in document order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Element children only.
    pub fn children(&self) -> impl Iterator<Item = &Self> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// First child element named `name` in namespace `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Self> {
        self.children().find(|c| c.is(name, ns))
    }

    /// Concatenation of the direct text children.
    pub fn text_content(&self) -> String {
        let mut s = String::new();
        for node in &self.nodes {
            if let Node::Text(t) = node {
                s.push_str(t);
            }
        }
        s
    }

    /// Whether this element is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && &*self.ns == ns
    }
}

/// Whether `s` is a valid element or attribute name without a prefix (an XML 1.0 `NCName`):
/// what callers building names from input must check, since names are not escaped.
pub fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z' | '_'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// The four characters XML counts as white space.
fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Why the server's stream cannot be read further; each maps to an RFC 6120 §4.9.3 condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// A top-level element or the stream header is larger than the configured limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Elements are nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The XML is not well-formed; a short reason.
    NotWellFormed(String),
    /// A construct that XMPP's restricted XML forbids (comment, processing instruction, DOCTYPE).
    Restricted(&'static str),
    /// A namespace prefix was used without being declared.
    BadPrefix,
    /// The stream or content namespace is not the one XMPP requires; a short reason.
    InvalidNamespace(&'static str),
    /// The stream header is not a proper `<stream:stream>` opening tag; a short reason.
    BadStreamHeader(&'static str),
    /// The XML declaration names an encoding other than UTF-8.
    UnsupportedEncoding,
    /// The bytes are not valid UTF-8.
    InvalidUtf8,
}

impl XmlError {
    /// The RFC 6120 stream error condition to report to the server.
    pub fn condition(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } | Self::TooDeep => "policy-violation",
            Self::NotWellFormed(_) | Self::InvalidUtf8 => "not-well-formed",
            Self::Restricted(_) => "restricted-xml",
            Self::BadPrefix => "bad-namespace-prefix",
            Self::InvalidNamespace(_) => "invalid-namespace",
            Self::BadStreamHeader(_) => "bad-format",
            Self::UnsupportedEncoding => "unsupported-encoding",
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => {
                write!(f, "an element exceeds the limit of {limit} bytes")
            }
            Self::TooDeep => write!(f, "elements are nested deeper than {MAX_DEPTH} levels"),
            Self::NotWellFormed(why) => write!(f, "the xml is not well-formed: {why}"),
            Self::Restricted(what) => write!(f, "xmpp does not allow a {what} in the stream"),
            Self::BadPrefix => write!(f, "a namespace prefix is not declared"),
            Self::InvalidNamespace(why) => write!(f, "invalid namespace: {why}"),
            Self::BadStreamHeader(why) => write!(f, "bad stream header: {why}"),
            Self::UnsupportedEncoding => write!(f, "the stream is not encoded in utf-8"),
            Self::InvalidUtf8 => write!(f, "the stream contains invalid utf-8"),
        }
    }
}

impl std::error::Error for XmlError {}

fn not_well_formed(why: &str) -> XmlError {
    XmlError::NotWellFormed(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_xml_names_are_valid_and_others_are_not() {
        assert!(is_valid_name("body"));
        assert!(is_valid_name("_a-b.c9"));
        assert!(is_valid_name("caf\u{E9}"));
        for bad in ["", "9a", "-a", "a:b", ":a", "a b", "a>", "a'", "\u{D7}"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_error_displays_as_one_lowercase_sentence() {
        for e in [
            XmlError::TooLarge { limit: 1 },
            XmlError::TooDeep,
            not_well_formed("x"),
            XmlError::Restricted("comment"),
            XmlError::BadPrefix,
            XmlError::InvalidNamespace("x"),
            XmlError::BadStreamHeader("x"),
            XmlError::UnsupportedEncoding,
            XmlError::InvalidUtf8,
        ] {
            let s = e.to_string();
            assert!(s.starts_with(|c: char| c.is_lowercase()), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }
}
