//! `multipart/form-data` (RFC 7578) decoding for uploads: incremental, so that a file part
//! streams through without being held, and bounded (a part's head is at most
//! [`MAX_PART_HEAD`] bytes, at most [`MAX_PARTS`] parts).
//!
//! Hand-written rather than a crate: the decoders on crates.io pull a charset library and an
//! async stack of their own, several times the size of this file, for features (charsets,
//! streams of streams) that a form of a file and a line of text does not need.
//!
//! An upload must name its size before its bytes are sent (XEP-0363), so the file must be the
//! form's last part: its size is then the body's length less what came before its data and
//! the closing delimiter ([`Decoder::file_size`]). A part after the file is an error.

use std::fmt;

/// The longest head (Content-Disposition, Content-Type, ...) of one part.
pub const MAX_PART_HEAD: usize = 4096;
/// The most parts one form may have.
pub const MAX_PARTS: usize = 16;
/// The longest boundary RFC 2046 §5.1.1 allows.
pub const MAX_BOUNDARY: usize = 70;

/// What the head of one part says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartHead {
    /// The form field's name.
    pub name: String,
    /// The file name, for a file part.
    pub filename: Option<String>,
    /// The part's media type, when given.
    pub content_type: Option<String>,
    /// How many body bytes come before this part's data.
    pub data_offset: u64,
}

/// One step of a decoded form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part begins.
    Part(PartHead),
    /// Bytes of the current part's data.
    Data(Vec<u8>),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: the form is complete.
    End,
}

/// Why a body is not a form this decoder takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartError {
    /// The media type has no usable `boundary` parameter.
    NoBoundary,
    /// The body does not start with the boundary.
    NoFirstBoundary,
    /// A part's head is over [`MAX_PART_HEAD`] or not text.
    BadPartHead,
    /// A part has no `Content-Disposition: form-data; name=...`.
    NoName,
    /// More than [`MAX_PARTS`] parts.
    TooManyParts,
    /// The body ended before the closing delimiter.
    Truncated,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoBoundary => "the multipart body has no boundary parameter",
            Self::NoFirstBoundary => "the multipart body does not start with its boundary",
            Self::BadPartHead => "a multipart part has an oversized or malformed head",
            Self::NoName => "a multipart part has no form-data name",
            Self::TooManyParts => "the multipart body has too many parts",
            Self::Truncated => "the multipart body ends before its closing boundary",
        })
    }
}

impl std::error::Error for MultipartError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: `--` ends the form, anything else starts a part.
    AfterDelimiter,
    /// Reading a part's head up to its empty line.
    Head,
    /// Passing a part's data on, watching for the next delimiter.
    Data,
    /// After the closing delimiter: the epilogue is ignored.
    Done,
}

/// An incremental `multipart/form-data` decoder.
#[derive(Debug)]
pub struct Decoder {
    /// `CRLF--boundary`: what ends every part.
    delimiter: Vec<u8>,
    state: State,
    /// Bytes fed but not yet decided on.
    buf: Vec<u8>,
    /// Body bytes consumed before `buf`'s first byte (the preamble's virtual CRLF excluded).
    consumed: u64,
    parts: usize,
}

impl Decoder {
    /// A decoder for the body of a request whose `Content-Type` is `content_type`.
    pub fn new(content_type: &str) -> Result<Self, MultipartError> {
        let boundary = boundary(content_type).ok_or(MultipartError::NoBoundary)?;
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Ok(Self {
            delimiter,
            state: State::Preamble,
            // The first delimiter may start the body: seeing it after a virtual CRLF lets one
            // search find every delimiter.
            buf: b"\r\n".to_vec(),
            consumed: 0,
            parts: 0,
        })
    }

    /// The size of a file part that is the form's last, given the whole body's length and
    /// the part's head: what is left less the closing delimiter `CRLF--boundary--CRLF`.
    pub fn file_size(&self, content_length: u64, head: &PartHead) -> Option<u64> {
        content_length.checked_sub(head.data_offset + self.delimiter.len() as u64 + 4)
    }

    /// Whether the closing delimiter was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode `input`, the next bytes of the body, into `events`.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<Event>) -> Result<(), MultipartError> {
        if self.state == State::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(input);
        loop {
            let progressed = match self.state {
                State::Preamble => self.preamble()?,
                State::AfterDelimiter => self.after_delimiter(events)?,
                State::Head => self.head(events)?,
                State::Data => self.data(events),
                State::Done => {
                    self.buf = Vec::new();
                    return Ok(());
                }
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The body ended: an error unless the form was complete.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            State::Preamble => Err(MultipartError::NoFirstBoundary),
            _ => Err(MultipartError::Truncated),
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        let taken = std::mem::replace(&mut self.buf, rest);
        // The virtual CRLF of the preamble is not part of the body.
        let virtual_crlf = if self.state == State::Preamble && self.consumed == 0 {
            2
        } else {
            0
        };
        self.consumed += (n as u64).saturating_sub(virtual_crlf);
        taken
    }

    fn preamble(&mut self) -> Result<bool, MultipartError> {
        // RFC 7578 senders write no preamble; one is allowed by RFC 2046 but bounded here.
        match find(&self.buf, &self.delimiter) {
            // The bound holds however the body is split.
            Some(at) if at > MAX_PART_HEAD => Err(MultipartError::NoFirstBoundary),
            Some(at) => {
                let n = at + self.delimiter.len();
                self.take(n);
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            None if self.buf.len() > MAX_PART_HEAD + self.delimiter.len() => {
                Err(MultipartError::NoFirstBoundary)
            }
            None => Ok(false),
        }
    }

    fn after_delimiter(&mut self, events: &mut Vec<Event>) -> Result<bool, MultipartError> {
        if self.buf.len() < 2 {
            return Ok(false);
        }
        if self.buf.starts_with(b"--") {
            self.take(2);
            self.state = State::Done;
            events.push(Event::End);
            return Ok(true);
        }
        // Transport padding (RFC 2046) then CRLF.
        let Some(eol) = find(&self.buf, b"\r\n") else {
            return if self.buf.len() > MAX_BOUNDARY + 1 {
                Err(MultipartError::BadPartHead)
            } else {
                Ok(false)
            };
        };
        if eol > MAX_BOUNDARY || !self.buf[..eol].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err(MultipartError::BadPartHead);
        }
        self.take(eol + 2);
        self.state = State::Head;
        Ok(true)
    }

    fn head(&mut self, events: &mut Vec<Event>) -> Result<bool, MultipartError> {
        // An empty head is the empty line alone; else the head ends at the first empty line.
        let end = if self.buf.starts_with(b"\r\n") {
            Some(2)
        } else {
            find(&self.buf, b"\r\n\r\n").map(|at| at + 4)
        };
        let Some(end) = end else {
            return if self.buf.len() > MAX_PART_HEAD {
                Err(MultipartError::BadPartHead)
            } else {
                Ok(false)
            };
        };
        if end > MAX_PART_HEAD {
            return Err(MultipartError::BadPartHead);
        }
        if self.parts == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        let raw = self.take(end);
        let text = std::str::from_utf8(&raw).map_err(|_| MultipartError::BadPartHead)?;
        let mut head = parse_head(text)?;
        head.data_offset = self.consumed;
        self.parts += 1;
        self.state = State::Data;
        events.push(Event::Part(head));
        Ok(true)
    }

    fn data(&mut self, events: &mut Vec<Event>) -> bool {
        match find(&self.buf, &self.delimiter) {
            Some(at) => {
                if at > 0 {
                    let data = self.take(at);
                    events.push(Event::Data(data));
                }
                self.take(self.delimiter.len());
                events.push(Event::PartEnd);
                self.state = State::AfterDelimiter;
                true
            }
            None => {
                // Keep what could be the start of a delimiter split across two feeds.
                let keep = partial_suffix(&self.buf, &self.delimiter);
                let n = self.buf.len() - keep;
                if n > 0 {
                    let data = self.take(n);
                    events.push(Event::Data(data));
                }
                false
            }
        }
    }
}

/// The `boundary` parameter of a `multipart/form-data` media type.
fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let essence = parts.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let b = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| unquote(v.trim()))?;
    let ok = !b.is_empty()
        && b.len() <= MAX_BOUNDARY
        && b.bytes().all(|c| c.is_ascii_graphic() || c == b' ')
        && !b.ends_with(' ');
    ok.then_some(b)
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_owned(),
    }
}

fn parse_head(text: &str) -> Result<PartHead, MultipartError> {
    let mut head = PartHead::default();
    let mut named = false;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(MultipartError::BadPartHead)?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            let mut params = split_params(value);
            let kind = params.next().unwrap_or_default();
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(MultipartError::NoName);
            }
            for p in params {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "name" => {
                        head.name = unquote(v.trim());
                        named = true;
                    }
                    "filename" => head.filename = Some(unquote(v.trim())),
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.trim().to_owned());
        }
    }
    if named {
        Ok(head)
    } else {
        Err(MultipartError::NoName)
    }
}

/// `;`-separated parameters, where a quoted string may hold `;`.
fn split_params(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => {
                    let item = &rest[..i];
                    rest = &rest[i + 1..];
                    return Some(item);
                }
                _ => {}
            }
        }
        let item = rest;
        rest = "";
        Some(item)
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest suffix of `hay` that is a proper prefix of `needle`.
fn partial_suffix(hay: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(hay.len() + 1))
        .rev()
        .find(|&n| hay.ends_with(&needle[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=------------------------abc123";

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, data) in parts {
            out.extend_from_slice(b"--------------------------abc123\r\n");
            match filename {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                         Content-Type: image/jpeg\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--------------------------abc123--\r\n");
        out
    }

    /// Decode `body` fed in pieces of `step` bytes, joining adjacent data events.
    fn decode(body: &[u8], step: usize) -> Result<(Vec<Event>, Decoder), MultipartError> {
        let mut d = Decoder::new(CT)?;
        let mut events = Vec::new();
        for chunk in body.chunks(step) {
            d.feed(chunk, &mut events)?;
        }
        d.finish()?;
        let mut joined: Vec<Event> = Vec::new();
        for e in events {
            match (joined.last_mut(), e) {
                (Some(Event::Data(prev)), Event::Data(more)) => prev.extend(more),
                (_, e) => joined.push(e),
            }
        }
        Ok((joined, d))
    }

    #[test]
    fn text_then_file_decodes_at_every_split() {
        let jpeg: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let body = form(&[
            ("body", None, b"door cam"),
            ("file", Some("snap.jpg"), &jpeg),
        ]);
        for step in [1, 2, 3, 7, 40, 41, 4096, body.len()] {
            let (events, _) = decode(&body, step).expect("decodes");
            assert_eq!(events.len(), 7, "step {step}");
            assert_eq!(events[1], Event::Data(b"door cam".to_vec()), "step {step}");
            let Event::Part(head) = &events[3] else {
                panic!("part at step {step}")
            };
            assert_eq!(head.name, "file");
            assert_eq!(head.filename.as_deref(), Some("snap.jpg"));
            assert_eq!(head.content_type.as_deref(), Some("image/jpeg"));
            assert_eq!(events[4], Event::Data(jpeg.clone()), "step {step}");
            assert_eq!(events[6], Event::End);
        }
    }

    #[test]
    fn file_size_of_the_last_part_is_exact() {
        let jpeg = vec![7u8; 1234];
        let body = form(&[("body", None, b"hi"), ("file", Some("a.jpg"), &jpeg)]);
        let (events, d) = decode(&body, 100).expect("decodes");
        let Event::Part(head) = &events[3] else {
            panic!("part")
        };
        assert_eq!(d.file_size(body.len() as u64, head), Some(1234));
    }

    #[test]
    fn data_that_looks_like_a_delimiter_start_is_kept() {
        let tricky = b"x\r\n--------------------------abc12 not it\r\n-".to_vec();
        let body = form(&[("file", Some("t.bin"), &tricky)]);
        for step in 1..20 {
            let (events, _) = decode(&body, step).expect("decodes");
            assert_eq!(events[1], Event::Data(tricky.clone()), "step {step}");
        }
    }

    #[test]
    fn empty_part_gives_no_data_event() {
        let body = form(&[("body", None, b"")]);
        let (events, _) = decode(&body, 5).expect("decodes");
        assert!(matches!(
            events[..],
            [Event::Part(_), Event::PartEnd, Event::End]
        ));
    }

    #[test]
    fn quoted_parameters_may_hold_semicolons_and_quotes() {
        let head = parse_head(
            "Content-Disposition: form-data; name=\"file\"; filename=\"a;b \\\"c\\\".jpg\"\r\n",
        )
        .expect("head");
        assert_eq!(head.filename.as_deref(), Some("a;b \"c\".jpg"));
    }

    #[test]
    fn boundary_is_read_quoted_or_bare_and_refused_when_missing() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=xyz").as_deref(),
            Some("xyz")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/mixed; boundary=x"), None);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            None
        );
    }

    #[test]
    fn a_body_without_the_boundary_is_refused() {
        assert_eq!(decode(b"", 1).err(), Some(MultipartError::NoFirstBoundary));
        assert_eq!(
            decode(&vec![b'a'; MAX_PART_HEAD + 10], 100).err(),
            Some(MultipartError::NoFirstBoundary)
        );
    }

    #[test]
    fn a_truncated_body_is_refused() {
        let body = form(&[("file", Some("a"), b"12345")]);
        assert_eq!(
            decode(&body[..body.len() - 10], 3).err(),
            Some(MultipartError::Truncated)
        );
    }

    #[test]
    fn a_long_preamble_is_refused_however_the_body_is_split() {
        let mut body = vec![b'p'; MAX_PART_HEAD + 10];
        body.extend(form(&[("body", None, b"hi")]));
        for step in [100, body.len()] {
            assert_eq!(
                decode(&body, step).err(),
                Some(MultipartError::NoFirstBoundary),
                "step {step}"
            );
        }
    }

    #[test]
    fn long_transport_padding_is_refused_however_the_body_is_split() {
        let mut body = b"--------------------------abc123".to_vec();
        body.extend(vec![b' '; MAX_BOUNDARY + 1]);
        body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n");
        body.extend_from_slice(b"--------------------------abc123--\r\n");
        for step in [10, body.len()] {
            assert_eq!(
                decode(&body, step).err(),
                Some(MultipartError::BadPartHead),
                "step {step}"
            );
        }
    }

    #[test]
    fn an_oversized_part_head_is_refused() {
        let mut body = b"--------------------------abc123\r\nX: ".to_vec();
        body.extend(vec![b'a'; MAX_PART_HEAD]);
        assert_eq!(decode(&body, 512).err(), Some(MultipartError::BadPartHead));
    }

    #[test]
    fn a_part_without_name_is_refused() {
        let body = b"--------------------------abc123\r\nContent-Type: text/plain\r\n\r\nx\r\n\
                     --------------------------abc123--\r\n";
        assert_eq!(decode(body, 7).err(), Some(MultipartError::NoName));
    }

    #[test]
    fn too_many_parts_are_refused() {
        let parts: Vec<(&str, Option<&str>, &[u8])> =
            (0..=MAX_PARTS).map(|_| ("x", None, &b"1"[..])).collect();
        assert_eq!(
            decode(&form(&parts), 64).err(),
            Some(MultipartError::TooManyParts)
        );
    }

    #[test]
    fn the_epilogue_is_ignored() {
        let mut body = form(&[("body", None, b"hi")]);
        body.extend_from_slice(b"trailing junk --------------------------abc123");
        let (events, d) = decode(&body, 9).expect("decodes");
        assert!(d.is_done());
        assert_eq!(events.last(), Some(&Event::End));
    }
}
