//! The element builder: one complete top-level element (found by the framer) to an
//! [`Element`] with quick-xml, resolving namespaces and references and rejecting what XMPP's
//! restricted XML forbids. Also the pieces of it the framer uses on the stream header and on
//! the start tags of stanzas it skips.

use std::sync::Arc;

use quick_xml::errors::Error as QxError;
use quick_xml::escape::{resolve_xml_entity, EscapeError};
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::serializer::escaped_len;
use super::{
    is_valid_name, is_xml_space, not_well_formed, Element, Node, XmlError, CLIENT_NS, MAX_DEPTH,
    STREAM_NS, XML_NS,
};

/// Longest reason kept from a quick-xml error, which may quote input.
const MAX_REASON: usize = 120;

pub(super) fn from_quick_xml(e: QxError) -> XmlError {
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
pub(super) fn parse_element(
    raw: &[u8],
    base: &[(String, Arc<str>)],
    max: usize,
) -> Result<Element, XmlError> {
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
pub(super) fn lookup<'a>(
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
pub(super) fn open_tag(
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
pub(super) fn attr_value(attr: &Attribute<'_>) -> Result<String, XmlError> {
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
    use super::super::testing::{error, events_bytewise, events_whole, one, HEADER};
    use super::super::{parse_document, DocError, Framer, StreamEvent};
    use super::*;

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
    fn inherited_default_namespace_is_shared_not_copied() {
        // A long default namespace inherited by thousands of tiny children: each copy would
        // cost the namespace's length, 4 input bytes each.
        let ns = "u".repeat(8 * 1024);
        let doc = format!("<a xmlns='{ns}'>{}</a>", "<b/>".repeat(10_000));
        let el = parse_document(doc.as_bytes(), 64 * 1024).unwrap();
        assert_eq!(el.children().count(), 10_000);
        assert_eq!(ns_heap(&el, None), ns.len());
    }

    #[test]
    fn inherited_prefixed_namespace_is_shared_not_copied() {
        let ns = "u".repeat(8 * 1024);
        let prefixed = format!("<p:a xmlns:p='{ns}'>{}</p:a>", "<p:b/>".repeat(5_000));
        let el = parse_document(prefixed.as_bytes(), 64 * 1024).unwrap();
        assert_eq!(ns_heap(&el, None), ns.len());
    }

    /// A namespace that each use of its prefix repeats in full once serialized.
    fn long_ns() -> String {
        "u".repeat(4 * 1024)
    }

    const AMPLIFY_LIMIT: usize = 64 * 1024;

    #[test]
    fn document_whose_reused_prefix_would_blow_up_when_serialized_is_too_large() {
        // Each `<p:b/>` (6 bytes) serializes with the namespace written out in full.
        let ns = long_ns();
        let limit = AMPLIFY_LIMIT;
        let doc = format!("<a xmlns:p='{ns}'>{}</a>", "<p:b/>".repeat(2_000));
        assert_eq!(
            parse_document(doc.as_bytes(), limit),
            Err(DocError::Xml(XmlError::TooLarge { limit }))
        );
    }

    #[test]
    fn element_reusing_a_header_prefix_that_would_blow_up_when_serialized_is_too_large() {
        let ns = long_ns();
        let limit = AMPLIFY_LIMIT;
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
    }

    #[test]
    fn a_few_reused_prefixes_stay_within_the_bound_and_read_back() {
        let ns = long_ns();
        let limit = AMPLIFY_LIMIT;
        let doc = format!("<a xmlns:p='{ns}'><p:b/><p:b/><c/><p:b/></a>");
        let el = parse_document(doc.as_bytes(), limit).unwrap();
        let bytes = el.to_bytes(CLIENT_NS);
        assert_eq!(parse_document(&bytes, limit).unwrap(), el);
    }

    #[test]
    fn references_in_text_and_attributes_are_resolved() {
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
    fn cdata_merges_with_the_text_around_it() {
        let m = one("<message><body>a <![CDATA[<b>x</b> & ]] ]]]> z</body></message>");
        let body = m.get_child("body", CLIENT_NS).unwrap();
        assert_eq!(body.text_content(), "a <b>x</b> & ]] ] z");
        assert_eq!(body.nodes().len(), 1);
    }

    #[test]
    fn children_inherit_a_default_namespace_and_keep_xml_lang() {
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
    }

    #[test]
    fn prefixes_resolve_to_their_declared_namespaces_and_prefixed_attributes_are_dropped() {
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
    fn undeclared_element_prefix_is_a_bad_prefix() {
        let e = error("<message><x:y/></message>");
        assert_eq!(e, XmlError::BadPrefix);
        assert_eq!(e.condition(), "bad-namespace-prefix");
    }

    #[test]
    fn undeclared_attribute_prefix_is_a_bad_prefix() {
        assert_eq!(error("<message x:a='1'/>"), XmlError::BadPrefix);
    }

    #[test]
    fn prefix_declared_as_empty_is_not_well_formed() {
        assert_eq!(error("<p:x xmlns:p=''/>").condition(), "not-well-formed");
    }

    #[test]
    fn element_with_the_xmlns_prefix_is_not_well_formed() {
        assert_eq!(error("<xmlns:x/>").condition(), "not-well-formed");
    }

    #[test]
    fn undeclared_entity_references_are_not_well_formed() {
        for body in ["<message>&e;</message>", "<message a='&e;'/>"] {
            assert_eq!(
                error(body),
                XmlError::NotWellFormed("undeclared entity reference".into())
            );
        }
    }

    #[test]
    fn invalid_utf8_in_a_stanza_is_reported_as_such() {
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
    }
}
