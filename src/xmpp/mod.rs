//! The XMPP client: sans-I/O protocol cores and the thin async shell that drives them.

pub mod resolve;
pub mod sasl;
pub mod tls;
pub mod xml;
