//! XML for the XMPP stream: the element tree every stanza in and out is made of, its serializer
//! (the only way outgoing stanzas become bytes, so no text can ever turn into markup), and the
//! incremental, bounded parser of the server's stream under the restricted XML of RFC 6120
//! (§4, §11).
//!
//! The parser is split in two. A small resumable scanner of our own finds where each top-level
//! item (XML declaration, stream header, stanza, stream close) ends, enforcing the size and
//! nesting bounds before anything is parsed; only the complete slice is then handed to
//! quick-xml. "Need more bytes" and "malformed" therefore never get confused, and every byte
//! is scanned once.

use std::fmt;
use std::sync::Arc;

use quick_xml::errors::Error as QxError;
use quick_xml::escape::{resolve_xml_entity, EscapeError};
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// Namespace of the stream root and of `<stream:features>`, `<stream:error>` (RFC 6120 §4.8.1).
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";
/// Content namespace of a client stream (RFC 6120 §4.8.2).
pub const CLIENT_NS: &str = "jabber:client";
/// Namespace bound to the `xml` prefix by the XML namespaces recommendation.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Deepest element nesting accepted from the server, counting the stanza itself as level 1;
/// keeps recursion over parsed trees (building, serializing, dropping) bounded.
pub const MAX_DEPTH: usize = 32;

/// Closes the client's stream (RFC 6120 §4.4), matching [`write_stream_header`].
pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";

/// U+FFFD, written in place of characters XML 1.0 cannot carry.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

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
    pub fn new(name: &str, ns: &str) -> Element {
        Element {
            name: name.to_owned(),
            ns: Arc::from(ns),
            attrs: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Builder form of [`Element::set_attr`].
    pub fn attr(mut self, name: &str, value: &str) -> Element {
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
    pub fn child(mut self, child: Element) -> Element {
        self.push_child(child);
        self
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Element) {
        self.nodes.push(Node::Element(child));
    }

    /// Builder form of [`Element::push_text`].
    pub fn text(mut self, text: &str) -> Element {
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
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// First child element named `name` in namespace `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
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

    /// Serializes the element into `out`; `parent_ns` is the default namespace in scope
    /// (`jabber:client` for top-level stanzas), and `xmlns='..'` is written only where the
    /// element's namespace differs from it. Elements in [`STREAM_NS`] are written with the
    /// `stream:` prefix bound by the stream header, as servers expect.
    ///
    /// Characters XML 1.0 cannot carry at all (C0 controls other than tab, line feed and
    /// carriage return, U+FFFE, U+FFFF) are written as U+FFFD: a single one would make the
    /// server kill the stream. Elements and attributes with invalid names are left out.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: &str) {
        if !is_valid_name(&self.name) {
            return;
        }
        let prefixed = &*self.ns == STREAM_NS;
        out.push(b'<');
        if prefixed {
            out.extend_from_slice(b"stream:");
        }
        out.extend_from_slice(self.name.as_bytes());
        let inner_ns = if prefixed {
            parent_ns
        } else {
            if &*self.ns != parent_ns {
                out.extend_from_slice(b" xmlns='");
                escape(&self.ns, out, true);
                out.push(b'\'');
            }
            &self.ns
        };
        for (k, v) in &self.attrs {
            if !is_valid_attr_name(k) {
                continue;
            }
            out.push(b' ');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"='");
            escape(v, out, true);
            out.push(b'\'');
        }
        if self.nodes.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for node in &self.nodes {
            match node {
                Node::Element(e) => e.write_to(out, inner_ns),
                Node::Text(t) => escape(t, out, false),
            }
        }
        out.extend_from_slice(b"</");
        if prefixed {
            out.extend_from_slice(b"stream:");
        }
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// Serialized form, see [`Element::write_to`].
    pub fn to_bytes(&self, parent_ns: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_to(&mut out, parent_ns);
        out
    }
}

/// Escapes `text` for use in character data or in a (single- or double-quoted) attribute value:
/// `& < > " '` become entity references, tab, line feed and carriage return become character
/// references (a reader would otherwise normalize them away), and characters XML 1.0 forbids
/// become U+FFFD.
pub fn escape_into(text: &str, out: &mut Vec<u8>) {
    escape(text, out, true);
}

/// Escaping shared by text and attributes; in text, tab and line feed survive parsing as they are.
fn escape(text: &str, out: &mut Vec<u8>, in_attr: bool) {
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (rep, width): (&[u8], usize) = match bytes[i] {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'"' => (b"&quot;", 1),
            b'\'' => (b"&apos;", 1),
            b'\r' => (b"&#13;", 1),
            b'\n' if in_attr => (b"&#10;", 1),
            b'\t' if in_attr => (b"&#9;", 1),
            b'\n' | b'\t' => {
                i += 1;
                continue;
            }
            0..=0x1f => (REPLACEMENT, 1),
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
            0xef if bytes.get(i + 1) == Some(&0xbf)
                && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) =>
            {
                (REPLACEMENT, 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(rep);
        i += width;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Length of `text` escaped as an attribute value.
fn escaped_len(text: &str) -> usize {
    let mut out = Vec::with_capacity(text.len());
    escape(text, &mut out, true);
    out.len()
}

/// Whether `s` is a valid element or attribute name without a prefix (an XML 1.0 `NCName`):
/// what callers building names from input must check, since names are not escaped.
pub fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Attribute names the serializer writes: plain names (but not a namespace declaration,
/// which only the serializer itself emits) and `xml:lang`.
fn is_valid_attr_name(s: &str) -> bool {
    s == "xml:lang" || (s != "xmlns" && is_valid_name(s))
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

/// Writes the opening of the client's stream to the server `to` (RFC 6120 §4.7): the XML
/// declaration and a `<stream:stream>` header binding `stream:` and the default namespace
/// `jabber:client`, with `from` (the account's bare JID) when given.
pub fn write_stream_header(out: &mut Vec<u8>, to: &str, from: Option<&str>) {
    out.extend_from_slice(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' to='",
    );
    escape(to, out, true);
    if let Some(from) = from {
        out.extend_from_slice(b"' from='");
        escape(from, out, true);
    }
    out.extend_from_slice(b"' version='1.0'>");
}

/// Why a standalone stanza document (an HTTP body) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// The document is not well-formed, too large or too deep, or uses restricted XML.
    Xml(XmlError),
    /// The document holds no element or more than one top-level element.
    NotOneElement,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::Xml(e) => write!(f, "{e}"),
            DocError::NotOneElement => f.write_str("expected exactly one top-level element"),
        }
    }
}

impl std::error::Error for DocError {}

impl From<XmlError> for DocError {
    fn from(e: XmlError) -> DocError {
        DocError::Xml(e)
    }
}

/// Parses a document holding exactly one element, as a stanza would appear inside a client
/// stream: the default namespace is `jabber:client`, no XML declaration or other markup is
/// allowed around it, and the stream parser's bounds apply (`max_bytes`, [`MAX_DEPTH`]).
///
/// Used for bodies that come over HTTP (webhook replies, `/rest` requests): running them
/// through the same parser as the stream means nothing reaches the stream that the server
/// could not have sent us.
pub fn parse_document(doc: &[u8], max_bytes: usize) -> Result<Element, DocError> {
    let mut framer = Framer::new(max_bytes);
    let mut prelude = Vec::with_capacity(128);
    prelude.extend_from_slice(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    framer.feed(&prelude)?;
    framer.next_event()?;
    if doc.len() > max_bytes {
        return Err(DocError::Xml(XmlError::TooLarge { limit: max_bytes }));
    }
    framer.feed(doc)?;
    // Closing the stream right behind the document makes an unfinished element an error
    // rather than a wait for more bytes.
    let first = framer.next_event()?;
    framer.feed(STREAM_CLOSE)?;
    let element = match first {
        Some(StreamEvent::Element(e)) => e,
        Some(StreamEvent::Skipped(s)) => return Err(DocError::Xml(s.why)),
        Some(_) => return Err(DocError::NotOneElement),
        None => match framer.next_event()? {
            Some(StreamEvent::Element(e)) => e,
            Some(StreamEvent::Skipped(s)) => return Err(DocError::Xml(s.why)),
            _ => return Err(DocError::NotOneElement),
        },
    };
    match framer.next_event()? {
        Some(StreamEvent::Close) => Ok(element),
        _ => Err(DocError::NotOneElement),
    }
}

/// Attributes of the server's opening `<stream:stream>` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    attrs: Vec<(String, String)>,
}

impl StreamHeader {
    /// Value of header attribute `name`, e.g. `id`, `from`, `version`, `xml:lang`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server's stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header arrived.
    Open(StreamHeader),
    /// A complete top-level element (stanza, features, stream error, ...).
    Element(Element),
    /// `</stream:stream>`: the server closed its stream.
    Close,
    /// A stanza over the size or depth bound, read past without being buffered.
    Skipped(Skipped),
}

/// A stanza the framer read past: what its start tag said, for counting it (XEP-0198),
/// answering it (an iq) and logging it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `message`, `presence` or `iq`.
    pub name: String,
    /// Its `id`, `from` and `type` attributes; absent when the start tag alone was over the
    /// limit.
    pub id: Option<String>,
    /// The sender.
    pub from: Option<String>,
    /// The stanza type.
    pub kind: Option<String>,
    /// Its size on the wire in bytes.
    pub bytes: usize,
    /// Which bound it broke: [`XmlError::TooLarge`] or [`XmlError::TooDeep`].
    pub why: XmlError,
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
            XmlError::TooLarge { .. } | XmlError::TooDeep => "policy-violation",
            XmlError::NotWellFormed(_) | XmlError::InvalidUtf8 => "not-well-formed",
            XmlError::Restricted(_) => "restricted-xml",
            XmlError::BadPrefix => "bad-namespace-prefix",
            XmlError::InvalidNamespace(_) => "invalid-namespace",
            XmlError::BadStreamHeader(_) => "bad-format",
            XmlError::UnsupportedEncoding => "unsupported-encoding",
        }
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlError::TooLarge { limit } => {
                write!(f, "an element exceeds the limit of {limit} bytes")
            }
            XmlError::TooDeep => write!(f, "elements are nested deeper than {MAX_DEPTH} levels"),
            XmlError::NotWellFormed(why) => write!(f, "the xml is not well-formed: {why}"),
            XmlError::Restricted(what) => write!(f, "xmpp does not allow a {what} in the stream"),
            XmlError::BadPrefix => write!(f, "a namespace prefix is not declared"),
            XmlError::InvalidNamespace(why) => write!(f, "invalid namespace: {why}"),
            XmlError::BadStreamHeader(why) => write!(f, "bad stream header: {why}"),
            XmlError::UnsupportedEncoding => write!(f, "the stream is not encoded in utf-8"),
            XmlError::InvalidUtf8 => write!(f, "the stream contains invalid utf-8"),
        }
    }
}

impl std::error::Error for XmlError {}

fn not_well_formed(why: &str) -> XmlError {
    XmlError::NotWellFormed(why.to_owned())
}

/// Longest reason kept from a quick-xml error, which may quote input.
const MAX_REASON: usize = 120;

fn from_quick_xml(e: QxError) -> XmlError {
    match e {
        QxError::Encoding(_) => XmlError::InvalidUtf8,
        QxError::Escape(EscapeError::UnrecognizedEntity(..)) => {
            not_well_formed("undeclared entity reference")
        }
        other => {
            let mut why = other.to_string();
            if why.len() > MAX_REASON {
                let mut cut = MAX_REASON;
                while !why.is_char_boundary(cut) {
                    cut -= 1;
                }
                why.truncate(cut);
            }
            XmlError::NotWellFormed(why)
        }
    }
}

/// Rejects characters XML 1.0 forbids, whether sent raw or as character references.
fn check_chars(s: &str) -> Result<(), XmlError> {
    let bytes = s.as_bytes();
    let bad = bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\t' | b'\n' | b'\r' => false,
        0..=0x1f => true,
        0xef => bytes.get(i + 1) == Some(&0xbf) && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)),
        _ => false,
    });
    if bad {
        Err(not_well_formed("character not allowed in xml"))
    } else {
        Ok(())
    }
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Scanner position within the current top-level item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// At top level, between items.
    Between,
    /// Character data inside an element.
    Content,
    /// Right after `<`.
    TagOpen,
    /// Inside a start tag; `quote` is the open quote of an attribute value (0 outside values),
    /// `slash` whether the last byte was `/`.
    StartTag { quote: u8, slash: bool },
    /// Inside an end tag.
    EndTag,
    /// After `<!`, this many bytes of `[CDATA[` matched.
    Bang(usize),
    /// Inside a CDATA section, after this many `]` (capped at 2).
    CData(u8),
    /// Inside `<?...`; whether the last byte was `?`.
    Pi(bool),
}

const CDATA_OPEN: &[u8] = b"[CDATA[";

/// A complete top-level item found by the scanner.
#[derive(Debug, Clone, Copy)]
enum Item {
    Decl,
    Header {
        self_closing: bool,
    },
    Element,
    Close,
    /// The end of a stanza being skipped.
    Skipped,
}

/// What the stream header established for the rest of the stream.
#[derive(Debug)]
struct StreamCtx {
    /// Qualified name of the root, which `</...>` at top level must repeat.
    root: String,
    /// Prefix bindings in scope for stanzas (`""` is the default namespace).
    bindings: Vec<(String, Arc<str>)>,
}

#[derive(Debug)]
enum Phase {
    Prolog { decl_seen: bool },
    Open(StreamCtx),
    Closed,
    Failed(XmlError),
}

/// Incremental, bounded parser of the server's stream.
///
/// Feed it whatever the socket gave with [`Framer::feed`], then call [`Framer::next_event`]
/// until it returns `Ok(None)`. Memory stays within `max_stanza_bytes` plus one read.
/// A stanza over that bound (or nested deeper than [`MAX_DEPTH`]) is read past without
/// being kept and reported as [`StreamEvent::Skipped`]; anything else over it (the stream
/// header, features, other top-level elements) ends the stream.
/// After an error the stream is dead: every later call returns the same error.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    buf: Vec<u8>,
    /// First byte not yet consumed: the start of the current item.
    start: usize,
    /// Next byte to scan.
    pos: usize,
    lex: Lex,
    /// Open elements of the current stanza.
    depth: usize,
    /// End of the current top-level element's start tag, once seen.
    tag_end: Option<usize>,
    /// The stanza being read past, with the bytes already dropped counted in.
    skip: Option<Skipped>,
    phase: Phase,
}

impl Framer {
    /// A framer expecting a stream header, accepting top-level elements of up to
    /// `max_stanza_bytes` bytes.
    pub fn new(max_stanza_bytes: usize) -> Framer {
        Framer {
            max: max_stanza_bytes,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            lex: Lex::Between,
            depth: 0,
            tag_end: None,
            skip: None,
            phase: Phase::Prolog { decl_seen: false },
        }
    }

    /// Appends bytes read from the socket. Call [`Framer::next_event`] until it returns
    /// `Ok(None)` before feeding again: what is left then is one incomplete item, and
    /// feeding more while that already exceeds the limit fails here, so the buffer never
    /// holds more than the limit plus one read. Bytes after the stream close are ignored.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), XmlError> {
        match &self.phase {
            Phase::Failed(e) => return Err(e.clone()),
            Phase::Closed => return Ok(()),
            Phase::Prolog { .. } | Phase::Open(_) => {}
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.tag_end = self.tag_end.map(|t| t - self.start);
            self.start = 0;
        }
        if self.buf.len() > self.max {
            return Err(self.fail(XmlError::TooLarge { limit: self.max }));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete event, or `Ok(None)` when more bytes are needed (and forever after
    /// the stream close). An incomplete element over the limit fails as soon as it is seen.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        match &self.phase {
            Phase::Failed(e) => return Err(e.clone()),
            Phase::Closed => return Ok(None),
            Phase::Prolog { .. } | Phase::Open(_) => {}
        }
        self.step().map_err(|e| self.fail(e))
    }

    /// Forgets everything, buffered bytes included, and expects a new stream header: after
    /// STARTTLS and after SASL success. Dropping the buffer is what keeps plaintext sent
    /// after `<proceed/>` from being read as if it came over TLS.
    pub fn reset(&mut self) {
        *self = Framer::new(self.max);
    }

    fn fail(&mut self, e: XmlError) -> XmlError {
        self.buf = Vec::new();
        self.start = 0;
        self.pos = 0;
        self.phase = Phase::Failed(e.clone());
        e
    }

    fn step(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            let Some(item) = self.scan()? else {
                return Ok(None);
            };
            let raw = &self.buf[self.start..self.pos];
            let (event, next) = match (&self.phase, item) {
                (Phase::Prolog { decl_seen: false }, Item::Decl) => {
                    check_decl(raw)?;
                    (None, Some(Phase::Prolog { decl_seen: true }))
                }
                (Phase::Prolog { .. }, Item::Header { self_closing }) => {
                    let (header, ctx) = parse_header(raw, self_closing)?;
                    (Some(StreamEvent::Open(header)), Some(Phase::Open(ctx)))
                }
                (Phase::Open(ctx), Item::Element) => {
                    match parse_element(raw, &ctx.bindings, self.max) {
                        Ok(element) => (Some(StreamEvent::Element(element)), None),
                        // Within the limit on the wire, over it once serialized: skipped
                        // like any oversized stanza.
                        Err(why @ XmlError::TooLarge { .. }) => match stanza_head(raw)? {
                            Some(head) => {
                                let bytes = raw.len();
                                let skipped = Skipped { bytes, why, ..head };
                                (Some(StreamEvent::Skipped(skipped)), None)
                            }
                            None => return Err(why),
                        },
                        Err(e) => return Err(e),
                    }
                }
                (Phase::Open(ctx), Item::Close) => {
                    check_close(raw, &ctx.root)?;
                    (Some(StreamEvent::Close), Some(Phase::Closed))
                }
                (Phase::Open(_), Item::Skipped) => match self.skip.take() {
                    Some(mut skipped) => {
                        skipped.bytes += raw.len();
                        (Some(StreamEvent::Skipped(skipped)), None)
                    }
                    None => return Err(not_well_formed("markup out of place")),
                },
                (Phase::Prolog { .. }, Item::Decl) => {
                    return Err(not_well_formed("repeated xml declaration"))
                }
                _ => return Err(not_well_formed("markup out of place")),
            };
            self.start = self.pos;
            if let Some(phase) = next {
                self.phase = phase;
            }
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    /// Advances the scanner over the buffered bytes; returns the kind of the next complete
    /// item, which then spans `start..pos`.
    fn scan(&mut self) -> Result<Option<Item>, XmlError> {
        let prolog = matches!(self.phase, Phase::Prolog { .. });
        let len = self.buf.len();
        while self.pos < len {
            let b = self.buf[self.pos];
            match self.lex {
                Lex::Between => {
                    if is_xml_space(b) {
                        self.pos += 1;
                        self.start = self.pos;
                    } else if b == b'<' {
                        self.pos += 1;
                        self.lex = Lex::TagOpen;
                    } else if prolog {
                        return Err(not_well_formed("text before the stream header"));
                    } else {
                        return Err(not_well_formed("text between top-level elements"));
                    }
                }
                Lex::Content => match self.buf[self.pos..].iter().position(|&c| c == b'<') {
                    Some(i) => {
                        self.pos += i + 1;
                        self.lex = Lex::TagOpen;
                    }
                    None => self.pos = len,
                },
                Lex::TagOpen => match b {
                    b'/' => {
                        self.pos += 1;
                        self.lex = Lex::EndTag;
                    }
                    b'!' => {
                        self.pos += 1;
                        self.lex = Lex::Bang(0);
                    }
                    b'?' => {
                        if !prolog {
                            return Err(XmlError::Restricted("processing instruction"));
                        }
                        self.pos += 1;
                        self.lex = Lex::Pi(false);
                    }
                    _ => {
                        self.lex = Lex::StartTag {
                            quote: 0,
                            slash: false,
                        }
                    }
                },
                Lex::StartTag { quote: 0, slash } => {
                    self.pos += 1;
                    match b {
                        b'"' | b'\'' => {
                            self.lex = Lex::StartTag {
                                quote: b,
                                slash: false,
                            }
                        }
                        b'/' => {
                            self.lex = Lex::StartTag {
                                quote: 0,
                                slash: true,
                            }
                        }
                        b'<' => return Err(not_well_formed("'<' inside a tag")),
                        b'>' => {
                            if prolog {
                                return self.complete(Item::Header {
                                    self_closing: slash,
                                });
                            }
                            if self.depth >= MAX_DEPTH && self.skip.is_none() {
                                // The bound the bytes before this `>` already broke comes
                                // first, as it would when they arrive one by one.
                                let why = if self.pos - 1 - self.start > self.max {
                                    XmlError::TooLarge { limit: self.max }
                                } else {
                                    XmlError::TooDeep
                                };
                                self.start_skip(why)?;
                            }
                            if slash {
                                if self.depth == 0 {
                                    return self.complete(Item::Element);
                                }
                            } else {
                                self.depth += 1;
                                if self.depth == 1 {
                                    self.tag_end = Some(self.pos);
                                }
                            }
                            self.lex = Lex::Content;
                        }
                        _ => {
                            self.lex = Lex::StartTag {
                                quote: 0,
                                slash: false,
                            }
                        }
                    }
                }
                Lex::StartTag { quote, .. } => {
                    match self.buf[self.pos..].iter().position(|&c| c == quote) {
                        Some(i) => {
                            self.pos += i + 1;
                            self.lex = Lex::StartTag {
                                quote: 0,
                                slash: false,
                            };
                        }
                        None => self.pos = len,
                    }
                }
                Lex::EndTag => match self.buf[self.pos..].iter().position(|&c| c == b'>') {
                    Some(i) => {
                        self.pos += i + 1;
                        if self.depth == 0 {
                            if prolog {
                                return Err(not_well_formed("end tag before the stream header"));
                            }
                            return self.complete(Item::Close);
                        }
                        self.depth -= 1;
                        if self.depth == 0 {
                            return self.complete(Item::Element);
                        }
                        self.lex = Lex::Content;
                    }
                    None => self.pos = len,
                },
                Lex::Bang(matched) => {
                    if matched == 0 && b == b'-' {
                        return Err(XmlError::Restricted("comment"));
                    }
                    if matched == 0 && b == b'D' {
                        return Err(XmlError::Restricted("DOCTYPE"));
                    }
                    if self.depth == 0 {
                        return Err(not_well_formed("character data outside elements"));
                    }
                    if CDATA_OPEN.get(matched) != Some(&b) {
                        return Err(not_well_formed("malformed markup after '<!'"));
                    }
                    self.pos += 1;
                    self.lex = if matched + 1 == CDATA_OPEN.len() {
                        Lex::CData(0)
                    } else {
                        Lex::Bang(matched + 1)
                    };
                }
                Lex::CData(brackets) => {
                    self.pos += 1;
                    self.lex = match b {
                        b']' => Lex::CData((brackets + 1).min(2)),
                        b'>' if brackets == 2 => Lex::Content,
                        _ => Lex::CData(0),
                    };
                }
                Lex::Pi(question) => {
                    self.pos += 1;
                    match b {
                        b'>' if question => return self.complete(Item::Decl),
                        b'?' => self.lex = Lex::Pi(true),
                        _ => self.lex = Lex::Pi(false),
                    }
                }
            }
        }
        if self.skip.is_none() && len - self.start > self.max {
            self.start_skip(XmlError::TooLarge { limit: self.max })?;
        }
        if let Some(skip) = &mut self.skip {
            // Everything scanned so far is only counted, never kept.
            skip.bytes += self.pos - self.start;
            self.start = self.pos;
            self.tag_end = None;
        }
        Ok(None)
    }

    fn complete(&mut self, item: Item) -> Result<Option<Item>, XmlError> {
        let item = match item {
            Item::Element if self.skip.is_some() => Item::Skipped,
            Item::Element if self.pos - self.start > self.max => {
                self.start_skip(XmlError::TooLarge { limit: self.max })?;
                Item::Skipped
            }
            Item::Element => Item::Element,
            _ if self.pos - self.start > self.max => {
                return Err(XmlError::TooLarge { limit: self.max })
            }
            other => other,
        };
        self.lex = Lex::Between;
        self.depth = 0;
        self.tag_end = None;
        Ok(Some(item))
    }

    /// The element starting at `start` broke bound `why`: read past it if it is a stanza
    /// (so one oversized message cannot end the stream), else fail with `why`.
    fn start_skip(&mut self, why: XmlError) -> Result<(), XmlError> {
        if !matches!(self.phase, Phase::Open(_)) {
            return Err(why);
        }
        // A start tag over the limit is read by name only, however it arrived.
        let head = match self.tag_end.filter(|&end| end - self.start <= self.max) {
            Some(end) => stanza_head(&self.buf[self.start..end])?,
            None => stanza_name(&self.buf[self.start..self.pos]).map(|name| Skipped {
                name: name.to_owned(),
                id: None,
                from: None,
                kind: None,
                bytes: 0,
                why: why.clone(),
            }),
        };
        match head {
            Some(head) => {
                self.skip = Some(Skipped { why, ..head });
                Ok(())
            }
            None => Err(why),
        }
    }
}

/// The local name of the top-level element starting `raw` if it is a stanza in the
/// content namespace (no prefix).
fn stanza_name(raw: &[u8]) -> Option<&'static str> {
    let name_end = raw
        .iter()
        .skip(1)
        .position(|&b| is_xml_space(b) || b == b'/' || b == b'>')?;
    match &raw[1..1 + name_end] {
        b"message" => Some("message"),
        b"presence" => Some("presence"),
        b"iq" => Some("iq"),
        _ => None,
    }
}

/// What the complete start tag `raw` of a stanza being skipped says; `None` when it is not
/// a stanza in the content namespace.
fn stanza_head(raw: &[u8]) -> Result<Option<Skipped>, XmlError> {
    let Some(name) = stanza_name(raw) else {
        return Ok(None);
    };
    let mut reader = Reader::from_reader(raw);
    let start = match reader.read_event().map_err(from_quick_xml)? {
        Event::Start(start) | Event::Empty(start) => start,
        _ => return Err(not_well_formed("malformed start tag")),
    };
    let mut head = Skipped {
        name: name.to_owned(),
        id: None,
        from: None,
        kind: None,
        bytes: 0,
        why: XmlError::TooDeep,
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| from_quick_xml(e.into()))?;
        let slot = match attr.key.0 {
            "xmlns" if attr_value(&attr)? != CLIENT_NS => return Ok(None),
            "id" => &mut head.id,
            "from" => &mut head.from,
            "type" => &mut head.kind,
            _ => continue,
        };
        *slot = Some(attr_value(&attr)?);
    }
    Ok(Some(head))
}

/// Accepts `<?xml ...?>` declaring UTF-8 or no encoding; any other PI is restricted.
fn check_decl(raw: &[u8]) -> Result<(), XmlError> {
    let is_decl =
        raw.starts_with(b"<?xml") && raw.get(5).is_some_and(|&b| is_xml_space(b) || b == b'?');
    if !is_decl {
        return Err(XmlError::Restricted("processing instruction"));
    }
    match Reader::from_reader(raw)
        .read_event()
        .map_err(from_quick_xml)?
    {
        Event::Decl(decl) => match decl.encoding() {
            None => Ok(()),
            Some(Ok(enc)) if enc.eq_ignore_ascii_case("utf-8") => Ok(()),
            Some(Ok(_)) => Err(XmlError::UnsupportedEncoding),
            Some(Err(_)) => Err(not_well_formed("malformed xml declaration")),
        },
        _ => Err(not_well_formed("malformed xml declaration")),
    }
}

fn parse_header(raw: &[u8], self_closing: bool) -> Result<(StreamHeader, StreamCtx), XmlError> {
    if self_closing {
        return Err(XmlError::BadStreamHeader(
            "the stream header is self-closing",
        ));
    }
    let mut reader = Reader::from_reader(raw);
    let start = match reader.read_event().map_err(from_quick_xml)? {
        Event::Start(start) => start,
        _ => return Err(not_well_formed("malformed stream header")),
    };
    let mut bindings = vec![("xml".to_owned(), Arc::from(XML_NS))];
    let root = open_tag(&start, &mut bindings, &[])?;
    if root.name != "stream" {
        return Err(XmlError::BadStreamHeader(
            "the root element is not a stream",
        ));
    }
    if &*root.ns != STREAM_NS {
        return Err(XmlError::InvalidNamespace("wrong stream namespace"));
    }
    if lookup(&bindings, &[], "").map(|ns| &**ns) != Some(CLIENT_NS) {
        return Err(XmlError::InvalidNamespace(
            "the content namespace is not jabber:client",
        ));
    }
    let ctx = StreamCtx {
        root: start.name().0.to_owned(),
        bindings,
    };
    Ok((StreamHeader { attrs: root.attrs }, ctx))
}

/// Checks that a top-level end tag closes the stream root.
fn check_close(raw: &[u8], root: &str) -> Result<(), XmlError> {
    let inner = raw.get(2..raw.len().saturating_sub(1)).unwrap_or_default();
    let end = inner
        .iter()
        .rposition(|&b| !is_xml_space(b))
        .map_or(0, |i| i + 1);
    if &inner[..end] == root.as_bytes() {
        Ok(())
    } else {
        Err(not_well_formed("end tag does not close the stream"))
    }
}

/// An element being built: its bindings mark (how many were in scope before it) and the
/// default namespace its children are serialized under.
type Open = (Element, usize, Arc<str>);

/// Builds one top-level element from its complete bytes; `base` holds the stream header's
/// prefix bindings. Iterative, so input depth never becomes stack depth.
///
/// The serializer writes a namespace in full wherever it changes, so a prefix declared once
/// and used by many elements would come out far larger than it went in: an element whose
/// serialized form would carry more than `max` bytes of namespace declarations is refused
/// as too large.
fn parse_element(raw: &[u8], base: &[(String, Arc<str>)], max: usize) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(raw);
    reader.config_mut().check_end_names = true;
    let mut bindings: Vec<(String, Arc<str>)> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root = None;
    let client_ns: Arc<str> = Arc::from(CLIENT_NS);
    let mut declared = 0;
    loop {
        let event = reader.read_event().map_err(from_quick_xml)?;
        let (start, empty) = match event {
            Event::Start(start) => (start, false),
            Event::Empty(start) => (start, true),
            Event::End(_) => {
                let (element, mark, _) = stack
                    .pop()
                    .ok_or_else(|| not_well_formed("unexpected end tag"))?;
                bindings.truncate(mark);
                attach(&mut stack, &mut root, element)?;
                continue;
            }
            Event::Text(text) => {
                push_text(&mut stack, &text.xml10_content())?;
                continue;
            }
            Event::CData(cdata) => {
                push_text(&mut stack, &cdata.xml10_content())?;
                continue;
            }
            Event::GeneralRef(reference) => {
                let mut utf8 = [0u8; 4];
                let resolved: &str = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.encode_utf8(&mut utf8),
                    Ok(None) => resolve_xml_entity(&reference)
                        .ok_or_else(|| not_well_formed("undeclared entity reference"))?,
                    Err(_) => return Err(not_well_formed("invalid character reference")),
                };
                push_text(&mut stack, resolved)?;
                continue;
            }
            Event::Comment(_) => return Err(XmlError::Restricted("comment")),
            Event::PI(_) | Event::Decl(_) => {
                return Err(XmlError::Restricted("processing instruction"))
            }
            Event::DocType(_) => return Err(XmlError::Restricted("DOCTYPE")),
            Event::Eof => break,
        };
        if stack.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        let mark = bindings.len();
        let element = open_tag(&start, &mut bindings, base)?;
        let outer = stack.last().map_or(&client_ns, |(_, _, d)| d).clone();
        // Mirrors `write_to`: stream elements carry the `stream:` prefix, others an `xmlns`
        // where the namespace changes.
        let inner = if &*element.ns == STREAM_NS {
            outer
        } else {
            if element.ns != outer {
                declared += escaped_len(&element.ns) + " xmlns=''".len();
                if declared > max {
                    return Err(XmlError::TooLarge { limit: max });
                }
            }
            element.ns.clone()
        };
        if empty {
            bindings.truncate(mark);
            attach(&mut stack, &mut root, element)?;
        } else {
            stack.push((element, mark, inner));
        }
    }
    if !stack.is_empty() {
        return Err(not_well_formed("unclosed element"));
    }
    root.ok_or_else(|| not_well_formed("no element"))
}

fn attach(
    stack: &mut [Open],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some((parent, _, _)) => parent.nodes.push(Node::Element(element)),
        None if root.is_none() => *root = Some(element),
        None => return Err(not_well_formed("more than one top-level element")),
    }
    Ok(())
}

fn push_text(stack: &mut [Open], text: &str) -> Result<(), XmlError> {
    check_chars(text)?;
    match stack.last_mut() {
        Some((parent, _, _)) => parent.push_text(text),
        None if text.bytes().all(is_xml_space) => {}
        None => return Err(not_well_formed("text outside elements")),
    }
    Ok(())
}

/// The URI bound to `prefix` (`""`: the default namespace), innermost first.
fn lookup<'a>(
    local: &'a [(String, Arc<str>)],
    base: &'a [(String, Arc<str>)],
    prefix: &str,
) -> Option<&'a Arc<str>> {
    local
        .iter()
        .rev()
        .chain(base.iter().rev())
        .find(|(p, _)| p == prefix)
        .map(|(_, uri)| uri)
}

/// Splits a qualified name into a validated prefix and local name.
fn split_qname(qname: &str) -> Result<(Option<&str>, &str), XmlError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    if prefix.is_some_and(|p| !is_valid_name(p)) || !is_valid_name(local) {
        return Err(not_well_formed("invalid name"));
    }
    Ok((prefix, local))
}

/// An element from its start tag: pushes the tag's namespace declarations onto `bindings`,
/// resolves its namespace and keeps plain attributes and `xml:lang`.
fn open_tag(
    start: &BytesStart<'_>,
    bindings: &mut Vec<(String, Arc<str>)>,
    base: &[(String, Arc<str>)],
) -> Result<Element, XmlError> {
    let (prefix, name) = split_qname(start.name().0)?;
    let mut attrs = Vec::new();
    let mut foreign_prefixes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| from_quick_xml(e.into()))?;
        let key = attr.key.0;
        let value = attr_value(&attr)?;
        match split_qname(key)? {
            (None, "xmlns") => bindings.push((String::new(), Arc::from(value))),
            (None, local) => attrs.push((local.to_owned(), value)),
            (Some("xmlns"), declared) => {
                let valid = !value.is_empty()
                    && declared != "xmlns"
                    && (declared == "xml") == (value == XML_NS);
                if !valid {
                    return Err(not_well_formed("invalid namespace declaration"));
                }
                bindings.push((declared.to_owned(), Arc::from(value)));
            }
            (Some("xml"), "lang") => attrs.push(("xml:lang".to_owned(), value)),
            (Some("xml"), _) => {}
            (Some(other), _) => foreign_prefixes.push(other),
        }
    }
    if foreign_prefixes
        .iter()
        .any(|p| lookup(bindings, base, p).is_none())
    {
        return Err(XmlError::BadPrefix);
    }
    let ns = match prefix {
        None => lookup(bindings, base, "").map_or_else(|| Arc::from(""), Arc::clone),
        Some("xmlns") => return Err(not_well_formed("element with the xmlns prefix")),
        Some(p) => lookup(bindings, base, p)
            .ok_or(XmlError::BadPrefix)?
            .clone(),
    };
    Ok(Element {
        name: name.to_owned(),
        ns,
        attrs,
        nodes: Vec::new(),
    })
}

/// An attribute's value with references resolved and whitespace normalized as XML 1.0 requires.
fn attr_value(attr: &Attribute<'_>) -> Result<String, XmlError> {
    if attr.value.contains('<') {
        return Err(not_well_formed("'<' in an attribute value"));
    }
    let value = attr
        .normalized_value(XmlVersion::Implicit1_0)
        .map_err(from_quick_xml)?;
    check_chars(&value)?;
    Ok(value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_hold_exactly_one_bounded_element() {
        let m = parse_document(
            b" <message to='a@b'><body>x &amp; y</body></message>\n",
            1024,
        )
        .unwrap();
        assert!(m.is("message", CLIENT_NS));
        assert_eq!(
            m.get_child("body", CLIENT_NS).unwrap().text_content(),
            "x & y"
        );
        let other = parse_document(b"<iq xmlns='urn:other'/>", 1024).unwrap();
        assert_eq!(other.ns(), "urn:other");
        for (doc, want) in [
            (&b""[..], DocError::NotOneElement),
            (b"  ", DocError::NotOneElement),
            (b"<a/><b/>", DocError::NotOneElement),
            (b"</stream:stream>", DocError::NotOneElement),
            (
                b"<a/>text",
                DocError::Xml(not_well_formed("text between top-level elements")),
            ),
        ] {
            assert_eq!(parse_document(doc, 1024), Err(want), "{doc:?}");
        }
        for doc in [
            &b"<?xml version='1.0'?><a/>"[..],
            b"<a>",
            b"<a></b>",
            b"<!-- c --><a/>",
            b"<p:a/>",
            b"\xff",
        ] {
            assert!(
                matches!(parse_document(doc, 1024), Err(DocError::Xml(_))),
                "{doc:?}"
            );
        }
        assert_eq!(
            parse_document(&[b' '; 2000], 1024),
            Err(DocError::Xml(XmlError::TooLarge { limit: 1024 }))
        );
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse_document(deep.as_bytes(), 4096),
            Err(DocError::Xml(XmlError::TooDeep))
        );
    }

    /// Heap bytes of namespace text a tree holds, counting shared text once per element
    /// that does not share it with its parent.
    fn ns_heap(el: &Element, parent: Option<&Arc<str>>) -> usize {
        let own = match parent {
            Some(p) if Arc::ptr_eq(p, &el.ns) => 0,
            _ => el.ns.len(),
        };
        own + el
            .children()
            .map(|c| ns_heap(c, Some(&el.ns)))
            .sum::<usize>()
    }

    #[test]
    fn inherited_namespaces_are_shared_not_copied() {
        // A long default namespace inherited by thousands of tiny children: each copy would
        // cost the namespace's length, 4 input bytes each.
        let ns = "u".repeat(8 * 1024);
        let doc = format!("<a xmlns='{ns}'>{}</a>", "<b/>".repeat(10_000));
        let el = parse_document(doc.as_bytes(), 64 * 1024).unwrap();
        assert_eq!(el.children().count(), 10_000);
        assert_eq!(ns_heap(&el, None), ns.len());
        let prefixed = format!("<p:a xmlns:p='{ns}'>{}</p:a>", "<p:b/>".repeat(5_000));
        let el = parse_document(prefixed.as_bytes(), 64 * 1024).unwrap();
        assert_eq!(ns_heap(&el, None), ns.len());
    }

    #[test]
    fn reused_prefixes_cannot_blow_up_the_serialized_form() {
        // Each `<p:b/>` (6 bytes) serializes with the namespace written out in full.
        let ns = "u".repeat(4 * 1024);
        let limit = 64 * 1024;
        let doc = format!("<a xmlns:p='{ns}'>{}</a>", "<p:b/>".repeat(2_000));
        assert_eq!(
            parse_document(doc.as_bytes(), limit),
            Err(DocError::Xml(XmlError::TooLarge { limit }))
        );
        // The same in the stream, where the prefix comes from the header.
        let mut framer = Framer::new(limit);
        framer
            .feed(
                format!(
                    "<stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}' \
                     xmlns:p='{ns}'><a>{}</a>",
                    "<p:b/><c/>".repeat(1_000)
                )
                .as_bytes(),
            )
            .unwrap();
        assert!(matches!(
            framer.next_event(),
            Ok(Some(StreamEvent::Open(_)))
        ));
        assert_eq!(framer.next_event(), Err(XmlError::TooLarge { limit }));
        // A few reuses stay well within the bound and round-trip.
        let doc = format!("<a xmlns:p='{ns}'><p:b/><p:b/><c/><p:b/></a>");
        let el = parse_document(doc.as_bytes(), limit).unwrap();
        let bytes = el.to_bytes(CLIENT_NS);
        assert_eq!(parse_document(&bytes, limit).unwrap(), el);
    }

    const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='c2s-1a2b' from='localhost' \
        version='1.0' xml:lang='en'>";
    const FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
        <required/></starttls></stream:features>";
    const LIMIT: usize = 16 * 1024;

    fn drain(framer: &mut Framer) -> Result<Vec<StreamEvent>, XmlError> {
        let mut events = Vec::new();
        while let Some(event) = framer.next_event()? {
            events.push(event);
        }
        Ok(events)
    }

    fn events_whole(input: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut framer = Framer::new(LIMIT);
        framer.feed(input)?;
        drain(&mut framer)
    }

    fn events_bytewise(input: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut framer = Framer::new(LIMIT);
        let mut events = Vec::new();
        for b in input {
            framer.feed(std::slice::from_ref(b))?;
            events.extend(drain(&mut framer)?);
        }
        Ok(events)
    }

    /// Events after the standard header, checked to be the same whole and byte by byte.
    fn stanzas(body: &str) -> Result<Vec<Element>, XmlError> {
        let input = format!("{HEADER}{body}");
        let whole = events_whole(input.as_bytes());
        assert_eq!(whole, events_bytewise(input.as_bytes()));
        let mut events = whole?.into_iter();
        assert!(matches!(events.next(), Some(StreamEvent::Open(_))));
        Ok(events
            .filter_map(|e| match e {
                StreamEvent::Element(e) => Some(e),
                _ => None,
            })
            .collect())
    }

    fn one(body: &str) -> Element {
        let mut all = stanzas(body).unwrap();
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    fn error(body: &str) -> XmlError {
        let input = format!("{HEADER}{body}");
        let whole = events_whole(input.as_bytes()).unwrap_err();
        assert_eq!(Err(whole.clone()), events_bytewise(input.as_bytes()));
        whole
    }

    #[test]
    fn prosody_opening_whole_and_bytewise() {
        let input = format!("{HEADER}{FEATURES}");
        let events = events_whole(input.as_bytes()).unwrap();
        assert_eq!(events, events_bytewise(input.as_bytes()).unwrap());
        assert_eq!(events.len(), 2);
        let StreamEvent::Open(header) = &events[0] else {
            panic!("no header: {events:?}");
        };
        assert_eq!(header.get("id"), Some("c2s-1a2b"));
        assert_eq!(header.get("from"), Some("localhost"));
        assert_eq!(header.get("version"), Some("1.0"));
        assert_eq!(header.get("xml:lang"), Some("en"));
        assert_eq!(header.get("xmlns"), None);
        let expected = Element::new("features", STREAM_NS)
            .child(Element::new("starttls", TLS_NS).child(Element::new("required", TLS_NS)));
        assert_eq!(events[1], StreamEvent::Element(expected));
    }

    #[test]
    fn header_without_declaration_and_with_other_prefix() {
        let input = b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>\
            <s:features/></s:stream>";
        let events = events_whole(input).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[1],
            StreamEvent::Element(Element::new("features", STREAM_NS))
        );
        assert_eq!(events[2], StreamEvent::Close);
    }

    #[test]
    fn escaped_text_and_attributes() {
        let m = one(
            "<message to='a@b/r' id='x&amp;y&quot;z&apos;' type=\"chat\">\
            <body>1 &lt; 2 &amp;&amp; &quot;q&quot; &gt; &#x1F600;&#65;</body></message>",
        );
        assert_eq!(m.get_attr("to"), Some("a@b/r"));
        assert_eq!(m.get_attr("id"), Some("x&y\"z'"));
        assert_eq!(m.get_attr("type"), Some("chat"));
        let body = m.get_child("body", CLIENT_NS).unwrap();
        assert_eq!(body.text_content(), "1 < 2 && \"q\" > \u{1F600}A");
        assert_eq!(body.nodes().len(), 1);
    }

    #[test]
    fn cdata_merges_with_text() {
        let m = one("<message><body>a <![CDATA[<b>x</b> & ]] ]]]> z</body></message>");
        let body = m.get_child("body", CLIENT_NS).unwrap();
        assert_eq!(body.text_content(), "a <b>x</b> & ]] ] z");
        assert_eq!(body.nodes().len(), 1);
    }

    #[test]
    fn greater_than_inside_attribute_values() {
        let m = one("<iq id='a>b' type='get'><x a=\"'>'\" b='/>'/></iq>");
        assert_eq!(m.get_attr("id"), Some("a>b"));
        let x = m.children().next().unwrap();
        assert_eq!(x.get_attr("a"), Some("'>'"));
        assert_eq!(x.get_attr("b"), Some("/>"));
    }

    #[test]
    fn self_closing_and_keepalives() {
        let all = stanzas(" \n<presence/>\t \r\n<presence type='unavailable' />  \n").unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].is("presence", CLIENT_NS));
        assert_eq!(all[1].get_attr("type"), Some("unavailable"));
    }

    #[test]
    fn keepalive_is_consumed() {
        let mut framer = Framer::new(LIMIT);
        framer.feed(HEADER.as_bytes()).unwrap();
        drain(&mut framer).unwrap();
        for _ in 0..10_000 {
            framer.feed(b" ").unwrap();
            assert_eq!(framer.next_event(), Ok(None));
        }
        assert!(framer.buf.len() <= 1);
    }

    #[test]
    fn nested_namespaces() {
        let iq = one("<iq type='result' id='1'><query xmlns='jabber:iq:roster'>\
            <item jid='a@b' xml:lang='de'><group>G</group></item></query></iq>");
        let item = iq
            .get_child("query", "jabber:iq:roster")
            .and_then(|q| q.get_child("item", "jabber:iq:roster"))
            .unwrap();
        assert_eq!(item.get_attr("xml:lang"), Some("de"));
        assert_eq!(
            item.get_child("group", "jabber:iq:roster")
                .unwrap()
                .text_content(),
            "G"
        );

        let m = one(
            "<message xmlns:p='urn:p'><p:x q:a='1' xmlns:q='urn:q' b='2'>\
            <p:y/><z/><w xmlns=''/></p:x><p:v/></message>",
        );
        let x = m.get_child("x", "urn:p").unwrap();
        assert_eq!(x.attrs().collect::<Vec<_>>(), vec![("b", "2")]);
        let kids: Vec<_> = x.children().map(|c| (c.name(), c.ns())).collect();
        assert_eq!(kids, vec![("y", "urn:p"), ("z", CLIENT_NS), ("w", "")]);
        assert!(m.get_child("v", "urn:p").is_some());
    }

    #[test]
    fn stream_close() {
        let input = format!("{HEADER}<presence/></stream:stream >trailing junk");
        let mut framer = Framer::new(LIMIT);
        framer.feed(input.as_bytes()).unwrap();
        let events = drain(&mut framer).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2], StreamEvent::Close);
        framer.feed(b"<more/>").unwrap();
        assert_eq!(framer.next_event(), Ok(None));
    }

    fn skipped(events: &[StreamEvent]) -> Vec<&Skipped> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Skipped(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn oversized_stanza_is_skipped_in_bounded_memory() {
        let limit = 1024;
        let chunk = [b'a'; 4096];
        let mut framer = Framer::new(limit);
        framer.feed(HEADER.as_bytes()).unwrap();
        drain(&mut framer).unwrap();
        framer
            .feed(b"<message from='eve@x/y' type='chat'><body>")
            .unwrap();
        for _ in 0..100 {
            framer.feed(&chunk).unwrap();
            assert_eq!(drain(&mut framer).unwrap(), []);
            assert!(framer.buf.len() <= limit + chunk.len());
        }
        assert!(framer.buf.capacity() <= 2 * (limit + chunk.len()));
        framer.feed(b"</body></message><presence/>").unwrap();
        let events = drain(&mut framer).unwrap();
        let StreamEvent::Skipped(s) = &events[0] else {
            panic!("not skipped: {events:?}");
        };
        assert_eq!(s.name, "message");
        assert_eq!(s.from.as_deref(), Some("eve@x/y"));
        assert_eq!(s.kind.as_deref(), Some("chat"));
        assert_eq!(s.bytes, 36 + 6 + 100 * chunk.len() + 17);
        assert_eq!(s.why, XmlError::TooLarge { limit });
        assert_eq!(
            events[1],
            StreamEvent::Element(Element::new("presence", CLIENT_NS))
        );
    }

    #[test]
    fn oversized_stanza_is_skipped_at_every_split() {
        let limit = 256;
        let big = format!(
            "<iq type='set' id='q1' from='a@b/c'><x xmlns='urn:x'>{}<y a='>'/></x></iq>",
            "&amp;<![CDATA[<z>]]>".repeat(40)
        );
        let input = format!("{HEADER}<presence id='1'/>{big}<message id='2'/>");
        let expected = |events: &[StreamEvent]| {
            assert_eq!(events.len(), 4, "{events:?}");
            let s = skipped(events);
            assert_eq!(s.len(), 1, "{events:?}");
            assert_eq!(s[0].name, "iq");
            assert_eq!(s[0].id.as_deref(), Some("q1"));
            assert_eq!(s[0].kind.as_deref(), Some("set"));
            assert_eq!(s[0].bytes, big.len());
            assert!(matches!(&events[3], StreamEvent::Element(m) if m.get_attr("id") == Some("2")));
        };
        let bytes = input.as_bytes();
        for split in 0..=bytes.len() {
            let mut framer = Framer::new(limit);
            let mut events = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                framer.feed(part).unwrap();
                events.extend(drain(&mut framer).unwrap());
            }
            expected(&events);
        }
        let mut framer = Framer::new(limit);
        let mut events = Vec::new();
        for b in bytes {
            framer.feed(std::slice::from_ref(b)).unwrap();
            events.extend(drain(&mut framer).unwrap());
            assert!(framer.buf.len() <= limit + 1);
        }
        expected(&events);
    }

    #[test]
    fn stanza_both_too_deep_and_too_large_is_reported_alike_at_every_split() {
        let limit = 256;
        for pad in [0, 100, 150, 160, 170, 200, 300] {
            let deep = format!(
                "<message id='m'><x>{}</x>{}{}</message>",
                "p".repeat(pad),
                "<a>".repeat(MAX_DEPTH + 2),
                "</a>".repeat(MAX_DEPTH + 2)
            );
            let input = format!("{HEADER}{deep}<presence/>");
            let bytes = input.as_bytes();
            let mut first = None;
            for split in 0..=bytes.len() {
                let mut framer = Framer::new(limit);
                let mut events = Vec::new();
                for part in [&bytes[..split], &bytes[split..]] {
                    framer.feed(part).unwrap();
                    events.extend(drain(&mut framer).unwrap());
                }
                let first = first.get_or_insert_with(|| events.clone());
                assert_eq!(&events, first, "pad {pad}, split at {split}");
            }
            let whole = first.unwrap();
            assert_eq!(whole, events_bytewise_limit(bytes, limit));
            assert_eq!(skipped(&whole)[0].bytes, deep.len());
        }
    }

    fn events_bytewise_limit(input: &[u8], limit: usize) -> Vec<StreamEvent> {
        let mut framer = Framer::new(limit);
        let mut events = Vec::new();
        for b in input {
            framer.feed(std::slice::from_ref(b)).unwrap();
            events.extend(drain(&mut framer).unwrap());
        }
        events
    }

    #[test]
    fn stanza_whose_start_tag_alone_is_oversized_is_skipped_by_name() {
        let limit = 256;
        let body = format!(
            "<message id='{}'><body/></message><presence/>",
            "i".repeat(600)
        );
        let events = {
            let mut framer = Framer::new(limit);
            framer.feed(HEADER.as_bytes()).unwrap();
            framer.feed(body.as_bytes()).unwrap();
            drain(&mut framer).unwrap()
        };
        let s = skipped(&events);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].name.as_str(), s[0].id.as_ref()), ("message", None));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn oversized_features_or_header_end_the_stream() {
        let limit = 256;
        let pad = "x".repeat(limit);
        let features =
            format!("{HEADER}<stream:features><m xmlns='urn:m'>{pad}</m></stream:features>");
        let mut framer = Framer::new(limit);
        framer.feed(features.as_bytes()).unwrap();
        assert_eq!(drain(&mut framer), Err(XmlError::TooLarge { limit }));

        let other = format!("{HEADER}<r xmlns='urn:xmpp:sm:3'>{pad}</r>");
        let mut framer = Framer::new(limit);
        framer.feed(other.as_bytes()).unwrap();
        assert_eq!(drain(&mut framer), Err(XmlError::TooLarge { limit }));

        let mut framer = Framer::new(limit);
        framer.feed(b"<stream:stream a='").unwrap();
        framer.feed(pad.as_bytes()).unwrap();
        assert_eq!(framer.next_event(), Err(XmlError::TooLarge { limit }));
    }

    #[test]
    fn stanza_that_would_amplify_when_serialized_is_skipped() {
        let limit = 4096;
        let ns = "u".repeat(1000);
        let body = format!(
            "<message from='e@x' xmlns:p='{ns}'>{}</message><presence/>",
            "<p:a/>".repeat(50)
        );
        let input = format!("{HEADER}{body}");
        let mut framer = Framer::new(limit);
        framer.feed(input.as_bytes()).unwrap();
        let events = drain(&mut framer).unwrap();
        let s = skipped(&events);
        assert_eq!(s.len(), 1, "{events:?}");
        assert_eq!(s[0].from.as_deref(), Some("e@x"));
        assert_eq!(s[0].why, XmlError::TooLarge { limit });
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn stanza_in_another_namespace_is_not_skipped() {
        let limit = 256;
        let input = format!(
            "{HEADER}<message xmlns='urn:other'>{}</message>",
            "x".repeat(limit)
        );
        let mut framer = Framer::new(limit);
        framer.feed(input.as_bytes()).unwrap();
        assert_eq!(drain(&mut framer), Err(XmlError::TooLarge { limit }));
    }

    #[test]
    fn caller_that_does_not_drain_is_bounded() {
        let mut framer = Framer::new(100);
        let mut result = Ok(());
        for _ in 0..1000 {
            result = framer.feed(b"<presence/>");
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(XmlError::TooLarge { limit: 100 }));
    }

    #[test]
    fn bytewise_feeding_is_linear() {
        let body = "x".repeat(200_000);
        let input = format!("{HEADER}<message><body>{body}</body></message>");
        let mut framer = Framer::new(1 << 20);
        let mut events = Vec::new();
        for b in input.as_bytes() {
            framer.feed(std::slice::from_ref(b)).unwrap();
            events.extend(drain(&mut framer).unwrap());
        }
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn depth_limit() {
        let nest = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        let deepest = one(&nest(MAX_DEPTH));
        let mut depth = 1;
        let mut e = &deepest;
        while let Some(c) = e.children().next() {
            e = c;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert_eq!(error(&nest(MAX_DEPTH + 1)), XmlError::TooDeep);
        let self_closing = format!("{}<b/>", "<a>".repeat(MAX_DEPTH));
        assert_eq!(error(&self_closing), XmlError::TooDeep);
        // Rejected before the element is complete.
        let mut framer = Framer::new(LIMIT);
        framer.feed(HEADER.as_bytes()).unwrap();
        framer.feed("<a>".repeat(MAX_DEPTH + 1).as_bytes()).unwrap();
        assert_eq!(drain(&mut framer).unwrap_err(), XmlError::TooDeep);
    }

    #[test]
    fn too_deep_stanza_is_skipped() {
        let deep = format!(
            "<message from='e@x'>{}{}</message><presence/>",
            "<a>".repeat(MAX_DEPTH * 4),
            "</a>".repeat(MAX_DEPTH * 4)
        );
        let input = format!("{HEADER}{deep}");
        let events = events_whole(input.as_bytes()).unwrap();
        assert_eq!(events, events_bytewise(input.as_bytes()).unwrap());
        let s = skipped(&events);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].why, XmlError::TooDeep);
        assert_eq!(s[0].bytes, deep.len() - "<presence/>".len());
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn namespace_errors() {
        let e = error("<message><x:y/></message>");
        assert_eq!(e, XmlError::BadPrefix);
        assert_eq!(e.condition(), "bad-namespace-prefix");
        assert_eq!(error("<message x:a='1'/>"), XmlError::BadPrefix);
        assert_eq!(error("<p:x xmlns:p=''/>").condition(), "not-well-formed");
        assert_eq!(error("<xmlns:x/>").condition(), "not-well-formed");
    }

    #[test]
    fn malformed_markup() {
        for body in [
            "<message><body>x</message></body>",
            "<message></presence>",
            "<message a='1' a='2'/>",
            "<message a=1/>",
            "<message a='<'/>",
            "<message><1x/></message>",
            "<a:b:c/>",
            "<message>& alone</message>",
            "<message>&#0;</message>",
            "<message>&#x1;</message>",
            "<message>\u{1}</message>",
            "<message a='&#xFFFE;'/>",
            "<message><![CDATX[x]]></message>",
            "<![CDATA[x]]>",
            "hello",
            "</other>",
        ] {
            let e = error(body);
            assert_eq!(e.condition(), "not-well-formed", "{body}: {e}");
        }
    }

    #[test]
    fn restricted_xml() {
        assert_eq!(error("<!-- hi -->"), XmlError::Restricted("comment"));
        assert_eq!(
            error("<message><!-- hi --></message>"),
            XmlError::Restricted("comment")
        );
        assert_eq!(
            error("<?php echo ?>"),
            XmlError::Restricted("processing instruction")
        );
        assert_eq!(
            error("<message><?pi x?></message>"),
            XmlError::Restricted("processing instruction")
        );
        let e = events_whole(b"<!DOCTYPE x [<!ENTITY e 'boom'>]><stream:stream>").unwrap_err();
        assert_eq!(e, XmlError::Restricted("DOCTYPE"));
        assert_eq!(e.condition(), "restricted-xml");
        let e = events_whole(b"<?xml-stylesheet href='a'?><stream:stream>").unwrap_err();
        assert_eq!(e, XmlError::Restricted("processing instruction"));
        for body in ["<message>&e;</message>", "<message a='&e;'/>"] {
            assert_eq!(
                error(body),
                XmlError::NotWellFormed("undeclared entity reference".into())
            );
        }
    }

    #[test]
    fn invalid_utf8() {
        for body in [
            &b"<message><body>\xff\xfe</body></message>"[..],
            b"<message to='\xc3\x28'/>",
            b"<mess\x80age/>",
        ] {
            let mut input = HEADER.as_bytes().to_vec();
            input.extend_from_slice(body);
            let e = events_whole(&input).unwrap_err();
            assert_eq!(e, XmlError::InvalidUtf8);
            assert_eq!(events_bytewise(&input), Err(e));
        }
        let mut header = HEADER.as_bytes().to_vec();
        let at = header.len() - 3;
        header.insert(at, 0xff);
        assert_eq!(events_whole(&header), Err(XmlError::InvalidUtf8));
        // Between elements anything but whitespace is text out of place.
        let mut input = HEADER.as_bytes().to_vec();
        input.push(0xff);
        assert_eq!(
            events_whole(&input).unwrap_err().condition(),
            "not-well-formed"
        );
    }

    #[test]
    fn bad_headers() {
        let wrong_stream_ns =
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://wrong.example/'>";
        let e = events_whole(wrong_stream_ns).unwrap_err();
        assert!(matches!(e, XmlError::InvalidNamespace(_)));
        assert_eq!(e.condition(), "invalid-namespace");
        let wrong_content_ns = b"<stream:stream xmlns='jabber:server' \
            xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(
            events_whole(wrong_content_ns).unwrap_err().condition(),
            "invalid-namespace"
        );
        let undeclared = b"<stream:stream xmlns='jabber:client'>";
        assert_eq!(events_whole(undeclared), Err(XmlError::BadPrefix));
        let not_stream = b"<stream:feed xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(
            events_whole(not_stream).unwrap_err().condition(),
            "bad-format"
        );
        let closed = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'/>";
        assert_eq!(events_whole(closed).unwrap_err().condition(), "bad-format");
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>";
        assert_eq!(events_whole(latin1), Err(XmlError::UnsupportedEncoding));
        let twice = b"<?xml version='1.0'?><?xml version='1.0'?>";
        assert_eq!(
            events_whole(twice).unwrap_err().condition(),
            "not-well-formed"
        );
        assert_eq!(
            events_whole(b"hello").unwrap_err().condition(),
            "not-well-formed"
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut framer = Framer::new(LIMIT);
        framer.feed(HEADER.as_bytes()).unwrap();
        framer.feed(b"<presence/><!-- x --><presence/>").unwrap();
        assert!(matches!(
            framer.next_event(),
            Ok(Some(StreamEvent::Open(_)))
        ));
        assert!(matches!(
            framer.next_event(),
            Ok(Some(StreamEvent::Element(_)))
        ));
        let e = framer.next_event().unwrap_err();
        assert_eq!(e, XmlError::Restricted("comment"));
        assert_eq!(framer.next_event(), Err(e.clone()));
        assert_eq!(framer.feed(b"<presence/>"), Err(e.clone()));
        assert_eq!(framer.next_event(), Err(e));
    }

    #[test]
    fn reset_expects_a_new_header_and_drops_buffered_bytes() {
        let mut framer = Framer::new(LIMIT);
        framer
            .feed(format!("{HEADER}<proceed xmlns='{TLS_NS}'/><injected/>").as_bytes())
            .unwrap();
        assert!(matches!(
            framer.next_event(),
            Ok(Some(StreamEvent::Open(_)))
        ));
        let Ok(Some(StreamEvent::Element(proceed))) = framer.next_event() else {
            panic!("no proceed");
        };
        assert!(proceed.is("proceed", TLS_NS));
        framer.reset();
        framer
            .feed(format!("{HEADER}{FEATURES}").as_bytes())
            .unwrap();
        let events = drain(&mut framer).unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0], StreamEvent::Open(_)));
    }

    #[test]
    fn skipping_gives_the_same_events_however_random_stanzas_are_cut() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let limit = 256;
        for _ in 0..300 {
            let mut input = String::from(HEADER);
            for i in 0..(1 + next() % 6) {
                let pad = "q".repeat((next() % 400) as usize);
                let depth = (next() % 40) as usize;
                let id = "i".repeat(1 + (next() % 300) as usize);
                let name = ["message", "presence", "iq"][(next() % 3) as usize];
                input.push_str(&format!(
                    "<{name} id='{id}' n='{i}'>{pad}{}<![CDATA[<]]>{}</{name}>",
                    "<a>".repeat(depth),
                    "</a>".repeat(depth)
                ));
            }
            let whole = events_whole_limit(input.as_bytes(), limit);
            let mut framer = Framer::new(limit);
            let mut events = Vec::new();
            let mut rest = input.as_bytes();
            while !rest.is_empty() {
                let n = 1 + (next() as usize) % 300;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                framer.feed(chunk).unwrap();
                events.extend(drain(&mut framer).unwrap());
                assert!(framer.buf.len() <= limit + 300);
            }
            assert_eq!(events, whole, "{input}");
        }
    }

    fn events_whole_limit(input: &[u8], limit: usize) -> Vec<StreamEvent> {
        let mut framer = Framer::new(limit);
        framer.feed(input).unwrap();
        drain(&mut framer).unwrap()
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"<>/='\"?!-[]&;#x: \nabstrem\xff\xc3";
        let sample = format!(
            "{HEADER}{FEATURES}<message a='1'><b>t&amp;<![CDATA[c]]></b></message></stream:stream>"
        );
        for round in 0..2000 {
            let mut input: Vec<u8> = sample.as_bytes().to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % input.len();
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => input[at] = b,
                    1 => input.insert(at, b),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            if round % 4 == 0 {
                input = (0..(next() % 200))
                    .map(|_| alphabet[(next() as usize) % alphabet.len()])
                    .collect();
            }
            let mut framer = Framer::new(256);
            let mut rest = &input[..];
            'feed: while !rest.is_empty() {
                let n = 1 + (next() as usize) % 64;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                if framer.feed(chunk).is_err() {
                    break;
                }
                for _ in 0..1000 {
                    match framer.next_event() {
                        Ok(Some(_)) => {}
                        Ok(None) => continue 'feed,
                        Err(_) => break 'feed,
                    }
                }
                panic!("next_event did not settle");
            }
        }
    }

    #[test]
    fn serializer_escapes_all_five_characters() {
        let e = Element::new("message", CLIENT_NS)
            .attr("id", "a&b<c>d\"e'f")
            .child(Element::new("body", CLIENT_NS).text("a&b<c>d\"e'f"));
        assert_eq!(
            e.to_bytes(CLIENT_NS),
            b"<message id='a&amp;b&lt;c&gt;d&quot;e&apos;f'><body>\
              a&amp;b&lt;c&gt;d&quot;e&apos;f</body></message>"
        );
        let mut out = Vec::new();
        escape_into("<&>\"'\t\n\r", &mut out);
        assert_eq!(out, b"&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13;");
    }

    #[test]
    fn markup_in_text_stays_text() {
        let e = Element::new("message", CLIENT_NS)
            .attr("to", "x@y")
            .child(Element::new("body", CLIENT_NS).text("</body><evil/>"));
        let bytes = e.to_bytes(CLIENT_NS);
        assert_eq!(
            bytes,
            b"<message to='x@y'><body>&lt;/body&gt;&lt;evil/&gt;</body></message>"
        );
        assert_eq!(one(std::str::from_utf8(&bytes).unwrap()), e);
    }

    #[test]
    fn forbidden_characters_are_replaced() {
        let e = Element::new("body", CLIENT_NS)
            .attr("a", "x\u{0}y")
            .text("a\u{1}b\u{1b}c\u{FFFE}d\u{FFFF}e\u{FFFD}\u{EFFF}\t\n");
        assert_eq!(
            String::from_utf8(e.to_bytes(CLIENT_NS)).unwrap(),
            "<body a='x\u{FFFD}y'>a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}\u{EFFF}\t\n</body>"
        );
    }

    #[test]
    fn xmlns_only_when_namespace_changes() {
        let e = Element::new("iq", CLIENT_NS)
            .attr("type", "get")
            .child(
                Element::new("query", "jabber:iq:roster")
                    .child(Element::new("item", "jabber:iq:roster")),
            )
            .child(Element::new("error", STREAM_NS).child(Element::new("x", CLIENT_NS)));
        assert_eq!(
            e.to_bytes(CLIENT_NS),
            b"<iq type='get'><query xmlns='jabber:iq:roster'><item/></query>\
              <stream:error><x/></stream:error></iq>"
        );
        assert_eq!(
            Element::new("iq", CLIENT_NS).to_bytes("jabber:server"),
            b"<iq xmlns='jabber:client'/>"
        );
    }

    #[test]
    fn invalid_names_are_left_out() {
        let e = Element::new("message", CLIENT_NS)
            .attr("a'/><evil x='", "1")
            .attr("xmlns", "urn:evil")
            .attr("xml:lang", "en")
            .child(Element::new("evil/><x", CLIENT_NS))
            .child(Element::new("", CLIENT_NS));
        assert_eq!(e.to_bytes(CLIENT_NS), b"<message xml:lang='en'></message>");
        assert!(is_valid_name("body"));
        assert!(is_valid_name("_a-b.c9"));
        assert!(is_valid_name("caf\u{E9}"));
        for bad in ["", "9a", "-a", "a:b", ":a", "a b", "a>", "a'", "\u{D7}"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn round_trip() {
        let e = Element::new("message", CLIENT_NS)
            .attr("to", "x@y/\u{E9}")
            .attr("id", "<&>\"'\t\n\r end")
            .attr("xml:lang", "en")
            .child(
                Element::new("body", CLIENT_NS)
                    .text("line 1\r\nline 2\n\ttab ]]> ")
                    .text("\u{1F600} & more"),
            )
            .child(
                Element::new("x", "jabber:x:data")
                    .attr("type", "submit")
                    .child(Element::new("field", "jabber:x:data").attr("var", "a"))
                    .child(Element::new("back", CLIENT_NS).text(" ")),
            )
            .child(Element::new("caf\u{E9}", ""))
            .child(Element::new("error", STREAM_NS).child(Element::new("text", "urn:s")));
        let bytes = e.to_bytes(CLIENT_NS);
        assert_eq!(one(std::str::from_utf8(&bytes).unwrap()), e);
    }

    #[test]
    fn own_stream_header_parses() {
        let mut out = Vec::new();
        write_stream_header(&mut out, "example.org", Some("bot@example.org"));
        let mut framer = Framer::new(LIMIT);
        framer.feed(&out).unwrap();
        framer.feed(STREAM_CLOSE).unwrap();
        let events = drain(&mut framer).unwrap();
        let StreamEvent::Open(header) = &events[0] else {
            panic!("no header");
        };
        assert_eq!(header.get("to"), Some("example.org"));
        assert_eq!(header.get("from"), Some("bot@example.org"));
        assert_eq!(events[1], StreamEvent::Close);
    }

    #[test]
    fn display_is_one_lowercase_sentence() {
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
