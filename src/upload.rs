//! The upload side below HTTP (XEP-0363): how many uploads run, the server's upload service
//! and the PUT's TLS settings once found, and the PUT of a file to its slot. `http::upload`
//! turns a posted file into a slot and a PUT; `xrelay send --file` PUTs a file from disk.

use crate::net::http_client as client;
use crate::net::tls;
use crate::url::Url;
use crate::xmpp::upload::{Service, Slot, SlotError};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::Method;
use rustls::ClientConfig;
use smol::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The longest answer body read from the upload service (it is not used).
const MAX_PUT_ANSWER: usize = 4096;
/// How much of a file is read from disk (and sent) at once by `xrelay send --file`.
const FILE_CHUNK: usize = 16 * 1024;

/// Upload state shared by the HTTP tasks.
#[derive(Debug, Default)]
pub struct Uploads {
    running: Cell<usize>,
    service: RefCell<Option<Service>>,
    /// The PUT's TLS settings (the webhook's trust), built on first use.
    tls: RefCell<Option<Arc<ClientConfig>>>,
}

/// One running upload; dropping it frees its place.
#[derive(Debug)]
pub struct Permit<'a>(&'a Uploads);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get().saturating_sub(1));
    }
}

impl Uploads {
    /// A place for one upload, if fewer than `limit` run.
    pub fn start(&self, limit: usize) -> Option<Permit<'_>> {
        if self.running.get() >= limit {
            return None;
        }
        self.running.set(self.running.get() + 1);
        Some(Permit(self))
    }

    /// The server's upload service, once found.
    pub fn service(&self) -> Option<Service> {
        self.service.borrow().clone()
    }

    /// Remember the service found, or forget it (`None`) after it said it moved.
    pub fn remember_service(&self, service: Option<Service>) {
        self.service.replace(service);
    }

    /// The PUT's TLS settings, once built.
    pub fn tls(&self) -> Option<Arc<ClientConfig>> {
        self.tls.borrow().clone()
    }

    /// Keep the PUT's TLS settings for the next upload.
    pub fn remember_tls(&self, config: Arc<ClientConfig>) {
        self.tls.replace(Some(config));
    }
}

/// Why a PUT failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutError {
    /// The slot's PUT URL is not https.
    NotHttps,
    /// No connection, TLS, or HTTP exchange.
    Failed(String),
    /// The upload service answered with this non-2xx status.
    Status(u16),
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotHttps => SlotError::BadUrl.fmt(f),
            Self::Failed(e) => write!(f, "the upload to the server failed: {e}"),
            Self::Status(s) => {
                write!(f, "the upload service answered the PUT with status {s}")
            }
        }
    }
}

impl std::error::Error for PutError {}

/// PUT `size` bytes of `body` to the slot over HTTPS with `tls`, with the slot's headers.
/// Only a 2xx answer is success.
pub async fn put(
    tls: Arc<ClientConfig>,
    slot: &Slot,
    size: u64,
    media_type: &str,
    body: client::RequestBody,
) -> Result<(), PutError> {
    let url = Url::parse(&slot.put).map_err(|e| PutError::Failed(e.to_string()))?;
    if !url.https {
        return Err(PutError::NotHttps);
    }
    let host = url.connect_host();
    let tcp = TcpStream::connect((host, url.port_or_default()))
        .await
        .map_err(|e| PutError::Failed(format!("cannot connect: {e}")))?;
    let stream = tls::connect(tls, host, tcp)
        .await
        .map_err(|e| PutError::Failed(e.to_string()))?;
    let length = size.to_string();
    let mut headers = vec![
        ("Content-Type", media_type),
        ("Content-Length", length.as_str()),
        ("User-Agent", concat!("xrelay/", env!("CARGO_PKG_VERSION"))),
    ];
    headers.extend(slot.headers.iter().map(|(k, v)| (*k, v.as_str())));
    let res = client::send(stream, Method::PUT, &url, &headers, body, MAX_PUT_ANSWER)
        .await
        .map_err(|e| PutError::Failed(e.to_string()))?;
    if (200..300).contains(&res.status) {
        Ok(())
    } else {
        Err(PutError::Status(res.status))
    }
}

/// A file on disk as the PUT's body (`xrelay send --file`): exactly `size` bytes, read in
/// `FILE_CHUNK` pieces as the PUT takes them. The reads block; the command does nothing
/// else meanwhile, and a local file answers at once.
#[derive(Debug)]
pub struct DiskFile {
    file: std::fs::File,
    size: u64,
    sent: u64,
}

impl DiskFile {
    /// The body for `file`, which has `size` bytes.
    pub fn new(file: std::fs::File, size: u64) -> Self {
        Self {
            file,
            size,
            sent: 0,
        }
    }
}

impl Body for DiskFile {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let left = self.size - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let mut buf = vec![0u8; FILE_CHUNK.min(usize::try_from(left).unwrap_or(FILE_CHUNK))];
        let n = match self.file.read(&mut buf) {
            Ok(0) => {
                return Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was sent",
                ))))
            }
            Ok(n) => n,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        buf.truncate(n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size - self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_freed_on_drop() {
        let uploads = Uploads::default();
        let first = uploads.start(1).expect("a place");
        assert!(uploads.start(1).is_none());
        drop(first);
        assert!(uploads.start(1).is_some());
    }
}
