//! What each HTTP request means: routing, authentication, bounded body reading, and the
//! answers of `/msg`, `/invites_api`, `/invite/{token}`, `/health` and `/metrics`
//! (contract section "HTTP API").
//!
//! Every error is JSON `{"error": "<one human sentence>"}` with the contract's status.

use super::auth::{self, Credentials};
use super::body::{self, MsgRequest};
use super::rest;
use super::{HttpIo, BODY_TIMEOUT};
use crate::app::{App, StreamState};
use crate::config;
use crate::invites::{self, InvitesError};
use crate::iqwait::WaitError;
use crate::keys::{AuthResult, Scope};
use crate::log;
use crate::metrics;
use crate::outbox::{AckWaiter, PushError};
use crate::rooms::{self, Reflection};
use crate::timefmt;
use crate::xmpp::jid::Jid;
use crate::xmpp::stanza;
use crate::xmpp::xml::Element;
use http_types::{Method, Request, Response, StatusCode};
use serde_json::json;
use smol::future::FutureExt;
use smol::io::AsyncReadExt;
use smol::Timer;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long `?wait=1` waits for the server's acknowledgement unless `X-Timeout` says less.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `X-Timeout` honoured.
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Seconds a client is asked to wait when a message cannot be queued (full, stopping).
const RETRY_AFTER_FULL: u64 = 5;

/// Answer one request and count the answer.
pub async fn handle(app: &App, mut req: Request, peer: IpAddr, io: &HttpIo) -> Response {
    let res = route(app, &mut req, peer, io)
        .await
        .unwrap_or_else(Reject::into_response);
    app.metrics.response(u16::from(res.status()));
    res
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
    fn new(status: StatusCode, msg: impl Into<String>) -> Reject {
        Reject {
            status,
            msg: msg.into(),
            headers: Vec::new(),
            id: None,
            condition: None,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reject {
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
            res.insert_header(k, v);
        }
        res
    }
}

type Answer = Result<Response, Reject>;

async fn route(app: &App, req: &mut Request, peer: IpAddr, io: &HttpIo) -> Answer {
    let path = req.url().path().to_string();
    let method = req.method();
    match path.as_str() {
        "/health" => {
            allow(method, &[Method::Get])?;
            Ok(health(app))
        }
        "/metrics" => {
            allow(method, &[Method::Get])?;
            authenticate(app, req, peer, None)?;
            let body = app.metrics.render(
                app.stream.get() == StreamState::Online,
                app.outbox.depth(),
                app.outbox.capacity(),
            );
            let mut res = Response::new(StatusCode::Ok);
            res.insert_header("Content-Type", "text/plain; version=0.0.4");
            res.set_body(body);
            Ok(res)
        }
        p if p.starts_with("/msg/") || p == "/msg" => {
            allow(method, &[Method::Get, Method::Post])?;
            authenticate(app, req, peer, Some(Scope::Msg))?;
            post_msg(app, req, io, p.strip_prefix("/msg/").unwrap_or("")).await
        }
        p if p.starts_with("/rest/") || p == "/rest" => {
            let rest_path = p.strip_prefix("/rest").unwrap_or("");
            if rest_path.trim_start_matches('/').is_empty() {
                allow(method, &[Method::Post])?;
            } else {
                allow(method, &[Method::Get, Method::Post])?;
            }
            authenticate(app, req, peer, Some(Scope::Rest))?;
            post_rest(app, req, io, rest_path).await
        }
        "/invites_api" => with_cors(invites_api(app, req, peer)),
        p if p.starts_with("/invite/") => {
            allow(method, &[Method::Get])?;
            Ok(invite_page(app, p.strip_prefix("/invite/").unwrap_or("")))
        }
        _ => Err(Reject::new(StatusCode::NotFound, "no such endpoint")),
    }
}

/// mod_invites_api's answers (CORS preflight included: `OPTIONS` needs no key).
fn invites_api(app: &App, req: &Request, peer: IpAddr) -> Answer {
    allow(req.method(), &[Method::Get, Method::Post, Method::Options])?;
    if req.method() == Method::Options {
        return Ok(Response::new(StatusCode::Ok));
    }
    authenticate(app, req, peer, Some(Scope::Invite))?;
    create_invite(app, req.url().query())
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
                res.insert_header(k, v);
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

fn allow(method: Method, allowed: &[Method]) -> Result<(), Reject> {
    if allowed.contains(&method) {
        return Ok(());
    }
    let names: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
    Err(
        Reject::new(StatusCode::MethodNotAllowed, "method not allowed here")
            .header("Allow", names.join(", ")),
    )
}

/// Check the API key; `scope` `None` accepts any valid key.
fn authenticate(
    app: &App,
    req: &Request,
    peer: IpAddr,
    scope: Option<Scope>,
) -> Result<(), Reject> {
    let now = Instant::now();
    if let Err(retry) = app.limiter.borrow().check(peer, now) {
        return Err(Reject::new(
            StatusCode::TooManyRequests,
            "too many failed attempts; try again later",
        )
        .header("Retry-After", retry.as_secs().max(1).to_string()));
    }
    let header = req
        .header("Authorization")
        .map(|h| h.last().as_str().to_string());
    let creds = match auth::credentials(header.as_deref(), req.url().query()) {
        Ok(Some(c)) => c,
        Ok(None) => return Err(unauthorized("an API key is required")),
        Err(e) => {
            app.limiter.borrow_mut().record_failure(peer, now);
            return Err(unauthorized(&e.to_string()));
        }
    };
    let Credentials { id, secret } = &creds;
    let result = app
        .keys
        .verify(id, secret, scope.unwrap_or(Scope::Msg), timefmt::now_unix());
    match result {
        AuthResult::Ok(_) => {
            app.limiter.borrow_mut().record_success(peer);
            Ok(())
        }
        AuthResult::MissingScope if scope.is_none() => {
            app.limiter.borrow_mut().record_success(peer);
            Ok(())
        }
        AuthResult::Unknown => {
            app.limiter.borrow_mut().record_failure(peer, now);
            Err(unauthorized("the API key is not valid"))
        }
        AuthResult::Expired => Err(Reject::new(
            StatusCode::Forbidden,
            "the API key has expired",
        )),
        AuthResult::MissingScope => Err(Reject::new(
            StatusCode::Forbidden,
            "the API key does not have the scope this endpoint needs",
        )),
    }
}

fn unauthorized(msg: &str) -> Reject {
    Reject::new(StatusCode::Unauthorized, msg).header(
        "WWW-Authenticate",
        "Basic realm=\"xrelay\", Bearer realm=\"xrelay\"",
    )
}

/// Read the body, refusing it once it exceeds `max` (413 before buffering it all).
async fn read_body(req: &mut Request, max: usize, io: &HttpIo) -> Result<Vec<u8>, Reject> {
    let too_large = || {
        io.stop_reading();
        Reject::new(
            StatusCode::PayloadTooLarge,
            format!("the body is larger than {max} bytes"),
        )
        .header("Connection", "close")
    };
    if req.len().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(req.len().unwrap_or(0).min(max));
    let mut body = req.take_body().take(max as u64 + 1);
    let read = async { Some(body.read_to_end(&mut buf).await) };
    let timeout = async {
        Timer::after(BODY_TIMEOUT).await;
        None
    };
    match read.or(timeout).await {
        None => {
            io.stop_reading();
            Err(Reject::new(
                StatusCode::RequestTimeout,
                "the body did not arrive in time",
            )
            .header("Connection", "close"))
        }
        Some(Err(_)) => {
            io.stop_reading();
            Err(
                Reject::new(StatusCode::BadRequest, "the body could not be read")
                    .header("Connection", "close"),
            )
        }
        Some(Ok(_)) if buf.len() > max => Err(too_large()),
        Some(Ok(_)) => Ok(buf),
    }
}

/// The body of a POST (empty for other methods) and its declared media type. async-h1
/// reports a missing Content-Type as application/octet-stream; both mean "none declared".
async fn request_body(
    app: &App,
    req: &mut Request,
    io: &HttpIo,
) -> Result<(Vec<u8>, Option<String>), Reject> {
    let body = if req.method() == Method::Post {
        read_body(req, app.cfg.http.max_body_bytes, io).await?
    } else {
        Vec::new()
    };
    let content_type = req
        .header("Content-Type")
        .map(|h| h.last().as_str().to_string())
        .filter(|c| !c.starts_with("application/octet-stream"));
    Ok((body, content_type))
}

async fn post_msg(app: &App, req: &mut Request, io: &HttpIo, path_to: &str) -> Answer {
    // No declared type is text/plain to the contract (UTF-8 is still checked).
    let (body, content_type) = request_body(app, req, io).await?;
    let header = |name: &str| req.header(name).map(|h| h.last().as_str().to_string());
    let subject = header("Subject").or_else(|| header("Title"));
    let query = req.url().query().map(str::to_string);
    let method = req.method().to_string();
    let msg = MsgRequest {
        method: &method,
        path_to,
        query: query.as_deref(),
        content_type: content_type.as_deref(),
        subject_header: subject.as_deref(),
        body: &body,
    };
    let out = body::parse_msg(&msg, &app.cfg.xmpp.jid, &app.cfg.xmpp.rooms).map_err(|e| {
        let status = StatusCode::try_from(e.status()).unwrap_or(StatusCode::BadRequest);
        Reject::new(status, e.to_string())
    })?;
    let wait = query
        .as_deref()
        .and_then(|q| auth::query_param(q, "wait"))
        .is_some_and(|v| matches!(v, Ok(v) if v != "0" && v != "false"));
    let timeout = header("X-Timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(WAIT_TIMEOUT, |s| {
            Duration::from_secs(s).min(MAX_WAIT_TIMEOUT)
        });
    if let Some(why) = app.room_refusal(&out.to) {
        return Err(Reject::new(StatusCode::ServiceUnavailable, why)
            .header("Retry-After", RETRY_AFTER_FULL.to_string()));
    }
    let id = app.next_id();
    let mut stanza = stanza::message(&out.to, out.kind, &id, &out.body, out.subject.as_deref());
    if let Some(html) = out.html {
        stanza.push_child(html);
    }
    // A room post waits for the room to reflect it back, not merely for the server's ack.
    let to_room = app.rooms.borrow().get(&out.to).is_some();
    let reflection = if wait && to_room {
        Some(app.reflections.wait(&id).map_err(|_| {
            Reject::new(
                StatusCode::ServiceUnavailable,
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
            StatusCode::Accepted,
            &json!({"id": id, "status": "queued"}),
        ));
    };
    let acked = async { waiter.recv().await.ok() };
    let timer = async {
        Timer::after(timeout).await;
        None
    };
    let delivery = acked.or(timer).await;
    if let Some(Ok(())) = delivery {
        Ok(json_response(
            StatusCode::Ok,
            &json!({"id": id, "status": "acknowledged"}),
        ))
    } else if let Some(Err(why)) = delivery {
        let mut r = Reject::new(StatusCode::BadGateway, why);
        r.id = Some(id);
        Err(r)
    } else {
        let mut r = Reject::new(
            StatusCode::GatewayTimeout,
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
    let got = async { rx.recv().await.ok() };
    let timer = async {
        Timer::after(timeout).await;
        None
    };
    let (status, condition, msg) = match got.or(timer).await {
        Some(Ok(())) => {
            return Ok(json_response(
                StatusCode::Ok,
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
        StatusCode::try_from(status).unwrap_or(StatusCode::BadGateway),
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
                    StatusCode::BadRequest,
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
                    StatusCode::UnprocessableEntity,
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
                InvitesError::BadName => StatusCode::UnprocessableEntity,
                InvitesError::Full(_) => StatusCode::Conflict,
                _ => StatusCode::InternalServerError,
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
        Response::new(StatusCode::SeeOther)
    } else {
        json_response(
            StatusCode::Created,
            &json!({
                "id": invite.id,
                "uri": uri,
                "url": url,
                "expires": timefmt::format_rfc3339(invite.expires),
            }),
        )
    };
    res.insert_header("Location", location);
    res.insert_header("Cache-Control", "no-store");
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
    let mut res = Response::new(StatusCode::try_from(status).unwrap_or(StatusCode::NotFound));
    res.insert_header("Content-Type", "text/html; charset=utf-8");
    res.insert_header("Cache-Control", "no-store");
    // The URL holds the token: no other site may see it, and the page loads nothing else.
    res.insert_header("Referrer-Policy", "no-referrer");
    res.insert_header(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'",
    );
    res.insert_header("X-Content-Type-Options", "nosniff");
    res.set_body(html);
    res
}

async fn post_rest(app: &App, req: &mut Request, io: &HttpIo, path: &str) -> Answer {
    let (body, content_type) = request_body(app, req, io).await?;
    let header = |name: &str| req.header(name).map(|h| h.last().as_str().to_string());
    let method = req.method().to_string();
    let query = req.url().query().map(str::to_string);
    let request = rest::RestRequest {
        method: &method,
        path,
        query: query.as_deref(),
        content_type: content_type.as_deref(),
        body: &body,
    };
    let parsed = rest::parse(&request, &app.cfg.xmpp.jid).map_err(|e| {
        let status = StatusCode::try_from(e.status()).unwrap_or(StatusCode::BadRequest);
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
            StatusCode::Forbidden,
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
        let mut res = json_response(StatusCode::Accepted, &json!({"id": id, "status": "queued"}));
        if let Some(names) = ignored {
            res.insert_header(rest::IGNORED_HEADER, names);
        }
        return Ok(res);
    }
    // The reply comes from where the request went; without `to`, from our own account.
    let own = app.cfg.xmpp.jid.bare();
    let from = match stanza.get_attr("to") {
        Some(to) => Jid::parse(to).unwrap_or_else(|_| own.clone()),
        None => own,
    };
    let waiting = app.iq_waits.wait(&id, from).map_err(|e| match e {
        WaitError::Full => Reject::new(StatusCode::ServiceUnavailable, e.to_string())
            .header("Retry-After", RETRY_AFTER_FULL.to_string()),
        WaitError::Duplicate => Reject::new(StatusCode::Conflict, e.to_string()),
    })?;
    push(app, stanza, false)?;
    let timeout = header("X-Timeout")
        .or_else(|| header("Prosody-Rest-Timeout"))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(app.cfg.rest.timeout, Duration::from_secs)
        .min(app.cfg.rest.max_timeout);
    let reply = async { waiting.reply().await };
    let timer = async {
        Timer::after(timeout).await;
        None
    };
    let Some(reply) = reply.or(timer).await else {
        let mut r = Reject::new(
            StatusCode::GatewayTimeout,
            format!("no reply to the iq within {} s", timeout.as_secs_f32()),
        );
        r.id = Some(id);
        return Err(r);
    };
    Ok(rest_reply(&reply, media, ignored))
}

/// 200 with `stanza` in `media`, naming the request's ignored fields.
fn rest_reply(stanza: &Element, media: &'static str, ignored: Option<String>) -> Response {
    let mut res = Response::new(StatusCode::Ok);
    res.insert_header("Content-Type", media);
    res.set_body(rest::encode(stanza, media));
    if let Some(names) = ignored {
        res.insert_header(rest::IGNORED_HEADER, names);
    }
    res
}

/// Queue a stanza for the stream (with an acknowledgement waiter if `wait`), or 503 when
/// the outbox is full, 413 when the stanza is over `xmpp.max_outgoing_bytes`.
fn push(app: &App, stanza: Element, wait: bool) -> Result<Option<AckWaiter>, Reject> {
    let waiter = app.outbox.push(&stanza, wait).map_err(|e| match e {
        PushError::TooLarge { .. } => Reject::new(StatusCode::PayloadTooLarge, e.to_string()),
        _ => Reject::new(StatusCode::ServiceUnavailable, e.to_string())
            .header("Retry-After", RETRY_AFTER_FULL.to_string()),
    })?;
    metrics::inc(&app.metrics.accepted);
    Ok(waiter)
}

fn health(app: &App) -> Response {
    let state = app.stream.get();
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
    let status = if state == StreamState::Online {
        StatusCode::Ok
    } else {
        StatusCode::ServiceUnavailable
    };
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut res = Response::new(status);
    res.insert_header("Content-Type", "application/json");
    res.set_body(body.to_string());
    res
}
