//! The config file's TOML subset (`xrelay::config::toml`).
//!
//! Invariants: no panic; an error names a line of the input; accepted entries stand on
//! lines of the input, in file order, each key once per table, arrays nested at most four
//! deep; and what is accepted, written back as TOML, reads back as the same entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fmt::Write;
use xrelay::config::toml::{parse, Entry, Value};

/// The parser's nesting bound for arrays (`MAX_ARRAY_DEPTH`).
const MAX_ARRAY_DEPTH: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let entries = match parse(text) {
        Ok(entries) => entries,
        Err(e) => {
            assert!((1..=lines).contains(&e.line), "{e} in {lines} line(s)");
            assert!(!e.msg.is_empty());
            return;
        }
    };
    for (i, e) in entries.iter().enumerate() {
        assert!((1..=lines).contains(&e.line), "{e:?} in {lines} line(s)");
        assert!(depth(&e.value) <= MAX_ARRAY_DEPTH, "{e:?}");
        if let Some(before) = entries[..i].last() {
            assert!(before.line < e.line, "{before:?} then {e:?}");
        }
        assert!(
            !entries[..i]
                .iter()
                .any(|o| o.table == e.table && o.key == e.key),
            "{e:?} twice"
        );
    }
    let written = render(&entries);
    let again = parse(&written)
        .unwrap_or_else(|e| panic!("written entries do not parse: {e}\n{written}"));
    let strip = |es: &[Entry]| -> Vec<(String, String, Value)> {
        es.iter()
            .map(|e| (e.table.clone(), e.key.clone(), e.value.clone()))
            .collect()
    };
    assert_eq!(strip(&again), strip(&entries), "changed when written:\n{written}");
});

/// How many arrays deep `v` is.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `entries` as TOML: a header wherever the table changes, basic strings.
fn render(entries: &[Entry]) -> String {
    let mut out = String::new();
    let mut table = "";
    for e in entries {
        if e.table != table {
            table = &e.table;
            let _ = writeln!(out, "[{table}]");
        }
        let _ = write!(out, "{} = ", e.key);
        value(&mut out, &e.value);
        out.push('\n');
    }
    out
}

fn value(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04X}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value(out, item);
            }
            out.push(']');
        }
    }
}
