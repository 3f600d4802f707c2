//! What each HTTP request means: routing, authentication, bounded body reading, and the
//! answers of `/msg`, `/invites_api`, `/invite/{token}`, `/health` and `/metrics`
//! (contract section "HTTP API").
//!
//! Every error is JSON `{"error": "<one human sentence>"}` with the contract's status.

use super::auth::{self, Credentials};
use super::body::{self, MsgRequest};
use super::rest;
use super::upload;
use super::upload::UploadError;
use super::{header, BODY_RATE_GRACE, BODY_TIMEOUT};
use crate::access::clients::{self, InFlightGuard};
use crate::app::{App, StreamState};
use crate::config;
use crate::iqwait::WaitError;
use crate::log;
use crate::metrics;
use crate::net;
use crate::outbox::{AckWaiter, PushError};
use crate::rooms::{self, Reflection};
use crate::store::invites::{self, InvitesError};
use crate::store::keys::{AuthResult, Scope};
use crate::timefmt;
use crate::xmpp::jid::Jid;
use crate::xmpp::stanza;
use crate::xmpp::xml::Element;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, StatusCode, Version};
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Every answer: one buffer, sent with its `Content-Length`.
pub type Response = hyper::Response<Full<Bytes>>;

/// How long `?wait=1` waits for the server's acknowledgement unless `X-Timeout` says less.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `X-Timeout` honoured.
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Seconds a client is asked to wait when a message cannot be queued (full, stopping).
const RETRY_AFTER_FULL: u64 = 5;
/// Seconds a key at its `http.max_per_key` is asked to wait.
const RETRY_AFTER_BUSY_KEY: u64 = 1;

/// Answer one request and count the answer.
pub async fn handle(app: &App, req: Request<Incoming>, peer: IpAddr) -> Response {
    let (parts, body) = req.into_parts();
    let res = match well_formed(&parts).and_then(|()| addressed_to_us(app, &parts)) {
        Ok(()) => route(app, &parts, body, peer).await,
        Err(r) => Err(r),
    }
    .unwrap_or_else(Reject::into_response);
    app.metrics.response(res.status().as_u16());
    res
}

/// The answer to a request that carried both `Content-Length` and `Transfer-Encoding`, or
/// `Content-Length` twice (RFC 9112 §6.1, §6.3: smuggling forms), counted like every answer.
pub fn smuggled(app: &App) -> Response {
    let res = Reject::new(
        StatusCode::BAD_REQUEST,
        "a request may carry one Content-Length, or Transfer-Encoding, not both",
    )
    .header("Connection", "close")
    .into_response();
    app.metrics.response(res.status().as_u16());
    res
}

/// What hyper accepts but we refuse: HTTP/1.1 without exactly one `Host` (RFC 9112 §3.2),
/// and more than one `Host` in HTTP/1.0.
fn well_formed(parts: &Parts) -> Result<(), Reject> {
    let hosts = parts.headers.get_all(hyper::header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && parts.version >= Version::HTTP_11) {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs one Host header",
        )
        .header("Connection", "close"));
    }
    Ok(())
}

/// The host a request names: the authority of an absolute-form target, which RFC 9112
/// §3.2.2 puts before `Host`, else the `Host` header.
fn request_host(parts: &Parts) -> Option<String> {
    match parts.uri.authority() {
        Some(a) => Some(a.as_str().to_string()),
        None => header(parts, "Host"),
    }
}

/// `http.allowed_hosts`: a request for a host name not listed is refused with 421, so a
/// web page whose own name an attacker points at this device (DNS rebinding) is not
/// answered. A local socket is out of a web page's reach: any host will do there.
fn addressed_to_us(app: &App, parts: &Parts) -> Result<(), Reject> {
    if parts.extensions.get::<super::UnixSocket>().is_some()
        || clients::host_allowed(request_host(parts).as_deref(), &app.cfg.http.allowed_hosts)
    {
        return Ok(());
    }
    Err(Reject::new(
        StatusCode::MISDIRECTED_REQUEST,
        "this server does not answer for the host this request names (http.allowed_hosts)",
    ))
}

/// A refused request: the status, one human sentence, and headers that go with it.
#[derive(Debug)]
struct Reject {
    status: StatusCode,
    msg: String,
    headers: Vec<(&'static str, String)>,
    /// The stanza id, when the message was queued after all (504).
    id: Option<String>,
    /// The XMPP condition mod_rest names for a refused `/rest` body.
    condition: Option<&'static str>,
}

impl Reject {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
            headers: Vec::new(),
            id: None,
            condition: None,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.msg });
        if let Some(id) = &self.id {
            body["id"] = id.as_str().into();
        }
        if let Some(condition) = self.condition {
            body["condition"] = condition.into();
        }
        let mut res = json_response(self.status, &body);
        for (k, v) in self.headers {
            insert_header(&mut res, k, &v);
        }
        res
    }
}

type Answer = Result<Response, Reject>;

async fn route(app: &App, parts: &Parts, body: Incoming, peer: IpAddr) -> Answer {
    let path = parts.uri.path();
    let method = &parts.method;
    match path {
        "/health" => {
            allow(method, &[Method::GET])?;
            // The state is public; what names the account and its network needs a key
            // (or a trusted socket).
            let anonymous = parts.extensions.get::<super::LocalTrust>().is_none()
                && matches!(
                    auth::credentials(header(parts, "Authorization").as_deref(), parts.uri.query()),
                    Ok(None)
                );
            let _slot = if anonymous {
                None
            } else {
                Some(authenticate(app, parts, peer, None)?)
            };
            Ok(health(app, !anonymous))
        }
        "/metrics" => {
            allow(method, &[Method::GET])?;
            let _slot = authenticate(app, parts, peer, None)?;
            let body = app.metrics.render(
                app.stream.get() == StreamState::Online,
                app.outbox.depth(),
                app.outbox.capacity(),
            );
            let mut res = response(StatusCode::OK, body);
            insert_header(&mut res, "Content-Type", "text/plain; version=0.0.4");
            Ok(res)
        }
        p if p.starts_with("/msg/") || p == "/msg" => {
            allow(method, &[Method::GET, Method::POST])?;
            let _slot = authenticate(app, parts, peer, Some(Scope::Msg))?;
            post_msg(app, parts, body, p.strip_prefix("/msg/").unwrap_or("")).await
        }
        p if p.starts_with("/rest/") || p == "/rest" => {
            let rest_path = p.strip_prefix("/rest").unwrap_or("");
            if rest_path.trim_start_matches('/').is_empty() {
                allow(method, &[Method::POST])?;
            } else {
                allow(method, &[Method::GET, Method::POST])?;
            }
            let _slot = authenticate(app, parts, peer, Some(Scope::Rest))?;
            post_rest(app, parts, body, rest_path).await
        }
        "/invites_api" => with_cors(invites_api(app, parts, peer)),
        p if p.starts_with("/invite/") => {
            allow(method, &[Method::GET])?;
            Ok(invite_page(app, p.strip_prefix("/invite/").unwrap_or("")))
        }
        _ => Err(Reject::new(StatusCode::NOT_FOUND, "no such endpoint")),
    }
}

/// mod_invites_api's answers (CORS preflight included: `OPTIONS` needs no key).
fn invites_api(app: &App, parts: &Parts, peer: IpAddr) -> Answer {
    allow(&parts.method, &[Method::GET, Method::POST, Method::OPTIONS])?;
    if parts.method == Method::OPTIONS {
        return Ok(response(StatusCode::OK, String::new()));
    }
    let _slot = authenticate(app, parts, peer, Some(Scope::Invite))?;
    create_invite(app, parts.uri.query())
}

/// The CORS headers Prosody's HTTP server gives mod_invites_api (its defaults, plus
/// `Authorization` for the bearer key).
const INVITES_CORS: [(&str, &str); 4] = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "OPTIONS, GET"),
    (
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type",
    ),
    ("Access-Control-Max-Age", "7200"),
];

/// `answer` with [`INVITES_CORS`], so that a web page may call `/invites_api`.
fn with_cors(answer: Answer) -> Answer {
    match answer {
        Ok(mut res) => {
            for (k, v) in INVITES_CORS {
                insert_header(&mut res, k, v);
            }
            Ok(res)
        }
        Err(mut r) => {
            r.headers
                .extend(INVITES_CORS.map(|(k, v)| (k, v.to_string())));
            Err(r)
        }
    }
}

fn allow(method: &Method, allowed: &[Method]) -> Result<(), Reject> {
    if allowed.contains(method) {
        return Ok(());
    }
    let names: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
    Err(
        Reject::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
            .header("Allow", names.join(", ")),
    )
}

/// The `http.max_per_key` account of trusted unix-socket requests (no key id has a space).
const LOCAL_TRUST_ID: &str = "unix socket";

/// Check the API key (`scope` `None` accepts any valid key; a trusted unix socket needs
/// none) and take one of its `http.max_per_key` places for the time of the request.
fn authenticate<'a>(
    app: &'a App,
    parts: &Parts,
    peer: IpAddr,
    scope: Option<Scope>,
) -> Result<InFlightGuard<'a>, Reject> {
    let authorization = header(parts, "Authorization");
    if clients::is_basic(authorization.as_deref())
        && clients::cross_site(
            header(parts, "Sec-Fetch-Site").as_deref(),
            header(parts, "Origin").as_deref(),
            request_host(parts).as_deref(),
        )
    {
        return Err(Reject::new(
            StatusCode::FORBIDDEN,
            "Basic credentials are not accepted from a web page of another site, since a \
             browser sends a remembered password by itself; send the key as \
             Authorization: Bearer or ?key= instead",
        ));
    }
    let id = match auth::credentials(authorization.as_deref(), parts.uri.query()) {
        // The socket's file mode is the access control; its clients share one place count.
        _ if parts.extensions.get::<super::LocalTrust>().is_some() => LOCAL_TRUST_ID.into(),
        Ok(Some(Credentials { id, secret })) => {
            let result = app.keys.verify(
                &id,
                &secret,
                scope.unwrap_or(Scope::Msg),
                timefmt::now_unix(),
            );
            match result {
                AuthResult::Ok(_) => id,
                AuthResult::MissingScope if scope.is_none() => id,
                AuthResult::Unknown => {
                    return Err(failed(app, parts, peer, "the API key is not valid"))
                }
                AuthResult::Expired => {
                    return Err(Reject::new(
                        StatusCode::FORBIDDEN,
                        "the API key has expired",
                    ))
                }
                AuthResult::MissingScope => {
                    return Err(Reject::new(
                        StatusCode::FORBIDDEN,
                        "the API key does not have the scope this endpoint needs",
                    ))
                }
            }
        }
        Ok(None) => return Err(unauthorized("an API key is required")),
        Err(e) => return Err(failed(app, parts, peer, &e.to_string())),
    };
    app.in_flight
        .enter(&id, app.cfg.http.max_per_key)
        .ok_or_else(|| {
            Reject::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests with this API key at once; try again shortly",
            )
            .header("Retry-After", RETRY_AFTER_BUSY_KEY.to_string())
        })
}

/// Wrong credentials: 401 and one more failure for the client's address, or 429 while
/// that address is blocked.
fn failed(app: &App, parts: &Parts, peer: IpAddr, why: &str) -> Reject {
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("X-Forwarded-For")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = clients::client_addr(peer, &forwarded, &app.cfg.http.trusted_proxies);
    let now = Instant::now();
    let mut limiter = app.limiter.borrow_mut();
    if let Err(retry) = limiter.check(client, now) {
        return Reject::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; try again later",
        )
        .header("Retry-After", retry.as_secs().max(1).to_string());
    }
    limiter.record_failure(client, now);
    unauthorized(why)
}

fn unauthorized(msg: &str) -> Reject {
    Reject::new(StatusCode::UNAUTHORIZED, msg).header(
        "WWW-Authenticate",
        "Basic realm=\"xrelay\", Bearer realm=\"xrelay\"",
    )
}

/// When a body that started at `start` and has brought `received` bytes so far is too
/// slow: [`BODY_TIMEOUT`] after its start, or as soon as it falls below `min_rate` bytes
/// per second after the first second (`min_rate` 0: never).
pub fn body_deadline(start: Instant, received: usize, min_rate: usize) -> Instant {
    let whole = start + BODY_TIMEOUT;
    if min_rate == 0 {
        return whole;
    }
    let earned = Duration::from_secs_f64(received as f64 / min_rate as f64);
    whole.min(start + BODY_RATE_GRACE + earned)
}

/// Read the body, refusing it once it exceeds `max` (413 before buffering it all) or
/// arrives too slowly (408).
async fn read_body(app: &App, mut body: Incoming, max: usize) -> Result<Vec<u8>, Reject> {
    use hyper::body::Body;
    let too_large = || {
        Reject::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes"),
        )
        .header("Connection", "close")
    };
    let declared = body.size_hint().lower();
    if declared > max as u64 {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(usize::try_from(declared).unwrap_or(max).min(max));
    let start = Instant::now();
    loop {
        let deadline = body_deadline(start, buf.len(), app.cfg.http.min_body_rate);
        match net::timeout(net::left_until(deadline), body.frame()).await {
            None => {
                return Err(Reject::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body did not arrive in time",
                )
                .header("Connection", "close"))
            }
            Some(None) => return Ok(buf),
            Some(Some(Err(_))) => {
                return Err(
                    Reject::new(StatusCode::BAD_REQUEST, "the body could not be read")
                        .header("Connection", "close"),
                )
            }
            Some(Some(Ok(frame))) => {
                // Trailers carry nothing we use.
                if let Ok(data) = frame.into_data() {
                    if buf.len().saturating_add(data.len()) > max {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// The body of a POST (empty for other methods) and its declared media type. (An
/// application/octet-stream `/msg` body is a file; to `/rest` it counts as none declared.)
async fn request_body(
    app: &App,
    parts: &Parts,
    body: Incoming,
) -> Result<(Vec<u8>, Option<String>), Reject> {
    let body = if parts.method == Method::POST {
        read_body(app, body, app.cfg.http.max_body_bytes).await?
    } else {
        Vec::new()
    };
    let content_type =
        header(parts, "Content-Type").filter(|c| !c.starts_with("application/octet-stream"));
    Ok((body, content_type))
}

async fn post_msg(app: &App, parts: &Parts, body: Incoming, path_to: &str) -> Answer {
    if parts.method == Method::POST && upload::is_file(parts) {
        // On the heap: hyper keeps room for the largest request of a connection while it
        // lives, and an upload (a slot, an HTTPS PUT) would make every connection pay for it.
        let file = Box::pin(upload::post_file(app, parts, body, path_to))
            .await
            .map_err(upload_reject)?;
        return deliver(app, parts, file.id, file.stanza, &file.to).await;
    }
    // No declared type is text/plain to the contract (UTF-8 is still checked).
    let (body, content_type) = request_body(app, parts, body).await?;
    let header = |name: &str| header(parts, name);
    let subject = header("Subject").or_else(|| header("Title"));
    let query = parts.uri.query().map(str::to_string);
    let method = parts.method.to_string();
    let msg = MsgRequest {
        method: &method,
        path_to,
        query: query.as_deref(),
        content_type: content_type.as_deref(),
        subject_header: subject.as_deref(),
        body: &body,
    };
    let out = body::parse_msg(&msg, &app.cfg.xmpp.jid, &app.cfg.xmpp.rooms).map_err(|e| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Reject::new(status, e.to_string())
    })?;
    if let Some(why) = app.room_refusal(&out.to) {
        return Err(Reject::new(StatusCode::SERVICE_UNAVAILABLE, why)
            .header("Retry-After", RETRY_AFTER_FULL.to_string()));
    }
    let id = app.next_id();
    let mut stanza = stanza::message(&out.to, out.kind, &id, &out.body, out.subject.as_deref());
    if let Some(html) = out.html {
        stanza.push_child(html);
    }
    deliver(app, parts, id, stanza, &out.to).await
}

/// A refused upload: its status, with `Retry-After` when busy and `Connection: close` when
/// the body may be left unread.
fn upload_reject(e: UploadError) -> Reject {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry = match e {
        UploadError::Busy => Some(upload::RETRY_AFTER_BUSY.as_secs()),
        UploadError::Queue(_) => Some(RETRY_AFTER_FULL),
        _ => None,
    };
    let mut r = Reject::new(status, e.to_string()).header("Connection", "close");
    if let Some(s) = retry {
        r = r.header("Retry-After", s.to_string());
    }
    r
}

/// Queue a `/msg` message; with `?wait=1`, answer once the server acknowledged it (a room:
/// reflected it).
async fn deliver(app: &App, parts: &Parts, id: String, stanza: Element, to: &Jid) -> Answer {
    let wait = parts
        .uri
        .query()
        .and_then(|q| auth::query_param(q, "wait"))
        .is_some_and(|v| matches!(v, Ok(v) if v != "0" && v != "false"));
    let timeout = header(parts, "X-Timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(WAIT_TIMEOUT, |s| {
            Duration::from_secs(s).min(MAX_WAIT_TIMEOUT)
        });
    // A room post waits for the room to reflect it back, not merely for the server's ack.
    let to_room = to.is_bare() && app.rooms.borrow().get(&to.bare()).is_some();
    let reflection = if wait && to_room {
        Some(app.reflections.wait(&id).map_err(|_| {
            Reject::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many room posts waiting",
            )
            .header("Retry-After", RETRY_AFTER_FULL.to_string())
        })?)
    } else {
        None
    };
    let waiter = push(app, stanza, wait && reflection.is_none())?;
    if let Some(rx) = reflection {
        return reflected(rx, id, timeout).await;
    }
    let Some(waiter) = waiter else {
        return Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({"id": id, "status": "queued"}),
        ));
    };
    let delivery = net::timeout(timeout, waiter.recv())
        .await
        .and_then(Result::ok);
    if let Some(Ok(())) = delivery {
        Ok(json_response(
            StatusCode::OK,
            &json!({"id": id, "status": "acknowledged"}),
        ))
    } else if let Some(Err(why)) = delivery {
        let mut r = Reject::new(StatusCode::BAD_GATEWAY, why);
        r.id = Some(id);
        Err(r)
    } else {
        let mut r = Reject::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the server did not acknowledge the message in time; it stays queued",
        );
        r.id = Some(id);
        Err(r)
    }
}

/// The answer to a `?wait=1` room post: 200 once the room reflected it, the bounce's
/// condition when the room refused it, 504 when neither came in time.
async fn reflected(
    rx: smol::channel::Receiver<Reflection>,
    id: String,
    timeout: Duration,
) -> Answer {
    let got = net::timeout(timeout, rx.recv()).await.and_then(Result::ok);
    let (status, condition, msg) = match got {
        Some(Ok(())) => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"id": id, "status": "reflected"}),
            ))
        }
        Some(Err(cond)) => {
            let (status, condition) = rooms::bounce_status(&cond);
            (
                status,
                Some(condition),
                format!("the room refused the message: {cond}"),
            )
        }
        None => (
            504,
            None,
            "the room did not reflect the message in time".to_string(),
        ),
    };
    let mut r = Reject::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        msg,
    );
    r.id = Some(id);
    r.condition = condition;
    Err(r)
}

/// mod_invites_api: make an invite; 201 with `Location:` its landing page (or its `xmpp:`
/// URI without `invites.public_url`), or 303 there with `redirect`. Optional `name` and
/// `ttl` (a duration) in the query.
fn create_invite(app: &App, query: Option<&str>) -> Answer {
    let param = |name: &str| {
        query
            .and_then(|q| auth::query_param(q, name))
            .transpose()
            .map_err(|_| {
                Reject::new(
                    StatusCode::BAD_REQUEST,
                    format!("the {name} parameter is not valid percent-encoding"),
                )
            })
    };
    let name = param("name")?.unwrap_or_default();
    let ttl = match param("ttl")? {
        None => app.cfg.invites.ttl,
        Some(t) => config::parse_duration(&t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Reject::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ttl is not a duration such as 30m, 12h or 7d",
                )
            })?,
    };
    let redirect = param("redirect")?.is_some_and(|v| v != "0" && v != "false");
    let now = timefmt::now_unix();
    let (invite, token) = app
        .invites
        .create(&name, now, now + ttl.as_secs(), app.cfg.invites.max)
        .map_err(|e| {
            let status = match e {
                InvitesError::BadName => StatusCode::UNPROCESSABLE_ENTITY,
                InvitesError::Full(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Reject::new(status, e.to_string())
        })?;
    log!("invite {} created over HTTP", invite.id);
    let uri = invites::uri(&app.cfg.xmpp.jid, &token);
    let url = app
        .cfg
        .invites
        .public_url
        .as_deref()
        .map(|base| invites::landing_url(base, &token));
    let location = url.clone().unwrap_or_else(|| uri.clone());
    let mut res = if redirect {
        response(StatusCode::SEE_OTHER, String::new())
    } else {
        json_response(
            StatusCode::CREATED,
            &json!({
                "id": invite.id,
                "uri": uri,
                "url": url,
                "expires": timefmt::format_rfc3339(invite.expires),
            }),
        )
    };
    insert_header(&mut res, "Location", &location);
    insert_header(&mut res, "Cache-Control", "no-store");
    Ok(res)
}

/// The landing page of an invite: 200 for a valid token, 410 for a used or expired one,
/// 404 for an unknown one. The token is looked up by its hash.
fn invite_page(app: &App, token: &str) -> Response {
    let invite = (!token.is_empty() && token.len() <= invites::MAX_TOKEN_CHARS)
        .then(|| app.invites.find(token))
        .flatten();
    let (status, html) = invites::landing_page(
        &app.cfg.xmpp.jid,
        token,
        invite.as_ref(),
        timefmt::now_unix(),
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
    let mut res = response(status, html);
    insert_header(&mut res, "Content-Type", "text/html; charset=utf-8");
    insert_header(&mut res, "Cache-Control", "no-store");
    // The URL holds the token: no other site may see it, and the page loads nothing else.
    insert_header(&mut res, "Referrer-Policy", "no-referrer");
    insert_header(
        &mut res,
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'",
    );
    insert_header(&mut res, "X-Content-Type-Options", "nosniff");
    res
}

async fn post_rest(app: &App, parts: &Parts, body: Incoming, path: &str) -> Answer {
    let (body, content_type) = request_body(app, parts, body).await?;
    let header = |name: &str| header(parts, name);
    let method = parts.method.to_string();
    let request = rest::RestRequest {
        method: &method,
        path,
        query: parts.uri.query(),
        content_type: content_type.as_deref(),
        body: &body,
    };
    let parsed = rest::parse(&request, app.cfg.xmpp.jid.as_jid()).map_err(|e| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = Reject::new(status, e.to_string());
        r.condition = Some(e.condition());
        r
    })?;
    let ignored = rest::ignored_header(&parsed.ignored);
    let media = rest::reply_type(header("Accept").as_deref(), content_type.as_deref());
    let mut stanza = parsed.stanza;
    if parsed.echo {
        return Ok(rest_reply(&stanza, media, ignored));
    }
    if let Some(what) =
        rest::account_change(&stanza).filter(|_| !app.cfg.rest.allow_account_changes)
    {
        let mut r = Reject::new(
            StatusCode::FORBIDDEN,
            format!("{what} changes the bot's account; set rest.allow_account_changes = true to allow it"),
        );
        r.condition = Some("forbidden");
        return Err(r);
    }
    let id = match stanza.get_attr("id") {
        Some(id) => id.to_string(),
        None => {
            let id = app.next_id();
            stanza.set_attr("id", &id);
            id
        }
    };
    if stanza.name() != "iq" {
        push(app, stanza, false)?;
        let mut res = json_response(StatusCode::ACCEPTED, &json!({"id": id, "status": "queued"}));
        if let Some(names) = ignored {
            insert_header(&mut res, rest::IGNORED_HEADER, &names);
        }
        return Ok(res);
    }
    // The reply comes from where the request went; without `to`, from our own account.
    let own: Jid = app.cfg.xmpp.jid.clone().into();
    let from = match stanza.get_attr("to") {
        Some(to) => Jid::parse(to).unwrap_or_else(|_| own.clone()),
        None => own,
    };
    let waiting = app.iq_waits.wait(&id, from).map_err(|e| match e {
        WaitError::Full => Reject::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .header("Retry-After", RETRY_AFTER_FULL.to_string()),
        WaitError::Duplicate => Reject::new(StatusCode::CONFLICT, e.to_string()),
    })?;
    push(app, stanza, false)?;
    let timeout = header("X-Timeout")
        .or_else(|| header("Prosody-Rest-Timeout"))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(app.cfg.rest.timeout, Duration::from_secs)
        .min(app.cfg.rest.max_timeout);
    let Some(reply) = net::timeout(timeout, waiting.reply()).await.flatten() else {
        let mut r = Reject::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no reply to the iq within {} s", timeout.as_secs_f32()),
        );
        r.id = Some(id);
        return Err(r);
    };
    Ok(rest_reply(&reply, media, ignored))
}

/// 200 with `stanza` in `media`, naming the request's ignored fields.
fn rest_reply(stanza: &Element, media: &'static str, ignored: Option<String>) -> Response {
    let mut res = response(StatusCode::OK, rest::encode(stanza, media));
    insert_header(&mut res, "Content-Type", media);
    if let Some(names) = ignored {
        insert_header(&mut res, rest::IGNORED_HEADER, &names);
    }
    res
}

/// Queue a stanza for the stream (with an acknowledgement waiter if `wait`), or 503 when
/// the outbox is full, 413 when the stanza is over `xmpp.max_outgoing_bytes`.
fn push(app: &App, stanza: Element, wait: bool) -> Result<Option<AckWaiter>, Reject> {
    let waiter = app.outbox.push(&stanza, wait).map_err(|e| match e {
        PushError::TooLarge { .. } => Reject::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        _ => Reject::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            .header("Retry-After", RETRY_AFTER_FULL.to_string()),
    })?;
    metrics::inc(&app.metrics.accepted);
    Ok(waiter)
}

/// The stream state and outbox depth for anyone; with `full` (any valid key) also the
/// account, the outbox's limits, the rooms and the last error.
fn health(app: &App, full: bool) -> Response {
    let state = app.stream.get();
    let status = if state == StreamState::Online {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !full {
        let body = json!({
            "stream": state.as_str(),
            "outbox": { "depth": app.outbox.depth() },
        });
        return json_response(status, &body);
    }
    let rooms: Vec<_> = app
        .room_states()
        .into_iter()
        .map(|(jid, state, nick, why)| match why {
            Some(e) => json!({"room": jid.as_str(), "state": state, "nick": nick, "error": e}),
            None => json!({"room": jid.as_str(), "state": state, "nick": nick}),
        })
        .collect();
    let body = json!({
        "stream": state.as_str(),
        "jid": app.cfg.xmpp.jid.as_str(),
        "outbox": {
            "depth": app.outbox.depth(),
            "capacity": app.outbox.capacity(),
            "bytes": app.outbox.bytes(),
            "max_bytes": app.cfg.outbox.max_bytes,
        },
        "rooms": rooms,
        "last_error": *app.last_error.borrow(),
    });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut res = response(status, body.to_string());
    insert_header(&mut res, "Content-Type", "application/json");
    res
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut res = hyper::Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res
}

/// Set a header. Every name is ours and every value printable ASCII (config values are
/// checked at load, ids and URLs are built from checked parts); one that is not is left
/// out rather than sent broken.
fn insert_header(res: &mut Response, name: &'static str, value: &str) {
    if let (Ok(k), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        res.headers_mut().insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_must_keep_up_the_minimum_rate_after_its_first_second() {
        let t0 = Instant::now();
        assert_eq!(body_deadline(t0, 0, 1024), t0 + BODY_RATE_GRACE);
        assert_eq!(
            body_deadline(t0, 2048, 1024),
            t0 + BODY_RATE_GRACE + Duration::from_secs(2)
        );
    }

    #[test]
    fn a_body_never_takes_longer_than_the_body_timeout() {
        let t0 = Instant::now();
        assert_eq!(body_deadline(t0, 1 << 30, 1024), t0 + BODY_TIMEOUT);
        assert_eq!(
            body_deadline(t0, 0, 0),
            t0 + BODY_TIMEOUT,
            "rate 0: no minimum"
        );
    }
}
