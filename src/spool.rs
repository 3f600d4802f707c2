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

use crate::timefmt;
use crate::xmpp::stanza::NS_CLIENT;
use crate::xmpp::xml::parse_document;
use std::collections::VecDeque;
use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Below this size the file is never compacted: small files are cheap to keep and
/// compacting them would only add writes.
pub const COMPACT_BYTES: u64 = 64 * 1024;
/// Dead bytes may be this many times the live ones before a rewrite.
const DEAD_RATIO: u64 = 3;
/// Largest spool file read at start; a larger one is refused, not truncated.
pub const MAX_SPOOL_BYTES: u64 = 256 << 20;
/// Highest record number read from a file: far beyond what appends ever reach, and low
/// enough that counting on from it cannot overflow (a crafted file could say `u64::MAX`).
const MAX_RECORD_NUMBER: u64 = 1 << 62;

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
    /// Unacknowledged stanzas, in the order they were accepted, as many as the budget
    /// given to [`Spool::open`] allows; the rest wait on disk ([`Spool::backlog`]).
    pub entries: Vec<Replayed>,
    /// Lines skipped: torn, failing their check, or not a stanza.
    pub skipped: usize,
}

/// How much of the spool may be held in memory: entries and bytes of serialized stanzas.
/// At least one entry is always handed out, whatever its size.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Most entries.
    pub entries: usize,
    /// Most bytes.
    pub bytes: usize,
}

/// Where the first record still on disk is.
#[derive(Debug, Clone, Copy)]
struct Backlog {
    /// How many live records have not been handed out.
    count: usize,
    /// The number of the first of them.
    first: u64,
    /// Its offset in the file, while the file was not rewritten since.
    offset: Option<u64>,
}

/// The open spool file.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    out: File,
    /// Bound on a stanza's XML in a record.
    max_record: usize,
    /// The number the next stanza gets.
    next: u64,
    /// Live entries, those on disk only included: number and line length, oldest first.
    live: VecDeque<(u64, u64)>,
    live_bytes: u64,
    file_bytes: u64,
    /// A failed write may have left part of a line; the next append cuts it off first.
    torn: bool,
    backlog: Backlog,
}

impl Spool {
    /// Open (or create) the spool at `path`, returning the first of what it holds, within
    /// `budget`; the rest stays on disk for [`Spool::load`]. Stanzas are parsed with the
    /// bound `max_record`. The file is read as a stream, never whole, and rewritten
    /// (atomically) with the live entries only.
    pub fn open(
        path: &Path,
        max_record: usize,
        budget: Budget,
    ) -> Result<(Self, Replay), SpoolError> {
        let err = |err| SpoolError {
            path: path.to_path_buf(),
            err,
        };
        let max_line = max_record + RECORD_OVERHEAD;
        // First pass: how far acknowledgements got, and the next number.
        let mut done = 0;
        let mut next = 1;
        if let Some(mut lines) = Lines::open(path, max_line).map_err(err)? {
            while let Some(line) = lines.next_line().map_err(err)? {
                match line.map(parse_line) {
                    Some(Some(Record::Add(n, _))) => next = next.max(n + 1),
                    Some(Some(Record::Done(n))) => {
                        next = next.max(n + 1);
                        done = done.max(n);
                    }
                    _ => {}
                }
            }
        }
        // Second pass: the live records, rewritten, the first of them handed out.
        let now = timefmt::now_unix();
        let mut replay = Replay {
            entries: Vec::new(),
            skipped: 0,
        };
        let mut live = VecDeque::new();
        let mut written = 0u64;
        let mut bytes = 0;
        let mut backlog = Backlog {
            count: 0,
            first: next,
            offset: None,
        };
        rewrite(path, |out| {
            let Some(mut lines) = Lines::open(path, max_line)? else {
                return Ok(());
            };
            while let Some(line) = lines.next_line()? {
                let Some(Record::Add(n, rest)) = line.and_then(parse_line) else {
                    if !matches!(line.map(parse_line), Some(Some(Record::Done(_)))) {
                        replay.skipped += 1;
                    }
                    continue;
                };
                if n <= done {
                    continue;
                }
                let Some(r) = replayed(n, rest, max_record, now) else {
                    replay.skipped += 1;
                    continue;
                };
                let line = record_add(n, &r.xml, r.accepted);
                out.write_all(&line)?;
                live.push_back((n, line.len() as u64));
                let fits =
                    replay.entries.len() < budget.entries && bytes + r.xml.len() <= budget.bytes;
                if backlog.count == 0 && (fits || replay.entries.is_empty()) {
                    bytes += r.xml.len();
                    replay.entries.push(r);
                } else {
                    if backlog.count == 0 {
                        backlog.first = n;
                        backlog.offset = Some(written);
                    }
                    backlog.count += 1;
                }
                written += line.len() as u64;
            }
            Ok(())
        })
        .map_err(err)?;
        let out = open_append(path).map_err(err)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                out,
                max_record,
                next,
                live,
                live_bytes: written,
                file_bytes: written,
                torn: false,
                backlog,
            },
            replay,
        ))
    }

    /// Live stanzas still only on disk: the outbox takes them with [`Spool::load`] as
    /// room frees up, before any new one.
    pub fn backlog(&self) -> usize {
        self.backlog.count
    }

    /// The next stanzas still only on disk, in order, within `budget` (and at least one
    /// when `one_anyway`, for an empty outbox).
    pub fn load(&mut self, budget: Budget, one_anyway: bool) -> io::Result<Vec<Replayed>> {
        let mut got = Vec::new();
        if self.backlog.count == 0 || budget.entries == 0 && !one_anyway {
            return Ok(got);
        }
        let max_line = self.max_record + RECORD_OVERHEAD;
        let Some(mut lines) = Lines::open(&self.path, max_line)? else {
            self.backlog.count = 0;
            return Ok(got);
        };
        if let Some(offset) = self.backlog.offset {
            lines.seek(offset)?;
        }
        let now = timefmt::now_unix();
        let mut bytes = 0;
        loop {
            let at = lines.offset;
            let Some(line) = lines.next_line()? else {
                // The records are gone (the file was changed behind our back).
                self.backlog.count = 0;
                break;
            };
            let Some(Record::Add(n, rest)) = line.and_then(parse_line) else {
                continue;
            };
            if n < self.backlog.first {
                continue;
            }
            // A record that no longer parses leaves the backlog; its number leaves the
            // live list with the next acknowledgement after it.
            let Some(r) = replayed(n, rest, self.max_record, now) else {
                self.backlog.count -= 1;
                self.backlog.first = n + 1;
                self.backlog.offset = Some(lines.offset);
                if self.backlog.count == 0 {
                    break;
                }
                continue;
            };
            let fits = got.len() < budget.entries && bytes + r.xml.len() <= budget.bytes;
            if !(fits || one_anyway && got.is_empty()) {
                self.backlog.first = n;
                self.backlog.offset = Some(at);
                break;
            }
            bytes += r.xml.len();
            got.push(r);
            self.backlog.count -= 1;
            self.backlog.first = n + 1;
            self.backlog.offset = Some(lines.offset);
            if self.backlog.count == 0 {
                break;
            }
        }
        Ok(got)
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

    /// Rewrite the file with the entries after `done`, atomically, as a stream.
    fn compact(&mut self, done: u64) -> io::Result<()> {
        let max_line = self.max_record + RECORD_OVERHEAD;
        let mut written = 0u64;
        let first = self.backlog.first;
        let mut first_at = None;
        rewrite(&self.path, |out| {
            let Some(mut lines) = Lines::open(&self.path, max_line)? else {
                return Ok(());
            };
            while let Some(line) = lines.next_line()? {
                if let Some(Record::Add(n, rest)) = line.and_then(parse_line) {
                    if n > done {
                        if n == first {
                            first_at = Some(written);
                        }
                        let line = record_line(n, rest);
                        out.write_all(&line)?;
                        written += line.len() as u64;
                    }
                }
            }
            Ok(())
        })?;
        self.backlog.offset = first_at;
        self.out = open_append(&self.path)?;
        self.file_bytes = written;
        self.torn = false;
        Ok(())
    }
}

/// Longest record line beyond its XML: `+ `, number, check, time, spaces.
const RECORD_OVERHEAD: usize = 64;

/// The stanza of record `n` (`rest`: time and XML), checked by the stream's parser and
/// serialized again; `None` when it does not parse.
fn replayed(n: u64, rest: &[u8], max_record: usize, now: u64) -> Option<Replayed> {
    let (accepted, xml) = split_time(rest);
    let el = parse_document(xml, max_record).ok()?;
    Some(Replayed {
        n,
        accepted: accepted.unwrap_or(now),
        xml: el.to_bytes(NS_CLIENT),
    })
}

/// The lines of a spool file, read as a stream with one line in memory at a time.
struct Lines {
    r: BufReader<File>,
    max: usize,
    buf: Vec<u8>,
    /// Offset of the next line.
    offset: u64,
}

impl Lines {
    /// `None` when the file does not exist. Refuses a file over [`MAX_SPOOL_BYTES`].
    fn open(path: &Path, max: usize) -> io::Result<Option<Self>> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if f.metadata()?.len() > MAX_SPOOL_BYTES {
            return Err(io::Error::other(
                "the file is larger than 256 MiB; move it away to start without it",
            ));
        }
        Ok(Some(Self {
            r: BufReader::new(f),
            max,
            buf: Vec::new(),
            offset: 0,
        }))
    }

    fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.r.seek(SeekFrom::Start(offset))?;
        self.offset = offset;
        Ok(())
    }

    /// The next line without its newline: `Some(None)` for a line over the bound or torn
    /// (no newline at the end of the file), `None` at the end.
    fn next_line(&mut self) -> io::Result<Option<Option<&[u8]>>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = self.r.fill_buf()?;
            if chunk.is_empty() {
                return Ok(any.then_some(None));
            }
            any = true;
            let (part, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            if self.buf.len() + part.len() > self.max {
                too_long = true;
            } else {
                self.buf.extend_from_slice(part);
            }
            let used = part.len() + usize::from(newline);
            self.r.consume(used);
            self.offset += used as u64;
            if newline {
                return Ok(Some((!too_long).then_some(self.buf.as_slice())));
            }
        }
    }
}

/// Replace the file at `path` with what `fill` writes, atomically: a private temp file with a
/// random name ([`crate::store::hashfile::create_temp`]) in the same directory (made 0700 if missing), fsync, rename, fsync the directory. Written as a
/// stream, so a large spool never has to fit in memory.
fn rewrite(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    let name = path
        .file_name()
        .map_or_else(|| "spool".into(), |n| n.to_string_lossy().into_owned());
    let (tmp, f) = crate::store::hashfile::create_temp(&dir, &name)?;
    let result = (|| {
        let mut out = BufWriter::new(f);
        fill(&mut out)?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(crate::store::hashfile::o_nofollow())
        .open(path)
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

enum Record<'a> {
    Add(u64, &'a [u8]),
    Done(u64),
}

fn parse_line(line: &[u8]) -> Option<Record<'_>> {
    let number = |b: &[u8]| {
        let n = std::str::from_utf8(b).ok()?.parse::<u64>().ok()?;
        (n <= MAX_RECORD_NUMBER).then_some(n)
    };
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
    const ALL: Budget = Budget {
        entries: usize::MAX,
        bytes: usize::MAX,
    };

    /// What a spool file holding `data` replays.
    fn replay_of(name: &str, data: &[u8]) -> Replay {
        let d = dir(name);
        let path = d.join("spool");
        std::fs::write(&path, data).unwrap();
        let (_, r) = Spool::open(&path, 65536, ALL).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        r
    }

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
        let r = replay_of("roundtrip", &line);
        assert_eq!(r.skipped, 0);
        assert_eq!((r.entries[0].n, r.entries[0].accepted), (7, T));
        assert_eq!(parse_document(&r.entries[0].xml, 65536).unwrap(), m);
    }

    #[test]
    fn done_records_end_entries_and_corrupt_or_unknown_lines_are_skipped() {
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
        let r = replay_of("garbage", &data);
        assert_eq!(
            r.entries.iter().map(|e| e.n).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(r.skipped, 4);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let mut data = record_add(1, &msg("one"), T);
        let second = record_add(2, &msg("two"), T);
        for cut in [1, 10, second.len() / 2, second.len() - 1] {
            let mut d = data.clone();
            d.extend_from_slice(&second[..cut]);
            let r = replay_of("torn", &d);
            assert_eq!(r.entries.len(), 1, "cut at {cut}");
            assert_eq!(r.skipped, 1, "cut at {cut}");
        }
        data.extend_from_slice(&second);
        assert_eq!(replay_of("whole", &data).entries.len(), 2);
    }

    #[test]
    fn a_line_over_the_record_bound_is_skipped_without_being_held() {
        let mut data = record_add(1, &msg(&"x".repeat(100_000)), T);
        data.extend_from_slice(&record_add(2, &msg("small"), T));
        let r = replay_of("long", &data);
        assert_eq!(bodies(&r), ["small"]);
        assert_eq!(r.skipped, 1);
    }

    #[test]
    fn a_spool_larger_than_the_budget_stays_on_disk_and_comes_in_order() {
        let d = dir("backlog");
        let path = d.join("spool");
        let (mut sp, _) = Spool::open(&path, 65536, ALL).unwrap();
        for n in 0..10 {
            sp.append(&msg(&n.to_string()), T).unwrap();
        }
        drop(sp);
        let size = msg("0").len();
        let budget = Budget {
            entries: 100,
            bytes: 3 * size,
        };
        let (mut sp, r) = Spool::open(&path, 65536, budget).unwrap();
        assert_eq!(bodies(&r), ["0", "1", "2"]);
        assert_eq!(sp.backlog(), 7);
        assert_eq!(sp.live(), 10);
        let more = |sp: &mut Spool, entries| {
            sp.load(
                Budget {
                    entries,
                    bytes: usize::MAX,
                },
                false,
            )
            .unwrap()
            .into_iter()
            .map(|r| r.n)
            .collect::<Vec<_>>()
        };
        assert_eq!(more(&mut sp, 2), [4, 5]);
        sp.done(5).unwrap();
        assert_eq!(more(&mut sp, 0), Vec::<u64>::new());
        // An empty outbox takes one even over budget.
        let one = sp
            .load(
                Budget {
                    entries: 0,
                    bytes: 0,
                },
                true,
            )
            .unwrap();
        assert_eq!(one.iter().map(|r| r.n).collect::<Vec<_>>(), [6]);
        assert_eq!(more(&mut sp, 100), [7, 8, 9, 10]);
        assert_eq!(sp.backlog(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_backlog_survives_a_compaction() {
        let d = dir("backlog-compact");
        let path = d.join("spool");
        let body = "x".repeat(2000);
        let (mut sp, _) = Spool::open(&path, 65536, ALL).unwrap();
        for _ in 0..100 {
            sp.append(&msg(&body), T).unwrap();
        }
        drop(sp);
        let one = Budget {
            entries: 1,
            bytes: usize::MAX,
        };
        let (mut sp, r) = Spool::open(&path, 65536, one).unwrap();
        assert_eq!(r.entries[0].n, 1);
        // Take and acknowledge most of them one by one: the file gets compacted on the way.
        for n in 2..=90 {
            let got = sp.load(one, false).unwrap();
            assert_eq!(got[0].n, n);
            sp.done(n - 1).unwrap();
        }
        let rest = sp.load(ALL, false).unwrap();
        assert_eq!(
            rest.iter().map(|r| r.n).collect::<Vec<_>>(),
            (91..=100).collect::<Vec<_>>()
        );
        assert!(std::fs::metadata(&path).unwrap().len() < 40 * 2100);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_compaction_never_follows_a_link_planted_at_the_old_temp_name() {
        let d = dir("planted");
        let path = d.join("spool");
        let victim = d.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.join(format!(".spool.tmp{}", std::process::id())))
            .unwrap();
        let body = "x".repeat(2000);
        let (mut sp, _) = Spool::open(&path, 65536, ALL).unwrap();
        for _ in 0..40 {
            sp.append(&msg(&body), T).unwrap();
        }
        sp.done(40).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 2000, "compacted");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn crafted_record_numbers_cannot_overflow_the_counter() {
        let d = dir("overflow");
        let path = d.join("spool");
        let max = u64::MAX;
        let mut text = record_line(max, b"<message xmlns='jabber:client'/>");
        text.extend_from_slice(format!("- {max}\n").as_bytes());
        std::fs::write(&path, &text).unwrap();
        let (mut sp, r) = Spool::open(&path, 65536, ALL).unwrap();
        assert_eq!(r.skipped, 2);
        assert_eq!(sp.append(&msg("a"), T).unwrap(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replay_after_a_crash_with_a_torn_tail() {
        let d = dir("replay");
        let path = d.join("spool");
        let (mut sp, r) = Spool::open(&path, 65536, ALL).unwrap();
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
        let (mut sp, r) = Spool::open(&path, 65536, ALL).unwrap();
        assert_eq!(bodies(&r), ["b", "c"]);
        assert_eq!(r.skipped, 1);
        assert_eq!(
            r.entries.iter().map(|e| e.n).collect::<Vec<_>>(),
            vec![2, 3]
        );
        // Rewritten clean: numbering goes on, and the torn piece is gone.
        assert_eq!(sp.append(&msg("e"), T).unwrap(), 4);
        drop(sp);
        let (_, r) = Spool::open(&path, 65536, ALL).unwrap();
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
        let (mut sp, _) = Spool::open(&path, 65536, ALL).unwrap();
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
        let (mut sp, r) = Spool::open(&path, 65536, ALL).unwrap();
        assert_eq!(r.entries.len(), 4);
        let mut last = 0;
        for _ in 0..200 {
            last = sp.append(&msg(&body), T).unwrap();
        }
        sp.done(last).unwrap();
        assert_eq!(size(), 0);
        assert_eq!(sp.live(), 0);
        drop(sp);
        let (mut sp, r) = Spool::open(&path, 65536, ALL).unwrap();
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
        let (mut sp, r) = Spool::open(&path, 65536, ALL).unwrap();
        assert_eq!(r.entries[0].accepted, T);
        assert!(r.entries[1].accepted >= before);
        sp.append(&msg("later"), T - 3600).unwrap();
        drop(sp);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&old), "{text}");
        let (_, r) = Spool::open(&path, 65536, ALL).unwrap();
        assert_eq!(bodies(&r), ["new", "legacy", "later"]);
        assert_eq!(r.entries[2].accepted, T - 3600);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unusable_paths_are_errors() {
        let d = dir("errors");
        let e = Spool::open(&d, 65536, ALL).unwrap_err();
        assert!(e.to_string().contains("outbox spool"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
