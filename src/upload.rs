//! Files posted to `/msg`: the shell around [`crate::xmpp::upload`]. It finds the server's
//! XEP-0363 service (once per process, again after a refusal that says it moved), asks it for
//! a slot, and bounds how many uploads run at once. The PUT is the HTTP side's.

use crate::app::App;
use crate::http::body::BodyError;
use crate::iqwait::WaitError;
use crate::xmpp::jid::Jid;
use crate::xmpp::tls;
use crate::xmpp::upload::{self, Service, Slot, SlotError};
use crate::xmpp::xml::Element;
use rustls::ClientConfig;
use smol::future::FutureExt;
use smol::Timer;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a file was not uploaded; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// `upload.concurrency` uploads run already.
    Busy,
    /// The file is larger than `upload.max_bytes` or the service's own limit.
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit it is over.
        max: u64,
    },
    /// The server lists no XEP-0363 service.
    NoService,
    /// The service refused the slot, or gave an unusable one.
    Slot(SlotError),
    /// The service, or the PUT, did not answer in time.
    Timeout,
    /// Too many iqs wait already, or the outbox is full.
    Queue(String),
    /// The PUT failed (connection, TLS, or a non-2xx status).
    Put(String),
    /// The request body is not a usable upload (multipart errors, wrong length).
    Body(String),
    /// A raw body came without `Content-Length`: its size must be known before the slot.
    LengthRequired,
    /// The body fell below `http.min_body_rate`.
    SlowBody,
    /// The client closed the connection before the whole file arrived.
    ClientGone,
    /// The recipient, type or text of the message is not valid.
    Message(BodyError),
    /// The upload service answered the PUT with this non-2xx status.
    PutStatus(u16),
}

impl UploadError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            UploadError::Busy | UploadError::Queue(_) => 503,
            UploadError::TooLarge { .. } => 413,
            UploadError::Slot(e) if e.is_too_large() => 413,
            UploadError::NoService | UploadError::Slot(_) | UploadError::Put(_) => 502,
            UploadError::Timeout => 504,
            UploadError::Body(_) | UploadError::ClientGone => 400,
            UploadError::LengthRequired => 411,
            UploadError::SlowBody => 408,
            UploadError::Message(e) => e.status(),
            UploadError::PutStatus(413) => 413,
            UploadError::PutStatus(_) => 502,
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::Busy => f.write_str("another upload is running; try again later"),
            UploadError::TooLarge { size, max } => {
                write!(f, "the file has {size} bytes, more than the {max} allowed")
            }
            UploadError::NoService => {
                f.write_str("the XMPP server offers no file upload service (XEP-0363)")
            }
            UploadError::Slot(e) => e.fmt(f),
            UploadError::Timeout => f.write_str("the upload did not complete in time"),
            UploadError::Queue(e) => f.write_str(e),
            UploadError::Put(e) => write!(f, "the upload to the server failed: {e}"),
            UploadError::Body(e) => f.write_str(e),
            UploadError::LengthRequired => {
                f.write_str("a file needs a Content-Length (its size goes into the slot request)")
            }
            UploadError::SlowBody => f.write_str("the file did not arrive fast enough"),
            UploadError::ClientGone => f.write_str("the client closed the connection"),
            UploadError::Message(e) => e.fmt(f),
            UploadError::PutStatus(s) => {
                write!(f, "the upload service answered the PUT with status {s}")
            }
        }
    }
}

impl std::error::Error for UploadError {}

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
    pub fn start(&self, limit: usize) -> Result<Permit<'_>, UploadError> {
        if self.running.get() >= limit {
            return Err(UploadError::Busy);
        }
        self.running.set(self.running.get() + 1);
        Ok(Permit(self))
    }
}

/// The TLS settings of the PUT: the trust the webhook uses (`xmpp.ca_file`, else the
/// built-in roots), read once.
pub fn tls(app: &App) -> Result<Arc<ClientConfig>, UploadError> {
    if let Some(c) = app.uploads.tls.borrow().clone() {
        return Ok(c);
    }
    let trust = crate::webhook::trust(app.cfg.xmpp.ca_file.as_deref());
    let config = tls::client_config(&trust).map_err(|e| UploadError::Put(e.to_string()))?;
    app.uploads.tls.replace(Some(config.clone()));
    Ok(config)
}

/// Refuse a file over `upload.max_bytes` before anything is asked of the server.
pub fn check_size(app: &App, size: u64) -> Result<(), UploadError> {
    check_size_with(app.cfg.upload.max_bytes, size)
}

/// Refuse a file over `max` bytes.
pub fn check_size_with(max: u64, size: u64) -> Result<(), UploadError> {
    if size > max {
        return Err(UploadError::TooLarge { size, max });
    }
    Ok(())
}

/// A slot for a file of `size` bytes, within `upload.timeout`.
pub async fn slot(
    app: &App,
    filename: &str,
    size: u64,
    content_type: &str,
) -> Result<Slot, UploadError> {
    let work = async {
        let service = service(app).await?;
        if let Some(max) = service.max_file_size.filter(|m| size > *m) {
            return Err(UploadError::TooLarge { size, max });
        }
        let id = app.next_id();
        let request = upload::slot_request(&id, &service.jid, filename, size, content_type);
        let reply = iq(app, request, &id, &service.jid).await?;
        upload::parse_slot(&reply).map_err(|e| {
            if matches!(&e, SlotError::Refused { condition, .. }
                if condition == "item-not-found" || condition == "service-unavailable")
            {
                // The component went away: look again next time.
                app.uploads.service.replace(None);
            }
            UploadError::Slot(e)
        })
    };
    let timer = async {
        Timer::after(app.cfg.upload.timeout).await;
        Err(UploadError::Timeout)
    };
    work.or(timer).await
}

/// The server's upload service: remembered, or found through disco#items and disco#info.
async fn service(app: &App) -> Result<Service, UploadError> {
    if let Some(s) = app.uploads.service.borrow().clone() {
        return Ok(s);
    }
    let server = app.cfg.xmpp.jid.domain().to_owned();
    let id = app.next_id();
    let items = iq(app, upload::items_request(&id, &server), &id, &server).await?;
    // The server itself may offer the service; else one of its components.
    let candidates = std::iter::once(server.clone()).chain(upload::item_jids(&items));
    for jid in candidates {
        let id = app.next_id();
        let Ok(info) = iq(app, upload::info_request(&id, &jid), &id, &jid).await else {
            continue;
        };
        if let Some(service) = upload::service_from_info(&jid, &info) {
            app.uploads.service.replace(Some(service.clone()));
            return Ok(service);
        }
    }
    Err(UploadError::NoService)
}

/// Send an iq and wait for its reply (bounded by the caller's timer).
async fn iq(app: &App, stanza: Element, id: &str, to: &str) -> Result<Element, UploadError> {
    let from = Jid::parse(to).map_err(|e| UploadError::Queue(e.to_string()))?;
    let waiting = app.iq_waits.wait(id, from).map_err(|e| match e {
        WaitError::Full | WaitError::Duplicate => UploadError::Queue(e.to_string()),
    })?;
    app.outbox
        .push(&stanza, false)
        .map_err(|e| UploadError::Queue(e.to_string()))?;
    let reply = waiting.reply().await.ok_or(UploadError::Timeout)?;
    Ok(reply)
}

/// How long a caller is asked to wait when uploads are busy.
pub const RETRY_AFTER_BUSY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_freed_on_drop() {
        let uploads = Uploads::default();
        let first = uploads.start(1).expect("a place");
        assert_eq!(uploads.start(1).err(), Some(UploadError::Busy));
        drop(first);
        assert!(uploads.start(1).is_ok());
    }

    #[test]
    fn each_error_has_its_status() {
        let too_large = UploadError::TooLarge { size: 2, max: 1 };
        assert_eq!(too_large.status(), 413);
        assert!(too_large.to_string().contains("2 bytes"));
        let refused_large = UploadError::Slot(SlotError::Refused {
            condition: "not-acceptable".into(),
            text: None,
            max_file_size: Some(1),
        });
        assert_eq!(refused_large.status(), 413);
        let refused = UploadError::Slot(SlotError::NoSlot);
        assert_eq!(refused.status(), 502);
        assert_eq!(UploadError::Busy.status(), 503);
        assert_eq!(UploadError::Timeout.status(), 504);
        assert_eq!(UploadError::NoService.status(), 502);
    }
}
