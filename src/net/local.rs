//! `xrelay send` through the running daemon: one `POST /msg/{to}` over its unix socket, so
//! that the command needs no login of its own (a SCRAM key derivation, about a second on a
//! MIPS router).
//!
//! A blocking std `UnixStream` and a hand-written request rather than hyper's client
//! (`client`): that client takes the body as one buffer, and a file must be streamed from
//! disk, not held in memory; the answer we read is the daemon's own, small, with a
//! `Content-Length`, after `Connection: close`. Building the request head and reading the
//! answer are pure functions; [`post`] only moves the bytes.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The longest answer read (the daemon's answers are a short JSON object).
pub const MAX_ANSWER_BYTES: u64 = 16 * 1024;
/// How long the daemon may take to answer: its longest `?wait=1` and some slack.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(75);
/// How long connecting and writing the request may stall.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of the post.
pub enum Body<'a> {
    /// Bytes sent as they are, with this `Content-Type`.
    Bytes(&'a [u8], &'a str),
    /// A file streamed from disk: its reader, length, `Content-Type` and file name; with a
    /// text, both go as `multipart/form-data` (parts `body` and `file`).
    File {
        /// Where the file's bytes come from.
        file: &'a mut dyn Read,
        /// How many bytes it has.
        len: u64,
        /// Its media type.
        content_type: &'a str,
        /// Its file name.
        name: &'a str,
        /// The message text that goes with it.
        text: Option<&'a str>,
    },
}

/// What the daemon answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body (a JSON object with `error` when refused).
    pub body: String,
}

impl Answer {
    /// The daemon's own sentence for a refusal, else the body as it came.
    pub fn reason(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.trim().to_string())
    }
}

/// Why the post did not get an answer.
#[derive(Debug)]
pub enum LocalError {
    /// Nobody answers on the socket (no daemon, or a stale socket file): fall back.
    Unavailable(io::Error),
    /// The daemon took the connection but the exchange failed; the message may or may not
    /// have been queued, so the caller must not send it again on its own.
    Exchange(io::Error),
    /// The answer is not HTTP.
    Garbled,
}

impl fmt::Display for LocalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "the daemon's socket does not answer: {e}"),
            Self::Exchange(e) => write!(f, "the exchange with the daemon failed: {e}"),
            Self::Garbled => write!(f, "the daemon's answer is not HTTP"),
        }
    }
}

impl std::error::Error for LocalError {}

/// The request head for `target` with a body of `len` bytes and `headers` (name, value):
/// values with control characters are dropped (they cannot go into a header).
pub fn head(target: &str, len: u64, headers: &[(&str, &str)]) -> String {
    let mut h = format!("POST {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        if !value.chars().any(char::is_control) {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    h.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    h
}

/// Read an answer: the status line's code and the body after the head.
pub fn parse_answer(raw: &[u8]) -> Result<Answer, LocalError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(LocalError::Garbled)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| LocalError::Garbled)?;
    let status_line = head.lines().next().ok_or(LocalError::Garbled)?;
    let mut words = status_line.split(' ');
    let status = match (words.next(), words.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => {
            code.parse::<u16>().map_err(|_| LocalError::Garbled)?
        }
        _ => return Err(LocalError::Garbled),
    };
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&raw[end + 4..]).into_owned(),
    })
}

/// Post `body` to `target` (path and query) on the daemon's socket at `socket`.
pub fn post(
    socket: &Path,
    target: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> Result<Answer, LocalError> {
    let mut s = UnixStream::connect(socket).map_err(LocalError::Unavailable)?;
    let ex = LocalError::Exchange;
    s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(ex)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(ex)?;
    let written = write_request(&mut s, target, headers, body);
    let mut raw = Vec::new();
    // The daemon may answer (e.g. 413) before reading the whole body and close: its
    // answer is what counts, so read it even if writing failed half-way.
    let read = (&mut s).take(MAX_ANSWER_BYTES).read_to_end(&mut raw);
    match (parse_answer(&raw), written, read) {
        (Ok(answer), _, _) => Ok(answer),
        (Err(_), Err(e), _) | (Err(_), Ok(()), Err(e)) => Err(LocalError::Exchange(e)),
        (Err(e), Ok(()), Ok(_)) => Err(e),
    }
}

/// Write the request head and `body`.
fn write_request(
    s: &mut UnixStream,
    target: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> io::Result<()> {
    match body {
        Body::Bytes(bytes, content_type) => {
            let mut all = headers.to_vec();
            all.push(("Content-Type", content_type));
            s.write_all(head(target, bytes.len() as u64, &all).as_bytes())?;
            s.write_all(bytes)
        }
        Body::File {
            file,
            len,
            content_type,
            name,
            text,
        } => {
            let mut all = headers.to_vec();
            let (pre, post, multipart) = match text {
                Some(text) => {
                    let (pre, post, boundary) = multipart(text, name, content_type);
                    (
                        pre,
                        post,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                }
                None => (String::new(), String::new(), String::new()),
            };
            if text.is_some() {
                all.push(("Content-Type", &multipart));
            } else {
                all.push(("Content-Type", content_type));
                all.push(("Filename", name));
            }
            let total = pre.len() as u64 + len + post.len() as u64;
            s.write_all(head(target, total, &all).as_bytes())?;
            s.write_all(pre.as_bytes())?;
            let sent = io::copy(&mut file.take(len), s)?;
            if sent != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was sent",
                ));
            }
            s.write_all(post.as_bytes())
        }
    }
}

/// What goes before and after the file's bytes in a `multipart/form-data` body with the
/// text as part `body`, and the boundary (random: it must not occur in the file).
fn multipart(text: &str, name: &str, content_type: &str) -> (String, String, String) {
    // Without OS randomness the boundary is fixed; a file holding it is still unlikely.
    let r = crate::secret::random::<12>().unwrap_or_default();
    let boundary: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let boundary = format!("xrelay-{boundary}");
    let name: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect();
    let pre = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    );
    let post = format!("\r\n--{boundary}--\r\n");
    (pre, post, boundary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jid_with_a_resource_is_encoded_as_one_path_segment() {
        assert_eq!(
            crate::xmpp::jid::uri_escape("a@b.org/phone 1"),
            "a@b.org%2Fphone%201"
        );
    }

    #[test]
    fn a_header_value_with_a_line_break_is_left_out() {
        let h = head("/msg/x", 3, &[("Filename", "a\r\nX-Evil: 1"), ("A", "b")]);
        assert!(!h.contains("Evil"), "{h}");
        assert!(h.contains("A: b\r\n") && h.ends_with("Content-Length: 3\r\n\r\n"));
    }

    #[test]
    fn an_answer_gives_its_status_and_error_sentence() {
        let a =
            parse_answer(b"HTTP/1.1 503 Service Unavailable\r\nX: y\r\n\r\n{\"error\":\"full\"}")
                .unwrap();
        assert_eq!((a.status, a.reason().as_str()), (503, "full"));
    }

    #[test]
    fn bytes_that_are_not_http_are_a_garbled_answer() {
        assert!(matches!(parse_answer(b"hello"), Err(LocalError::Garbled)));
        assert!(matches!(
            parse_answer(b"SSH-2.0\r\n\r\n"),
            Err(LocalError::Garbled)
        ));
    }
}
