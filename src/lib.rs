//! xrelay: an HTTP door into XMPP for routers and small boards.
//!
//! One XMPP client stream (a bot account) and a small HTTP listener on one thread, with
//! every buffer and queue bounded. The layers, top down:
//!
//! ```text
//!  main.rs        CLI: run, check, send, key, invite (`send` posts through the daemon's
//!     │           unix socket with http::local when it answers)
//!     │
//!  daemon         the single-threaded executor: HTTP listeners + the stream kept online
//!     │           (reconnect paced by `pacing`, session resumption, graceful stop, MUC
//!     │           joins by `rooms`, roster, invite approvals, inbound answers filtered by
//!     │           `access`)
//!     ├── http    hyper HTTP/1 listener under a connection cap (http; http::rt adapts hyper
//!     │           to smol; http::framing marks smuggling forms hyper would merge) on TCP,
//!     │           TLS (http::https: certificate reload) and unix sockets, routes, auth
//!     │           (limiter, Host, cross-site), /msg and /rest bodies, http::url;
//!     │           iqwait: the iqs sent over /rest waiting for replies
//!     │     │
//!     │   app     shared state: outbox (serialized stanzas bounded in entries and bytes,
//!     │           until acknowledged; delay stamps; poison stanzas taken out; optionally on
//!     │           disk in `spool`, replayed as room frees up), keys, invites, roster, rooms,
//!     │           metrics, status
//!     ├── webhook inbound stanzas → byte-bounded queue → one worker POSTing them (http::client,
//!     │           hyper's HTTP/1 client)
//!     ├── upload  files posted to /msg: XEP-0363 service and slot over the stream, bounded
//!     │           uploads at once; http::upload streams the body (http::multipart for forms)
//!     │           to the slot with http::client and announces it (xmpp::upload: pure stanzas)
//!     │
//!  xmpp::conn     async shell on smol: DNS (xmpp::resolve), TCP, TLS (xmpp::tls), socket loop,
//!     │           SCRAM's PBKDF2 on a blocking thread
//!     │
//!  xmpp::stream   sans-I/O client state machine: STARTTLS, SASL (xmpp::sasl), bind,
//!     │           stream management, keepalive, acknowledgements
//!  xmpp::xml      bounded incremental XML framer (reads past oversized stanzas), element
//!                 tree, escaping serializer
//!  xmpp::stanza   stanza builders;  xmpp::jid  addresses;  xmpp::roster  the roster;
//!  xmpp::jsonmap  stanzas as JSON (mod_rest's mapping, XEP-0004 forms included)
//! ```
//!
//! Pure decision modules beside the daemon: `pacing` (when to reconnect), `rooms` (MUC join
//! state, rejoin backoff, own echoes, `?wait=1` reflections), `access` (who may reach the
//! webhook).
//!
//! Beside them: `config` (with its strict TOML subset in `toml`) turns the config file into
//! typed, validated settings; `keys` keeps API keys hashed in a file, `invites` XEP-0379
//! invite tokens likewise (both on `hashfile`: hashes, private atomic files, checks on the
//! open descriptor, locks; config and spool read and write through it too); `timefmt` formats
//! timestamps; `log` writes one line per state change to stderr, control characters escaped. `fuzzing` (hidden) lets the
//! fuzz targets in `fuzz/` reach the file parsers.

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
