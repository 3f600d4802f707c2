//! The HTTP client of the webhook and of uploads: one request per connection
//! (`Connection: close`) over hyper's HTTP/1 client connection, on a smol TCP or
//! futures-rustls stream. hyper reads HTTP/1.0
//! and 1.1 answers with any body framing (Content-Length, chunked, or until the server
//! closes, as Python's `http.server` and CGI gateways do), skips interim 1xx answers and
//! follows no redirects; the head and the body are bounded here.

use crate::net::rt;
use crate::url::Url;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes};
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::Method;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncWrite};
use std::fmt;
use std::pin::Pin;

/// The longest response head (status line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most response headers accepted.
pub const MAX_HEADERS: usize = 64;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, at most the caller's limit.
    pub body: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ClientError {
    /// The request could not be built (a header value that is not printable ASCII).
    Request(String),
    /// Writing the request or reading the answer failed, or the answer is not HTTP (its
    /// head too large included).
    Http(hyper::Error),
    /// The body is longer than the caller's limit.
    TooLarge(usize),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(why) => write!(f, "the request could not be built: {why}"),
            Self::Http(e) => write!(f, "{e}"),
            Self::TooLarge(max) => write!(f, "the answer is larger than {max} bytes"),
        }
    }
}

impl std::error::Error for ClientError {}

/// POST `body` with `headers` to `url` over `stream` and read the answer, whose body may
/// be at most `max_body` bytes.
pub async fn post<S>(
    stream: S,
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
    max_body: usize,
) -> Result<Response, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = boxed(Full::new(Bytes::copy_from_slice(body)));
    send(stream, Method::POST, url, headers, body, max_body).await
}

/// A request body of any kind. One boxed type, so that hyper's client is compiled once for
/// the webhook's buffers and the uploads' streams (each body type costs a copy of it).
/// (Not `Send`: everything runs on one thread, and an upload's body shares its progress
/// through an `Rc`.)
pub type RequestBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError>>>;

/// A body's error, as hyper takes it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `body` as a [`RequestBody`].
pub fn boxed<B>(body: B) -> RequestBody
where
    B: Body<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    Box::pin(body.map_err(Into::into))
}

/// Send one request with `method` and a `body` that hyper pulls frame by frame (an upload
/// streams through without being held), and read the answer, whose body may be at most
/// `max_body` bytes.
pub async fn send<S>(
    stream: S,
    method: Method,
    url: &Url,
    headers: &[(&str, &str)],
    body: RequestBody,
    max_body: usize,
) -> Result<Response, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url.target())
        .header(HOST, url.host_header());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .header(CONNECTION, "close")
        .body(body)
        .map_err(|e| ClientError::Request(e.to_string()))?;
    let (mut sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .handshake::<_, RequestBody>(rt::Io(stream))
        .await
        .map_err(ClientError::Http)?;
    let exchange = async {
        let res = sender.send_request(req).await.map_err(ClientError::Http)?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        let body = read_limited(res.into_body(), max_body).await?;
        Ok(Response {
            status,
            content_type,
            body,
        })
    };
    // The connection moves the bytes; it ends with the answer's body (or an error).
    let driver = async {
        match conn.await {
            Err(e) => Err(ClientError::Http(e)),
            Ok(()) => std::future::pending().await,
        }
    };
    exchange.or(driver).await
}

/// A body of at most `max` bytes, refused as soon as it declares or brings more.
async fn read_limited<B>(mut body: B, max: usize) -> Result<Vec<u8>, ClientError>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    if body.size_hint().lower() > max as u64 {
        return Err(ClientError::TooLarge(max));
    }
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(ClientError::Http)?.into_data() {
            if out.len().saturating_add(data.len()) > max {
                return Err(ClientError::TooLarge(max));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    use smol::net::{TcpListener, TcpStream};

    /// POST to a one-shot server that answers `answer` (then closes), with body limit `max`.
    fn exchange(answer: &'static [u8], max: usize) -> (Result<Response, ClientError>, Vec<u8>) {
        smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = async {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = vec![0u8; 4096];
                let n = s.read(&mut got).await.unwrap();
                got.truncate(n);
                let _ = s.write_all(answer).await;
                let _ = s.close().await;
                got
            };
            let url = Url::parse(&format!("http://127.0.0.1:{port}/in?x=1")).unwrap();
            let client = async {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                post(
                    tcp,
                    &url,
                    &[("Content-Type", "application/json")],
                    b"{}",
                    max,
                )
                .await
            };
            smol::future::zip(client, server).await
        })
    }

    #[test]
    fn a_content_length_answer_is_read_and_the_request_closes_the_connection() {
        let (res, req) = exchange(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\nabcd",
            100,
        );
        let res = res.unwrap();
        assert_eq!((res.status, res.body.as_slice()), (200, &b"abcd"[..]));
        assert_eq!(res.content_type.as_deref(), Some("application/json"));
        let req = String::from_utf8(req).unwrap().to_ascii_lowercase();
        assert!(req.starts_with("post /in?x=1 http/1.1\r\n"), "{req}");
        assert!(req.contains("host: 127.0.0.1:"), "{req}");
        assert!(req.contains("connection: close\r\n"), "{req}");
        assert!(req.ends_with("content-length: 2\r\n\r\n{}"), "{req}");
    }

    #[test]
    fn an_http_1_0_answer_framed_by_close_is_read_to_the_end() {
        let (res, _) = exchange(
            b"HTTP/1.0 200 Script output follows\r\nContent-Type: text/plain\r\n\r\nuntil close",
            100,
        );
        assert_eq!(res.unwrap().body, b"until close");
    }

    #[test]
    fn a_chunked_answer_after_an_interim_one_is_read() {
        let (res, _) = exchange(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
            100,
        );
        assert_eq!(res.unwrap().body, b"Wikipedia");
    }

    #[test]
    fn bodies_over_the_limit_are_refused_whatever_the_framing() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\n01234567890",
        ] {
            let (res, _) = exchange(answer, 10);
            assert!(matches!(res, Err(ClientError::TooLarge(10))), "{res:?}");
        }
    }

    #[test]
    fn malformed_truncated_and_oversized_heads_are_errors() {
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 10));
        let huge: &'static [u8] = Box::leak(huge.into_boxed_slice());
        for answer in [
            &b"SMTP 220 hello\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            huge,
        ] {
            let (res, _) = exchange(answer, 100);
            assert!(matches!(res, Err(ClientError::Http(_))), "{res:?}");
        }
    }
}
