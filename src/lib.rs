//! xrelay: an HTTP door into XMPP for routers and small boards.
//!
//! One XMPP client stream (a bot account) and a small HTTP listener on one thread, with
//! every buffer and queue bounded. Each entry of `src/` is one layer or one leaf; a layer
//! imports only from the layers below it (`tests/layout.rs` fails on a circle, and CI on
//! anything but `xmpp` itself imported into `xmpp/`). Top down:
//!
//! ```text
//!  main.rs, cli      the binary: cli parses the arguments of run, check, send, key and
//!     │              invite; main carries them out (`send` goes through the daemon's unix
//!     │              socket with net::local when it answers)
//!  daemon            setup, then the stream kept online: reconnects paced by `pacing`,
//!     │              session resumption, graceful stop, room joins, SIGHUP reloads
//!  dispatch          stanza in, replies out (synchronous): roster, invite approvals, room
//!     │              presences and echoes, iq replies awaited over /rest, ping/disco/version
//!     │              answers, and what goes to the webhook (if `access` lets its sender)
//!     ├── http/      the HTTP server: hyper HTTP/1 under a connection cap on TCP, TLS
//!     │              (https: certificate reload) and unix sockets; routes; auth (the
//!     │              credentials of a request); framing (smuggling forms hyper would merge);
//!     │              body (/msg), rest (/rest, mod_rest's bodies), multipart and upload (a
//!     │              posted file: slot, PUT, announcement)
//!     ├── webhook/   stanzas for the webhook: the byte-bounded queue and its one worker;
//!     │              mapping (pure: URL template, bodies, signature, answer → reply);
//!     │              client (the call, retried only when it never connected)
//!     │
//!  app               the state the tasks share: config, outbox, keys, invites, roster, rooms,
//!     │              iq waiters, upload state, metrics, the stream's status
//!  outbox, spool     serialized stanzas until the server acknowledges them, bounded in
//!     │              entries and bytes, delay stamps, poison stanzas taken out; the spool
//!     │              keeps them on disk across restarts
//!  iqwait, upload    iqs sent over /rest waiting for replies; uploads running, the upload
//!     │              service once found, the PUT to a slot
//!  rooms, pacing,    pure decisions: MUC join state and rejoin backoff, own echoes and
//!  access/           `?wait=1` reflections; when to reconnect; who may reach the webhook
//!     │              (access) and which HTTP clients are served (access::clients: the
//!     │              failed-auth limiter, requests per key, Host and cross-site checks)
//!  config/, store/   files: the config (with its strict TOML subset, config::toml) as typed,
//!     │              validated settings; store::hashfile (hashes, private atomic files,
//!     │              checks on the open descriptor, locks) under store::keys (API keys) and
//!     │              store::invites (XEP-0379 invites)
//!  net/              the I/O shell: conn (DNS, TCP, TLS, the socket loop around the stream
//!     │              core, SCRAM's PBKDF2 on a blocking thread), resolve (nameserver
//!     │              exchange), tls (rustls, pins), rt (hyper on smol), http_client (the
//!     │              one-request client of webhooks and uploads), local (`xrelay send`'s
//!     │              client of the unix socket), and `timeout`, every bounded wait
//!  xmpp/             the protocol, sans-I/O: stream (the client state machine: STARTTLS,
//!                    SASL with sasl, bind, stream management, keepalive), xml (bounded
//!                    framer, parser, serializer), dns (SRV queries and replies), jid, stanza,
//!                    roster, jsonmap (mod_rest's JSON mapping), upload (XEP-0363 stanzas)
//!
//!  leaves used by all: secret (Secret, constant-time compare, OS randomness), url (the
//!  config's http(s) URLs), timefmt, log (one line per event, control characters escaped),
//!  metrics (counters for /metrics); fuzzing (hidden) lets the fuzz targets in `fuzz/`
//!  reach the file parsers.
//! ```

pub mod access;
pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dispatch;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod iqwait;
pub mod log;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod pacing;
pub mod rooms;
pub mod secret;
pub mod spool;
pub mod store;
pub mod timefmt;
pub mod upload;
pub mod url;
pub mod webhook;
pub mod xmpp;
