//! One-line log messages on stderr; init systems (procd, systemd) add the timestamps.
//!
//! Much of what is logged comes from others: the server's error texts, JIDs and stanza
//! fields, webhook answers, file names. Control characters in a line are escaped
//! (`\n`, `\r`, `\t`, `\u{..}`), so nobody can end a line early and forge the next one.

use std::fmt::{self, Write as _};
use std::io::Write;

/// Write one log line. Never logs secrets: callers pass only addresses, states and errors.
pub fn line(args: fmt::Arguments<'_>) {
    let text = one_line(&args.to_string());
    let _ = writeln!(std::io::stderr().lock(), "xrelay: {text}");
}

/// `text` with every control character escaped, so that it stays one line.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Log a formatted line to stderr.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_new_line() {
        assert_eq!(
            one_line("bye\nxrelay: keys reloaded\r\x1b[2J\t\u{85}ok"),
            "bye\\nxrelay: keys reloaded\\r\\u{1b}[2J\\t\\u{85}ok"
        );
        assert_eq!(one_line("plain é text"), "plain é text");
    }
}
