//! The XMPP client: sans-I/O protocol cores and the thin async shell that drives them.

pub mod dns;
pub mod jid;
pub mod jsonmap;
pub mod roster;
pub mod sasl;
pub mod stanza;
pub mod stream;
pub mod upload;
pub mod xml;
