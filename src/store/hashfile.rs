//! What the keys file and the invites file have in common: secrets kept only as SHA-256,
//! compared in constant time, in a line-per-entry text file that must be private (mode
//! 0600) and is replaced atomically; and how xrelay reads and writes any file it trusts
//! (these two, the spool, `password_file`, the config).
//!
//! Files are checked on the open descriptor (`fstat`), never on the path, so a file swapped
//! between check and read cannot slip through: it must be a regular file, owned by the
//! user running xrelay or by root (a file another unprivileged user controls could make a
//! root daemon act for that user), within its size bound, and for secrets readable by its
//! owner only. Reads stop one byte past the bound. Replacements go to a temp file with a
//! random name, created with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600 (a symlink planted
//! at a predictable name would otherwise be followed, as root, to any file), then renamed.
//! Read-modify-write cycles hold an `flock` on a lock file beside the file, so the CLI and
//! the daemon never undo each other's changes.

use crate::secret::random;
use ring::digest;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest file accepted.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;
/// Longest entry name (a label for humans).
pub const MAX_NAME_CHARS: usize = 64;
/// How long a change waits for another process's lock before it gives up: the CLI and the
/// daemon hold it for one read and one write, so a longer wait means a stuck process (a
/// suspended `xrelay key create`), which must not wedge the daemon.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Pause between attempts to take a held lock.
const LOCK_RETRY: Duration = Duration::from_millis(10);
/// Random bytes in a temp file's name.
const TEMP_NAME_BYTES: usize = 8;
/// No clock is earlier than this (2026-01-01T00:00:00Z): this code did not exist before.
/// A box whose clock says otherwise has not synchronized yet (OpenWrt boots in the past
/// until NTP answers), and then no expiry can be judged. A constant in the source rather
/// than the build time: builds stay reproducible and need no build script; it moves on
/// with the year of each release.
pub const CLOCK_FLOOR: u64 = 1_767_225_600;

/// Whether `now` (Unix seconds) can be a true time; see [`CLOCK_FLOOR`].
pub fn clock_is_set(now: u64) -> bool {
    now >= CLOCK_FLOOR
}

/// Why a file could not be read or written.
#[derive(Debug)]
pub enum Cause {
    /// Reading or writing failed.
    Io(io::Error),
    /// The file is readable by group or others (its mode).
    Permissions(u32),
    /// The file belongs to neither the user running xrelay nor root (its owner's uid).
    Owner(u32),
    /// Not a regular file (a directory, a device, a FIFO).
    NotAFile,
    /// The file is larger than this many bytes.
    TooLarge(u64),
    /// Another process held the lock for longer than [`LOCK_WAIT`].
    Locked,
    /// A line is not an entry.
    Parse {
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// More entries than allowed (the limit).
    TooMany(usize),
}

/// A file problem, naming the file. Never carries a secret.
#[derive(Debug)]
pub struct FileError {
    /// `"keys"` or `"invites"`, for the message.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub cause: Cause,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, path) = (self.what, self.path.display());
        match &self.cause {
            Cause::Io(e) => write!(f, "{what} file {path}: {e}"),
            Cause::Permissions(mode) => write!(
                f,
                "{what} file {path} is open to group or others (mode {:o}); \
                 run chmod 600 {path}",
                mode & 0o777
            ),
            Cause::Owner(uid) => write!(
                f,
                "{what} file {path} belongs to uid {uid}, neither to the user running xrelay \
                 (uid {}) nor to root; run xrelay as its owner, or chown the file",
                euid()
            ),
            Cause::NotAFile => write!(f, "{what} file {path} is not a regular file"),
            Cause::TooLarge(max) => write!(f, "{what} file {path} is larger than {max} bytes"),
            Cause::Locked => write!(
                f,
                "{what} file {path} is locked by another xrelay process for more than {} s; \
                 try again",
                LOCK_WAIT.as_secs()
            ),
            Cause::Parse { line, msg } => write!(f, "{what} file {path} line {line}: {msg}"),
            Cause::TooMany(n) => write!(f, "{what} file {path} holds more than {n} entries"),
        }
    }
}

impl std::error::Error for FileError {}

/// A line-per-entry private file: `#` comments and blank lines are skipped.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// `"keys"` or `"invites"`, for messages.
    pub what: &'static str,
    /// Where it lives.
    pub path: PathBuf,
}

impl DataFile {
    fn err(&self, cause: Cause) -> FileError {
        FileError {
            what: self.what,
            path: self.path.clone(),
            cause,
        }
    }

    /// Parse every entry with `parse`; a missing file holds none. Refuses a file readable
    /// by others, one over [`MAX_FILE_BYTES`], and more than `max` entries.
    pub fn load<T>(
        &self,
        max: usize,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, FileError> {
        let (data, meta) = match read_checked(&self.path, MAX_FILE_BYTES) {
            Ok(read) => read,
            Err(Cause::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(cause) => return Err(self.err(cause)),
        };
        check_private(meta.mode()).map_err(|cause| self.err(cause))?;
        let text = String::from_utf8(data)
            .map_err(|_| self.err(Cause::Io(io::ErrorKind::InvalidData.into())))?;
        parse_lines(&text, max, parse).map_err(|cause| self.err(cause))
    }

    /// Replace the file with `text` atomically: a new 0600 temp file with a random name in
    /// the same directory (made 0700 if missing), fsync, rename, fsync the directory.
    pub fn save(&self, text: &str) -> Result<(), FileError> {
        let dir = self.dir()?;
        let (tmp, mut f) =
            create_temp(&dir, &self.file_name()).map_err(|e| self.err(Cause::Io(e)))?;
        let result = (|| {
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| self.err(Cause::Io(e)))
    }

    /// Take the exclusive lock that every read-modify-write of this file holds (an `flock`
    /// on `.NAME.lock` beside it), waiting at most [`LOCK_WAIT`]. Released when dropped.
    pub fn lock(&self) -> Result<FileLock, FileError> {
        let dir = self.dir()?;
        let path = dir.join(format!(".{}.lock", self.file_name()));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(o_nofollow())
            .open(&path)
            .map_err(|e| self.err(Cause::Io(e)))?;
        check_owner(&f.metadata().map_err(|e| self.err(Cause::Io(e)))?)
            .map_err(|cause| self.err(cause))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(FileLock { _held: f }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(fs::TryLockError::WouldBlock) => return Err(self.err(Cause::Locked)),
                Err(fs::TryLockError::Error(e)) => return Err(self.err(Cause::Io(e))),
            }
        }
    }

    /// The file's identity now, to notice when someone else replaced or changed it (a
    /// `chmod` changes only the ctime and the mode).
    pub fn signature(&self) -> Option<Signature> {
        fs::metadata(&self.path).ok().map(|m| Signature {
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            len: m.len(),
            ino: m.ino(),
            mode: m.mode(),
        })
    }

    /// The file's directory, made (mode 0700) if missing.
    fn dir(&self) -> Result<PathBuf, FileError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| self.err(Cause::Io(e)))?;
        }
        Ok(dir)
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map_or_else(|| self.what.into(), |n| n.to_string_lossy().into_owned())
    }
}

/// A held `flock` (see [`DataFile::lock`]); dropping it releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released when this is dropped"]
pub struct FileLock {
    _held: File,
}

/// `O_NOFOLLOW` for [`OpenOptionsExt::custom_flags`]: its value differs between
/// architectures, so it comes from rustix rather than a literal.
pub(crate) fn o_nofollow() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

/// The effective uid of this process.
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A new private temp file beside `name` in `dir`, under a random name that nobody can
/// plant a link at in advance (`.NAME.<hex>.tmp`, see [`create_new_private`]).
pub fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let random =
        random::<TEMP_NAME_BYTES>().map_err(|_| io::Error::other("the OS random source failed"))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&random)));
    let f = create_new_private(&tmp)?;
    Ok((tmp, f))
}

/// Create `path` as a new file, mode 0600, never through a symlink and never reusing a
/// file that is already there (`O_CREAT|O_EXCL|O_NOFOLLOW`).
pub fn create_new_private(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(o_nofollow())
        .open(path)
}

/// Read a whole file of at most `max` bytes, checked on the open descriptor: a regular
/// file owned by the user running xrelay or by root. Returns its bytes and metadata, for
/// the caller's own mode rule ([`check_private`], [`check_shared_secret`]).
pub fn read_checked(path: &Path, max: u64) -> Result<(Vec<u8>, fs::Metadata), Cause> {
    // Non-blocking, so that a FIFO put in a file's place cannot hang the open; a regular
    // file reads the same either way.
    let nonblock = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblock)
        .open(path)
        .map_err(Cause::Io)?;
    let meta = f.metadata().map_err(Cause::Io)?;
    if !meta.is_file() {
        return Err(Cause::NotAFile);
    }
    check_owner(&meta)?;
    if meta.len() > max {
        return Err(Cause::TooLarge(max));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.take(max + 1).read_to_end(&mut data).map_err(Cause::Io)?;
    // The file may have grown since the fstat.
    if data.len() as u64 > max {
        return Err(Cause::TooLarge(max));
    }
    Ok((data, meta))
}

/// Refuse a mode that lets group or others at a secret.
pub fn check_private(mode: u32) -> Result<(), Cause> {
    if mode & 0o077 != 0 {
        return Err(Cause::Permissions(mode));
    }
    Ok(())
}

/// Refuse a secret that an admin shares with xrelay (`password_file`, a config holding
/// the password) if others could read it or anyone but its owner change it: mode 0600, or
/// 0640 when root owns it and its group is the one xrelay runs as (the packaged layout,
/// root:xrelay, with the service running as user and group xrelay).
pub fn check_shared_secret(meta: &fs::Metadata) -> Result<(), Cause> {
    let group_may_read = meta.uid() == 0 && meta.gid() == rustix::process::getegid().as_raw();
    let refused = if group_may_read { 0o037 } else { 0o077 };
    if meta.mode() & refused != 0 {
        return Err(Cause::Permissions(meta.mode()));
    }
    Ok(())
}

fn check_owner(meta: &fs::Metadata) -> Result<(), Cause> {
    match meta.uid() {
        0 => Ok(()),
        uid if uid == euid() => Ok(()),
        uid => Err(Cause::Owner(uid)),
    }
}

/// Parse every entry of a file's text with `parse`, skipping `#` comments and blank lines;
/// at most `max` entries.
pub(crate) fn parse_lines<T>(
    text: &str,
    max: usize,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Cause> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // `lines` takes one CR before the LF as part of the line ending and leaves any
        // other at the end of the line: it would become part of the last field (a name
        // never has one) and be lost when the file is written again.
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = parse(line).map_err(|msg| Cause::Parse { line: i + 1, msg })?;
        if out.len() == max {
            return Err(Cause::TooMany(max));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Modification and change times, size, inode and mode of a file: changes whenever it
/// is rewritten or its permissions change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    mtime: (i64, i64),
    ctime: (i64, i64),
    len: u64,
    ino: u64,
    mode: u32,
}

/// SHA-256 of `s`.
pub fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, s.as_bytes()).as_ref());
    out
}

/// Whether `name` may label an entry: no tabs, newlines or other controls (they would break
/// the line format), at most [`MAX_NAME_CHARS`].
pub fn is_valid_name(name: &str) -> bool {
    name.chars().count() <= MAX_NAME_CHARS && !name.chars().any(char::is_control)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits back into 32 bytes.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Rows as aligned columns separated by two spaces; the last column is not padded.
pub fn format_table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

/// A temp dir path of this process for a unit test, removed first if left over.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xrelay-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Temp files left in `dir`.
    pub(crate) fn temp_files(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count()
    }

    fn file(name: &str) -> DataFile {
        let d = test_dir(name);
        fs::create_dir_all(&d).unwrap();
        DataFile {
            what: "keys",
            path: d.join("keys"),
        }
    }

    #[test]
    fn planted_symlink_at_the_old_temp_name_is_not_followed() {
        let f = file("symlink");
        let d = f.path.parent().unwrap().to_path_buf();
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        // The name the temp file used to have, predictable from the pid.
        let old = d.join(format!(".keys.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &old).unwrap();
        f.save("a\n").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&f.path).unwrap(), "a\n");
        let mode = fs::metadata(&f.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(temp_files(&d), 0);
        // Whatever the name, creation never goes through a symlink or reuses a file.
        let err = create_new_private(&old).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reads_are_bounded_and_checked_on_the_descriptor() {
        let f = file("bounds");
        let d = f.path.parent().unwrap().to_path_buf();
        fs::write(&f.path, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        fs::set_permissions(&f.path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = f.load(8, |l| Ok(l.to_string())).unwrap_err();
        assert!(matches!(e.cause, Cause::TooLarge(MAX_FILE_BYTES)), "{e}");
        let (data, meta) = read_checked(&f.path, 10 << 20).unwrap();
        assert_eq!(
            (data.len(), meta.mode() & 0o777),
            (MAX_FILE_BYTES as usize + 1, 0o600)
        );
        assert!(matches!(read_checked(&d, 1 << 20), Err(Cause::NotAFile)));
        let fifo = d.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(matches!(read_checked(&fifo, 1 << 20), Err(Cause::NotAFile)));
        }
        fs::write(&f.path, "# small\n").unwrap();
        fs::set_permissions(&f.path, fs::Permissions::from_mode(0o640)).unwrap();
        let e = f.load(8, |l| Ok(l.to_string())).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_of_another_unprivileged_user_are_refused() {
        let f = file("owner");
        let d = f.path.parent().unwrap().to_path_buf();
        fs::write(&f.path, "").unwrap();
        fs::set_permissions(&f.path, fs::Permissions::from_mode(0o600)).unwrap();
        // Only root can give a file away; elsewhere there is nothing to test.
        if std::os::unix::fs::chown(&f.path, Some(65534), None).is_ok() {
            let e = f.load(8, |l| Ok(l.to_string())).unwrap_err();
            assert!(matches!(e.cause, Cause::Owner(65534)), "{e}");
            assert!(e.to_string().contains("uid 65534"), "{e}");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_held_lock_makes_others_wait_then_give_up() {
        let f = file("lock");
        let held = f.lock().unwrap();
        let started = Instant::now();
        let e = f.lock().unwrap_err();
        assert!(matches!(e.cause, Cause::Locked), "{e}");
        assert!(started.elapsed() >= LOCK_WAIT);
        drop(held);
        let _again = f.lock().unwrap();
        fs::remove_dir_all(f.path.parent().unwrap()).unwrap();
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_64_hex_digits() {
        let h = sha256("abc");
        assert_eq!(
            hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(unhex32(&hex(&h)), Some(h));
        assert_eq!(unhex32("zz"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
    }

    #[test]
    fn line_endings_do_not_leak_into_fields() {
        let fields = |text: &str| parse_lines(text, 8, |l| Ok(l.to_string())).unwrap();
        for text in [
            "a\tb\nc\td",
            "a\tb\r\nc\td\r\n",
            "a\tb\r\nc\td\r",
            "a\tb\r\r\r\nc\td\r\r",
            "# x\r\n\r\na\tb\nc\td\r",
        ] {
            assert_eq!(fields(text), ["a\tb", "c\td"], "{text:?}");
        }
        assert!(matches!(
            parse_lines("a\nb\nc", 2, |l| Ok(l.to_string())),
            Err(Cause::TooMany(2))
        ));
    }

    #[test]
    fn table_columns_align() {
        let rows = [
            ["A".to_string(), "BB".into(), "C".into()],
            ["long".into(), "x".into(), "last".into()],
        ];
        assert_eq!(format_table(&rows), "A     BB  C\nlong  x   last\n");
    }
}
