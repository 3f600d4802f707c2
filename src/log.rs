//! One-line log messages on stderr; init systems (procd, systemd) add the timestamps.

use std::fmt;
use std::io::Write;

/// Write one log line. Never logs secrets: callers pass only addresses, states and errors.
pub fn line(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "xrelay: {args}");
}

/// Log a formatted line to stderr.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}
