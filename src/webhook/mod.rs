//! Webhooks: stanzas that reach the bot are POSTed to `webhook.url`, and the HTTP answer
//! becomes the XMPP reply (the semantics of mod_rest's callbacks and mod_component_http).
//!
//! Three parts: `mapping`, the pure half, turns a stanza into a request and an answer into
//! what the sender gets; `client` makes the call (retrying only what never reached the
//! endpoint); this module is the bounded queue and the one worker that drains it, so
//! replies keep the order of the stanzas and a slow endpoint never holds up the stream.

pub mod client;
pub mod mapping;

use crate::app::App;
use crate::config::WebhookConfig;
use crate::log;
use crate::metrics;
use crate::xmpp::stanza::NS_CLIENT;
use crate::xmpp::xml::{self, Element};
use client::Webhook;
use rustls::ClientConfig;
use smol::channel::{Receiver, Sender, TrySendError};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// The bounded queue in front of the worker: bounded in entries (`webhook.queue`) and in
/// bytes (`outbox.max_bytes`). Entries are serialized stanzas, a fraction of what their
/// element trees would take; the worker parses each again when its turn comes.
#[derive(Debug)]
pub struct Queue {
    tx: Sender<Box<[u8]>>,
    /// Bytes queued, shared with the worker.
    bytes: Rc<Cell<usize>>,
    max_bytes: usize,
}

impl Queue {
    /// Hand `st` to the worker; `false` when the queue is full (or the worker is gone).
    pub fn offer(&self, st: Element) -> bool {
        let xml = st.to_bytes(NS_CLIENT);
        let len = xml.len();
        if self.bytes.get() + len > self.max_bytes {
            return false;
        }
        match self.tx.try_send(xml.into_boxed_slice()) {
            Ok(()) => {
                self.bytes.set(self.bytes.get() + len);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
        }
    }
}

/// The worker's end of the [`Queue`].
#[derive(Debug)]
pub struct QueueRx {
    rx: Receiver<Box<[u8]>>,
    bytes: Rc<Cell<usize>>,
}

impl QueueRx {
    /// The next stanza, once one is queued; `None` when the queue is gone.
    async fn next(&self) -> Option<Element> {
        loop {
            let xml = self.rx.recv().await.ok()?;
            self.bytes.set(self.bytes.get().saturating_sub(xml.len()));
            // Our own serializer wrote it from a parsed stanza; it parses back the same.
            match xml::parse_document(&xml, xml.len()) {
                Ok(st) => return Some(st),
                Err(e) => log!("webhook: a queued stanza could not be read back ({e}); skipped"),
            }
        }
    }
}

#[cfg(test)]
impl QueueRx {
    /// The next stanza queued, without waiting.
    pub(crate) fn try_next(&self) -> Option<Element> {
        smol::future::block_on(smol::future::poll_once(self.next())).flatten()
    }
}

/// A webhook and its queue, holding at most `max_queue_bytes` of stanzas; the receiver
/// goes to [`run_worker`].
pub fn new(
    cfg: WebhookConfig,
    tls: Arc<ClientConfig>,
    max_body: usize,
    max_queue_bytes: usize,
) -> (Webhook, Queue, QueueRx) {
    if cfg.bearer.is_some() && cfg.is_plain_http_to_another_host() {
        log!(
            "warning: webhook.bearer goes in clear text over http:// to a host that is not \
             this machine; use https:// (webhook.url)"
        );
    }
    let (tx, rx) = smol::channel::bounded(cfg.queue);
    let bytes = Rc::new(Cell::new(0));
    let queue = Queue {
        tx,
        bytes: bytes.clone(),
        max_bytes: max_queue_bytes,
    };
    (
        Webhook::new(cfg, tls, max_body),
        queue,
        QueueRx { rx, bytes },
    )
}

/// The worker: one stanza at a time, so replies keep their order; each reply goes through
/// the outbox like any other stanza, so it survives a reconnect.
pub async fn run_worker(hook: Webhook, rx: QueueRx, app: &App) {
    while let Some(st) = rx.next().await {
        let Some(mut reply) = hook.deliver(&st, &app.metrics).await else {
            continue;
        };
        if reply.get_attr("id").is_none() {
            reply.set_attr("id", &app.next_id());
        }
        if let Err(e) = app.outbox.push(&reply, false) {
            metrics::inc(&app.metrics.webhook.reply_dropped);
            log!(
                "webhook: the reply to {} from {} was dropped: {e}",
                st.name(),
                st.get_attr("from").unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        xml::parse_document(s.as_bytes(), 65536).unwrap()
    }

    /// A queue of at most `entries` stanzas and `max_bytes` bytes, and its receiver.
    fn queue(entries: usize, max_bytes: usize) -> (Queue, QueueRx) {
        let (tx, rx) = smol::channel::bounded(entries);
        let bytes = Rc::new(Cell::new(0));
        let q = Queue {
            tx,
            bytes: bytes.clone(),
            max_bytes,
        };
        (q, QueueRx { rx, bytes })
    }

    #[test]
    fn queue_refuses_once_its_bytes_are_taken_and_hands_out_the_same_stanza() {
        let (q, rx) = queue(100, 1000);
        let st = el(&format!(
            "<message from='a@b/c' xmlns:p='urn:p'><body>{}</body><p:x a='&apos;'/></message>",
            "x".repeat(400)
        ));
        assert!(q.offer(st.clone()));
        assert!(q.offer(st.clone()));
        assert!(!q.offer(st.clone()), "a third would pass 1000 bytes");
        assert_eq!(smol::block_on(rx.next()), Some(st.clone()));
        assert!(q.offer(st));
    }

    #[test]
    fn a_stanza_shorter_than_a_stream_header_comes_out_of_the_queue() {
        let (q, rx) = queue(1, 1000);
        let st = el("<presence from='a@b/c'/>");
        assert!(q.offer(st.clone()));
        assert_eq!(rx.try_next(), Some(st));
    }
}
