//! A strict subset of TOML, enough for xrelay's config file.
//!
//! Supported: `#` comments, `[table]` headers with bare names, `key = value` with bare keys,
//! basic strings (`"..."` with the TOML escapes), literal strings (`'...'`), decimal integers,
//! booleans, and arrays (possibly spanning lines, with a trailing comma). Everything else is
//! rejected with the line number, so a config never silently means something other than it says.
//! A full TOML parser would cost binary size for features a daemon's config never needs.

use std::fmt;

/// Nesting bound for arrays: config values are flat lists, so a deep nest is a mistake.
const MAX_ARRAY_DEPTH: usize = 4;

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A basic or literal string.
    Str(String),
    /// A decimal integer.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// An array of values.
    Array(Vec<Self>),
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Int(_) => "an integer",
            Self::Bool(_) => "a boolean",
            Self::Array(_) => "an array",
        }
    }
}

/// One `key = value` line, with the table it belongs to and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The table name (`""` for keys before the first header).
    pub table: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// The 1-based line on which the key stands.
    pub line: usize,
}

/// A syntax error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// Where the error is.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for TomlError {}

/// Parse a document into its entries, in file order. Duplicate keys and tables are errors.
pub fn parse(text: &str) -> Result<Vec<Entry>, TomlError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut tables: Vec<String> = Vec::new();
    let mut table = String::new();
    loop {
        p.skip_ws();
        match p.peek() {
            None => return Ok(entries),
            Some(b'\n') => p.newline(),
            Some(b'#') => p.skip_comment(),
            Some(b'[') => {
                p.pos += 1;
                p.skip_ws();
                let name = p.bare_key()?;
                p.skip_ws();
                p.expect(b']', "expected ']' after the table name")?;
                if tables.contains(&name) {
                    return Err(p.err(format!("table [{name}] is defined twice")));
                }
                tables.push(name.clone());
                table = name;
                p.end_of_line()?;
            }
            Some(_) => {
                let line = p.line;
                let key = p.bare_key()?;
                p.skip_ws();
                p.expect(b'=', "expected '=' after the key")?;
                p.skip_ws();
                let value = p.value(0)?;
                if entries.iter().any(|e| e.table == table && e.key == key) {
                    return Err(TomlError {
                        line,
                        msg: format!("key {key} is set twice"),
                    });
                }
                entries.push(Entry {
                    table: table.clone(),
                    key,
                    value,
                    line,
                });
                p.end_of_line()?;
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn err(&self, msg: impl Into<String>) -> TomlError {
        TomlError {
            line: self.line,
            msg: msg.into(),
        }
    }

    fn expect(&mut self, b: u8, msg: &str) -> Result<(), TomlError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(msg))
        }
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line += 1;
    }

    /// Spaces and tabs (and the CR of a CRLF) only; newlines are significant.
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn skip_comment(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// After a header or a value only a comment may follow on the line.
    fn end_of_line(&mut self) -> Result<(), TomlError> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.newline();
                Ok(())
            }
            Some(b'#') => {
                self.skip_comment();
                Ok(())
            }
            Some(_) => Err(self.err("unexpected text after the value")),
        }
    }

    /// Whitespace, newlines and comments inside an array.
    fn skip_ws_multiline(&mut self) {
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'\n') => self.newline(),
                Some(b'#') => self.skip_comment(),
                _ => return,
            }
        }
    }

    fn bare_key(&mut self) -> Result<String, TomlError> {
        let start = self.pos;
        while let Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-') = self.peek() {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err("expected a key made of letters, digits, '_' or '-'"));
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn value(&mut self, depth: usize) -> Result<Value, TomlError> {
        match self.peek() {
            Some(b'"') => self.basic_string().map(Value::Str),
            Some(b'\'') => self.literal_string().map(Value::Str),
            Some(b'[') => self.array(depth),
            Some(b't' | b'f') => self.boolean(),
            Some(b'0'..=b'9' | b'+' | b'-') => self.integer(),
            _ => Err(self.err("expected a value (a string, integer, boolean or array)")),
        }
    }

    fn boolean(&mut self) -> Result<Value, TomlError> {
        for (word, v) in [("true", true), ("false", false)] {
            if self.s[self.pos..].starts_with(word.as_bytes()) {
                self.pos += word.len();
                return Ok(Value::Bool(v));
            }
        }
        Err(self.err("expected true or false (strings need quotes)"))
    }

    fn integer(&mut self) -> Result<Value, TomlError> {
        let start = self.pos;
        if let Some(b'+' | b'-') = self.peek() {
            self.pos += 1;
        }
        while let Some(b'0'..=b'9' | b'_') = self.peek() {
            self.pos += 1;
        }
        let digits: String = self.text[start..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        if let Some(b'.' | b'e' | b'E' | b'a'..=b'z' | b'A'..=b'Z') = self.peek() {
            return Err(self.err("expected a whole decimal number (strings need quotes)"));
        }
        digits
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| self.err("expected a whole decimal number"))
    }

    fn array(&mut self, depth: usize) -> Result<Value, TomlError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.err("arrays nested too deeply"));
        }
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws_multiline();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws_multiline();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                _ => return Err(self.err("expected ',' or ']' in the array")),
            }
        }
    }

    fn literal_string(&mut self) -> Result<String, TomlError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'\'') => break,
                None | Some(b'\n') => return Err(self.err("unterminated string")),
                Some(_) => self.pos += 1,
            }
        }
        let s = self.text[start..self.pos].to_string();
        self.pos += 1;
        Ok(s)
    }

    fn basic_string(&mut self) -> Result<String, TomlError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Copy a run of plain characters at once; `text` is valid UTF-8 and the run stops
            // only at ASCII bytes, so the slice is on character boundaries.
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b == b'\n' || (b < 0x20 && b != b'\t') {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                None | Some(b'\n') => return Err(self.err("unterminated string")),
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, TomlError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'n') => '\n',
            Some(b't') => '\t',
            Some(b'r') => '\r',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'u') => return self.unicode_escape(4),
            Some(b'U') => return self.unicode_escape(8),
            _ => return Err(self.err("unknown escape sequence in a string")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn unicode_escape(&mut self, len: usize) -> Result<char, TomlError> {
        self.pos += 1;
        let hex = self
            .text
            .get(self.pos..self.pos + len)
            .ok_or_else(|| self.err("short unicode escape"))?;
        let c = u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.err("invalid unicode escape"))?;
        self.pos += len;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let mut e = parse(text).unwrap();
        assert_eq!(e.len(), 1);
        e.remove(0).value
    }

    #[test]
    fn parses_the_config_shapes() {
        let doc = "# top\n[xmpp]\njid = \"bot@example.org\" # trailing\nport = 5222\n\
                   rooms = [\n  \"a@b\", # one\n  'c@d',\n]\n\n[http]\nflag = true\n";
        let e = parse(doc).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].table, "xmpp");
        assert_eq!(e[0].key, "jid");
        assert_eq!(e[0].value, Value::Str("bot@example.org".into()));
        assert_eq!(e[0].line, 3);
        assert_eq!(e[1].value, Value::Int(5222));
        assert_eq!(
            e[2].value,
            Value::Array(vec![Value::Str("a@b".into()), Value::Str("c@d".into())])
        );
        assert_eq!(e[3].table, "http");
        assert_eq!(e[3].value, Value::Bool(true));
        assert_eq!(e[3].line, 11);
    }

    #[test]
    fn escapes_literal_strings_underscored_integers_and_empty_arrays_are_read() {
        assert_eq!(
            one(r#"k = "a\"b\\c\n\u00e9\U0001F600""#),
            Value::Str("a\"b\\c\né😀".into())
        );
        assert_eq!(one(r"k = 'C:\path'"), Value::Str(r"C:\path".into()));
        assert_eq!(one("k = \"héllo\""), Value::Str("héllo".into()));
        assert_eq!(one("k = -1_000"), Value::Int(-1000));
        assert_eq!(one("k = []"), Value::Array(vec![]));
    }

    #[test]
    fn crlf_line_ends_are_read_and_lines_counted() {
        let e = parse("[a]\r\nk = 1\r\n").unwrap();
        assert_eq!(e[0].value, Value::Int(1));
        assert_eq!(e[0].line, 2);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("k = \"open\n", 1, "unterminated"),
            ("\n\nk = x", 3, "expected a value"),
            ("k = 1.5", 1, "whole decimal"),
            ("k = 99999999999999999999", 1, "whole decimal"),
            ("k = \"a\" b", 1, "after the value"),
            ("[t\n", 1, "']'"),
            ("[t]\n[t]\n", 2, "twice"),
            ("k = 1\nk = 2\n", 2, "twice"),
            ("k 1", 1, "'='"),
            ("k = [1 2]", 1, "','"),
            ("k = [[[[[1]]]]]", 1, "deeply"),
            ("k = \"\\q\"", 1, "escape"),
            ("k = \"\\u12\"", 1, "unicode"),
            ("k = \"\\uD800\"", 1, "unicode"),
            ("k = \"a\u{1}\"", 1, "control"),
            ("k = tru", 1, "true or false"),
            ("a.b = 1", 1, "'='"),
            ("= 1", 1, "key"),
        ];
        for (doc, line, needle) in cases {
            let err = parse(doc).unwrap_err();
            assert_eq!(err.line, line, "{doc:?}: {err}");
            assert!(err.msg.contains(needle), "{doc:?}: {err}");
        }
    }

    #[test]
    fn same_key_in_different_tables_is_fine() {
        let e = parse("[a]\nk = 1\n[b]\nk = 2\n").unwrap();
        assert_eq!(e.len(), 2);
    }

    /// `text` read as `(table, key, value, line)` entries, or the error as shown.
    fn read(text: &str) -> Result<Vec<(String, String, Value, usize)>, String> {
        parse(text)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| (e.table, e.key, e.value, e.line))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    /// One entry of table `table` on line `line`.
    fn entry(table: &str, key: &str, value: Value, line: usize) -> (String, String, Value, usize) {
        (table.into(), key.into(), value, line)
    }

    #[test]
    fn odd_input_is_read_or_refused_with_its_line_and_reason() {
        const KEY: &str = "line 1: expected a key made of letters, digits, '_' or '-'";
        const VALUE: &str = "line 1: expected a value (a string, integer, boolean or array)";
        const NUMBER: &str = "line 1: expected a whole decimal number";
        let refused = [
            ("[", KEY),
            ("]", KEY),
            ("\"", KEY),
            ("'", KEY),
            ("k=", VALUE),
            ("k=[", VALUE),
            ("k=[\"", "line 1: unterminated string"),
            ("k=\"\\", "line 1: unknown escape sequence in a string"),
            ("k=\"\\u", "line 1: short unicode escape"),
            ("k=+", NUMBER),
            ("k=-", NUMBER),
            ("k=[,]", VALUE),
            // A byte order mark is not a key: the file must be plain UTF-8.
            ("\u{feff}k=1", KEY),
            ("k=\"\\U0011FFFF\"", "line 1: invalid unicode escape"),
            ("k = 'é", "line 1: unterminated string"),
            ("k = 9223372036854775808", NUMBER),
            ("k = trueish", "line 1: unexpected text after the value"),
            ("k = [[[[[]]]]]", "line 1: arrays nested too deeply"),
            ("\n\n[t]\n[t]", "line 4: table [t] is defined twice"),
        ];
        for (text, error) in refused {
            assert_eq!(read(text), Err(error.to_string()), "{text:?}");
        }
        let accepted = [
            ("", vec![]),
            ("#", vec![]),
            ("\n\r\n  \t\n", vec![]),
            ("[t]", vec![]),
            ("k=-0", vec![entry("", "k", Value::Int(0), 1)]),
            (
                "k = 9223372036854775807",
                vec![entry("", "k", Value::Int(i64::MAX), 1)],
            ),
            ("k = +1_0 # ten", vec![entry("", "k", Value::Int(10), 1)]),
            (
                "k=[1,]",
                vec![entry("", "k", Value::Array(vec![Value::Int(1)]), 1)],
            ),
            (
                "k = [[[[]]]]",
                vec![entry(
                    "",
                    "k",
                    Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Array(
                        vec![],
                    )])])]),
                    1,
                )],
            ),
            (
                "k = [ # a\n 'x',\n\n \"y\" ]\nj = false",
                vec![
                    entry(
                        "",
                        "k",
                        Value::Array(vec![Value::Str("x".into()), Value::Str("y".into())]),
                        1,
                    ),
                    entry("", "j", Value::Bool(false), 5),
                ],
            ),
            (
                "[a-b_1]\n9 = \"\\t\\u0000\"",
                vec![entry("a-b_1", "9", Value::Str("\t\0".into()), 2)],
            ),
            ("k = ''", vec![entry("", "k", Value::Str(String::new()), 1)]),
        ];
        for (text, entries) in accepted {
            assert_eq!(read(text), Ok(entries), "{text:?}");
        }
    }
}
