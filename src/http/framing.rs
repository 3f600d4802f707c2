//! A shadow of HTTP/1 message framing over the bytes hyper reads, to find the smuggling
//! forms hyper hides from the service: a request with both `Content-Length` and
//! `Transfer-Encoding` (RFC 9112 §6.1), and one with the same `Content-Length` twice. hyper
//! reads the first as chunked, drops the length and closes the connection afterwards, and
//! merges the second into one length, so nothing is smuggled; but both should be refused
//! with 400, and by the time they reach the service the extra length is gone.
//!
//! The scanner follows heads, fixed-length bodies and chunked bodies byte by byte in
//! constant memory (a line prefix of [`LINE_PREFIX`] bytes): it keeps only what names a
//! header line and the framing numbers. When it loses track (a line it cannot read, a chunk
//! size that does not fit), it stops: hyper refuses those requests itself, and the scanner
//! never flags a request it is unsure of.

/// How much of a line is kept: enough for `transfer-encoding:` and a 20-digit length.
pub const LINE_PREFIX: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the request line or a header line of request number `index`.
    Head,
    /// Skipping this many bytes of a fixed-length body.
    Body(u64),
    /// In a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF (the `+ 2`).
    ChunkData(u64),
    /// In the trailer section after the last chunk.
    Trailers,
    /// Lost track, or a request was flagged: nothing more to see.
    Done,
}

/// The framing of one connection's requests, fed in order.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    line: [u8; LINE_PREFIX],
    len: usize,
    /// The line went past the prefix.
    long: bool,
    /// The current head's first line is still to come (blank lines before it are allowed).
    request_line: bool,
    content_length: Option<u64>,
    /// `Content-Length` came more than once.
    lengths: bool,
    transfer_encoding: bool,
    /// Requests whose heads were complete.
    index: u64,
    flagged: Option<u64>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            state: State::Head,
            line: [0; LINE_PREFIX],
            len: 0,
            long: false,
            request_line: true,
            content_length: None,
            lengths: false,
            transfer_encoding: false,
            index: 0,
            flagged: None,
        }
    }
}

impl Scanner {
    /// The number (0 for the first) of a request that carried both `Content-Length` and
    /// `Transfer-Encoding`, or `Content-Length` twice, once one did.
    pub fn flagged(&self) -> Option<u64> {
        self.flagged
    }

    /// Follow `bytes`, the next bytes read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Done => return,
                State::Body(n) | State::ChunkData(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkSize,
                        (_, _) => State::ChunkData(left),
                    };
                }
                State::Head | State::ChunkSize | State::Trailers => {
                    let (byte, rest) = (bytes[0], &bytes[1..]);
                    bytes = rest;
                    if byte == b'\n' {
                        self.end_of_line();
                    } else if self.len < LINE_PREFIX {
                        self.line[self.len] = byte;
                        self.len += 1;
                    } else {
                        self.long = true;
                    }
                }
            }
        }
    }

    fn end_of_line(&mut self) {
        let mut line = &self.line[..self.len];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let (line, long) = (line.to_vec(), self.long);
        self.len = 0;
        self.long = false;
        match self.state {
            State::Head => self.head_line(&line, long),
            State::ChunkSize => self.chunk_size(&line, long),
            State::Trailers if line.is_empty() && !long => self.next_request(),
            _ => {}
        }
    }

    fn head_line(&mut self, line: &[u8], long: bool) {
        if self.request_line {
            // Blank lines before a request line are allowed (RFC 9112 §2.2).
            self.request_line = line.is_empty() && !long;
            return;
        }
        if line.is_empty() && !long {
            return self.end_of_head();
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            // A name longer than the prefix is neither header we look for.
            if !long {
                self.state = State::Done;
            }
            return;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) if !long => {
                    self.lengths |= self.content_length.replace(n).is_some();
                }
                _ => self.state = State::Done,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
        }
    }

    fn end_of_head(&mut self) {
        let index = self.index;
        self.index += 1;
        let twice = std::mem::take(&mut self.lengths);
        self.state = match (self.content_length.take(), self.transfer_encoding) {
            (Some(_), true) | (Some(_), false) if twice => {
                self.flagged = Some(index);
                State::Done
            }
            (Some(_), true) => {
                self.flagged = Some(index);
                State::Done
            }
            (None, true) => State::ChunkSize,
            (Some(0) | None, false) => State::Head,
            (Some(n), false) => State::Body(n),
        };
        self.transfer_encoding = false;
        self.request_line = true;
    }

    fn chunk_size(&mut self, line: &[u8], long: bool) {
        let hex = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(trim(hex))
            .ok()
            .filter(|h| !h.is_empty() && h.len() <= 15 && !long)
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        self.state = match size {
            None => State::Done,
            Some(0) => State::Trailers,
            Some(n) => State::ChunkData(n + 2),
        };
    }

    fn next_request(&mut self) {
        self.state = State::Head;
        self.request_line = true;
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag after feeding `input` in pieces of `step` bytes.
    fn flag(input: &[u8], step: usize) -> Option<u64> {
        let mut s = Scanner::default();
        for piece in input.chunks(step) {
            s.feed(piece);
        }
        s.flagged()
    }

    fn every_split(input: &[u8]) -> Option<u64> {
        let whole = flag(input, input.len().max(1));
        for step in 1..input.len().min(64) {
            assert_eq!(flag(input, step), whole, "step {step}");
        }
        whole
    }

    #[test]
    fn length_and_chunked_together_are_flagged_in_either_order() {
        let a = b"POST /msg/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let b = b"POST /msg/x HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length:5\r\n\r\n";
        assert_eq!(every_split(a), Some(0));
        assert_eq!(every_split(b), Some(0));
    }

    #[test]
    fn the_same_length_twice_is_flagged() {
        let input = b"POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nhi";
        assert_eq!(every_split(input), Some(0));
    }

    #[test]
    fn ordinary_requests_are_not_flagged() {
        let input = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\
                      POST /msg/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\
                      POST /msg/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                      2;ext=1\r\nhi\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(every_split(input), None);
    }

    #[test]
    fn a_flagged_request_behind_others_has_its_number() {
        let input = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 49\r\n\r\n\
                      Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n\
                      POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                      17\r\nContent-Length: 1\r\n\r\nxx\r\n0\r\n\r\n\
                      GET /c HTTP/1.1\r\nHost: x\r\n\r\n\
                      POST /d HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        // The look-alike headers in bodies and chunk data are skipped as data.
        assert_eq!(every_split(input), Some(3));
    }

    #[test]
    fn bare_lf_heads_and_leading_blank_lines_are_followed() {
        let input = b"\r\n\nGET / HTTP/1.1\nHost: x\n\nPOST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n";
        assert_eq!(every_split(input), Some(1));
    }

    #[test]
    fn a_line_it_cannot_read_stops_the_scan_without_a_flag() {
        assert_eq!(
            every_split(b"POST / HTTP/1.1\r\nno colon here\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            None
        );
        assert_eq!(
            every_split(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            None
        );
        assert_eq!(
            every_split(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\nTransfer-Encoding: chunked\r\n\r\n"),
            None
        );
    }

    #[test]
    fn long_header_lines_keep_constant_memory() {
        let mut input = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        input.extend(vec![b'a'; 100_000]);
        input.extend_from_slice(b"\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(flag(&input, 4096), Some(0));
        assert!(size_of::<Scanner>() <= 128);
    }
}
