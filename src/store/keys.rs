//! API keys shaped `ID/SECRET`, kept in a plain file that holds only SHA-256 of each secret.
//!
//! File format (contract "Files"): one key per line,
//! `ID<TAB>SHA256(SECRET) hex<TAB>scopes<TAB>created<TAB>expires<TAB>name`, timestamps in
//! RFC 3339 UTC (`-` for no expiry), `#` comments. Written atomically (temp file, fsync,
//! rename) with mode 0600; a file readable by group or others is refused. [`KeyStore`]
//! rereads the file when it changes, so keys made or deleted by the CLI take effect in a
//! running daemon without a restart; a changed file that does not load revokes every key
//! (fails closed) until it loads again.

use crate::log;
use crate::secret::{self, ct_eq};
use crate::store::hashfile::{self, hex, sha256, unhex32, DataFile, FileError, Signature};
use crate::timefmt::{format_rfc3339, parse_rfc3339};
use base64::Engine;
use std::fmt;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Most keys a file may hold.
pub const MAX_KEYS: usize = 1024;
/// How often the daemon looks at the file for changes (at most).
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /msg`.
    Msg,
    /// `POST /rest`.
    Rest,
    /// `/invites_api`.
    Invite,
}

impl Scope {
    /// The name in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Msg => "msg",
            Self::Rest => "rest",
            Self::Invite => "invite",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "msg" => Some(Self::Msg),
            "rest" => Some(Self::Rest),
            "invite" => Some(Self::Invite),
            _ => None,
        }
    }
}

/// One key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The public half of the token.
    pub id: String,
    /// SHA-256 of the secret half.
    pub secret_hash: [u8; 32],
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// When it stops working, if ever.
    pub expires: Option<u64>,
    /// A label for humans.
    pub name: String,
}

/// Why a keys operation failed. Never carries a secret.
#[derive(Debug)]
pub enum KeysError {
    /// The file cannot be read, written or parsed.
    File(FileError),
    /// No key with that id.
    NotFound(String),
    /// An unknown scope name.
    BadScope(String),
    /// A name with tabs, newlines or over the length limit.
    BadName,
    /// The file already holds [`MAX_KEYS`] keys.
    TooMany,
    /// The OS random source failed.
    Random,
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(e) => write!(f, "{e}"),
            Self::NotFound(id) => write!(f, "key not found: {id}"),
            Self::BadScope(s) => {
                write!(f, "unknown scope {s:?} (expected msg, rest or invite)")
            }
            Self::BadName => write!(
                f,
                "a key name is printable text of at most {} characters",
                hashfile::MAX_NAME_CHARS
            ),
            Self::TooMany => write!(f, "the keys file already holds {MAX_KEYS} keys"),
            Self::Random => f.write_str("the OS random source failed"),
        }
    }
}

impl std::error::Error for KeysError {}

/// Parse `msg,rest`.
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>, KeysError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let scope = Scope::parse(part).ok_or_else(|| KeysError::BadScope(part.to_string()))?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out)
}

/// The outcome of checking a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// Valid for the scope; the key's id.
    Ok(String),
    /// No such id or a wrong secret (deliberately the same answer).
    Unknown,
    /// Valid but expired.
    Expired,
    /// Valid but without the scope.
    MissingScope,
}

/// The keys file in memory.
#[derive(Debug, Clone)]
pub struct KeyFile {
    file: DataFile,
    keys: Vec<Key>,
}

impl KeyFile {
    /// Read the file; a missing file holds no keys.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let file = DataFile {
            what: "keys",
            path: path.to_path_buf(),
        };
        let keys = file.load(MAX_KEYS, parse_line).map_err(KeysError::File)?;
        Ok(Self { file, keys })
    }

    /// The keys, in file order.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Run `change` on the file as it is on disk now, under the file's lock, so that
    /// changes made meanwhile by another process are neither lost nor undone.
    fn locked<T>(
        &mut self,
        change: impl FnOnce(&mut Vec<Key>) -> Result<T, KeysError>,
    ) -> Result<T, KeysError> {
        let _lock = self.file.lock().map_err(KeysError::File)?;
        let mut keys = self
            .file
            .load(MAX_KEYS, parse_line)
            .map_err(KeysError::File)?;
        let out = change(&mut keys)?;
        self.file.save(&render(&keys)).map_err(KeysError::File)?;
        self.keys = keys;
        Ok(out)
    }

    /// Make a key and save the file. Returns the key and its `ID/SECRET` token, which is
    /// never stored and cannot be shown again.
    pub fn create(
        &mut self,
        scopes: &[Scope],
        expires: Option<u64>,
        name: &str,
        now: u64,
    ) -> Result<(Key, String), KeysError> {
        if !hashfile::is_valid_name(name) {
            return Err(KeysError::BadName);
        }
        let id = secret::random::<8>().map_err(|_| KeysError::Random)?;
        let secret = secret::random::<32>().map_err(|_| KeysError::Random)?;
        let id = hex(&id);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let key = Key {
            id: id.clone(),
            secret_hash: sha256(&secret),
            scopes: scopes.to_vec(),
            created: now,
            expires,
            name: name.to_string(),
        };
        self.locked(|keys| {
            if keys.len() >= MAX_KEYS {
                return Err(KeysError::TooMany);
            }
            keys.push(key.clone());
            Ok(())
        })?;
        Ok((key, format!("{id}/{secret}")))
    }

    /// Delete a key and save the file.
    pub fn delete(&mut self, id: &str) -> Result<(), KeysError> {
        self.locked(|keys| {
            let before = keys.len();
            keys.retain(|k| k.id != id);
            if keys.len() == before {
                return Err(KeysError::NotFound(id.to_string()));
            }
            Ok(())
        })
    }

    /// Check a presented token for `scope`. While the clock is obviously unset
    /// ([`hashfile::clock_is_set`]), a key with an expiry counts as expired: its expiry
    /// cannot be judged, and an old clock must not bring expired keys back.
    pub fn verify(&self, id: &str, secret: &str, scope: Scope, now: u64) -> AuthResult {
        let presented = sha256(secret);
        // Compare against something even for an unknown id, so timing does not tell
        // which ids exist.
        let dummy = [0u8; 32];
        let key = self.keys.iter().find(|k| k.id == id);
        let matches = ct_eq(&presented, key.map_or(&dummy, |k| &k.secret_hash));
        match key {
            Some(k) if matches => {
                if k.expires
                    .is_some_and(|e| now >= e || !hashfile::clock_is_set(now))
                {
                    AuthResult::Expired
                } else if !k.scopes.contains(&scope) {
                    AuthResult::MissingScope
                } else {
                    AuthResult::Ok(k.id.clone())
                }
            }
            _ => AuthResult::Unknown,
        }
    }
}

/// The keys file's text for `keys`.
pub(crate) fn render(keys: &[Key]) -> String {
    let mut text = String::from(
        "# xrelay API keys: ID, SHA-256 of the secret, scopes, created, expires, name\n",
    );
    for k in keys {
        let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            k.id,
            hex(&k.secret_hash),
            scopes.join(","),
            format_rfc3339(k.created),
            k.expires.map_or_else(|| "-".to_string(), format_rfc3339),
            k.name
        ));
    }
    text
}

/// The keys in a keys file's text.
pub(crate) fn parse_text(text: &str) -> Result<Vec<Key>, hashfile::Cause> {
    hashfile::parse_lines(text, MAX_KEYS, parse_line)
}

fn parse_line(line: &str) -> Result<Key, String> {
    let f: Vec<&str> = line.split('\t').collect();
    let [id, hash, scopes, created, expires, name] = f[..] else {
        return Err(format!(
            "expected 6 tab-separated fields, found {}",
            f.len()
        ));
    };
    if id.is_empty() || id.contains('/') || id.contains(':') {
        return Err("invalid key id".into());
    }
    let secret_hash = unhex32(hash).ok_or("the hash is not 64 hex digits")?;
    let scopes = parse_scopes(scopes).map_err(|e| e.to_string())?;
    let created = parse_rfc3339(created).map_err(|e| e.to_string())?;
    let expires = match expires {
        "-" => None,
        e => Some(parse_rfc3339(e).map_err(|e| e.to_string())?),
    };
    Ok(Key {
        id: id.to_string(),
        secret_hash,
        scopes,
        created,
        expires,
        name: name.to_string(),
    })
}

/// `key list`: aligned columns; never secrets or hashes.
pub fn format_list(keys: &[Key], now: u64) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "NAME".into(),
        "SCOPES".into(),
        "CREATED".into(),
        "EXPIRES".into(),
    ]];
    for k in keys {
        let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
        let expires = match k.expires {
            None => "never".to_string(),
            Some(e) if e <= now => format!("{} (expired)", format_rfc3339(e)),
            Some(e) => format_rfc3339(e),
        };
        rows.push([
            k.id.clone(),
            if k.name.is_empty() {
                "-".into()
            } else {
                k.name.clone()
            },
            scopes.join(","),
            format_rfc3339(k.created),
            expires,
        ]);
    }
    hashfile::format_table(&rows)
}

/// The daemon's view of the keys file, reloaded when the file changes.
#[derive(Debug)]
pub struct KeyStore {
    file: DataFile,
    state: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    file: KeyFile,
    signature: Option<Signature>,
    checked: Instant,
}

impl KeyStore {
    /// Load the keys file (missing = no keys).
    pub fn open(path: &Path) -> Result<Self, KeysError> {
        let loaded = KeyFile::load(path)?;
        let file = loaded.file.clone();
        Ok(Self {
            state: RwLock::new(Loaded {
                signature: file.signature(),
                file: loaded,
                checked: Instant::now(),
            }),
            file,
        })
    }

    /// Check a presented token. The file is reread when it changed: checked at most once
    /// per [`RECHECK`], and at once when the token is unknown (a key made a moment ago).
    pub fn verify(&self, id: &str, secret: &str, scope: Scope, now: u64) -> AuthResult {
        let (result, due) = match self.state.read() {
            Ok(s) => (
                s.file.verify(id, secret, scope, now),
                s.checked.elapsed() >= RECHECK,
            ),
            Err(_) => (AuthResult::Unknown, true),
        };
        if !(due || result == AuthResult::Unknown) || !self.changed() {
            return result;
        }
        if let Err(e) = self.reload() {
            log!("{}", revoked_all(&e));
        }
        match self.state.read() {
            Ok(s) => s.file.verify(id, secret, scope, now),
            Err(_) => AuthResult::Unknown,
        }
    }

    /// Whether the file differs from what was loaded (and note that it was checked).
    fn changed(&self) -> bool {
        let sig = self.file.signature();
        match self.state.write() {
            Ok(mut s) => {
                s.checked = Instant::now();
                s.signature != sig
            }
            Err(_) => false,
        }
    }

    /// Reread the file now (SIGHUP). A file that does not load revokes every key until
    /// it loads: the key just deleted from it, or all of them, must not stay valid.
    pub fn reload(&self) -> Result<(), KeysError> {
        let sig = self.file.signature();
        let result = KeyFile::load(&self.file.path);
        let mut s = self.state.write().map_err(|_| {
            KeysError::File(FileError {
                what: self.file.what,
                path: self.file.path.clone(),
                cause: hashfile::Cause::Io(std::io::Error::other("keys lock poisoned")),
            })
        })?;
        // Remember the signature even on failure, so a bad file is reported once.
        s.signature = sig;
        match result {
            Ok(file) => {
                s.file = file;
                Ok(())
            }
            Err(e) => {
                s.file.keys.clear();
                Err(e)
            }
        }
    }
}

/// The log line for a keys file that does not load.
pub fn revoked_all(e: &KeysError) -> String {
    format!(
        "ALL API KEYS REFUSED: the keys file does not load ({e}); \
         every key is refused until it loads again"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hashfile::Cause;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn dir(name: &str) -> PathBuf {
        hashfile::test_dir(&format!("keys-{name}"))
    }

    #[test]
    fn a_created_key_verifies_lists_without_its_secret_and_is_gone_once_deleted() {
        let d = dir("cycle");
        let path = d.join("keys");
        let mut f = KeyFile::load(&path).unwrap();
        assert!(f.keys().is_empty());
        let (key, token) = f.create(&[Scope::Msg], None, "router", 1000).unwrap();
        let (id, secret) = token.split_once('/').unwrap();
        assert_eq!(id, key.id);
        assert_eq!(id.len(), 16);
        assert_eq!(secret.len(), 43);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(secret), "only the hash is stored");
        let f = KeyFile::load(&path).unwrap();
        assert_eq!(f.keys(), std::slice::from_ref(&key));
        assert_eq!(
            f.verify(id, secret, Scope::Msg, 2000),
            AuthResult::Ok(id.to_string())
        );
        assert_eq!(f.verify(id, "wrong", Scope::Msg, 2000), AuthResult::Unknown);
        assert_eq!(
            f.verify("nope", secret, Scope::Msg, 2000),
            AuthResult::Unknown
        );
        assert_eq!(
            f.verify(id, secret, Scope::Rest, 2000),
            AuthResult::MissingScope
        );
        let list = format_list(f.keys(), 2000);
        assert!(
            list.contains(id) && list.contains("router") && list.contains("never"),
            "{list}"
        );
        assert!(!list.contains(secret));
        let mut f = f;
        f.delete(id).unwrap();
        assert!(matches!(f.delete(id), Err(KeysError::NotFound(_))));
        assert!(KeyFile::load(&path).unwrap().keys().is_empty());
        assert_eq!(hashfile::tests::temp_files(&d), 0, "no temp files left");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_key_expires_at_its_time_and_unknown_scopes_or_bad_names_are_refused() {
        let d = dir("expiry");
        let mut f = KeyFile::load(&d.join("keys")).unwrap();
        let t = hashfile::CLOCK_FLOOR;
        let (_, token) = f
            .create(
                &parse_scopes("rest, invite").unwrap(),
                Some(t + 100),
                "",
                t + 10,
            )
            .unwrap();
        let (id, secret) = token.split_once('/').unwrap();
        assert_eq!(
            f.verify(id, secret, Scope::Rest, t + 99),
            AuthResult::Ok(id.into())
        );
        assert_eq!(
            f.verify(id, secret, Scope::Rest, t + 100),
            AuthResult::Expired
        );
        assert!(format_list(f.keys(), t + 200).contains("(expired)"));
        assert!(matches!(
            parse_scopes("msg,admin"),
            Err(KeysError::BadScope(_))
        ));
        assert!(matches!(
            f.create(&[Scope::Msg], None, "a\tb", 0),
            Err(KeysError::BadName)
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_readable_and_malformed_files() {
        let d = dir("bad");
        fs::create_dir_all(&d).unwrap();
        let path = d.join("keys");
        fs::write(&path, "# c\n\nabc\tzz\tmsg\t2026-01-01T00:00:00Z\t-\tx\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyFile::load(&path),
            Err(KeysError::File(FileError {
                cause: Cause::Permissions(_),
                ..
            }))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = KeyFile::load(&path).unwrap_err();
        assert!(
            matches!(
                e,
                KeysError::File(FileError {
                    cause: Cause::Parse { line: 3, .. },
                    ..
                })
            ),
            "{e}"
        );
        assert!(e.to_string().contains("line 3"));
        for bad in [
            "a\tb",
            "a/b\t0\tmsg\tx\t-\tn",
            &format!("a\t{}\tfoo\t2026-01-01T00:00:00Z\t-\tn", "0".repeat(64)),
        ] {
            fs::write(&path, bad).unwrap();
            assert!(KeyFile::load(&path).is_err(), "{bad}");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn store_reloads_on_change() {
        let d = dir("store");
        let path = d.join("keys");
        let mut f = KeyFile::load(&path).unwrap();
        let (_, t1) = f.create(&[Scope::Msg], None, "one", 0).unwrap();
        let (id1, s1) = t1.split_once('/').unwrap();
        let store = KeyStore::open(&path).unwrap();
        assert!(matches!(
            store.verify(id1, s1, Scope::Msg, 1),
            AuthResult::Ok(_)
        ));
        let (_, t2) = f.create(&[Scope::Msg], None, "two", 0).unwrap();
        let (id2, s2) = t2.split_once('/').unwrap();
        assert!(
            matches!(store.verify(id2, s2, Scope::Msg, 1), AuthResult::Ok(_)),
            "an unknown key makes the store look at once"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn broken_keys_file_revokes_the_deleted_key() {
        let d = dir("broken");
        let path = d.join("keys");
        let mut f = KeyFile::load(&path).unwrap();
        let (_, t1) = f.create(&[Scope::Msg], None, "kept", 0).unwrap();
        let (_, t2) = f.create(&[Scope::Msg], None, "deleted", 0).unwrap();
        let (id1, s1) = t1.split_once('/').unwrap();
        let (id2, s2) = t2.split_once('/').unwrap();
        let store = KeyStore::open(&path).unwrap();
        assert!(matches!(
            store.verify(id2, s2, Scope::Msg, 1),
            AuthResult::Ok(_)
        ));
        // The admin deletes the second key by hand and leaves a typo behind.
        let text = fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with(id2)).collect();
        fs::write(&path, format!("{}\ntypo\n", kept.join("\n"))).unwrap();
        std::thread::sleep(RECHECK);
        assert_eq!(store.verify(id2, s2, Scope::Msg, 1), AuthResult::Unknown);
        assert_eq!(
            store.verify(id1, s1, Scope::Msg, 1),
            AuthResult::Unknown,
            "nothing loads, so nothing is valid"
        );
        // A chmod alone counts as a change: a file readable by others revokes too.
        fs::write(&path, kept.join("\n")).unwrap();
        assert!(store.reload().is_ok());
        assert!(matches!(
            store.verify(id1, s1, Scope::Msg, 1),
            AuthResult::Ok(_)
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        std::thread::sleep(RECHECK);
        assert_eq!(store.verify(id1, s1, Scope::Msg, 1), AuthResult::Unknown);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn expiring_keys_are_refused_while_the_clock_is_unset() {
        let d = dir("clock");
        let mut f = KeyFile::load(&d.join("keys")).unwrap();
        let now = hashfile::CLOCK_FLOOR + 1000;
        let (_, expiring) = f
            .create(&[Scope::Msg], Some(now - 10), "", now - 100)
            .unwrap();
        let (_, forever) = f.create(&[Scope::Msg], None, "", now - 100).unwrap();
        let (id, secret) = expiring.split_once('/').unwrap();
        assert_eq!(f.verify(id, secret, Scope::Msg, now), AuthResult::Expired);
        // OpenWrt before NTP: 1970. The expired key must stay expired.
        assert_eq!(f.verify(id, secret, Scope::Msg, 5), AuthResult::Expired);
        let (id, secret) = forever.split_once('/').unwrap();
        assert!(matches!(
            f.verify(id, secret, Scope::Msg, 5),
            AuthResult::Ok(_)
        ));
        fs::remove_dir_all(&d).unwrap();
    }
}
