//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) into parsers that are otherwise
//! private. Not an API: nothing in xrelay itself calls this module.
//!
//! Everything else the targets exercise (the stream parser, SCRAM, `/msg` bodies, JIDs, the
//! JSON mapping) is public already.

use crate::invites::{self, Invite};
use crate::keys::{self, Key};

/// The keys in a keys file's text, as `xrelay run` would load them.
pub fn parse_keys(text: &str) -> Result<Vec<Key>, String> {
    keys::parse_text(text).map_err(|cause| format!("{cause:?}"))
}

/// The keys file's text for `keys`, as `xrelay key create` would write it.
pub fn render_keys(keys: &[Key]) -> String {
    keys::render(keys)
}

/// The invites in an invites file's text, as `xrelay run` would load them.
pub fn parse_invites(text: &str) -> Result<Vec<Invite>, String> {
    invites::parse_text(text).map_err(|cause| format!("{cause:?}"))
}

/// The invites file's text for `invites`, as `xrelay invite create` would write it.
pub fn render_invites(invites: &[Invite]) -> String {
    invites::render(invites)
}
