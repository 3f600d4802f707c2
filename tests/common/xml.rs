//! Loose XML for the test client: a splitter that takes top-level pieces of an XMPP stream
//! off a byte buffer, and a small element tree parsed with quick-xml.
//!
//! Deliberately separate from xrelay's own XML code, so the tests check xrelay from outside.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

/// A top-level piece of an XMPP stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    /// The opening `<stream:stream>` tag, as an element without children.
    StreamOpen(Element),
    /// A complete top-level element (a stanza, features, a stream error, ...), verbatim.
    Stanza(String),
    /// The closing `</stream:stream>`.
    StreamClose,
}

/// Takes the next complete piece off the front of `buf`, dropping whitespace, the XML
/// declaration and comments before it. `Ok(None)`: more bytes are needed.
pub(crate) fn next_piece(buf: &mut Vec<u8>) -> Result<Option<Piece>, String> {
    let Some((piece, used)) = split(buf)? else {
        return Ok(None);
    };
    buf.drain(..used);
    Ok(Some(piece))
}

fn split(buf: &[u8]) -> Result<Option<(Piece, usize)>, String> {
    let mut at = 0;
    loop {
        let Some(start) = find(buf, at, b"<") else {
            return Ok(None);
        };
        let Some(after) = skip_markup(buf, start) else {
            return Ok(None);
        };
        if after != start {
            at = after;
            continue;
        }
        let Some(end) = tag_end(buf, start) else {
            return Ok(None);
        };
        let tag = utf8(&buf[start..end])?;
        if tag.starts_with("</") {
            return Ok(Some((Piece::StreamClose, end)));
        }
        let name = tag[1..]
            .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .next()
            .unwrap_or_default();
        if name == "stream" || name.ends_with(":stream") {
            let empty = format!("{}/>", &tag[..tag.len() - 1]);
            return Ok(Some((Piece::StreamOpen(Element::parse(&empty)?), end)));
        }
        let mut depth = usize::from(!tag.ends_with("/>"));
        let mut pos = end;
        while depth > 0 {
            let Some(lt) = find(buf, pos, b"<") else {
                return Ok(None);
            };
            let Some(after) = skip_markup(buf, lt) else {
                return Ok(None);
            };
            if after != lt {
                pos = after;
                continue;
            }
            let Some(e) = tag_end(buf, lt) else {
                return Ok(None);
            };
            if buf[lt + 1] == b'/' {
                depth -= 1;
            } else if buf[e - 2] != b'/' {
                depth += 1;
            }
            pos = e;
        }
        return Ok(Some((
            Piece::Stanza(utf8(&buf[start..pos])?.to_string()),
            pos,
        )));
    }
}

/// If a declaration, processing instruction, comment or CDATA section starts at `lt`, the
/// index after it (`None` while incomplete); otherwise `lt` itself.
fn skip_markup(buf: &[u8], lt: usize) -> Option<usize> {
    for (open, close) in [("<?", "?>"), ("<!--", "-->"), ("<![CDATA[", "]]>")] {
        let rest = &buf[lt..];
        if rest.starts_with(open.as_bytes()) {
            return find(buf, lt + open.len(), close.as_bytes()).map(|i| i + close.len());
        }
        if open.as_bytes().starts_with(rest) && rest.len() > 1 {
            // A prefix of a markup opener: wait for more bytes to tell.
            return None;
        }
    }
    Some(lt)
}

/// The index after the `>` ending the tag that starts at `lt` (quotes respected).
fn tag_end(buf: &[u8], lt: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in buf.iter().enumerate().skip(lt + 1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn find(buf: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    buf.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("server sent invalid UTF-8: {e}"))
}

/// An element with its attributes and character data unescaped.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Element {
    /// The name as written, prefix included (`stream:features`).
    pub name: String,
    /// Attributes in document order, `xmlns` declarations included.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Self>,
    /// All character data directly inside this element, concatenated.
    pub text: String,
}

impl Element {
    /// Parses one element (with its descendants).
    pub(crate) fn parse(xml: &str) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| format!("bad XML ({e}): {xml}");
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Self> = Vec::new();
        loop {
            let event = reader.read_event().map_err(|e| fail(&e))?;
            let done = match event {
                Event::Start(s) => {
                    stack.push(Self::from_start(&s).map_err(|e| fail(&e))?);
                    None
                }
                Event::Empty(s) => Some(Self::from_start(&s).map_err(|e| fail(&e))?),
                Event::End(_) => stack.pop(),
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.xml10_content());
                    }
                    None
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.xml10_content());
                    }
                    None
                }
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref().map_err(|e| fail(&e))? {
                        Some(c) => c.to_string(),
                        None => {
                            let name = r.xml10_content();
                            resolve_predefined_entity(&name)
                                .ok_or_else(|| fail(&format!("unknown entity &{name};")))?
                                .to_string()
                        }
                    };
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&c);
                    }
                    None
                }
                Event::Eof => return Err(fail(&"unexpected end")),
                _ => None,
            };
            if let Some(el) = done {
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
        }
    }

    fn from_start(s: &quick_xml::events::BytesStart<'_>) -> Result<Self, String> {
        let mut el = Self {
            name: s.name().as_ref().to_string(),
            ..Self::default()
        };
        for a in s.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
            el.attrs
                .push((a.key.as_ref().to_string(), value.into_owned()));
        }
        Ok(el)
    }

    /// The name without its prefix.
    pub(crate) fn local_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or_default()
    }

    /// Whether the local name is `local`.
    pub(crate) fn is(&self, local: &str) -> bool {
        self.local_name() == local
    }

    /// The value of attribute `name` (as written, e.g. `xml:lang`).
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The namespace this element declares for itself (`xmlns`), if any.
    pub(crate) fn ns(&self) -> Option<&str> {
        self.attr("xmlns")
    }

    /// The first child with local name `local`.
    pub(crate) fn child(&self, local: &str) -> Option<&Self> {
        self.children.iter().find(|c| c.is(local))
    }

    /// The first child with local name `local` declaring namespace `ns`.
    pub(crate) fn child_ns(&self, local: &str, ns: &str) -> Option<&Self> {
        self.children
            .iter()
            .find(|c| c.is(local) && c.ns() == Some(ns))
    }

    /// The text of the first child with local name `local`.
    pub(crate) fn child_text(&self, local: &str) -> Option<&str> {
        self.child(local).map(|c| c.text.as_str())
    }

    /// Whether any descendant (or this element) has local name `local`.
    pub(crate) fn contains(&self, local: &str) -> bool {
        self.is(local) || self.children.iter().any(|c| c.contains(local))
    }
}

/// `s` escaped for XML text and attribute values (quotes included).
pub(crate) fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}
