//! The XMPP client: sans-I/O protocol cores and the thin async shell that drives them.

pub mod conn;
pub mod jid;
pub mod jsonmap;
pub mod resolve;
pub mod roster;
pub mod sasl;
pub mod stanza;
pub mod stream;
pub mod tls;
pub mod upload;
pub mod xml;
