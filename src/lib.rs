//! xrelay: an HTTP door into XMPP for routers and small boards.
//!
//! One XMPP client stream (a bot account) and, in later layers, a small HTTP listener, with
//! every buffer and queue bounded. The layers, bottom up:
//!
//! ```text
//!  main.rs (CLI: run, check, send)
//!     │
//!  daemon        keeps the stream online: reconnect with backoff, signals, iq answers
//!     │
//!  xmpp::conn    async shell on smol: DNS (xmpp::resolve), TCP, TLS (xmpp::tls), socket loop
//!     │
//!  xmpp::stream  sans-I/O client state machine: STARTTLS, SASL (xmpp::sasl), bind,
//!     │          stream management, keepalive, acknowledgements
//!  xmpp::xml     bounded incremental XML framer, element tree, escaping serializer
//!  xmpp::stanza  stanza builders;  xmpp::jid  addresses
//! ```
//!
//! `config` (with its strict TOML subset in `toml`) turns the config file into typed,
//! validated settings; `log` writes one line per state change to stderr.

pub mod config;
pub mod daemon;
pub mod log;
pub mod toml;
pub mod xmpp;
