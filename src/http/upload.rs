//! Files posted to `/msg/{to}` (XEP-0363 HTTP File Upload), the HTTP side: which requests
//! are files, their size before their bytes, and the PUT to the slot, streamed from the
//! request body (through the multipart decoder for forms) without holding the file. The
//! slot itself comes from [`crate::upload`]; the announcement from [`crate::xmpp::upload`].
//!
//! A file is announced only after the service answered the PUT with 2xx and exactly the
//! announced number of bytes went out; any other end (the client gone or too slow, a form
//! whose file is not its last part, a refused PUT, the time up) drops the PUT's connection
//! and announces nothing.

use super::auth;
use super::body::{self, BodyError, MsgRequest};
use super::multipart::{self, Decoder, Event, PartHead};
use super::{header, BODY_RATE_GRACE};
use crate::app::{App, StreamState};
use crate::iqwait::WaitError;
use crate::log;
use crate::metrics;
use crate::net;
use crate::net::http_client as client;
use crate::net::tls;
use crate::upload::{self, PutError};
use crate::xmpp::jid::Jid;
use crate::xmpp::stanza::NS_CLIENT;
use crate::xmpp::upload::{self as xep, Slot};
use crate::xmpp::upload::{Service, SlotError};
use crate::xmpp::xml::Element;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::CONTENT_LENGTH;
use hyper::http::request::Parts;
use rustls::ClientConfig;
use smol::Timer;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The longest media type passed on to the slot request and the PUT.
const MAX_MEDIA_TYPE: usize = 127;
/// The media type of a file part that names none.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
/// Form parts that carry the message text.
const TEXT_PARTS: [&str; 2] = ["body", "message"];

/// How long a caller is asked to wait when uploads are busy.
pub const RETRY_AFTER_BUSY: Duration = Duration::from_secs(10);

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
            Self::Busy | Self::Queue(_) => 503,
            Self::TooLarge { .. } => 413,
            Self::Slot(e) if e.is_too_large() => 413,
            Self::NoService | Self::Slot(_) | Self::Put(_) => 502,
            Self::Timeout => 504,
            Self::Body(_) | Self::ClientGone => 400,
            Self::LengthRequired => 411,
            Self::SlowBody => 408,
            Self::Message(e) => e.status(),
            Self::PutStatus(413) => 413,
            Self::PutStatus(_) => 502,
        }
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => f.write_str("another upload is running; try again later"),
            Self::TooLarge { size, max } => {
                write!(f, "the file has {size} bytes, more than the {max} allowed")
            }
            Self::NoService => {
                f.write_str("the XMPP server offers no file upload service (XEP-0363)")
            }
            Self::Slot(e) => e.fmt(f),
            Self::Timeout => f.write_str("the upload did not complete in time"),
            Self::Queue(e) => f.write_str(e),
            Self::Put(e) => write!(f, "the upload to the server failed: {e}"),
            Self::Body(e) => f.write_str(e),
            Self::LengthRequired => {
                f.write_str("a file needs a Content-Length (its size goes into the slot request)")
            }
            Self::SlowBody => f.write_str("the file did not arrive fast enough"),
            Self::ClientGone => f.write_str("the client closed the connection"),
            Self::Message(e) => e.fmt(f),
            Self::PutStatus(s) => {
                write!(f, "the upload service answered the PUT with status {s}")
            }
        }
    }
}

impl std::error::Error for UploadError {}

impl From<PutError> for UploadError {
    fn from(e: PutError) -> Self {
        match e {
            PutError::NotHttps => Self::Slot(SlotError::BadUrl),
            PutError::Failed(e) => Self::Put(e),
            PutError::Status(s) => Self::PutStatus(s),
        }
    }
}

/// The TLS settings of the PUT: the trust the webhook uses (`xmpp.ca_file`, else the
/// built-in roots), read once.
pub fn tls(app: &App) -> Result<Arc<ClientConfig>, UploadError> {
    if let Some(c) = app.uploads.tls() {
        return Ok(c);
    }
    let trust = crate::config::Trust::for_endpoints(app.cfg.xmpp.ca_file.as_deref());
    let config = tls::client_config(&trust).map_err(|e| UploadError::Put(e.to_string()))?;
    app.uploads.remember_tls(config.clone());
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
        let request = xep::slot_request(&id, &service.jid, filename, size, content_type);
        let reply = iq(app, request, &id, &service.jid).await?;
        xep::parse_slot(&reply).map_err(|e| {
            if matches!(&e, SlotError::Refused { condition, .. }
                if condition == "item-not-found" || condition == "service-unavailable")
            {
                // The component went away: look again next time.
                app.uploads.remember_service(None);
            }
            UploadError::Slot(e)
        })
    };
    net::timeout(app.cfg.upload.timeout, work)
        .await
        .unwrap_or(Err(UploadError::Timeout))
}

/// The server's upload service: remembered, or found through disco#items and disco#info.
async fn service(app: &App) -> Result<Service, UploadError> {
    if let Some(s) = app.uploads.service() {
        return Ok(s);
    }
    let server = app.cfg.xmpp.jid.domain().to_owned();
    let id = app.next_id();
    let items = iq(app, xep::items_request(&id, &server), &id, &server).await?;
    // The server itself may offer the service; else one of its components.
    let candidates = std::iter::once(server.clone()).chain(xep::item_jids(&items));
    for jid in candidates {
        let id = app.next_id();
        let Ok(info) = iq(app, xep::info_request(&id, &jid), &id, &jid).await else {
            continue;
        };
        if let Some(service) = xep::service_from_info(&jid, &info) {
            app.uploads.remember_service(Some(service.clone()));
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

/// The message that shares an uploaded file, ready to be queued.
#[derive(Debug)]
pub struct Announcement {
    /// Its stanza id.
    pub id: String,
    /// The message, with the GET URL as body and XEP-0066 `<x>`.
    pub stanza: Element,
    /// Its recipient.
    pub to: Jid,
}

/// Whether a `/msg` POST is a file: it names a file name (`?filename=`, a `Filename` or
/// `X-Filename` header, as ntfy reads them), or its `Content-Type` is a file's type.
pub fn is_file(parts: &Parts) -> bool {
    file_name(parts).is_some() || is_file_type(header(parts, "Content-Type").as_deref())
}

/// Whether a `Content-Type` is a file's: `multipart/form-data`, or any media type other
/// than `text/*`, a urlencoded form or JSON (`image/*`, `audio/*`, `video/*`,
/// `application/pdf`, `application/octet-stream`, ...).
fn is_file_type(content_type: Option<&str>) -> bool {
    let Some(essence) = content_type.and_then(media_type) else {
        return false;
    };
    !(essence.starts_with("text/")
        || essence == "application/x-www-form-urlencoded"
        || essence == "application/json")
}

/// The file name the request gives outside a form.
fn file_name(parts: &Parts) -> Option<String> {
    query(parts, "filename")
        .or_else(|| header(parts, "Filename"))
        .or_else(|| header(parts, "X-Filename"))
        .filter(|n| !n.trim().is_empty())
}

/// The media type without parameters, lower case, if it is `type/subtype` of token
/// characters and at most [`MAX_MEDIA_TYPE`] bytes.
fn media_type(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (essence.len() <= MAX_MEDIA_TYPE && token(kind) && token(sub)).then_some(essence)
}

/// A query parameter, when present and well encoded.
fn query(parts: &Parts, name: &str) -> Option<String> {
    parts
        .uri
        .query()
        .and_then(|q| auth::query_param(q, name))
        .and_then(Result::ok)
}

/// Upload the file posted in `incoming` and return the message that announces it. Bounded
/// by `upload.max_bytes` (checked before the server is asked anything), `upload.concurrency`
/// and `upload.timeout`; the body must keep up `http.min_body_rate`. Logs one line.
pub async fn post_file(
    app: &App,
    parts: &Parts,
    incoming: Incoming,
    path_to: &str,
) -> Result<Announcement, UploadError> {
    let content_type = header(parts, "Content-Type").unwrap_or_default();
    let subject = header(parts, "Subject").or_else(|| header(parts, "Title"));
    // The recipient, type and subject as for a text post; the text is checked later.
    let request = MsgRequest {
        method: "POST",
        path_to,
        query: parts.uri.query(),
        content_type: Some("text/plain"),
        subject_header: subject.as_deref(),
        body: b"-",
    };
    let out = body::parse_msg(&request, &app.cfg.xmpp.jid, &app.cfg.xmpp.rooms)
        .map_err(UploadError::Message)?;
    if let Some(why) = app.room_refusal(&out.to) {
        return Err(UploadError::Queue(why));
    }
    // The slot needs the stream now; a file is not held until it is back.
    if app.stream.get() != StreamState::Online {
        return Err(UploadError::Queue(
            "the XMPP stream is offline; a file can be uploaded only while it is online".into(),
        ));
    }
    let length = content_length(parts).ok_or(UploadError::LengthRequired)?;
    let form = media_type(&content_type).as_deref() == Some("multipart/form-data");
    let max = app.cfg.upload.max_bytes;
    let max_request = if form {
        // The text parts and part heads come on top of the file.
        max.saturating_add(form_overhead(app))
    } else {
        max
    };
    if length > max_request {
        log!(
            "upload: refused {length} bytes for {}: over upload.max_bytes",
            out.to
        );
        return Err(UploadError::TooLarge { size: length, max });
    }
    let _permit = app
        .uploads
        .start(app.cfg.upload.concurrency)
        .ok_or(UploadError::Busy)?;
    let progress = Rc::new(Progress::default());
    let mut file = File {
        name: file_name(parts),
        media_type: media_type(&content_type).unwrap_or_else(|| DEFAULT_MEDIA_TYPE.into()),
        size: length,
        text: query(parts, "body")
            .or_else(|| query(parts, "message"))
            .or_else(|| header(parts, "Message"))
            .or_else(|| header(parts, "X-Message")),
    };
    let work = async {
        let mut source = Source::new(incoming, app.cfg.http.min_body_rate);
        let form = if form {
            Some(read_form_head(app, &content_type, length, &mut source, &mut file).await?)
        } else {
            None
        };
        check_size(app, file.size)?;
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| xep::default_filename(&file.media_type).to_owned());
        let name = xep::clean_filename(&name);
        if file.media_type == DEFAULT_MEDIA_TYPE {
            // An octet stream with a known extension: say what it is, so clients show it.
            file.media_type = xep::content_type_of(Path::new(&name)).to_owned();
        }
        let slot = slot(app, &name, file.size, &file.media_type).await?;
        let tls = tls(app)?;
        source.restart_clock();
        let body = RequestFile {
            source,
            form,
            size: file.size,
            progress: progress.clone(),
        };
        let put = upload::put(tls, &slot, file.size, &file.media_type, client::boxed(body)).await;
        // The body's own failure says more than the aborted PUT it caused.
        if let Some(e) = progress.failure.take() {
            return Err(e);
        }
        put.map_err(UploadError::from)?;
        if progress.sent.get() != file.size {
            return Err(UploadError::Body(format!(
                "{} bytes of the file arrived, {} were announced",
                progress.sent.get(),
                file.size
            )));
        }
        Ok((name, slot.get))
    };
    let result = net::timeout(app.cfg.upload.timeout, work)
        .await
        .unwrap_or(Err(UploadError::Timeout));
    let shown = file.name.as_deref().unwrap_or("(unnamed)");
    match &result {
        Ok(_) => metrics::inc(&app.metrics.uploads_stored),
        Err(_) => metrics::inc(&app.metrics.uploads_failed),
    }
    match &result {
        Ok((name, _)) => log!(
            "upload: {name} ({} bytes, {}) for {} stored",
            file.size,
            file.media_type,
            out.to
        ),
        Err(e) => log!(
            "upload: {shown} ({} bytes, {}) for {} failed: {e}",
            file.size,
            file.media_type,
            out.to
        ),
    }
    let (_, url) = result?;
    let id = app.next_id();
    let mut stanza = xep::announcement(&out.to, out.kind, &id, &url, file.text.as_deref());
    if let Some(s) = out.subject {
        stanza.push_child(Element::new("subject", NS_CLIENT).text(&s));
    }
    Ok(Announcement {
        id,
        stanza,
        to: out.to,
    })
}

/// What is known of the file before its bytes.
struct File {
    name: Option<String>,
    media_type: String,
    size: u64,
    text: Option<String>,
}

/// The most a form may bring besides its file: its text parts (`http.max_body_bytes` in
/// all) and its part heads.
fn form_overhead(app: &App) -> u64 {
    (app.cfg.http.max_body_bytes + multipart::MAX_PARTS * multipart::MAX_PART_HEAD) as u64
}

/// The declared `Content-Length` (hyper has refused a malformed or duplicate one, and a
/// chunked body has none).
fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Read a form up to its file part's head: the text parts go to `file.text`, the file
/// part's name and type to `file`, its size (what is left of the body but the closing
/// delimiter) to `file.size`. Returns the decoder and the events already decoded past the
/// head.
async fn read_form_head(
    app: &App,
    content_type: &str,
    length: u64,
    source: &mut Source,
    file: &mut File,
) -> Result<Form, UploadError> {
    let body_error = |e: multipart::MultipartError| UploadError::Body(e.to_string());
    let mut decoder = Decoder::new(content_type).map_err(body_error)?;
    let max_text = app.cfg.http.max_body_bytes;
    let mut text: Option<Vec<u8>> = None;
    let mut in_text = false;
    let mut other = 0usize;
    loop {
        let Some(chunk) = poll_fn(|cx| source.poll_data(cx)).await? else {
            decoder.finish().map_err(body_error)?;
            return Err(UploadError::Body("the form has no file part".into()));
        };
        let mut events = Vec::new();
        decoder.feed(&chunk, &mut events).map_err(body_error)?;
        let mut events = events.into_iter();
        while let Some(event) = events.next() {
            match event {
                Event::Part(head) if is_file_part(&head) => {
                    if let Some(t) = text {
                        file.text =
                            Some(String::from_utf8(t).map_err(|_| {
                                UploadError::Body("the text part is not UTF-8".into())
                            })?);
                    }
                    file.size = decoder.file_size(length, &head).ok_or_else(|| {
                        UploadError::Body("the Content-Length is shorter than the form".into())
                    })?;
                    if let Some(name) = head.filename.filter(|n| !n.trim().is_empty()) {
                        file.name = Some(name);
                    }
                    file.media_type = head
                        .content_type
                        .as_deref()
                        .and_then(media_type)
                        .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.into());
                    return Ok(Form {
                        decoder,
                        pending: events.collect(),
                        file_ended: false,
                        done: false,
                    });
                }
                Event::Part(head) => {
                    in_text = TEXT_PARTS.contains(&head.name.as_str());
                    if in_text {
                        text = Some(Vec::new());
                    }
                }
                Event::Data(data) => {
                    other += data.len();
                    if other > max_text {
                        return Err(UploadError::TooLarge {
                            size: other as u64,
                            max: max_text as u64,
                        });
                    }
                    if let (true, Some(t)) = (in_text, text.as_mut()) {
                        t.extend_from_slice(&data);
                    }
                }
                Event::PartEnd => in_text = false,
                Event::End => return Err(UploadError::Body("the form has no file part".into())),
            }
        }
    }
}

/// A part with a file name, or named `file`.
fn is_file_part(head: &PartHead) -> bool {
    head.filename.is_some() || head.name == "file"
}

/// How far the PUT's body got, and why it stopped, when it failed.
#[derive(Debug, Default)]
struct Progress {
    sent: Cell<u64>,
    failure: RefCell<Option<UploadError>>,
}

/// The request body, bounded by `http.min_body_rate` (after a grace second from when the
/// file starts to be read).
struct Source {
    incoming: Incoming,
    min_rate: usize,
    start: Instant,
    /// Bytes received since `start`.
    received: u64,
    timer: Timer,
}

impl Source {
    fn new(incoming: Incoming, min_rate: usize) -> Self {
        Self {
            incoming,
            min_rate,
            start: Instant::now(),
            received: 0,
            timer: Timer::never(),
        }
    }

    /// Start the rate's clock again: waiting for the slot is not the client's time.
    fn restart_clock(&mut self) {
        self.start = Instant::now();
        self.received = 0;
    }

    /// The next bytes of the body, `None` at its end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, UploadError>> {
        loop {
            match Pin::new(&mut self.incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing we use.
                    if let Ok(data) = frame.into_data() {
                        self.received += data.len() as u64;
                        return Poll::Ready(Ok(Some(data)));
                    }
                }
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(UploadError::ClientGone)),
                Poll::Ready(None) => return Poll::Ready(Ok(None)),
                Poll::Pending => {
                    if self.min_rate == 0 {
                        return Poll::Pending;
                    }
                    let earned =
                        Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
                    self.timer.set_at(self.start + BODY_RATE_GRACE + earned);
                    if Pin::new(&mut self.timer).poll(cx).is_ready() {
                        return Poll::Ready(Err(UploadError::SlowBody));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// A form being decoded after its file part's head.
struct Form {
    decoder: Decoder,
    pending: VecDeque<Event>,
    file_ended: bool,
    done: bool,
}

/// The file of a request as the PUT's body: exactly `size` bytes, or an error that aborts
/// the PUT (and is kept in `progress`).
struct RequestFile {
    source: Source,
    /// `None`: the raw body is the file.
    form: Option<Form>,
    size: u64,
    progress: Rc<Progress>,
}

type FrameResult = Option<Result<Frame<Bytes>, UploadError>>;

impl RequestFile {
    fn fail(&self, e: UploadError) -> Poll<FrameResult> {
        self.progress.failure.replace(Some(e.clone()));
        Poll::Ready(Some(Err(e)))
    }

    fn not_last(&self) -> Poll<FrameResult> {
        self.fail(UploadError::Body(
            "the file must be the form's last part, followed only by the closing boundary".into(),
        ))
    }

    fn data(&self, data: Bytes) -> Poll<FrameResult> {
        let sent = self.progress.sent.get() + data.len() as u64;
        if sent > self.size {
            return self.fail(UploadError::Body(
                "the body holds more bytes than its Content-Length".into(),
            ));
        }
        self.progress.sent.set(sent);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn complete(&self) -> bool {
        self.progress.sent.get() == self.size
    }
}

impl Body for RequestFile {
    type Data = Bytes;
    type Error = UploadError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FrameResult> {
        let this = &mut *self;
        loop {
            if let Some(form) = this.form.as_mut() {
                while let Some(event) = form.pending.pop_front() {
                    match event {
                        Event::Data(d) if !form.file_ended => return this.data(Bytes::from(d)),
                        Event::PartEnd if !form.file_ended => {
                            form.file_ended = true;
                            if this.progress.sent.get() != this.size {
                                return this.not_last();
                            }
                        }
                        Event::End if form.file_ended => form.done = true,
                        _ => return this.not_last(),
                    }
                }
                if form.done {
                    return Poll::Ready(None);
                }
            }
            let chunk = match this.source.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Ready(Ok(chunk)) => chunk,
            };
            let Some(form) = this.form.as_mut() else {
                return match chunk {
                    Some(data) => this.data(data),
                    None if this.complete() => Poll::Ready(None),
                    None => this.fail(UploadError::Body(
                        "the body ended before its Content-Length".into(),
                    )),
                };
            };
            let Some(data) = chunk else {
                let why = form
                    .decoder
                    .finish()
                    .err()
                    .map_or_else(|| "the form ended early".into(), |e| e.to_string());
                return this.fail(UploadError::Body(why));
            };
            let mut events = Vec::new();
            if let Err(e) = form.decoder.feed(&data, &mut events) {
                return this.fail(UploadError::Body(e.to_string()));
            }
            form.pending.extend(events);
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size.saturating_sub(self.progress.sent.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn pictures_documents_and_octet_streams_are_files() {
        for ct in [
            "image/jpeg",
            "Image/PNG; q=1",
            "application/pdf",
            "application/octet-stream",
            "video/mp4",
            "audio/ogg",
            "multipart/form-data; boundary=x",
        ] {
            assert!(is_file_type(Some(ct)), "{ct}");
        }
    }

    #[test]
    fn text_forms_json_and_malformed_types_are_not_files() {
        for ct in [
            "text/plain",
            "text/html",
            "application/json; charset=utf-8",
            "application/x-www-form-urlencoded",
            "; charset=utf-8",
            "image",
            "image/",
            "image/p ng",
            "",
        ] {
            assert!(!is_file_type(Some(ct)), "{ct}");
        }
        assert!(!is_file_type(None));
        assert!(!is_file_type(Some(&format!("x/{}", "y".repeat(200)))));
    }
}
