//! Counters for `/metrics`, rendered in the Prometheus text format.
//!
//! Fixed storage: one counter per known HTTP status code plus one for the rest, so no
//! request can add a series. Counters are `AtomicUsize` because 32-bit MIPS has no 64-bit
//! atomics; they wrap after 2^32 there, which Prometheus' `rate()` treats as a reset.

use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The status codes xrelay answers with; anything else is counted as "other".
const CODES: [u16; 16] = [
    200, 201, 202, 204, 303, 400, 401, 403, 404, 405, 410, 413, 415, 422, 429, 503,
];

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages accepted into the outbox.
    pub accepted: AtomicUsize,
    /// Messages the server acknowledged.
    pub delivered: AtomicUsize,
    /// Messages the server bounced with an error after accepting them.
    pub failed: AtomicUsize,
    /// Messages taken out of the outbox because the server ended the stream over them twice.
    pub poisoned: AtomicUsize,
    /// Streams lost and re-established.
    pub reconnects: AtomicUsize,
    /// Webhook calls by result.
    pub webhook: WebhookCounters,
    /// Files posted to `/msg` and stored by the upload service.
    pub uploads_stored: AtomicUsize,
    /// Files posted to `/msg` that were not stored (refused, failed, too late).
    pub uploads_failed: AtomicUsize,
    responses: [AtomicUsize; CODES.len()],
    responses_other: AtomicUsize,
}

/// Webhook calls by result.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// The endpoint answered 2xx.
    pub ok: AtomicUsize,
    /// The endpoint answered 4xx or 5xx (the sender got the mapped stanza error).
    pub http_error: AtomicUsize,
    /// The endpoint could not be reached or did not answer in time, after the retries.
    pub unreachable: AtomicUsize,
    /// The queue was full; the sender got `resource-constraint`.
    pub rejected: AtomicUsize,
    /// A reply could not be queued because the outbox was full.
    pub reply_dropped: AtomicUsize,
}

/// Add one to a counter.
pub fn inc(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Count an HTTP response.
    pub fn response(&self, status: u16) {
        match CODES.iter().position(|&c| c == status) {
            Some(i) => inc(&self.responses[i]),
            None => inc(&self.responses_other),
        }
    }

    /// Render all metrics. Gauges are passed in by the caller that owns them.
    pub fn render(&self, online: bool, outbox_depth: usize, outbox_capacity: usize) -> String {
        let mut s = String::with_capacity(2048);
        let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        let counters = [
            (
                "xrelay_messages_accepted_total",
                "Messages accepted over HTTP.",
                &self.accepted,
            ),
            (
                "xrelay_messages_delivered_total",
                "Messages acknowledged by the server.",
                &self.delivered,
            ),
            (
                "xrelay_messages_failed_total",
                "Messages the server bounced with an error.",
                &self.failed,
            ),
            (
                "xrelay_messages_refused_by_server_total",
                "Messages taken out of the queue: the server ended the stream right after them twice.",
                &self.poisoned,
            ),
            (
                "xrelay_stream_reconnects_total",
                "XMPP streams re-established after a loss.",
                &self.reconnects,
            ),
            (
                "xrelay_uploads_stored_total",
                "Files posted over HTTP and stored by the upload service.",
                &self.uploads_stored,
            ),
            (
                "xrelay_uploads_failed_total",
                "Files posted over HTTP that were not stored (nothing announced).",
                &self.uploads_failed,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let gauges = [
            (
                "xrelay_stream_online",
                "1 when the XMPP stream is online.",
                usize::from(online),
            ),
            (
                "xrelay_outbox_depth",
                "Messages waiting for the server's acknowledgement.",
                outbox_depth,
            ),
            (
                "xrelay_outbox_capacity",
                "Configured outbox capacity.",
                outbox_capacity,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let name = "xrelay_webhook_requests_total";
        let _ = writeln!(
            s,
            "# HELP {name} Stanzas handed to the webhook, by result.\n# TYPE {name} counter"
        );
        let w = &self.webhook;
        for (result, c) in [
            ("ok", &w.ok),
            ("http_error", &w.http_error),
            ("unreachable", &w.unreachable),
            ("rejected", &w.rejected),
            ("reply_dropped", &w.reply_dropped),
        ] {
            let _ = writeln!(s, "{name}{{result=\"{result}\"}} {}", get(c));
        }
        let name = "xrelay_http_responses_total";
        let _ = writeln!(
            s,
            "# HELP {name} HTTP responses by status code.\n# TYPE {name} counter"
        );
        for (code, c) in CODES.iter().zip(&self.responses) {
            let _ = writeln!(s, "{name}{{code=\"{code}\"}} {}", get(c));
        }
        let _ = writeln!(s, "{name}{{code=\"other\"}} {}", get(&self.responses_other));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::default();
        inc(&m.accepted);
        inc(&m.accepted);
        m.response(202);
        m.response(999);
        inc(&m.webhook.unreachable);
        let s = m.render(true, 3, 256);
        assert!(s.contains("xrelay_messages_accepted_total 2\n"), "{s}");
        assert!(s.contains("xrelay_stream_online 1\n"), "{s}");
        assert!(s.contains("xrelay_outbox_depth 3\n"), "{s}");
        assert!(
            s.contains("xrelay_http_responses_total{code=\"202\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("xrelay_http_responses_total{code=\"other\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("xrelay_webhook_requests_total{result=\"unreachable\"} 1\n"),
            "{s}"
        );
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("xrelay_"), "{line}");
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
