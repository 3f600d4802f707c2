//! xrelay: an HTTP door into XMPP for routers and small boards.
//!
//! Layer map (placeholder; filled in as the layers land).

pub mod xmpp;
