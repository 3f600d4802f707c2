//! XEP-0363 HTTP File Upload, the pure half: finding the server's upload service, asking it
//! for a slot, reading the slot it grants, and the message that announces the file (with an
//! XEP-0066 out-of-band URL, so that clients show a picture inline).
//!
//! The shell sends the iqs this module builds and feeds their replies back; the PUT itself is
//! the HTTP client's job.

use super::jid::Jid;
use super::jsonmap::{NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_OOB};
use super::stanza::{self, IqType, MessageType, NS_CLIENT, NS_STANZA_ERRORS};
use super::xml::Element;
use std::fmt;

/// XEP-0363's namespace (version 0.3 and later).
pub const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";

/// The most disco items looked at when searching for the upload service: a server lists a
/// handful of components; a list longer than this is not worth one iq each.
pub const MAX_ITEMS: usize = 16;
/// The longest file name put in a slot request; longer names are cut (at a char boundary).
pub const MAX_FILENAME: usize = 128;
/// The longest slot URL accepted.
pub const MAX_URL: usize = 2048;
/// The most PUT headers taken from a slot (XEP-0363 allows three names).
pub const MAX_PUT_HEADERS: usize = 3;

/// The upload service of a server, as its disco#info describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service's address (usually a component such as `upload.example.org`).
    pub jid: String,
    /// The largest file it takes, when it says.
    pub max_file_size: Option<u64>,
}

/// A granted slot: where to PUT the bytes and where others GET them.
#[derive(Clone, PartialEq, Eq)]
pub struct Slot {
    /// The HTTPS URL to PUT the file to.
    pub put: String,
    /// The HTTPS URL to share.
    pub get: String,
    /// Headers to send with the PUT (`Authorization`, `Cookie`, `Expires` only).
    pub headers: Vec<(&'static str, String)>,
}

/// Header values can be credentials: they stay out of logs.
impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("put", &"<redacted>")
            .field("get", &self.get)
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// Why no slot could be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// The service answered with a stanza error.
    Refused {
        /// The RFC 6120 condition (`not-acceptable`, `resource-constraint`, ...).
        condition: String,
        /// The service's own words, if any.
        text: Option<String>,
        /// Set when the error says the file is too large (`<file-too-large/>`).
        max_file_size: Option<u64>,
    },
    /// The reply holds no `<slot>` with both URLs.
    NoSlot,
    /// A slot URL is not HTTPS, too long, or holds characters no URL may hold.
    BadUrl,
}

impl SlotError {
    /// Whether the service refused because the file is too large.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                max_file_size: Some(_),
                ..
            }
        ) || matches!(self, Self::Refused { condition, .. } if condition == "file-too-large")
    }
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused {
                condition, text, ..
            } => {
                write!(f, "the upload service refused the slot: {condition}")?;
                match text {
                    Some(t) => write!(f, " ({t})"),
                    None => Ok(()),
                }
            }
            Self::NoSlot => f.write_str("the upload service answered without a slot"),
            Self::BadUrl => f.write_str("the upload service gave a slot URL that is not HTTPS"),
        }
    }
}

impl std::error::Error for SlotError {}

/// The disco#items request that lists the server's services.
pub fn items_request(id: &str, server: &str) -> Element {
    stanza::iq(
        IqType::Get,
        Some(server),
        id,
        Element::new("query", NS_DISCO_ITEMS),
    )
}

/// The disco#info request for one address.
pub fn info_request(id: &str, jid: &str) -> Element {
    stanza::iq(
        IqType::Get,
        Some(jid),
        id,
        Element::new("query", NS_DISCO_INFO),
    )
}

/// The addresses a disco#items result lists, at most [`MAX_ITEMS`], nodes left out (a node
/// is a part of a service, not a service).
pub fn item_jids(result: &Element) -> Vec<String> {
    let Some(query) = result.get_child("query", NS_DISCO_ITEMS) else {
        return Vec::new();
    };
    query
        .children()
        .filter(|i| i.is("item", NS_DISCO_ITEMS) && i.get_attr("node").is_none())
        .filter_map(|i| i.get_attr("jid"))
        .take(MAX_ITEMS)
        .map(str::to_owned)
        .collect()
}

/// The upload service that a disco#info result from `jid` describes, if it is one.
pub fn service_from_info(jid: &str, result: &Element) -> Option<Service> {
    let query = result.get_child("query", NS_DISCO_INFO)?;
    let offers = query
        .children()
        .any(|f| f.is("feature", NS_DISCO_INFO) && f.get_attr("var") == Some(NS_UPLOAD));
    if !offers {
        return None;
    }
    let max_file_size = query
        .children()
        .filter(|x| x.is("x", NS_DATA))
        .find(|form| form_field(form, "FORM_TYPE").as_deref() == Some(NS_UPLOAD))
        .and_then(|form| form_field(form, "max-file-size"))
        .and_then(|v| v.trim().parse().ok());
    Some(Service {
        jid: jid.to_owned(),
        max_file_size,
    })
}

fn form_field(form: &Element, var: &str) -> Option<String> {
    form.children()
        .find(|f| f.is("field", NS_DATA) && f.get_attr("var") == Some(var))
        .and_then(|f| f.get_child("value", NS_DATA))
        .map(Element::text_content)
}

/// The slot request for a file of `size` bytes (XEP-0363 §4).
pub fn slot_request(
    id: &str,
    service: &str,
    filename: &str,
    size: u64,
    content_type: &str,
) -> Element {
    let request = Element::new("request", NS_UPLOAD)
        .attr("filename", &clean_filename(filename))
        .attr("size", &size.to_string())
        .attr("content-type", content_type);
    stanza::iq(IqType::Get, Some(service), id, request)
}

/// A file name fit for a slot request: the last path segment, without control characters,
/// at most [`MAX_FILENAME`] bytes; `file` when nothing is left.
pub fn clean_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out = String::new();
    for c in last.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_FILENAME {
            break;
        }
        out.push(c);
    }
    match out.trim() {
        "" | "." | ".." => "file".to_owned(),
        t => t.to_owned(),
    }
}

/// The slot in the service's answer to [`slot_request`].
pub fn parse_slot(reply: &Element) -> Result<Slot, SlotError> {
    if stanza::iq_type(reply) == Some(IqType::Error) {
        return Err(refusal(reply));
    }
    let slot = reply
        .get_child("slot", NS_UPLOAD)
        .ok_or(SlotError::NoSlot)?;
    let put_el = slot.get_child("put", NS_UPLOAD).ok_or(SlotError::NoSlot)?;
    let get_el = slot.get_child("get", NS_UPLOAD).ok_or(SlotError::NoSlot)?;
    let put = put_el.get_attr("url").ok_or(SlotError::NoSlot)?;
    let get = get_el.get_attr("url").ok_or(SlotError::NoSlot)?;
    if !is_https_url(put) || !is_https_url(get) {
        return Err(SlotError::BadUrl);
    }
    let mut headers = Vec::new();
    for h in put_el.children().filter(|h| h.is("header", NS_UPLOAD)) {
        // XEP-0363 §5.1: only these names; newlines stripped from the value.
        let name = match h.get_attr("name").map(str::to_ascii_lowercase).as_deref() {
            Some("authorization") => "Authorization",
            Some("cookie") => "Cookie",
            Some("expires") => "Expires",
            _ => continue,
        };
        if headers.len() == MAX_PUT_HEADERS || headers.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value: String = h
            .text_content()
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect();
        if value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            headers.push((name, value));
        }
    }
    Ok(Slot {
        put: put.to_owned(),
        get: get.to_owned(),
        headers,
    })
}

fn refusal(reply: &Element) -> SlotError {
    let error = reply.get_child("error", NS_CLIENT);
    let condition = error
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == NS_STANZA_ERRORS && c.name() != "text")
        })
        .map_or("undefined-condition", Element::name)
        .to_owned();
    let text = error
        .and_then(|e| e.get_child("text", NS_STANZA_ERRORS))
        .map(Element::text_content);
    let max_file_size = error
        .and_then(|e| e.get_child("file-too-large", NS_UPLOAD))
        .map(|t| {
            t.get_child("max-file-size", NS_UPLOAD)
                .and_then(|m| m.text_content().trim().parse().ok())
                .unwrap_or(0)
        });
    SlotError::Refused {
        condition,
        text,
        max_file_size,
    }
}

/// Whether `url` is an absolute HTTPS URL of printable ASCII with a host, short enough to
/// put in a request line and a message.
fn is_https_url(url: &str) -> bool {
    let Some(rest) = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return false;
    };
    url.len() <= MAX_URL
        && url.bytes().all(|b| (0x21..0x7f).contains(&b))
        && !rest.starts_with(['/', '?', '#'])
        && !rest.is_empty()
}

/// The message that shares an uploaded file: its body is the URL (after `text` and a newline,
/// when given) and an XEP-0066 `<x>` carries the URL, which clients show inline.
pub fn announcement(
    to: &Jid,
    kind: MessageType,
    id: &str,
    url: &str,
    text: Option<&str>,
) -> Element {
    let body = match text.filter(|t| !t.is_empty()) {
        Some(t) => format!("{t}\n{url}"),
        None => url.to_owned(),
    };
    stanza::message(to, kind, id, &body, None)
        .child(Element::new("x", NS_OOB).child(Element::new("url", NS_OOB).text(url)))
}

/// Media types and the file name a body of that type gets when it came without one.
const KNOWN_TYPES: [(&str, &str); 16] = [
    ("image/jpeg", "image.jpg"),
    ("image/png", "image.png"),
    ("image/gif", "image.gif"),
    ("image/webp", "image.webp"),
    ("image/heic", "image.heic"),
    ("image/svg+xml", "image.svg"),
    ("video/mp4", "video.mp4"),
    ("video/webm", "video.webm"),
    ("audio/mpeg", "audio.mp3"),
    ("audio/ogg", "audio.ogg"),
    ("application/pdf", "document.pdf"),
    ("application/zip", "archive.zip"),
    ("application/gzip", "archive.gz"),
    ("application/json", "data.json"),
    ("text/csv", "data.csv"),
    ("text/plain", "text.txt"),
];

/// A file name for a body that came without one, from its media type.
pub fn default_filename(content_type: &str) -> &'static str {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    KNOWN_TYPES
        .iter()
        .find(|(t, _)| *t == essence)
        .map_or("file", |(_, name)| name)
}

/// The `Content-Type` of a file, from its extension (`application/octet-stream` if unknown).
pub fn content_type_of(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga") => "audio/ogg",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::xml::parse_document;

    fn parse(xml: &str) -> Element {
        parse_document(xml.as_bytes(), 1 << 16).expect("test XML parses")
    }

    #[test]
    fn items_request_asks_the_server_for_its_items() {
        let iq = items_request("u1", "example.org");
        assert_eq!(iq.get_attr("type"), Some("get"));
        assert_eq!(iq.get_attr("to"), Some("example.org"));
        assert!(iq.get_child("query", NS_DISCO_ITEMS).is_some());
    }

    #[test]
    fn item_jids_skips_nodes_and_stops_at_the_bound() {
        let mut xml = String::from(
            "<iq xmlns='jabber:client' type='result'><query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='example.org' node='x'/>",
        );
        for i in 0..MAX_ITEMS + 5 {
            xml.push_str(&format!("<item jid='c{i}.example.org'/>"));
        }
        xml.push_str("</query></iq>");
        let jids = item_jids(&parse(&xml));
        assert_eq!(jids.len(), MAX_ITEMS);
        assert_eq!(jids[0], "c0.example.org");
    }

    #[test]
    fn item_jids_of_a_reply_without_query_is_empty() {
        assert!(item_jids(&parse("<iq xmlns='jabber:client' type='error'/>")).is_empty());
    }

    const UPLOAD_INFO: &str = "<iq xmlns='jabber:client' type='result'>\
        <query xmlns='http://jabber.org/protocol/disco#info'>\
        <identity category='store' type='file'/>\
        <feature var='urn:xmpp:http:upload:0'/>\
        <x xmlns='jabber:x:data' type='result'>\
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>\
        <field var='max-file-size'><value>16777216</value></field></x></query></iq>";

    #[test]
    fn service_from_info_reads_the_advertised_max_file_size() {
        let s = service_from_info("upload.example.org", &parse(UPLOAD_INFO)).expect("service");
        assert_eq!(s.jid, "upload.example.org");
        assert_eq!(s.max_file_size, Some(16_777_216));
    }

    #[test]
    fn service_from_info_without_a_form_has_no_limit() {
        let xml = "<iq xmlns='jabber:client' type='result'><query xmlns='http://jabber.org/protocol/disco#info'>\
                   <feature var='urn:xmpp:http:upload:0'/></query></iq>";
        let s = service_from_info("u", &parse(xml)).expect("service");
        assert_eq!(s.max_file_size, None);
    }

    #[test]
    fn service_from_info_is_none_without_the_upload_feature() {
        let xml = "<iq xmlns='jabber:client' type='result'><query xmlns='http://jabber.org/protocol/disco#info'>\
                   <feature var='http://jabber.org/protocol/muc'/></query></iq>";
        assert_eq!(
            service_from_info("conference.example.org", &parse(xml)),
            None
        );
    }

    #[test]
    fn slot_request_carries_name_size_and_type() {
        let iq = slot_request(
            "u2",
            "upload.example.org",
            "/tmp/cam/snap.jpg",
            3000,
            "image/jpeg",
        );
        let r = iq.get_child("request", NS_UPLOAD).expect("request");
        assert_eq!(r.get_attr("filename"), Some("snap.jpg"));
        assert_eq!(r.get_attr("size"), Some("3000"));
        assert_eq!(r.get_attr("content-type"), Some("image/jpeg"));
        assert_eq!(iq.get_attr("to"), Some("upload.example.org"));
    }

    #[test]
    fn clean_filename_drops_paths_controls_and_dot_names() {
        assert_eq!(clean_filename("a/b\\c.txt"), "c.txt");
        assert_eq!(clean_filename("x\ny\u{7f}.png"), "xy.png");
        assert_eq!(clean_filename(".."), "file");
        assert_eq!(clean_filename(""), "file");
        assert_eq!(clean_filename(&"é".repeat(100)).len(), MAX_FILENAME);
    }

    const SLOT: &str =
        "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>\
        <put url='https://up.example.org/p/abc'>\
        <header name='Authorization'>Basic Zm9v\nYmFy</header>\
        <header name='Cookie'>c=1</header>\
        <header name='Host'>evil</header>\
        <header name='authorization'>second</header></put>\
        <get url='https://up.example.org/g/abc'/></slot></iq>";

    #[test]
    fn parse_slot_keeps_allowed_headers_without_newlines() {
        let slot = parse_slot(&parse(SLOT)).expect("slot");
        assert_eq!(slot.put, "https://up.example.org/p/abc");
        assert_eq!(slot.get, "https://up.example.org/g/abc");
        assert_eq!(
            slot.headers,
            vec![
                ("Authorization", "Basic Zm9vYmFy".to_owned()),
                ("Cookie", "c=1".to_owned())
            ]
        );
    }

    #[test]
    fn slot_debug_hides_the_put_url_and_headers() {
        let slot = parse_slot(&parse(SLOT)).expect("slot");
        let shown = format!("{slot:?}");
        assert!(
            !shown.contains("/p/abc") && !shown.contains("Zm9v"),
            "{shown}"
        );
    }

    #[test]
    fn parse_slot_refuses_plain_http_urls() {
        let xml = SLOT.replace("https://up.example.org/p", "http://up.example.org/p");
        assert_eq!(parse_slot(&parse(&xml)), Err(SlotError::BadUrl));
    }

    #[test]
    fn parse_slot_refuses_a_url_without_host() {
        let xml = SLOT.replace("https://up.example.org/g/abc", "https:///g");
        assert_eq!(parse_slot(&parse(&xml)), Err(SlotError::BadUrl));
    }

    #[test]
    fn parse_slot_without_get_is_no_slot() {
        let xml = "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>\
                   <put url='https://a/p'/></slot></iq>";
        assert_eq!(parse_slot(&parse(xml)), Err(SlotError::NoSlot));
    }

    #[test]
    fn parse_slot_reads_file_too_large() {
        let xml = "<iq xmlns='jabber:client' type='error'><error type='modify'>\
                   <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                   <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>File too large</text>\
                   <file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>20000</max-file-size>\
                   </file-too-large></error></iq>";
        let err = parse_slot(&parse(xml)).expect_err("refused");
        assert!(err.is_too_large());
        assert_eq!(
            err,
            SlotError::Refused {
                condition: "not-acceptable".into(),
                text: Some("File too large".into()),
                max_file_size: Some(20000)
            }
        );
    }

    #[test]
    fn parse_slot_reads_a_plain_refusal() {
        let xml = "<iq xmlns='jabber:client' type='error'><error type='wait'>\
                   <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>";
        let err = parse_slot(&parse(xml)).expect_err("refused");
        assert!(!err.is_too_large());
        assert!(err.to_string().contains("resource-constraint"));
    }

    #[test]
    fn announcement_carries_the_url_in_body_and_oob() {
        let to = Jid::parse("alice@example.org").expect("jid");
        let m = announcement(
            &to,
            MessageType::Chat,
            "m1",
            "https://g/x.jpg",
            Some("door cam"),
        );
        assert_eq!(
            m.get_child("body", NS_CLIENT)
                .map(Element::text_content)
                .as_deref(),
            Some("door cam\nhttps://g/x.jpg")
        );
        let oob = m
            .get_child("x", NS_OOB)
            .and_then(|x| x.get_child("url", NS_OOB));
        assert_eq!(
            oob.map(Element::text_content).as_deref(),
            Some("https://g/x.jpg")
        );
    }

    #[test]
    fn announcement_without_text_is_the_bare_url() {
        let to = Jid::parse("alice@example.org").expect("jid");
        let m = announcement(&to, MessageType::Chat, "m1", "https://g/x.jpg", None);
        assert_eq!(
            m.get_child("body", NS_CLIENT)
                .map(Element::text_content)
                .as_deref(),
            Some("https://g/x.jpg")
        );
    }

    #[test]
    fn default_filename_follows_the_media_type() {
        assert_eq!(default_filename("image/jpeg"), "image.jpg");
        assert_eq!(default_filename("Image/PNG; q=1"), "image.png");
        assert_eq!(default_filename("application/x-thing"), "file");
    }

    #[test]
    fn a_file_type_comes_from_its_extension() {
        assert_eq!(
            content_type_of(std::path::Path::new("/tmp/cam.JPG")),
            "image/jpeg"
        );
        assert_eq!(
            content_type_of(std::path::Path::new("noext")),
            "application/octet-stream"
        );
    }
}
