//! The framer: the incremental, bounded reader of the server's stream. A resumable scanner
//! finds where each top-level item ends and enforces the size and nesting bounds; the parser
//! builds each complete stanza; stanzas over a bound are read past and reported. Standalone
//! documents (HTTP bodies) are read by the same framer.

use std::fmt;
use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::parser::{attr_value, from_quick_xml, lookup, open_tag, parse_element};
use super::serializer::STREAM_CLOSE;
use super::{
    is_xml_space, not_well_formed, Element, XmlError, CLIENT_NS, MAX_DEPTH, STREAM_NS, XML_NS,
};

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
    pub fn new(max_stanza_bytes: usize) -> Self {
        Self {
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
        *self = Self::new(self.max);
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
    let (Event::Start(start) | Event::Empty(start)) =
        reader.read_event().map_err(from_quick_xml)?
    else {
        return Err(not_well_formed("malformed start tag"));
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
    let Event::Start(start) = reader.read_event().map_err(from_quick_xml)? else {
        return Err(not_well_formed("malformed stream header"));
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
            Self::Xml(e) => write!(f, "{e}"),
            Self::NotOneElement => f.write_str("expected exactly one top-level element"),
        }
    }
}

impl std::error::Error for DocError {}

impl From<XmlError> for DocError {
    fn from(e: XmlError) -> Self {
        Self::Xml(e)
    }
}

/// The stream header a standalone document is parsed inside.
const DOCUMENT_PRELUDE: &[u8] =
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Parses a document holding exactly one element, as a stanza would appear inside a client
/// stream: the default namespace is `jabber:client`, no XML declaration or other markup is
/// allowed around it, and the stream parser's bounds apply (`max_bytes`, [`MAX_DEPTH`]).
///
/// Used for bodies that come over HTTP (webhook replies, `/rest` requests): running them
/// through the same parser as the stream means nothing reaches the stream that the server
/// could not have sent us.
pub fn parse_document(doc: &[u8], max_bytes: usize) -> Result<Element, DocError> {
    // The stream header around the document is ours: it must not count against the
    // document's own bound (a stanza shorter than it would otherwise be refused).
    let mut framer = Framer::new(max_bytes.max(DOCUMENT_PRELUDE.len()));
    framer.feed(DOCUMENT_PRELUDE)?;
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

#[cfg(test)]
mod tests {
    use super::super::testing::{
        drain, error, events_bytewise, events_whole, one, stanzas, HEADER, LIMIT,
    };
    use super::*;

    const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    const FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
        <required/></starttls></stream:features>";

    #[test]
    fn a_document_shorter_than_the_stream_header_parses_under_its_own_length() {
        let doc = b"<presence/>";
        let el = parse_document(doc, doc.len()).expect("a short stanza parses");
        assert_eq!(el.name(), "presence");
    }

    #[test]
    fn a_document_longer_than_its_bound_is_refused_even_when_the_bound_is_short() {
        let doc = b"<presence><status>hi</status></presence>";
        assert!(parse_document(doc, 11).is_err());
    }

    #[test]
    fn a_document_with_one_element_reads_as_that_element() {
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
    }

    #[test]
    fn a_document_element_keeps_its_own_namespace() {
        let other = parse_document(b"<iq xmlns='urn:other'/>", 1024).unwrap();
        assert_eq!(other.ns(), "urn:other");
    }

    #[test]
    fn a_document_without_exactly_one_element_is_refused() {
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
    }

    #[test]
    fn a_document_that_is_not_well_formed_restricted_xml_is_refused() {
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
    }

    #[test]
    fn a_document_over_the_size_bound_is_too_large() {
        assert_eq!(
            parse_document(&[b' '; 2000], 1024),
            Err(DocError::Xml(XmlError::TooLarge { limit: 1024 }))
        );
    }

    #[test]
    fn a_document_over_the_depth_bound_is_too_deep() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse_document(deep.as_bytes(), 4096),
            Err(DocError::Xml(XmlError::TooDeep))
        );
    }

    /// Prosody's opening: header and features, read whole.
    fn prosody_opening() -> Vec<StreamEvent> {
        events_whole(format!("{HEADER}{FEATURES}").as_bytes()).unwrap()
    }

    #[test]
    fn prosody_opening_gives_the_same_two_events_whole_and_bytewise() {
        let input = format!("{HEADER}{FEATURES}");
        let events = prosody_opening();
        assert_eq!(events, events_bytewise(input.as_bytes()).unwrap());
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn stream_header_attributes_are_read_by_name_without_namespace_declarations() {
        let events = prosody_opening();
        let StreamEvent::Open(header) = &events[0] else {
            panic!("no header: {events:?}");
        };
        assert_eq!(header.get("id"), Some("c2s-1a2b"));
        assert_eq!(header.get("from"), Some("localhost"));
        assert_eq!(header.get("version"), Some("1.0"));
        assert_eq!(header.get("xml:lang"), Some("en"));
        assert_eq!(header.get("xmlns"), None);
    }

    #[test]
    fn features_arrive_as_one_element_in_the_stream_namespace() {
        let events = prosody_opening();
        let expected = Element::new("features", STREAM_NS)
            .child(Element::new("starttls", TLS_NS).child(Element::new("required", TLS_NS)));
        assert_eq!(events[1], StreamEvent::Element(expected));
    }

    #[test]
    fn header_without_declaration_and_with_another_prefix_is_read() {
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
    fn greater_than_inside_attribute_values_does_not_end_the_tag() {
        let m = one("<iq id='a>b' type='get'><x a=\"'>'\" b='/>'/></iq>");
        assert_eq!(m.get_attr("id"), Some("a>b"));
        let x = m.children().next().unwrap();
        assert_eq!(x.get_attr("a"), Some("'>'"));
        assert_eq!(x.get_attr("b"), Some("/>"));
    }

    #[test]
    fn self_closing_stanzas_between_whitespace_keepalives_are_read() {
        let all = stanzas(" \n<presence/>\t \r\n<presence type='unavailable' />  \n").unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].is("presence", CLIENT_NS));
        assert_eq!(all[1].get_attr("type"), Some("unavailable"));
    }

    #[test]
    fn whitespace_keepalives_are_consumed_without_being_buffered() {
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
    fn stream_close_with_space_before_the_bracket_is_the_last_event() {
        let input = format!("{HEADER}<presence/></stream:stream >trailing junk");
        let mut framer = Framer::new(LIMIT);
        framer.feed(input.as_bytes()).unwrap();
        let events = drain(&mut framer).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2], StreamEvent::Close);
    }

    #[test]
    fn bytes_fed_after_the_stream_close_are_ignored() {
        let input = format!("{HEADER}<presence/></stream:stream >trailing junk");
        let mut framer = Framer::new(LIMIT);
        framer.feed(input.as_bytes()).unwrap();
        drain(&mut framer).unwrap();
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
    fn oversized_features_end_the_stream() {
        let limit = 256;
        let pad = "x".repeat(limit);
        let features =
            format!("{HEADER}<stream:features><m xmlns='urn:m'>{pad}</m></stream:features>");
        let mut framer = Framer::new(limit);
        framer.feed(features.as_bytes()).unwrap();
        assert_eq!(drain(&mut framer), Err(XmlError::TooLarge { limit }));
    }

    #[test]
    fn oversized_top_level_element_that_is_no_stanza_ends_the_stream() {
        let limit = 256;
        let pad = "x".repeat(limit);
        let other = format!("{HEADER}<r xmlns='urn:xmpp:sm:3'>{pad}</r>");
        let mut framer = Framer::new(limit);
        framer.feed(other.as_bytes()).unwrap();
        assert_eq!(drain(&mut framer), Err(XmlError::TooLarge { limit }));
    }

    #[test]
    fn oversized_stream_header_ends_the_stream() {
        let limit = 256;
        let pad = "x".repeat(limit);
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

    fn nest(n: usize) -> String {
        format!("{}{}", "<a>".repeat(n), "</a>".repeat(n))
    }

    #[test]
    fn elements_nested_max_depth_deep_are_read() {
        let deepest = one(&nest(MAX_DEPTH));
        let mut depth = 1;
        let mut e = &deepest;
        while let Some(c) = e.children().next() {
            e = c;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }

    #[test]
    fn elements_nested_deeper_than_max_depth_end_the_stream() {
        assert_eq!(error(&nest(MAX_DEPTH + 1)), XmlError::TooDeep);
        let self_closing = format!("{}<b/>", "<a>".repeat(MAX_DEPTH));
        assert_eq!(error(&self_closing), XmlError::TooDeep);
    }

    #[test]
    fn too_deep_nesting_is_refused_before_the_element_is_complete() {
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
    fn malformed_markup_is_not_well_formed() {
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
    fn comments_are_restricted_xml() {
        assert_eq!(error("<!-- hi -->"), XmlError::Restricted("comment"));
        assert_eq!(
            error("<message><!-- hi --></message>"),
            XmlError::Restricted("comment")
        );
    }

    #[test]
    fn processing_instructions_in_the_stream_are_restricted_xml() {
        assert_eq!(
            error("<?php echo ?>"),
            XmlError::Restricted("processing instruction")
        );
        assert_eq!(
            error("<message><?pi x?></message>"),
            XmlError::Restricted("processing instruction")
        );
    }

    #[test]
    fn doctype_before_the_header_is_restricted_xml() {
        let e = events_whole(b"<!DOCTYPE x [<!ENTITY e 'boom'>]><stream:stream>").unwrap_err();
        assert_eq!(e, XmlError::Restricted("DOCTYPE"));
        assert_eq!(e.condition(), "restricted-xml");
    }

    #[test]
    fn processing_instruction_other_than_the_declaration_is_restricted_xml() {
        let e = events_whole(b"<?xml-stylesheet href='a'?><stream:stream>").unwrap_err();
        assert_eq!(e, XmlError::Restricted("processing instruction"));
    }

    #[test]
    fn invalid_utf8_in_the_stream_header_is_reported_as_such() {
        let mut header = HEADER.as_bytes().to_vec();
        let at = header.len() - 3;
        header.insert(at, 0xff);
        assert_eq!(events_whole(&header), Err(XmlError::InvalidUtf8));
    }

    #[test]
    fn a_byte_other_than_white_space_between_elements_is_not_well_formed() {
        // Between elements anything but whitespace is text out of place.
        let mut input = HEADER.as_bytes().to_vec();
        input.push(0xff);
        assert_eq!(
            events_whole(&input).unwrap_err().condition(),
            "not-well-formed"
        );
    }

    #[test]
    fn header_with_another_stream_namespace_is_an_invalid_namespace() {
        let wrong_stream_ns =
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://wrong.example/'>";
        let e = events_whole(wrong_stream_ns).unwrap_err();
        assert!(matches!(e, XmlError::InvalidNamespace(_)));
        assert_eq!(e.condition(), "invalid-namespace");
    }

    #[test]
    fn header_with_another_content_namespace_is_an_invalid_namespace() {
        let wrong_content_ns = b"<stream:stream xmlns='jabber:server' \
            xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(
            events_whole(wrong_content_ns).unwrap_err().condition(),
            "invalid-namespace"
        );
    }

    #[test]
    fn header_with_an_undeclared_stream_prefix_is_a_bad_prefix() {
        let undeclared = b"<stream:stream xmlns='jabber:client'>";
        assert_eq!(events_whole(undeclared), Err(XmlError::BadPrefix));
    }

    #[test]
    fn header_whose_root_is_not_a_stream_is_bad_format() {
        let not_stream = b"<stream:feed xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(
            events_whole(not_stream).unwrap_err().condition(),
            "bad-format"
        );
    }

    #[test]
    fn self_closing_header_is_bad_format() {
        let closed = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams'/>";
        assert_eq!(events_whole(closed).unwrap_err().condition(), "bad-format");
    }

    #[test]
    fn declaration_of_an_encoding_other_than_utf8_is_unsupported() {
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>";
        assert_eq!(events_whole(latin1), Err(XmlError::UnsupportedEncoding));
    }

    #[test]
    fn repeated_xml_declaration_is_not_well_formed() {
        let twice = b"<?xml version='1.0'?><?xml version='1.0'?>";
        assert_eq!(
            events_whole(twice).unwrap_err().condition(),
            "not-well-formed"
        );
    }

    #[test]
    fn text_before_the_header_is_not_well_formed() {
        assert_eq!(
            events_whole(b"hello").unwrap_err().condition(),
            "not-well-formed"
        );
    }

    #[test]
    fn after_an_error_every_call_returns_the_same_error() {
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
}
