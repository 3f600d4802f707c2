//! The I/O shell around the pure cores: the XMPP connection, DNS lookups, TLS, hyper on
//! smol, the one-request HTTP client of webhooks and uploads, and the unix-socket client of
//! `xrelay send`.

pub mod conn;
pub mod http_client;
pub mod local;
pub mod resolve;
pub mod rt;
pub mod tls;
