//! XEP-0379 pre-authenticated roster invites to the bot, kept in a file that holds only
//! SHA-256 of each token.
//!
//! An invite is the URI `xmpp:BOT?roster;preauth=TOKEN`. Whoever opens it in an XMPP app
//! sends the bot a subscription request carrying the token; a valid, unexpired, unused
//! token gets it approved and is then used up. The contact that used it may use it again
//! (its approval may have been lost with the stream) until it expires, nobody else ever.
//!
//! File format (contract "Files", like the keys file): one invite per line,
//! `ID<TAB>SHA256(TOKEN) hex<TAB>state<TAB>created<TAB>expires<TAB>name`, where state is
//! `unused` or `used:JID` (the contact it let in), timestamps RFC 3339 UTC, `#` comments.
//! Written atomically with mode 0600; a file readable by group or others is refused.

use crate::log;
use crate::secret::{self, ct_eq};
use crate::store::hashfile::{self, hex, sha256, unhex32, DataFile, FileError, Signature};
use crate::timefmt::{format_rfc3339, parse_rfc3339};
use crate::xmpp::jid::BareJid;
use crate::xmpp::xml::escape_into;
use base64::Engine;
use std::cell::RefCell;
use std::fmt;
use std::path::Path;

/// Most invites `invites.max` may allow.
pub const MAX_INVITES: usize = 4096;

/// XEP-0379's namespace of `<preauth token='...'/>`.
pub const NS_PARS: &str = "urn:xmpp:pars:0";
/// Random bytes in a token: 128 bits, 22 URL-safe characters.
const TOKEN_BYTES: usize = 16;
/// Random bytes in an invite id (12 hex digits).
const ID_BYTES: usize = 6;
/// Longest token looked up; ours are 22 characters, anything much longer is not one.
pub const MAX_TOKEN_CHARS: usize = 64;

/// Whether an invite was used, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not used yet.
    Unused,
    /// Used by this contact.
    Used(BareJid),
}

/// One invite as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Names the invite for `list` and `revoke`; not secret.
    pub id: String,
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Used or not.
    pub state: State,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// When it stops working (Unix seconds).
    pub expires: u64,
    /// A label for humans.
    pub name: String,
}

/// Where an invite stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It can still be used.
    Valid,
    /// Its time is over.
    Expired,
    /// Someone used it.
    Used,
}

impl Invite {
    /// Where it stands at `now`; a used invite counts as used even once expired. While the
    /// clock is obviously unset ([`hashfile::clock_is_set`]) every invite counts as expired.
    pub fn status(&self, now: u64) -> Status {
        match self.state {
            State::Used(_) => Status::Used,
            State::Unused if self.expired(now) => Status::Expired,
            State::Unused => Status::Valid,
        }
    }

    fn expired(&self, now: u64) -> bool {
        now >= self.expires || !hashfile::clock_is_set(now)
    }
}

/// Why an invites operation failed. Never carries a token.
#[derive(Debug)]
pub enum InvitesError {
    /// The file cannot be read, written or parsed.
    File(FileError),
    /// No invite with that id.
    NotFound(String),
    /// A name with tabs, newlines or over the length limit.
    BadName,
    /// Every slot holds a valid invite (the limit).
    Full(usize),
    /// The OS random source failed.
    Random,
}

impl fmt::Display for InvitesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "{e}"),
            Self::NotFound(id) => write!(f, "invite not found: {id}"),
            Self::BadName => write!(
                f,
                "an invite name is printable text of at most {} characters",
                hashfile::MAX_NAME_CHARS
            ),
            Self::Full(n) => write!(
                f,
                "there are already {n} open invites (invites.max); revoke some first"
            ),
            Self::Random => f.write_str("the OS random source failed"),
        }
    }
}

impl std::error::Error for InvitesError {}

/// Why a token did not let a contact in.
#[derive(Debug)]
pub enum Refusal {
    /// No invite has this token (or it was revoked).
    Unknown,
    /// The invite's time is over.
    Expired,
    /// Someone else used it.
    Used,
    /// It was valid, but the file could not be read or written to mark it used: it is not
    /// approved, so that it cannot be used twice.
    NotSaved(InvitesError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("no such invite"),
            Self::Expired => f.write_str("the invite has expired"),
            Self::Used => f.write_str("the invite was already used"),
            Self::NotSaved(e) => write!(f, "the invite could not be marked used: {e}"),
        }
    }
}

/// The invites file in memory.
#[derive(Debug, Clone)]
pub struct InviteFile {
    file: DataFile,
    invites: Vec<Invite>,
}

impl InviteFile {
    /// Read the file; a missing file holds no invites.
    pub fn load(path: &Path) -> Result<Self, InvitesError> {
        let file = DataFile {
            what: "invites",
            path: path.to_path_buf(),
        };
        let invites = file
            .load(MAX_INVITES, parse_line)
            .map_err(InvitesError::File)?;
        Ok(Self { file, invites })
    }

    /// The invites, in file order.
    pub fn invites(&self) -> &[Invite] {
        &self.invites
    }

    /// Make an invite valid until `expires` and save the file. Returns it and its token,
    /// which is never stored and cannot be shown again. With `max` invites in the file,
    /// used and expired ones make room; if all are still valid, nothing is made.
    pub fn create(
        &mut self,
        name: &str,
        now: u64,
        expires: u64,
        max: usize,
    ) -> Result<(Invite, String), InvitesError> {
        if !hashfile::is_valid_name(name) {
            return Err(InvitesError::BadName);
        }
        let max = max.min(MAX_INVITES);
        let id = hex(&secret::random::<ID_BYTES>().map_err(|_| InvitesError::Random)?);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(secret::random::<TOKEN_BYTES>().map_err(|_| InvitesError::Random)?);
        let invite = Invite {
            id,
            token_hash: sha256(&token),
            state: State::Unused,
            created: now,
            expires,
            name: name.to_string(),
        };
        self.locked(|invites| {
            if invites.len() >= max {
                invites.retain(|i| i.status(now) == Status::Valid);
                if invites.len() >= max {
                    return Err(InvitesError::Full(max));
                }
            }
            invites.push(invite.clone());
            Ok(())
        })?;
        Ok((invite, token))
    }

    /// Delete an invite and save the file.
    pub fn revoke(&mut self, id: &str) -> Result<(), InvitesError> {
        self.locked(|invites| {
            let before = invites.len();
            invites.retain(|i| i.id != id);
            if invites.len() == before {
                return Err(InvitesError::NotFound(id.to_string()));
            }
            Ok(())
        })
    }

    /// Run `change` on the file as it is on disk now, under the file's lock, and save the
    /// result when it succeeds, so that changes made meanwhile by another process are
    /// neither lost nor undone. On any error the file and this copy stay as they were.
    fn locked<T, E: From<InvitesError>>(
        &mut self,
        change: impl FnOnce(&mut Vec<Invite>) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.file.lock().map_err(InvitesError::File)?;
        let mut invites = self
            .file
            .load(MAX_INVITES, parse_line)
            .map_err(InvitesError::File)?;
        let out = change(&mut invites)?;
        self.file
            .save(&render(&invites))
            .map_err(InvitesError::File)?;
        self.invites = invites;
        Ok(out)
    }

    /// The invite with this token. Every stored hash is compared, in constant time, so
    /// timing tells nothing about the tokens.
    pub fn find(&self, token: &str) -> Option<&Invite> {
        let presented = sha256(token);
        self.invites
            .iter()
            .fold(None, |found, i| match ct_eq(&presented, &i.token_hash) {
                true => Some(i),
                false => found,
            })
    }

    /// Let `contact` in with `token`: a valid invite is marked used by it and
    /// saved before it counts. The contact that used an invite may use it again while it
    /// is unexpired (its approval may have been lost with the stream); nobody else can,
    /// and a removed contact cannot come back with it once it expired.
    pub fn redeem(&mut self, token: &str, contact: &BareJid, now: u64) -> Result<Invite, Refusal> {
        let presented = sha256(token);
        self.locked(|invites| {
            let found = invites.iter().enumerate().fold(None, |found, (n, i)| {
                match ct_eq(&presented, &i.token_hash) {
                    true => Some(n),
                    false => found,
                }
            });
            let invite = found
                .and_then(|n| invites.get_mut(n))
                .ok_or(Refusal::Unknown)?;
            if invite.expired(now) {
                return Err(Refusal::Expired);
            }
            match &invite.state {
                State::Used(by) if by != contact => return Err(Refusal::Used),
                _ => invite.state = State::Used(contact.clone()),
            }
            Ok(invite.clone())
        })
    }
}

impl From<InvitesError> for Refusal {
    fn from(e: InvitesError) -> Self {
        Self::NotSaved(e)
    }
}

/// The invites file's text for `invites`.
pub(crate) fn render(invites: &[Invite]) -> String {
    let mut text =
        String::from("# xrelay invites: ID, SHA-256 of the token, state, created, expires, name\n");
    for i in invites {
        let state = match &i.state {
            State::Unused => "unused".to_string(),
            State::Used(by) => format!("used:{by}"),
        };
        text.push_str(&format!(
            "{}\t{}\t{state}\t{}\t{}\t{}\n",
            i.id,
            hex(&i.token_hash),
            format_rfc3339(i.created),
            format_rfc3339(i.expires),
            i.name
        ));
    }
    text
}

/// The invites in an invites file's text.
pub(crate) fn parse_text(text: &str) -> Result<Vec<Invite>, hashfile::Cause> {
    hashfile::parse_lines(text, MAX_INVITES, parse_line)
}

fn parse_line(line: &str) -> Result<Invite, String> {
    let f: Vec<&str> = line.split('\t').collect();
    let [id, hash, state, created, expires, name] = f[..] else {
        return Err(format!(
            "expected 6 tab-separated fields, found {}",
            f.len()
        ));
    };
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("invalid invite id".into());
    }
    let token_hash = unhex32(hash).ok_or("the hash is not 64 hex digits")?;
    let state = match state {
        "unused" => State::Unused,
        s => match s.strip_prefix("used:").map(BareJid::parse) {
            Some(Ok(jid)) => State::Used(jid),
            _ => return Err("the state is neither unused nor used:JID".into()),
        },
    };
    Ok(Invite {
        id: id.to_string(),
        token_hash,
        state,
        created: parse_rfc3339(created).map_err(|e| e.to_string())?,
        expires: parse_rfc3339(expires).map_err(|e| e.to_string())?,
        name: name.to_string(),
    })
}

/// The XEP-0379 URI of an invite to `bot`.
pub fn uri(bot: &BareJid, token: &str) -> String {
    format!(
        "xmpp:{}?roster;preauth={}",
        crate::xmpp::jid::uri_escape(bot.as_str()),
        token
    )
}

/// The landing page's URL under `public_url` (which has no trailing `/`).
pub fn landing_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/invite/{token}")
}

/// The token of a XEP-0379 `<preauth/>` in a subscription request, if any.
pub fn preauth_token(presence: &crate::xmpp::xml::Element) -> Option<&str> {
    presence.get_child("preauth", NS_PARS)?.get_attr("token")
}

/// `invite list`: aligned columns; never tokens or hashes.
pub fn format_list(invites: &[Invite], now: u64) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "NAME".into(),
        "CREATED".into(),
        "EXPIRES".into(),
        "STATE".into(),
    ]];
    for i in invites {
        let state = match (&i.state, i.status(now)) {
            (State::Used(by), _) => format!("used by {by}"),
            (_, Status::Expired) => "expired".into(),
            _ => "valid".into(),
        };
        rows.push([
            i.id.clone(),
            if i.name.is_empty() {
                "-".into()
            } else {
                i.name.clone()
            },
            format_rfc3339(i.created),
            format_rfc3339(i.expires),
            state,
        ]);
    }
    hashfile::format_table(&rows)
}

/// Text for HTML (the XML escaping serves: it covers `& < > " '`).
fn html(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    escape_into(text, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Self-contained styles: the page loads nothing else and reads well on a phone.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5;color:#222;background:#fafafa}\
a.open{display:block;text-align:center;padding:.9rem;margin:1.5rem 0;border-radius:.5rem;\
background:#1d5fd6;color:#fff;text-decoration:none;font-size:1.15rem}\
code{display:block;word-break:break-all;user-select:all;-webkit-user-select:all;padding:.6rem;\
background:#e8e8e8;border-radius:.3rem}small{color:#666}\
@media(prefers-color-scheme:dark){body{background:#181818;color:#ddd}code{background:#2a2a2a}\
small{color:#999}}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{}</title>\
         <style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        html(title)
    )
}

/// The landing page of `/invite/{token}`: HTTP status and HTML. `invite` is what the
/// token found, if anything.
pub fn landing_page(
    bot: &BareJid,
    token: &str,
    invite: Option<&Invite>,
    now: u64,
) -> (u16, String) {
    let gone = |title: &str, text: &str| {
        page(
            title,
            &format!("<h1>{}</h1>\n<p>{}</p>", html(title), html(text)),
        )
    };
    match invite.map(|i| (i, i.status(now))) {
        None => (
            404,
            gone(
                "Invite not found",
                "This invite link is not valid. It may have been mistyped or withdrawn; \
                 ask for a new one.",
            ),
        ),
        Some((_, Status::Used)) => (
            410,
            gone(
                "Invite already used",
                "This invite has already been used. Invites work once; ask for a new one.",
            ),
        ),
        Some((_, Status::Expired)) => (
            410,
            gone(
                "Invite expired",
                "This invite has expired; ask for a new one.",
            ),
        ),
        Some((i, Status::Valid)) => {
            let link = html(&uri(bot, token));
            let jid = html(bot.as_str());
            let body = format!(
                "<h1>You are invited</h1>\n\
                 <p>to receive messages from <strong>{jid}</strong> over XMPP.</p>\n\
                 <a class=\"open\" href=\"{link}\">Open in your XMPP app</a>\n\
                 <p>Nothing happens? Install an XMPP app (Conversations, Monal, Siskin, Dino, \
                 Gajim, ...), then open this link again, or paste this into the app:</p>\n\
                 <code>{link}</code>\n\
                 <p><small>Valid until {} UTC. It works once.</small></p>",
                html(&format_rfc3339(i.expires).replace('T', " ").replace('Z', ""))
            );
            (200, page(&format!("Invite from {}", bot.as_str()), &body))
        }
    }
}

/// The daemon's view of the invites file. Lookups use a copy that is reread whenever the
/// file changed (a `stat` per lookup), so invites made or revoked by the CLI count at
/// once; changes start from the file as it is on disk, so nothing written elsewhere is
/// lost and a file that does not load is never overwritten.
#[derive(Debug)]
pub struct InviteStore {
    state: RefCell<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    file: InviteFile,
    signature: Option<Signature>,
}

impl InviteStore {
    /// Load the invites file (missing = no invites).
    pub fn open(path: &Path) -> Result<Self, InvitesError> {
        let file = InviteFile::load(path)?;
        Ok(Self {
            state: RefCell::new(Loaded {
                signature: file.file.signature(),
                file,
            }),
        })
    }

    /// Reread the file now (SIGHUP). A file that does not load holds no invites until it
    /// loads (a revoked invite must not stay valid); nothing is redeemed meanwhile, since
    /// a redemption must be saved.
    pub fn reload(&self) -> Result<(), InvitesError> {
        let mut s = self.state.borrow_mut();
        // Remember the signature even on failure, so a bad file is reported once.
        s.signature = s.file.file.signature();
        match InviteFile::load(&s.file.file.path) {
            Ok(file) => {
                s.file = file;
                Ok(())
            }
            Err(e) => {
                s.file.invites.clear();
                Err(e)
            }
        }
    }

    /// The invite with this token, as it stands now.
    pub fn find(&self, token: &str) -> Option<Invite> {
        let changed = {
            let s = self.state.borrow();
            s.file.file.signature() != s.signature
        };
        if changed {
            if let Err(e) = self.reload() {
                log!("{}", refused_all(&e));
            }
        }
        self.state.borrow().file.find(token).cloned()
    }

    /// Run `change` (which works on the file as it is on disk, under its lock) and note
    /// the file's new signature.
    fn change<T>(&self, change: impl FnOnce(&mut InviteFile) -> T) -> T {
        let mut s = self.state.borrow_mut();
        let out = change(&mut s.file);
        s.signature = s.file.file.signature();
        out
    }

    /// [`InviteFile::create`].
    pub fn create(
        &self,
        name: &str,
        now: u64,
        expires: u64,
        max: usize,
    ) -> Result<(Invite, String), InvitesError> {
        self.change(|f| f.create(name, now, expires, max))
    }

    /// [`InviteFile::redeem`]. Unknown tokens (most requests that are refused) are turned
    /// away without reading the file.
    pub fn redeem(&self, token: &str, contact: &BareJid, now: u64) -> Result<Invite, Refusal> {
        self.find(token).ok_or(Refusal::Unknown)?;
        self.change(|f| f.redeem(token, contact, now))
    }
}

/// The log line for an invites file that does not load.
pub fn refused_all(e: &InvitesError) -> String {
    format!("ALL INVITES REFUSED: the invites file changed and does not load ({e}); no invite works until it loads again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A true time: tests run at the clock floor and after.
    const T: u64 = hashfile::CLOCK_FLOOR;

    fn bare(s: &str) -> BareJid {
        BareJid::parse(s).unwrap()
    }

    fn dir(name: &str) -> PathBuf {
        hashfile::test_dir(&format!("inv-{name}"))
    }

    #[test]
    fn written_file_reads_back_the_same() {
        // Found by fuzzing: CRs ending a line (other than one before the LF) stayed in
        // the name, and writing the file turned them into line endings.
        let h = hex(&sha256("t"));
        let text = format!(
            "a1\t{h}\tused:Alice@Example.org\t2024-01-02T03:04:05Z\t2024-01-09T03:04:05Z\tx\r\r\r\n\
             b2\t{h}\tunused\t2024-01-02T03:04:05Z\t2024-01-09T03:04:05Z\t\r"
        );
        let invites = parse_text(&text).unwrap();
        assert_eq!(invites[0].state, State::Used(bare("alice@example.org")));
        assert_eq!(invites[1].name, "");
        let written = render(&invites);
        assert_eq!(parse_text(&written).unwrap(), invites);
        assert_eq!(render(&parse_text(&written).unwrap()), written);
    }

    #[test]
    fn an_invite_is_stored_hashed_and_redeemed_by_one_account_until_revoked_or_expired() {
        let d = dir("cycle");
        let path = d.join("invites");
        let mut f = InviteFile::load(&path).unwrap();
        let (inv, token) = f.create("alice's phone", T + 1000, T + 2000, 10).unwrap();
        assert_eq!(token.len(), 22, "128 bits, URL-safe base64");
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token), "only the hash is stored");
        assert!(text.contains(&hex(&sha256(&token))));

        let mut f = InviteFile::load(&path).unwrap();
        assert_eq!(f.invites(), std::slice::from_ref(&inv));
        assert_eq!(f.find(&token), Some(&inv));
        assert_eq!(f.find("nope"), None);
        assert!(matches!(
            f.redeem("nope", &bare("a@x"), T + 1500),
            Err(Refusal::Unknown)
        ));
        assert!(matches!(
            f.redeem(&token, &bare("a@x"), T + 2000),
            Err(Refusal::Expired)
        ));
        let used = f.redeem(&token, &bare("a@x"), T + 1500).unwrap();
        assert_eq!(used.state, State::Used(bare("a@x")));
        assert!(matches!(
            f.redeem(&token, &bare("b@x"), T + 1500),
            Err(Refusal::Used)
        ));
        assert!(
            f.redeem(&token, &bare("a@x"), T + 1600).is_ok(),
            "the same contact again"
        );

        let f = InviteFile::load(&path).unwrap();
        assert_eq!(f.invites()[0].state, State::Used(bare("a@x")));
        let list = format_list(f.invites(), T + 1500);
        assert!(
            list.contains(&inv.id) && list.contains("used by a@x"),
            "{list}"
        );
        assert!(!list.contains(&token));
        let mut f = f;
        let (other, _) = f.create("", T + 1000, T + 1100, 10).unwrap();
        assert!(format_list(f.invites(), T + 1200).contains("expired"));
        f.revoke(&other.id).unwrap();
        assert!(matches!(
            f.revoke(&other.id),
            Err(InvitesError::NotFound(_))
        ));
        assert_eq!(InviteFile::load(&path).unwrap().invites().len(), 1);
        assert_eq!(hashfile::tests::temp_files(&d), 0, "no temp files left");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn removed_contacts_resubscription_with_an_expired_used_token_is_refused() {
        let d = dir("reuse");
        let mut f = InviteFile::load(&d.join("invites")).unwrap();
        let (_, token) = f.create("", T, T + 100, 5).unwrap();
        f.redeem(&token, &bare("a@x"), T + 10).unwrap();
        assert!(
            f.redeem(&token, &bare("a@x"), T + 99).is_ok(),
            "a lost approval may be asked for again"
        );
        assert!(matches!(
            f.redeem(&token, &bare("a@x"), T + 100),
            Err(Refusal::Expired)
        ));
        assert!(
            matches!(f.redeem(&token, &bare("a@x"), 5), Err(Refusal::Expired)),
            "a clock back in 1970 does not bring it back"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn invites_are_refused_while_the_clock_is_unset() {
        let d = dir("clock");
        let mut f = InviteFile::load(&d.join("invites")).unwrap();
        let (_, token) = f.create("", T, T + 100, 5).unwrap();
        assert!(matches!(
            f.redeem(&token, &bare("a@x"), 50),
            Err(Refusal::Expired)
        ));
        assert!(f.redeem(&token, &bare("a@x"), T + 1).is_ok());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn concurrent_revokes_and_redeems_lose_nothing() {
        const EACH: usize = 12;
        let d = dir("race");
        let path = d.join("invites");
        let mut f = InviteFile::load(&path).unwrap();
        let mut revoke = Vec::new();
        let mut redeem = Vec::new();
        for _ in 0..EACH {
            revoke.push(f.create("r", T, T + 1000, 100).unwrap().0.id);
            redeem.push(f.create("u", T, T + 1000, 100).unwrap().1);
        }
        std::thread::scope(|s| {
            // Each side works on its own copy loaded before the other changed anything,
            // as the CLI and the daemon do.
            let (p1, p2) = (&path, &path);
            let revoke = &revoke;
            let redeem = &redeem;
            s.spawn(move || {
                let mut mine = InviteFile::load(p1).unwrap();
                for id in revoke {
                    mine.revoke(id).unwrap();
                }
            });
            s.spawn(move || {
                let mut mine = InviteFile::load(p2).unwrap();
                for (n, token) in redeem.iter().enumerate() {
                    mine.redeem(token, &bare(&format!("c{n}@x")), T + 1)
                        .unwrap();
                }
            });
        });
        let after = InviteFile::load(&path).unwrap();
        assert_eq!(after.invites().len(), EACH, "every revoked invite is gone");
        assert!(
            after
                .invites()
                .iter()
                .all(|i| matches!(i.state, State::Used(_))),
            "every redemption is kept"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn full_file_makes_room_from_spent_invites_only() {
        let d = dir("full");
        let mut f = InviteFile::load(&d.join("invites")).unwrap();
        let (_, t1) = f.create("a", T, T + 100, 2).unwrap();
        f.create("b", T, T + 100, 2).unwrap();
        assert!(matches!(
            f.create("c", T, T + 100, 2),
            Err(InvitesError::Full(2))
        ));
        f.redeem(&t1, &bare("a@x"), T + 10).unwrap();
        f.create("c", T + 20, T + 100, 2).unwrap();
        let names: Vec<&str> = f.invites().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert!(
            f.create("d", T + 200, T + 300, 2).is_ok(),
            "expired ones give way"
        );
        assert!(matches!(
            f.create("a\tb", T, T + 1, 9),
            Err(InvitesError::BadName)
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_malformed_lines_and_keeps_used_when_save_fails() {
        let d = dir("bad");
        fs::create_dir_all(&d).unwrap();
        let path = d.join("invites");
        let h = "0".repeat(64);
        for bad in [
            "a\tb".to_string(),
            format!("a/b\t{h}\tunused\t2026-01-01T00:00:00Z\t2026-01-02T00:00:00Z\tn"),
            format!("a\t{h}\tused:\t2026-01-01T00:00:00Z\t2026-01-02T00:00:00Z\tn"),
            format!("a\t{h}\tunused\t2026-01-01T00:00:00Z\t-\tn"),
        ] {
            fs::write(&path, &bad).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(InviteFile::load(&path).is_err(), "{bad}");
        }
        fs::remove_file(&path).unwrap();
        let mut f = InviteFile::load(&path).unwrap();
        let (_, token) = f.create("", T, T + 100, 5).unwrap();
        // A directory where the file should be: the rename fails.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(
            f.redeem(&token, &bare("a@x"), T + 1),
            Err(Refusal::NotSaved(_))
        ));
        assert_eq!(f.invites()[0].state, State::Unused);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn store_sees_invites_made_elsewhere() {
        let d = dir("store");
        let path = d.join("invites");
        let store = InviteStore::open(&path).unwrap();
        let mut cli = InviteFile::load(&path).unwrap();
        let (inv, token) = cli.create("x", T, T + 100, 5).unwrap();
        assert_eq!(store.find(&token), Some(inv.clone()));
        assert!(store.redeem(&token, &bare("a@x"), T + 1).is_ok());
        let mut cli = InviteFile::load(&path).unwrap();
        assert!(matches!(
            cli.redeem(&token, &bare("b@x"), T + 2),
            Err(Refusal::Used)
        ));
        let (_, other) = cli.create("y", T, T + 100, 5).unwrap();
        assert!(store.find(&other).is_some());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            store.create("z", T, T + 100, 5).is_err(),
            "a refused file stays as it is"
        );
        assert!(matches!(
            store.redeem(&other, &bare("c@x"), T + 1),
            Err(Refusal::NotSaved(_))
        ));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        cli.revoke(&inv.id).unwrap();
        assert_eq!(store.find(&token), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn landing_pages_show_a_valid_invites_uri_and_refuse_used_expired_and_unknown_ones() {
        let bot = bare("bot@example.org");
        assert_eq!(
            uri(&bot, "TOK-en_1"),
            "xmpp:bot@example.org?roster;preauth=TOK-en_1"
        );
        assert_eq!(
            crate::xmpp::jid::uri_escape("a b?c#&é@d"),
            "a%20b%3Fc%23%26%C3%A9@d"
        );
        assert_eq!(
            landing_url("https://r.example/x", "T"),
            "https://r.example/x/invite/T"
        );
        let inv = Invite {
            id: "1".into(),
            token_hash: sha256("T"),
            state: State::Unused,
            created: T,
            expires: T + 86400,
            name: "<b>".into(),
        };
        let (status, body) = landing_page(&bot, "T", Some(&inv), T + 10);
        assert_eq!(status, 200);
        assert!(body.contains("href=\"xmpp:bot@example.org?roster;preauth=T\""));
        assert!(body.contains("2026-01-02 00:00:00 UTC"), "{body}");
        assert!(
            !body.contains("src=") && !body.contains("<link"),
            "self-contained"
        );
        assert_eq!(landing_page(&bot, "T", Some(&inv), T + 86400).0, 410);
        let used = Invite {
            state: State::Used(bare("a@x")),
            ..inv
        };
        let (status, body) = landing_page(&bot, "T", Some(&used), T + 10);
        assert_eq!(status, 410);
        assert!(body.contains("already been used") && !body.contains("preauth"));
        assert_eq!(landing_page(&bot, "T", None, T + 10).0, 404);
        assert_eq!(html("<a href='x'>&"), "&lt;a href=&apos;x&apos;&gt;&amp;");
        let p = crate::xmpp::xml::Element::new("presence", "jabber:client")
            .attr("type", "subscribe")
            .child(crate::xmpp::xml::Element::new("preauth", NS_PARS).attr("token", "T"));
        assert_eq!(preauth_token(&p), Some("T"));
    }
}
