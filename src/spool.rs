//! The outbox spool (`outbox.spool`): accepted stanzas kept in a file until the server
//! acknowledged them, so that a power cut or `kill -9` loses nothing; replayed at start.
//!
//! The file is a log of one-line records, appended:
//!
//! ```text
//! + 17 9f3a11c2 @1796350320 <message xmlns='jabber:client' to='alice@example.org' ...>...</message>
//! - 17
//! ```
//!
//! `+ N CHECK @TIME XML` is accepted stanza number N, accepted at TIME (seconds since the
//! epoch, kept for its delay stamp), as XML (line feeds written as `&#10;`, so it is one
//! line), with the FNV-1a hash of everything after CHECK. Records of earlier versions have
//! no `@TIME`; they count as accepted when replayed. `- N` says that every stanza up to N was
//! acknowledged. At start a line that is torn (no final newline), fails its check or does
//! not parse is skipped, and the file is rewritten with the live entries only.
//!
//! Writes are bounded: an accepted stanza costs one append and one `fdatasync` before its
//! 202; an acknowledgement appends a few bytes without a sync (losing that record in a
//! crash means a duplicate after the restart, never a loss). Dead records are dropped by
//! truncating the file once everything is acknowledged, or by an atomic rewrite when they
//! outweigh the live ones; either only after the file passed [`COMPACT_BYTES`].

use crate::hashfile::DataFile;
use crate::timefmt;
use crate::xmpp::stanza::NS_CLIENT;
use crate::xmpp::xml::parse_document;
use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Below this size the file is never compacted: small files are cheap to keep and
/// compacting them would only add writes.
pub const COMPACT_BYTES: u64 = 64 * 1024;
/// Dead bytes may be this many times the live ones before a rewrite.
const DEAD_RATIO: u64 = 3;
/// Largest spool file read at start; a larger one is refused, not truncated.
pub const MAX_SPOOL_BYTES: u64 = 256 << 20;

/// Why the spool could not be opened.
#[derive(Debug)]
pub struct SpoolError {
    /// The spool file.
    pub path: PathBuf,
    /// Why.
    pub err: io::Error,
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "outbox spool {}: {}", self.path.display(), self.err)
    }
}

impl std::error::Error for SpoolError {}

/// An unacknowledged stanza from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Its number in the spool.
    pub n: u64,
    /// When it was accepted, seconds since the epoch.
    pub accepted: u64,
    /// The stanza, checked by the stream's parser and serialized again.
    pub xml: Vec<u8>,
}

/// What the file held at start.
#[derive(Debug)]
pub struct Replay {
    /// Unacknowledged stanzas, in the order they were accepted.
    pub entries: Vec<Replayed>,
    /// Lines skipped: torn, failing their check, or not a stanza.
    pub skipped: usize,
}

/// The open spool file.
#[derive(Debug)]
pub struct Spool {
    file: DataFile,
    out: File,
    /// The number the next stanza gets.
    next: u64,
    /// Live entries: number and line length, oldest first.
    live: VecDeque<(u64, u64)>,
    live_bytes: u64,
    file_bytes: u64,
    /// A failed write may have left part of a line; the next append cuts it off first.
    torn: bool,
}

impl Spool {
    /// Open (or create) the spool at `path`, returning what it holds. Stanzas are parsed
    /// with the bound `max_record`. The file is rewritten with the live entries only.
    pub fn open(path: &Path, max_record: usize) -> Result<(Spool, Replay), SpoolError> {
        let err = |err| SpoolError {
            path: path.to_path_buf(),
            err,
        };
        let data = read_bounded(path).map_err(err)?;
        let scan = scan(&data, 0);
        let mut text = Vec::with_capacity(data.len());
        let mut live = VecDeque::with_capacity(scan.entries.len());
        let mut replay = Replay {
            entries: Vec::with_capacity(scan.entries.len()),
            skipped: scan.skipped,
        };
        let now = timefmt::now_unix();
        for (n, rest) in scan.entries {
            let (accepted, xml) = split_time(rest);
            match parse_document(xml, max_record) {
                Ok(el) => {
                    let accepted = accepted.unwrap_or(now);
                    let xml = el.to_bytes(NS_CLIENT);
                    let line = record_add(n, &xml, accepted);
                    live.push_back((n, line.len() as u64));
                    text.extend_from_slice(&line);
                    replay.entries.push(Replayed { n, accepted, xml });
                }
                Err(_) => replay.skipped += 1,
            }
        }
        let file = DataFile {
            what: "outbox spool",
            path: path.to_path_buf(),
        };
        // Records are built from UTF-8 text only.
        let text = String::from_utf8(text).map_err(|_| err(io::ErrorKind::InvalidData.into()))?;
        file.save(&text)
            .map_err(|e| err(io::Error::other(e.to_string())))?;
        let out = open_append(path).map_err(err)?;
        let live_bytes = text.len() as u64;
        Ok((
            Spool {
                file,
                out,
                next: scan.next,
                live,
                live_bytes,
                file_bytes: live_bytes,
                torn: false,
            },
            replay,
        ))
    }

    /// Append serialized `stanza`, accepted at `accepted` (seconds since the epoch), and
    /// sync it to disk; returns its number for [`Spool::done`].
    pub fn append(&mut self, stanza: &[u8], accepted: u64) -> io::Result<u64> {
        if self.torn {
            self.out.set_len(self.file_bytes)?;
            self.torn = false;
        }
        let n = self.next;
        let line = record_add(n, stanza, accepted);
        let written = self
            .out
            .write_all(&line)
            .and_then(|()| self.out.sync_data());
        if let Err(e) = written {
            self.torn = true;
            return Err(e);
        }
        self.next += 1;
        self.file_bytes += line.len() as u64;
        self.live_bytes += line.len() as u64;
        self.live.push_back((n, line.len() as u64));
        Ok(n)
    }

    /// Every stanza up to number `n` was acknowledged.
    pub fn done(&mut self, n: u64) -> io::Result<()> {
        let before = self.live.len();
        while let Some(&(m, len)) = self.live.front() {
            if m > n {
                break;
            }
            self.live.pop_front();
            self.live_bytes -= len;
        }
        if self.live.len() == before {
            return Ok(());
        }
        if self.file_bytes >= COMPACT_BYTES && self.live.is_empty() {
            self.out.set_len(0)?;
            self.file_bytes = 0;
            self.torn = false;
            return Ok(());
        }
        if self.file_bytes >= COMPACT_BYTES && self.file_bytes > self.live_bytes * (DEAD_RATIO + 1)
        {
            return self.compact(n);
        }
        if self.torn {
            self.out.set_len(self.file_bytes)?;
            self.torn = false;
        }
        let line = record_done(n);
        if let Err(e) = self.out.write_all(&line) {
            self.torn = true;
            return Err(e);
        }
        self.file_bytes += line.len() as u64;
        Ok(())
    }

    /// Stanzas in the spool not yet acknowledged.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Rewrite the file with the entries after `done`, atomically.
    fn compact(&mut self, done: u64) -> io::Result<()> {
        let data = read_bounded(&self.file.path)?;
        let scan = scan(&data, done);
        let mut text = Vec::with_capacity(self.live_bytes as usize);
        for (n, xml) in scan.entries {
            text.extend_from_slice(&record_line(n, xml));
        }
        let text =
            String::from_utf8(text).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        self.file
            .save(&text)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.out = open_append(&self.file.path)?;
        self.file_bytes = text.len() as u64;
        self.torn = false;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

/// The file's bytes; empty when it does not exist.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    f.take(MAX_SPOOL_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_SPOOL_BYTES {
        return Err(io::Error::other(
            "the file is larger than 256 MiB; move it away to start without it",
        ));
    }
    Ok(data)
}

/// FNV-1a, 32 bits: enough to tell a record from a torn or garbled one.
fn check(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5, |h: u32, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The `+` record of serialized stanza number `n`, accepted at `accepted`.
fn record_add(n: u64, xml: &[u8], accepted: u64) -> Vec<u8> {
    // The serializer writes line feeds in text as they are (and nowhere else); as
    // character references they parse back to the same text.
    let mut one_line = Vec::with_capacity(xml.len() + 32);
    one_line.extend_from_slice(format!("@{accepted} ").as_bytes());
    for &b in xml {
        if b == b'\n' {
            one_line.extend_from_slice(b"&#10;");
        } else {
            one_line.push(b);
        }
    }
    record_line(n, &one_line)
}

fn record_line(n: u64, xml: &[u8]) -> Vec<u8> {
    let mut line = format!("+ {n} {:08x} ", check(xml)).into_bytes();
    line.extend_from_slice(xml);
    line.push(b'\n');
    line
}

/// A record's acceptance time (absent in records of earlier versions) and its XML.
fn split_time(rest: &[u8]) -> (Option<u64>, &[u8]) {
    let Some(stamped) = rest.strip_prefix(b"@") else {
        return (None, rest);
    };
    let Some(space) = stamped.iter().position(|&b| b == b' ') else {
        return (None, rest);
    };
    let time = std::str::from_utf8(&stamped[..space])
        .ok()
        .and_then(|t| t.parse().ok());
    match time {
        Some(t) => (Some(t), &stamped[space + 1..]),
        None => (None, rest),
    }
}

fn record_done(n: u64) -> Vec<u8> {
    format!("- {n}\n").into_bytes()
}

/// The records of a spool file.
#[derive(Debug, PartialEq, Eq)]
struct Scan<'a> {
    /// Entries after the last `-` record (and after the `done` passed in), in order.
    entries: Vec<(u64, &'a [u8])>,
    /// One past the highest number seen.
    next: u64,
    /// Torn, garbled or unknown lines.
    skipped: usize,
}

fn scan(data: &[u8], done: u64) -> Scan<'_> {
    let mut done = done;
    let mut entries = Vec::new();
    let mut next = 1;
    let mut skipped = 0;
    let mut lines = data.split(|&b| b == b'\n');
    let last = lines.next_back().unwrap_or_default();
    if !last.is_empty() {
        // No newline after it: a write cut short.
        skipped += 1;
    }
    for line in lines.filter(|l| !l.is_empty()) {
        match parse_line(line) {
            Some(Record::Add(n, xml)) => {
                next = next.max(n + 1);
                entries.push((n, xml));
            }
            Some(Record::Done(n)) => {
                next = next.max(n + 1);
                done = done.max(n);
            }
            None => skipped += 1,
        }
    }
    entries.retain(|&(n, _)| n > done);
    Scan {
        entries,
        next,
        skipped,
    }
}

enum Record<'a> {
    Add(u64, &'a [u8]),
    Done(u64),
}

fn parse_line(line: &[u8]) -> Option<Record<'_>> {
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    match line {
        [b'+', b' ', rest @ ..] => {
            let mut parts = rest.splitn(3, |&b| b == b' ');
            let n = number(parts.next()?)?;
            let sum = u32::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 16).ok()?;
            let xml = parts.next()?;
            (check(xml) == sum).then_some(Record::Add(n, xml))
        }
        [b'-', b' ', rest @ ..] => number(rest).map(Record::Done),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::jid::Jid;
    use crate::xmpp::stanza::{self, MessageType};
    use crate::xmpp::xml::Element;

    const T: u64 = 1_796_350_320;

    fn element(body: &str) -> Element {
        let to = Jid::parse("alice@example.org").unwrap();
        stanza::message(&to, MessageType::Chat, "id1", body, Some("subj"))
    }

    fn msg(body: &str) -> Vec<u8> {
        element(body).to_bytes(NS_CLIENT)
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xrelay-spool-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn bodies(r: &Replay) -> Vec<String> {
        r.entries
            .iter()
            .map(|e| {
                parse_document(&e.xml, 65536)
                    .unwrap()
                    .get_child("body", NS_CLIENT)
                    .unwrap()
                    .text_content()
            })
            .collect()
    }

    #[test]
    fn records_are_one_line_and_round_trip() {
        let m = element("two\nlines & <tags> 'quoted'\r\n\ttab");
        let line = record_add(7, &m.to_bytes(NS_CLIENT), T);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.ends_with(b"\n"));
        let s = scan(&line, 0);
        assert_eq!(s.next, 8);
        assert_eq!(s.skipped, 0);
        let (n, rest) = s.entries[0];
        assert_eq!(n, 7);
        let (accepted, xml) = split_time(rest);
        assert_eq!(accepted, Some(T));
        assert_eq!(parse_document(xml, 65536).unwrap(), m);
    }

    #[test]
    fn done_records_and_garbage() {
        let mut data = Vec::new();
        for n in 1..=4 {
            data.extend_from_slice(&record_add(n, &msg(&n.to_string()), T));
        }
        data.extend_from_slice(&record_done(2));
        // A record whose bytes changed fails its check; unknown lines are skipped.
        let mut bad = record_add(5, &msg("5"), T);
        let i = bad.len() - 10;
        bad[i] ^= 0x20;
        data.extend_from_slice(&bad);
        data.extend_from_slice(b"\0\0\0\0\n? what\n- x\n");
        let s = scan(&data, 0);
        assert_eq!(
            s.entries.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(s.skipped, 4);
        assert_eq!(s.next, 5);
        // A floor from the caller counts like a `-` record.
        assert_eq!(scan(&data, 3).entries.len(), 1);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let mut data = record_add(1, &msg("one"), T);
        let second = record_add(2, &msg("two"), T);
        for cut in 1..second.len() {
            let mut d = data.clone();
            d.extend_from_slice(&second[..cut]);
            let s = scan(&d, 0);
            assert_eq!(s.entries.len(), 1, "cut at {cut}");
            assert_eq!(s.skipped, 1, "cut at {cut}");
        }
        data.extend_from_slice(&second);
        assert_eq!(scan(&data, 0).entries.len(), 2);
    }

    #[test]
    fn replay_after_a_crash_with_a_torn_tail() {
        let d = dir("replay");
        let path = d.join("spool");
        let (mut sp, r) = Spool::open(&path, 65536).unwrap();
        assert!(r.entries.is_empty());
        for b in ["a", "b", "c"] {
            sp.append(&msg(b), T).unwrap();
        }
        sp.done(1).unwrap();
        drop(sp);
        // The power went while the fourth record was being written.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&record_add(4, &msg("d"), T)[..20]).unwrap();
        drop(f);
        let (mut sp, r) = Spool::open(&path, 65536).unwrap();
        assert_eq!(bodies(&r), ["b", "c"]);
        assert_eq!(r.skipped, 1);
        assert_eq!(
            r.entries.iter().map(|e| e.n).collect::<Vec<_>>(),
            vec![2, 3]
        );
        // Rewritten clean: numbering goes on, and the torn piece is gone.
        assert_eq!(sp.append(&msg("e"), T).unwrap(), 4);
        drop(sp);
        let (_, r) = Spool::open(&path, 65536).unwrap();
        assert_eq!(bodies(&r), ["b", "c", "e"]);
        assert_eq!(r.skipped, 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_file_stays_bounded() {
        let d = dir("bounded");
        let path = d.join("spool");
        let (mut sp, _) = Spool::open(&path, 65536).unwrap();
        let body = "x".repeat(500);
        let size = || std::fs::metadata(&path).unwrap().len();
        // A steady stream with a few stanzas always waiting never empties the outbox.
        let mut max = 0;
        for i in 0..2000u64 {
            let n = sp.append(&msg(&body), T).unwrap();
            if i >= 4 {
                sp.done(n - 4).unwrap();
            }
            max = max.max(size());
        }
        assert!(max < 2 * COMPACT_BYTES, "grew to {max}");
        assert_eq!(sp.live(), 4);
        // Everything acknowledged: truncated once past the threshold.
        let (mut sp, r) = Spool::open(&path, 65536).unwrap();
        assert_eq!(r.entries.len(), 4);
        let mut last = 0;
        for _ in 0..200 {
            last = sp.append(&msg(&body), T).unwrap();
        }
        sp.done(last).unwrap();
        assert_eq!(size(), 0);
        assert_eq!(sp.live(), 0);
        drop(sp);
        let (mut sp, r) = Spool::open(&path, 65536).unwrap();
        assert!(r.entries.is_empty());
        assert_eq!(
            sp.append(&msg("next"), T).unwrap(),
            1,
            "an empty file starts over"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replays_keep_their_acceptance_time() {
        let d = dir("times");
        let path = d.join("spool");
        let old = format!("@{} ", T - 3600);
        let mut data = record_add(1, &msg("new"), T);
        // A record written before acceptance times were kept.
        let legacy = msg("legacy");
        data.extend_from_slice(&record_line(2, &legacy));
        std::fs::write(&path, &data).unwrap();
        let before = timefmt::now_unix();
        let (mut sp, r) = Spool::open(&path, 65536).unwrap();
        assert_eq!(r.entries[0].accepted, T);
        assert!(r.entries[1].accepted >= before);
        sp.append(&msg("later"), T - 3600).unwrap();
        drop(sp);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&old), "{text}");
        let (_, r) = Spool::open(&path, 65536).unwrap();
        assert_eq!(bodies(&r), ["new", "legacy", "later"]);
        assert_eq!(r.entries[2].accepted, T - 3600);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unusable_paths_are_errors() {
        let d = dir("errors");
        let e = Spool::open(&d, 65536).unwrap_err();
        assert!(e.to_string().contains("outbox spool"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
