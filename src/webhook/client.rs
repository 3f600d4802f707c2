//! The call to the endpoint: one POST over TCP or TLS (`net::http_client`), signed when a
//! secret is set, retried only while no connection was made, and its answer turned into
//! the reply by `mapping`.

use super::mapping::{
    fill_url, outcome, request_body, signature, Outcome, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::config::WebhookConfig;
use crate::log;
use crate::metrics::{self, Metrics};
use crate::net;
use crate::net::http_client::{self as client, ClientError};
use crate::net::tls;
use crate::url::Url;
use crate::xmpp::stanza;
use crate::xmpp::xml::Element;
use rustls::ClientConfig;
use smol::net::TcpStream;
use smol::Timer;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// First pause before retrying an unreachable endpoint; it doubles with each retry.
pub const RETRY_START: Duration = Duration::from_millis(500);
/// Longest pause between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(8);

/// Why a call to the endpoint failed before it gave an HTTP status.
#[derive(Debug)]
pub enum CallError {
    /// The URL could not be built or names no host.
    Url(String),
    /// No TCP connection (refused, unreachable, name not resolved): retried.
    Connect(std::io::Error),
    /// The TLS handshake failed.
    Tls(tls::TlsError),
    /// The endpoint did not answer within `webhook.timeout`.
    Timeout,
    /// The answer was not HTTP, or broke off.
    Http(String),
    /// The answer's body is larger than a stanza may be.
    TooLarge(usize),
}

impl CallError {
    /// Whether another attempt may succeed without the endpoint having seen the stanza:
    /// only when no connection was made, so a retry never delivers a stanza twice.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(why) => write!(f, "bad webhook URL: {why}"),
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Tls(e) => write!(f, "{e}"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Http(why) => write!(f, "bad HTTP answer: {why}"),
            Self::TooLarge(max) => write!(f, "the answer is larger than {max} bytes"),
        }
    }
}

impl std::error::Error for CallError {}

/// The endpoint and how to reach it.
#[derive(Debug)]
pub struct Webhook {
    cfg: WebhookConfig,
    tls: Arc<ClientConfig>,
    /// Largest answer body read: a reply must fit in a stanza.
    max_body: usize,
}

impl Webhook {
    /// The endpoint of `cfg`, reached with `tls`, reading answers of at most `max_body` bytes.
    pub fn new(cfg: WebhookConfig, tls: Arc<ClientConfig>, max_body: usize) -> Self {
        Self { cfg, tls, max_body }
    }

    /// Call the endpoint for `st` (retrying connection failures) and return the reply.
    pub async fn deliver(&self, st: &Element, metrics: &Metrics) -> Option<Element> {
        let url = fill_url(&self.cfg.url, st);
        let (body, content_type) = request_body(self.cfg.format, st);
        let mut pause = RETRY_START;
        let mut attempt = 0;
        let result = loop {
            let call = self.call(&url, &body, content_type);
            match net::timeout(self.cfg.timeout, call)
                .await
                .unwrap_or(Err(CallError::Timeout))
            {
                Err(e) if e.is_retryable() && attempt < self.cfg.retries => {
                    attempt += 1;
                    Timer::after(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                other => break other,
            }
        };
        let from = st.get_attr("from").unwrap_or_default();
        match result {
            Ok((status, ctype, answer)) => {
                let (out, problem) = outcome(st, status, ctype.as_deref(), &answer, self.max_body);
                if let Some(why) = problem {
                    log!(
                        "webhook: answer to the {} from {from} unusable: {why}",
                        st.name()
                    );
                }
                if (200..300).contains(&status) {
                    metrics::inc(&metrics.webhook.ok);
                } else {
                    metrics::inc(&metrics.webhook.http_error);
                    log!("webhook: HTTP {status} for the {} from {from}", st.name());
                }
                match out {
                    Outcome::Reply(r) => Some(r),
                    Outcome::NoReply => None,
                }
            }
            Err(e) => {
                metrics::inc(&metrics.webhook.unreachable);
                log!(
                    "webhook: the {} from {from} was not delivered: {e}",
                    st.name()
                );
                Some(stanza::error_reply(st, "wait", "recipient-unavailable"))
            }
        }
    }

    /// One POST: (status, content type, body).
    async fn call(
        &self,
        url: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<(u16, Option<String>, Vec<u8>), CallError> {
        let url = Url::parse(url).map_err(|e| CallError::Url(e.to_string()))?;
        let timestamp = crate::timefmt::now_unix();
        let timestamp_text = timestamp.to_string();
        let signed = self
            .cfg
            .secret
            .as_ref()
            .map(|secret| signature(secret.expose(), timestamp, body));
        let bearer = self
            .cfg
            .bearer
            .as_ref()
            .map(|b| format!("Bearer {}", b.expose()));
        let mut headers = vec![
            ("Content-Type", content_type),
            (
                "Accept",
                "application/json, application/xmpp+xml;q=0.9, */*;q=0.1",
            ),
            ("User-Agent", concat!("xrelay/", env!("CARGO_PKG_VERSION"))),
        ];
        if let Some(sig) = &signed {
            headers.push((TIMESTAMP_HEADER, &timestamp_text));
            headers.push((SIGNATURE_HEADER, sig));
        }
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        let addr_host = url.connect_host();
        let tcp = TcpStream::connect((addr_host, url.port_or_default()))
            .await
            .map_err(CallError::Connect)?;
        let res = if url.https {
            let stream = tls::connect(self.tls.clone(), addr_host, tcp)
                .await
                .map_err(CallError::Tls)?;
            client::post(stream, &url, &headers, body, self.max_body).await
        } else {
            client::post(tcp, &url, &headers, body, self.max_body).await
        };
        let res = res.map_err(|e| match e {
            ClientError::TooLarge(max) => CallError::TooLarge(max),
            other => CallError::Http(other.to_string()),
        })?;
        Ok((res.status, res.content_type, res.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_that_never_connected_is_retried() {
        assert!(!CallError::Timeout.is_retryable());
        assert!(CallError::Connect(std::io::ErrorKind::ConnectionRefused.into()).is_retryable());
    }
}
