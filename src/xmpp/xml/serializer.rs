//! The serializer: elements to bytes, escaping every text and attribute value, so that no text
//! can ever turn into markup; and the client's own stream header and close.

use super::{is_valid_name, Element, Node, STREAM_NS};

/// Closes the client's stream (RFC 6120 §4.4), matching [`write_stream_header`].
pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";

/// U+FFFD, written in place of characters XML 1.0 cannot carry.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

impl Element {
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
pub(super) fn escaped_len(text: &str) -> usize {
    let mut out = Vec::with_capacity(text.len());
    escape(text, &mut out, true);
    out.len()
}

/// Attribute names the serializer writes: plain names (but not a namespace declaration,
/// which only the serializer itself emits) and `xml:lang`.
fn is_valid_attr_name(s: &str) -> bool {
    s == "xml:lang" || (s != "xmlns" && is_valid_name(s))
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

#[cfg(test)]
mod tests {
    use super::super::testing::{drain, one, LIMIT};
    use super::super::{Framer, StreamEvent, CLIENT_NS};
    use super::*;

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
    }

    #[test]
    fn escape_into_also_writes_tab_line_feed_and_carriage_return_as_references() {
        let mut out = Vec::new();
        escape_into("<&>\"'\t\n\r", &mut out);
        assert_eq!(out, b"&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13;");
    }

    fn markup_in_text() -> Element {
        Element::new("message", CLIENT_NS)
            .attr("to", "x@y")
            .child(Element::new("body", CLIENT_NS).text("</body><evil/>"))
    }

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            markup_in_text().to_bytes(CLIENT_NS),
            b"<message to='x@y'><body>&lt;/body&gt;&lt;evil/&gt;</body></message>"
        );
    }

    #[test]
    fn markup_in_text_reads_back_as_text() {
        let e = markup_in_text();
        let bytes = e.to_bytes(CLIENT_NS);
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
    fn xmlns_is_written_only_where_the_namespace_changes() {
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
    fn elements_and_attributes_with_invalid_names_are_left_out() {
        let e = Element::new("message", CLIENT_NS)
            .attr("a'/><evil x='", "1")
            .attr("xmlns", "urn:evil")
            .attr("xml:lang", "en")
            .child(Element::new("evil/><x", CLIENT_NS))
            .child(Element::new("", CLIENT_NS));
        assert_eq!(e.to_bytes(CLIENT_NS), b"<message xml:lang='en'></message>");
    }

    #[test]
    fn serialized_elements_read_back_unchanged() {
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
    fn own_stream_header_and_close_are_read_by_the_framer() {
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
}
