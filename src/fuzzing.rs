//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) into parsers that are otherwise
//! private, and the state the HTTP front end needs (`http_app`). Not an API: nothing in
//! xrelay itself calls this module.
//!
//! Everything else the targets exercise (the stream parser, SCRAM, `/msg` bodies, JIDs, the
//! JSON mapping) is public already.

use crate::store::invites::{self, Invite};
use crate::store::keys::{self, Key};

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

/// Shared state for fuzzing the HTTP front end: a config with its files in `dir`, one API
/// key with every scope (its `ID/SECRET` is returned), and a closed outbox, so every
/// accepted message is answered at once (503) instead of waiting for a stream.
pub fn http_app(dir: &std::path::Path) -> Result<(crate::app::App, String), String> {
    use crate::config::Config;
    use crate::store::keys::{KeyFile, KeyStore, Scope};
    let keys = dir.join("keys");
    let invites = dir.join("invites");
    let text = format!(
        "[xmpp]\njid = \"bot@example.org\"\npassword = \"pw\"\n\
         [http]\nmax_body_bytes = 4096\n[keys]\nfile = {keys:?}\n\
         [invites]\nfile = {invites:?}\nmax = 1\npublic_url = \"https://r.example/i\"\n"
    );
    let cfg = Config::parse(&text, None).map_err(|e| e.to_string())?;
    let mut file = KeyFile::load(&keys).map_err(|e| format!("{e:?}"))?;
    let scopes = [Scope::Msg, Scope::Rest, Scope::Invite];
    let (_, token) = file
        .create(&scopes, None, "fuzz", crate::timefmt::now_unix())
        .map_err(|e| format!("{e:?}"))?;
    let keys = KeyStore::open(&keys).map_err(|e| format!("{e:?}"))?;
    let invites = invites::InviteStore::open(&invites).map_err(|e| format!("{e:?}"))?;
    let app = crate::app::App::new(cfg, keys, invites);
    app.outbox.close();
    Ok((app, token))
}
