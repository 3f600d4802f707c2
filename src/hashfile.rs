//! What the keys file and the invites file have in common: secrets kept only as SHA-256,
//! compared in constant time, in a line-per-entry text file that must be private (mode
//! 0600) and is replaced atomically.

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// Largest file accepted.
pub const MAX_FILE_BYTES: u64 = 512 * 1024;
/// Longest entry name (a label for humans).
pub const MAX_NAME_CHARS: usize = 64;

/// Why a file could not be read or written.
#[derive(Debug)]
pub enum Cause {
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The file is readable by group or others (its mode).
    Permissions(u32),
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge,
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
                "{what} file {path} is readable by others (mode {:o}); run chmod 600 on it",
                mode & 0o777
            ),
            Cause::TooLarge => write!(f, "{what} file {path} is larger than 512 KiB"),
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
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(Cause::Io(e))),
        };
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(self.err(Cause::Permissions(mode)));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(self.err(Cause::TooLarge));
        }
        let text = fs::read_to_string(&self.path).map_err(|e| self.err(Cause::Io(e)))?;
        parse_lines(&text, max, parse).map_err(|cause| self.err(cause))
    }

    /// Replace the file with `text` atomically: a 0600 temp file in the same directory
    /// (made 0700 if missing), fsync, rename, fsync the directory.
    pub fn save(&self, text: &str) -> Result<(), FileError> {
        let io = |e| self.err(Cause::Io(e));
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io)?;
        }
        let file_name = self
            .path
            .file_name()
            .map_or_else(|| self.what.into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// The file's identity now, to notice when someone else replaced it.
    pub fn signature(&self) -> Option<Signature> {
        fs::metadata(&self.path)
            .ok()
            .map(|m| Signature(m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
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

/// Modification time, size and inode of a file: changes whenever it is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature(i64, i64, u64, u64);

/// SHA-256 of `s`.
pub fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, s.as_bytes()).as_ref());
    out
}

/// Constant-time equality of two hashes.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// The OS random source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomError;

/// `N` bytes from the OS random source.
pub fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| RandomError)?;
    Ok(out)
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
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_constant_time_eq() {
        let h = sha256("abc");
        assert_eq!(
            hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(unhex32(&hex(&h)), Some(h));
        assert_eq!(unhex32("zz"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
        assert!(ct_eq(&h, &sha256("abc")));
        assert!(!ct_eq(&h, &sha256("abd")));
        assert_ne!(random::<16>().unwrap(), random::<16>().unwrap());
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
