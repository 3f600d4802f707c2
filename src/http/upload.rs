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
use super::body::{self, MsgRequest};
use super::client;
use super::local::content_type_of;
use super::multipart::{self, Decoder, Event, PartHead};
use super::routes::{header, BODY_RATE_GRACE};
use super::url::Url;
use crate::app::{App, StreamState};
use crate::log;
use crate::metrics;
use crate::upload::{self, UploadError};
use crate::xmpp::jid::Jid;
use crate::xmpp::stanza::NS_CLIENT;
use crate::xmpp::tls;
use crate::xmpp::upload::{self as xep, Slot};
use crate::xmpp::xml::Element;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::CONTENT_LENGTH;
use hyper::http::request::Parts;
use hyper::Method;
use rustls::ClientConfig;
use smol::future::FutureExt;
use smol::net::TcpStream;
use smol::Timer;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::Read;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The longest answer body read from the upload service (it is not used).
const MAX_PUT_ANSWER: usize = 4096;
/// The longest media type passed on to the slot request and the PUT.
const MAX_MEDIA_TYPE: usize = 127;
/// The media type of a file part that names none.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
/// How much of a file is read from disk (and sent) at once by `xrelay send --file`.
const FILE_CHUNK: usize = 16 * 1024;
/// Form parts that carry the message text.
const TEXT_PARTS: [&str; 2] = ["body", "message"];

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
    let _permit = app.uploads.start(app.cfg.upload.concurrency)?;
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
        upload::check_size(app, file.size)?;
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| xep::default_filename(&file.media_type).to_owned());
        let name = xep::clean_filename(&name);
        if file.media_type == DEFAULT_MEDIA_TYPE {
            // An octet stream with a known extension: say what it is, so clients show it.
            file.media_type = content_type_of(Path::new(&name)).to_owned();
        }
        let slot = upload::slot(app, &name, file.size, &file.media_type).await?;
        let tls = upload::tls(app)?;
        source.restart_clock();
        let body = RequestFile {
            source,
            form,
            size: file.size,
            progress: progress.clone(),
        };
        let put = put(tls, &slot, file.size, &file.media_type, client::boxed(body)).await;
        // The body's own failure says more than the aborted PUT it caused.
        if let Some(e) = progress.failure.take() {
            return Err(e);
        }
        put?;
        if progress.sent.get() != file.size {
            return Err(UploadError::Body(format!(
                "{} bytes of the file arrived, {} were announced",
                progress.sent.get(),
                file.size
            )));
        }
        Ok((name, slot.get))
    };
    let timer = async {
        Timer::after(app.cfg.upload.timeout).await;
        Err(UploadError::Timeout)
    };
    let result = work.or(timer).await;
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

/// PUT `size` bytes of `body` to the slot over HTTPS with `tls`, with the slot's headers.
/// Only a 2xx answer is success.
pub async fn put(
    tls: Arc<ClientConfig>,
    slot: &Slot,
    size: u64,
    media_type: &str,
    body: client::RequestBody,
) -> Result<(), UploadError> {
    let url = Url::parse(&slot.put).map_err(|e| UploadError::Put(e.to_string()))?;
    if !url.https {
        return Err(UploadError::Slot(xep::SlotError::BadUrl));
    }
    let host = url.connect_host();
    let tcp = TcpStream::connect((host, url.port_or_default()))
        .await
        .map_err(|e| UploadError::Put(format!("cannot connect: {e}")))?;
    let stream = tls::connect(tls, host, tcp)
        .await
        .map_err(|e| UploadError::Put(e.to_string()))?;
    let length = size.to_string();
    let mut headers = vec![
        ("Content-Type", media_type),
        ("Content-Length", length.as_str()),
        ("User-Agent", concat!("xrelay/", env!("CARGO_PKG_VERSION"))),
    ];
    headers.extend(slot.headers.iter().map(|(k, v)| (*k, v.as_str())));
    let res = client::send(stream, Method::PUT, &url, &headers, body, MAX_PUT_ANSWER)
        .await
        .map_err(|e| UploadError::Put(e.to_string()))?;
    if (200..300).contains(&res.status) {
        Ok(())
    } else {
        Err(UploadError::PutStatus(res.status))
    }
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
    fn new(incoming: Incoming, min_rate: usize) -> Source {
        Source {
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

/// A file on disk as the PUT's body (`xrelay send --file`): exactly `size` bytes, read in
/// [`FILE_CHUNK`] pieces as the PUT takes them. The reads block; the command does nothing
/// else meanwhile, and a local file answers at once.
#[derive(Debug)]
pub struct DiskFile {
    file: std::fs::File,
    size: u64,
    sent: u64,
}

impl DiskFile {
    /// The body for `file`, which has `size` bytes.
    pub fn new(file: std::fs::File, size: u64) -> DiskFile {
        DiskFile {
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
