//! The XMPP protocol as pure code: sans-I/O cores taking bytes and events and returning bytes
//! and actions (the stream, SASL, stanzas, JIDs, the roster, the JSON mapping, XML, the DNS
//! messages of the SRV lookup). Nothing here does I/O or imports from outside `xmpp/`; the
//! shell that drives these cores is `net`.

pub mod dns;
pub mod jid;
pub mod jsonmap;
pub mod roster;
pub mod sasl;
pub mod stanza;
pub mod stream;
pub mod upload;
pub mod xml;
