//! xrelay: an HTTP door into XMPP for routers and small boards.
//!
//! One XMPP client stream (a bot account) and a small HTTP listener on one thread, with
//! every buffer and queue bounded. The layers, top down:
//!
//! ```text
//!  main.rs        CLI: run, check, send, key, invite
//!     │
//!  daemon         the single-threaded executor: HTTP listeners + the stream kept online
//!     │           (reconnect with backoff and session resumption, graceful stop, MUC joins,
//!     │           roster, invite approvals, inbound answers)
//!     ├── http    async-h1 listener under a connection cap (http), routes, auth, /msg and
//!     │           /rest bodies; iqwait: the iqs sent over /rest waiting for replies
//!     │     │
//!     │   app     shared state: outbox (bounded, until acknowledged; optionally on disk in
//!     │           `spool`), keys, invites, roster, metrics, status
//!     ├── webhook inbound stanzas → bounded queue → one worker POSTing them (http::client)
//!     │
//!  xmpp::conn     async shell on smol: DNS (xmpp::resolve), TCP, TLS (xmpp::tls), socket loop
//!     │
//!  xmpp::stream   sans-I/O client state machine: STARTTLS, SASL (xmpp::sasl), bind,
//!     │           stream management, keepalive, acknowledgements
//!  xmpp::xml      bounded incremental XML framer, element tree, escaping serializer
//!  xmpp::stanza   stanza builders;  xmpp::jid  addresses;  xmpp::roster  the roster;
//!  xmpp::jsonmap  stanzas as JSON
//! ```
//!
//! Beside them: `config` (with its strict TOML subset in `toml`) turns the config file into
//! typed, validated settings; `keys` keeps API keys hashed in a file, `invites` XEP-0379
//! invite tokens likewise (both on `hashfile`: hashes, private atomic files); `timefmt` formats
//! timestamps; `log` writes one line per state change to stderr. `fuzzing` (hidden) lets the
//! fuzz targets in `fuzz/` reach the file parsers.

pub mod app;
pub mod config;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod hashfile;
pub mod http;
pub mod invites;
pub mod iqwait;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod outbox;
pub mod spool;
pub mod timefmt;
pub mod toml;
pub mod upload;
pub mod webhook;
pub mod xmpp;
