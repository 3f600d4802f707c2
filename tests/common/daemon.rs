//! `xrelay run` as a child process, and a raw HTTP client for its listener.

use super::Signal;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `xrelay run` as a child whose stderr lines arrive on a channel.
pub(crate) struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    pub(crate) fn start(cfg: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xrelay"))
            .arg("-c")
            .arg(cfg)
            .arg("run")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for a log line containing `needle`.
    pub(crate) fn wait_for(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {needle:?}; log so far:\n{}",
            self.seen.join("\n")
        );
    }

    /// Take the log lines that arrived so far without waiting.
    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// How many log lines so far contain `needle`.
    pub(crate) fn count(&mut self, needle: &str) -> usize {
        self.drain();
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }

    /// The pause of the last `reconnecting in N.Ns` line, in seconds.
    pub(crate) fn last_reconnect_pause(&mut self) -> f64 {
        let log = self.log();
        log.lines()
            .rev()
            .find_map(|l| l.split("reconnecting in ").nth(1))
            .and_then(|s| s.trim_end_matches('s').parse().ok())
            .unwrap_or_else(|| panic!("no reconnect pause logged:\n{log}"))
    }

    /// The log so far.
    pub(crate) fn log(&mut self) -> String {
        self.drain();
        self.seen.join("\n")
    }

    /// Send `sig` (e.g. `Signal::TERM`, `Signal::KILL`).
    pub(crate) fn signal(&self, sig: Signal) {
        super::kill(self.child.id(), sig);
    }

    /// Wait up to `within` for the process to exit; its status, and every log line.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                _ if Instant::now() >= deadline => return None,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        // The reader thread may still hold the last lines: drain until it sees end of file.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        Some(status)
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Peak RSS so far (VmHWM) and the number of open sockets.
    pub(crate) fn peak_rss_kib_and_sockets(&self) -> (u64, usize) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count();
        (hwm, sockets)
    }

    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        super::kill(self.child.id(), Signal::TERM);
        let status = self.child.wait().unwrap();
        // The reader thread may still hold the last lines: drain until it sees end of file.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        assert!(
            self.seen.iter().any(|l| l.contains("stopped")),
            "{}",
            self.seen.join("\n")
        );
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `xrelay -c CFG ARGS...` to completion (without XRELAY_PASSWORD from the caller).
pub(crate) fn xrelay(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xrelay"))
        .arg("-c")
        .arg(cfg)
        .args(args)
        .env_remove("XRELAY_PASSWORD")
        .output()
        .expect("xrelay runs")
}

/// Config sections giving a daemon its own HTTP port and keys file in `dir`, so daemons
/// of parallel tests never collide. Returns the port and the TOML text.
pub(crate) fn http_section(dir: &Path) -> (u16, String) {
    let port = super::free_port();
    let keys = dir.join(format!("keys-{port}"));
    let text = format!(
        "[http]\nlisten = [\"127.0.0.1:{port}\"]\n[keys]\nfile = {}\n",
        super::toml_str(&keys.to_string_lossy())
    );
    (port, text)
}

/// An HTTP response as the tests see it.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`); `head` is extra header lines.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    head: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("xrelay listens");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in head {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer and close early (413): a failed write is part of the test.
    let _ = s.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

pub(super) fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}
