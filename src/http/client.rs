//! A minimal HTTP/1.x client for one request per connection (the webhook's): the request is
//! written with `Connection: close`, and [`ResponseReader`], a sans-I/O parser, reads the
//! answer of an HTTP/1.0 or 1.1 server with any of the three body framings (Content-Length,
//! chunked, or until the server closes), never holding more than its bounds.
//!
//! Small webhook endpoints are often HTTP/1.0 (Python's `http.server`, CGI gateways) and
//! frame their body by closing the connection, which is why this does not lean on a
//! client that only speaks HTTP/1.1.

use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::fmt;

/// The longest response head (status line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most response headers accepted.
pub const MAX_HEADERS: usize = 64;
/// The longest chunk-size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The status line or a header is not HTTP.
    Malformed(String),
    /// The head is longer than [`MAX_HEAD_BYTES`] or has more than [`MAX_HEADERS`] headers.
    HeadTooLarge,
    /// The body is longer than the caller's limit.
    TooLarge(usize),
    /// A chunk size line of a chunked body is not valid.
    BadChunk,
    /// The connection ended before the response was complete.
    Truncated,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "not an HTTP response: {why}"),
            ResponseError::HeadTooLarge => write!(
                f,
                "the response head is longer than {MAX_HEAD_BYTES} bytes or has more than \
                 {MAX_HEADERS} headers"
            ),
            ResponseError::TooLarge(max) => write!(f, "the answer is larger than {max} bytes"),
            ResponseError::BadChunk => f.write_str("a chunk of the chunked body is malformed"),
            ResponseError::Truncated => f.write_str("the connection ended mid-response"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, at most the reader's limit.
    pub body: Vec<u8>,
}

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// After this many more bytes.
    Length(usize),
    /// Chunked: reading a size line.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk left, then its CRLF.
    ChunkData(usize),
    /// Chunked: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: trailer lines until an empty one.
    Trailers,
    /// When the server closes the connection.
    Close,
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        status: u16,
        content_type: Option<String>,
        framing: Framing,
    },
}

/// Reads one response from bytes as they arrive; pure, so every framing and error path is
/// tested with byte transcripts.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    /// Bytes not yet consumed (head, or a partial chunk line).
    buf: Vec<u8>,
    body: Vec<u8>,
    max_body: usize,
}

/// What feeding bytes led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    More,
    /// The response is complete.
    Done(Response),
}

impl ResponseReader {
    /// A reader whose body may be at most `max_body` bytes.
    pub fn new(max_body: usize) -> ResponseReader {
        ResponseReader {
            state: State::Head,
            buf: Vec::new(),
            body: Vec::new(),
            max_body,
        }
    }

    /// Take `data` (which may be empty only at end of input; see [`Self::finish`]).
    pub fn feed(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.state {
                State::Head => {
                    if !self.parse_head()? {
                        return Ok(Progress::More);
                    }
                }
                State::Body { framing, .. } => {
                    let framing = *framing;
                    if framing == Framing::Length(0) {
                        return Ok(Progress::Done(self.take()));
                    }
                    match self.step_body(framing)? {
                        Some(next) => {
                            if let State::Body { framing, .. } = &mut self.state {
                                *framing = next;
                            }
                        }
                        None => return Ok(Progress::More),
                    }
                }
            }
        }
    }

    /// The connection ended: the response, if the framing allows it to end here.
    pub fn finish(mut self) -> Result<Response, ResponseError> {
        match &self.state {
            State::Body {
                framing: Framing::Close,
                ..
            } => Ok(self.take()),
            _ => Err(ResponseError::Truncated),
        }
    }

    fn take(&mut self) -> Response {
        let (status, content_type) = match &mut self.state {
            State::Body {
                status,
                content_type,
                ..
            } => (*status, content_type.take()),
            State::Head => (0, None),
        };
        Response {
            status,
            content_type,
            body: std::mem::take(&mut self.body),
        }
    }

    /// Parse the head if it is all there; `Ok(false)`: not yet.
    fn parse_head(&mut self) -> Result<bool, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let used = match res.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD_BYTES => {
                return Err(ResponseError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadTooLarge),
            Err(e) => return Err(ResponseError::Malformed(e.to_string())),
        };
        if used > MAX_HEAD_BYTES {
            return Err(ResponseError::HeadTooLarge);
        }
        let status = res.code.unwrap_or(0);
        let header = |name: &str| {
            res.headers
                .iter()
                .rev()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let content_type = header("Content-Type");
        let chunked = header("Transfer-Encoding").is_some_and(|te| {
            te.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        });
        let length = header("Content-Length");
        self.buf.drain(..used);
        if (100..200).contains(&status) {
            // An interim answer (100 Continue, 103 Early Hints): the real one follows.
            return Ok(true);
        }
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else if chunked {
            Framing::ChunkSize
        } else if let Some(len) = length {
            let n: usize = len
                .parse()
                .map_err(|_| ResponseError::Malformed(format!("Content-Length {len:?}")))?;
            if n > self.max_body {
                return Err(ResponseError::TooLarge(self.max_body));
            }
            Framing::Length(n)
        } else {
            Framing::Close
        };
        self.state = State::Body {
            status,
            content_type,
            framing,
        };
        Ok(true)
    }

    /// Consume what `framing` can from the buffer; `None`: more bytes are needed.
    fn step_body(&mut self, framing: Framing) -> Result<Option<Framing>, ResponseError> {
        match framing {
            Framing::Length(n) | Framing::ChunkData(n) => {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let take = n.min(self.buf.len());
                self.push_body(take)?;
                Ok(Some(match framing {
                    Framing::Length(_) => Framing::Length(n - take),
                    _ if take == n => Framing::ChunkEnd,
                    _ => Framing::ChunkData(n - take),
                }))
            }
            Framing::Close => {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.push_body(self.buf.len())?;
                Ok(None)
            }
            Framing::ChunkSize => {
                let Some(line) = self.line()? else {
                    return Ok(None);
                };
                let size = line.split(';').next().unwrap_or_default().trim();
                let n = usize::from_str_radix(size, 16).map_err(|_| ResponseError::BadChunk)?;
                if n == 0 {
                    Ok(Some(Framing::Trailers))
                } else if self.body.len().saturating_add(n) > self.max_body {
                    Err(ResponseError::TooLarge(self.max_body))
                } else {
                    Ok(Some(Framing::ChunkData(n)))
                }
            }
            Framing::ChunkEnd => match self.line()? {
                None => Ok(None),
                Some(l) if l.is_empty() => Ok(Some(Framing::ChunkSize)),
                Some(_) => Err(ResponseError::BadChunk),
            },
            Framing::Trailers => match self.line()? {
                None => Ok(None),
                Some(l) if l.is_empty() => Ok(Some(Framing::Length(0))),
                Some(_) => Ok(Some(Framing::Trailers)),
            },
        }
    }

    fn push_body(&mut self, n: usize) -> Result<(), ResponseError> {
        if self.body.len().saturating_add(n) > self.max_body {
            return Err(ResponseError::TooLarge(self.max_body));
        }
        self.body.extend(self.buf.drain(..n));
        Ok(())
    }

    /// One CRLF- (or LF-) terminated line from the buffer, without its end.
    fn line(&mut self) -> Result<Option<String>, ResponseError> {
        let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(ResponseError::BadChunk);
            }
            return Ok(None);
        };
        if end > MAX_CHUNK_LINE {
            return Err(ResponseError::BadChunk);
        }
        let raw: Vec<u8> = self.buf.drain(..=end).collect();
        let text = std::str::from_utf8(&raw[..end]).map_err(|_| ResponseError::BadChunk)?;
        Ok(Some(text.trim_end_matches('\r').to_string()))
    }
}

/// A POST request head and body for one connection.
pub fn post(
    host_header: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(
        format!("POST {path_and_query} HTTP/1.1\r\nHost: {host_header}\r\n").as_bytes(),
    );
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// Writing the request or reading the answer failed.
    Io(std::io::Error),
    /// The answer is not an acceptable response.
    Response(ResponseError),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Io(e) => write!(f, "{e}"),
            ExchangeError::Response(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// Write `request` to `stream` and read one response with a body of at most `max_body`.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    max_body: usize,
) -> Result<Response, ExchangeError> {
    stream.write_all(request).await.map_err(ExchangeError::Io)?;
    stream.flush().await.map_err(ExchangeError::Io)?;
    let mut reader = ResponseReader::new(max_body);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = stream.read(&mut buf).await.map_err(ExchangeError::Io)?;
        if n == 0 {
            return reader.finish().map_err(ExchangeError::Response);
        }
        match reader.feed(&buf[..n]).map_err(ExchangeError::Response)? {
            Progress::More => {}
            Progress::Done(res) => return Ok(res),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in pieces of `step` bytes, then end the input.
    fn read(input: &[u8], step: usize, max: usize) -> Result<Response, ResponseError> {
        let mut r = ResponseReader::new(max);
        for piece in input.chunks(step) {
            if let Progress::Done(res) = r.feed(piece)? {
                return Ok(res);
            }
        }
        r.finish()
    }

    fn every_split(input: &[u8], max: usize) -> Result<Response, ResponseError> {
        let whole = read(input, input.len().max(1), max);
        for step in 1..8 {
            assert_eq!(
                read(input, step, max),
                whole,
                "split into {step}-byte pieces"
            );
        }
        whole
    }

    #[test]
    fn all_three_framings_and_both_versions() {
        let res = every_split(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\nabcdEXTRA",
            100,
        )
        .unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(res.content_type.as_deref(), Some("application/json"));
        assert_eq!(res.body, b"abcd");

        let res = every_split(
            b"HTTP/1.0 200 Script output follows\r\nContent-Type: text/plain\r\n\r\nuntil close",
            100,
        )
        .unwrap();
        assert_eq!(res.body, b"until close");

        let res = every_split(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(res.body, b"Wikipedia in\r\n\r\nchunks.");
        assert!(res.content_type.is_none());
    }

    #[test]
    fn interim_and_bodiless_answers() {
        let res = every_split(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            10,
        )
        .unwrap();
        assert_eq!(res.status, 204);
        assert!(res.body.is_empty());
        let res = every_split(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", 10).unwrap();
        assert_eq!(res.status, 202);
    }

    #[test]
    fn bodies_over_the_limit_are_refused_whatever_the_framing() {
        let declared = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(every_split(declared, 10), Err(ResponseError::TooLarge(10)));
        let chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n";
        assert_eq!(every_split(chunk, 10), Err(ResponseError::TooLarge(10)));
        let close = b"HTTP/1.0 200 OK\r\n\r\n01234567890";
        assert_eq!(every_split(close, 10), Err(ResponseError::TooLarge(10)));
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n";
        assert_eq!(every_split(huge, 10), Err(ResponseError::BadChunk));
    }

    #[test]
    fn malformed_and_truncated_answers() {
        assert!(matches!(
            every_split(b"SMTP 220 hello\r\n\r\n", 10),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            every_split(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 10),
            Err(ResponseError::Malformed(_))
        ));
        assert_eq!(
            every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", 10),
            Err(ResponseError::Truncated)
        );
        assert_eq!(
            every_split(b"HTTP/1.1 200 OK\r\nContent-", 10),
            Err(ResponseError::Truncated)
        );
        assert_eq!(
            every_split(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                10
            ),
            Err(ResponseError::BadChunk)
        );
        assert_eq!(
            every_split(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
                10
            ),
            Err(ResponseError::BadChunk)
        );
        assert_eq!(
            every_split(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
                10
            ),
            Err(ResponseError::Truncated)
        );
    }

    #[test]
    fn heads_are_bounded() {
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        assert_eq!(read(&long, 4096, 10), Err(ResponseError::HeadTooLarge));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend(format!("X-{i}: 1\r\n").bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(read(&many, 4096, 10), Err(ResponseError::HeadTooLarge));
    }

    #[test]
    fn requests_close_the_connection_and_carry_the_length() {
        let req = post(
            "h:8080",
            "/p?q=1",
            &[("Content-Type", "application/json")],
            b"{}",
        );
        assert_eq!(
            req,
            b"POST /p?q=1 HTTP/1.1\r\nHost: h:8080\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }
}
