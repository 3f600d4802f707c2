//! The command line, parsed: `xrelay [-c FILE] [COMMAND ...]` into a [`Cli`]. Pure: no
//! environment, no files; `main.rs` runs what it says.
//!
//! Forms, as getopt and clap users expect: options may come before or after the command
//! words; a value follows its option (`--config FILE`, `-c FILE`) or is attached to it
//! (`--config=FILE`, `-cFILE`), and is taken as it is even when it starts with `-`; `--`
//! ends the options; a lone `-` is a word. A repeated option keeps its last value.
//! `--help` and `--version` answer at once, whatever follows them. Paths (`--config`,
//! `--file`) may be any bytes; every other argument must be UTF-8.
//!
//! Hand-written rather than lexopt or pico-args: the aarch64 release binary has only a few
//! kB left under its budget, and lexopt parsing these ten options cost 12 kB of the
//! stripped x86_64 release binary (2,532,552 -> 2,544,840 bytes), while this module cost
//! 256 bytes more than the loop it replaced in `main.rs` (2,532,296 bytes before).

use crate::xmpp::stanza::MessageType;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The usage text shown by `--help` and after every usage error.
pub const USAGE: &str = "\
usage: xrelay [-c FILE] [COMMAND]

commands:
  run                run the daemon (the default)
  check              resolve, connect, authenticate, report
  send [-t TYPE] [-s SUBJECT] [--no-wait] [--file PATH] TO [TEXT]
      send one message (TEXT or stdin), through the daemon's unix socket when it answers
  key create [--scope msg,rest,invite] [--expires DURATION] [NAME]
      make an API key; prints ID/SECRET once
  key list           list keys (never secrets)
  key delete ID      delete a key
  invite create [--ttl DURATION] [NAME]
      make an invite; prints its xmpp: URI (and landing page URL) once
  invite list        list invites (never tokens)
  invite revoke ID   withdraw an invite
  --version, --help

options (a value may be attached: --config=FILE, -cFILE):
  -c, --config FILE   config file (default: $XRELAY_CONFIG or /etc/xrelay/xrelay.toml)
  -t, --type TYPE     chat (default), normal, headline or groupchat
  -s, --subject TEXT  message subject
  --file PATH         send a file (XEP-0363 upload; TEXT goes with it)
  --no-wait           through the daemon: exit once queued, not once acknowledged

The password may come from the environment variable XRELAY_PASSWORD.
Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// `-c FILE`, if given.
    pub config: Option<PathBuf>,
    /// What to do.
    pub command: Command,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon (also with no command word).
    Run,
    /// Connect step by step and report.
    Check,
    /// Send one message.
    Send {
        /// `-t TYPE`.
        kind: Option<MessageType>,
        /// `-s SUBJECT`.
        subject: Option<String>,
        /// The recipient, as typed.
        to: String,
        /// The text; `None`: read it from stdin.
        text: Option<String>,
        /// `--file PATH`: upload it and send its URL.
        file: Option<PathBuf>,
        /// Through the daemon, wait for the acknowledgement (no `--no-wait`).
        wait: bool,
    },
    /// Make an API key.
    KeyCreate {
        /// `--scope LIST`, unparsed.
        scopes: Option<String>,
        /// `--expires DURATION`, unparsed.
        expires: Option<String>,
        /// Its name (empty when not given).
        name: String,
    },
    /// List the API keys.
    KeyList,
    /// Delete the API key with this id.
    KeyDelete(String),
    /// Make an invite.
    InviteCreate {
        /// `--ttl DURATION`, unparsed.
        ttl: Option<String>,
        /// Its name (empty when not given).
        name: String,
    },
    /// List the invites.
    InviteList,
    /// Revoke the invite with this id.
    InviteRevoke(String),
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
}

/// Why a command line was refused; the caller prints it with [`USAGE`] and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// An option nobody knows, as typed (without an attached value).
    UnknownOption(String),
    /// An option that takes a value came last.
    MissingValue(String),
    /// A flag such as `--no-wait=yes` was given a value.
    UnexpectedValue(String),
    /// An argument that is not a path is not UTF-8 (shown with replacement characters).
    NotUnicode(String),
    /// `-t` names no message type.
    UnknownMessageType(String),
    /// The first word is no command.
    UnknownCommand(String),
    /// `run` or `check` with more words.
    TakesNoArguments(&'static str),
    /// `send` without TO, or with more than TO and TEXT.
    SendArguments,
    /// `key` without a valid subcommand and its arguments.
    KeyArguments,
    /// `invite` without a valid subcommand and its arguments.
    InviteArguments,
    /// `-t`, `-s`, `--file` or `--no-wait` without `send`.
    SendOptionElsewhere,
    /// `--scope` or `--expires` without `key create`.
    KeyOptionElsewhere,
    /// `--ttl` without `invite create`.
    TtlElsewhere,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption(o) => write!(f, "unknown option {o}"),
            Self::MissingValue(o) => write!(f, "{o} needs a value"),
            Self::UnexpectedValue(o) => write!(f, "{o} takes no value"),
            Self::NotUnicode(a) => write!(f, "argument {a:?} is not valid UTF-8"),
            Self::UnknownMessageType(t) => write!(f, "unknown message type {t:?}"),
            Self::UnknownCommand(c) => write!(f, "unknown command {c:?}"),
            Self::TakesNoArguments(c) => write!(f, "{c} takes no arguments"),
            Self::SendArguments => f.write_str("send needs TO and at most one TEXT argument"),
            Self::KeyArguments => f.write_str("key needs: create [NAME], list, or delete ID"),
            Self::InviteArguments => f.write_str("invite needs: create [NAME], list, or revoke ID"),
            Self::SendOptionElsewhere => f.write_str("-t, -s, --file and --no-wait belong to send"),
            Self::KeyOptionElsewhere => f.write_str("--scope and --expires belong to key create"),
            Self::TtlElsewhere => f.write_str("--ttl belongs to invite create"),
        }
    }
}

impl std::error::Error for CliError {}

/// An option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Help,
    Version,
    Config,
    Type,
    Subject,
    File,
    NoWait,
    Scope,
    Expires,
    Ttl,
}

impl Opt {
    /// Every option.
    const ALL: [Self; 10] = [
        Self::Help,
        Self::Version,
        Self::Config,
        Self::Type,
        Self::Subject,
        Self::File,
        Self::NoWait,
        Self::Scope,
        Self::Expires,
        Self::Ttl,
    ];

    /// Its long form, without `--`. (Matches rather than a table of structs: the table
    /// cost the size-bound builds a page.)
    fn long(self) -> &'static str {
        match self {
            Self::Help => "help",
            Self::Version => "version",
            Self::Config => "config",
            Self::Type => "type",
            Self::Subject => "subject",
            Self::File => "file",
            Self::NoWait => "no-wait",
            Self::Scope => "scope",
            Self::Expires => "expires",
            Self::Ttl => "ttl",
        }
    }

    /// Its short form, without `-`, if it has one.
    fn short(self) -> Option<u8> {
        match self {
            Self::Help => Some(b'h'),
            Self::Version => Some(b'V'),
            Self::Config => Some(b'c'),
            Self::Type => Some(b't'),
            Self::Subject => Some(b's'),
            _ => None,
        }
    }

    /// Whether it takes a value.
    fn takes_value(self) -> bool {
        !matches!(self, Self::Help | Self::Version | Self::NoWait)
    }
}

/// One argument, classified.
enum Arg<'a> {
    /// `--`.
    EndOfOptions,
    /// A known option, as typed (`-c`, `--config`), and the value attached to it.
    Option {
        opt: Opt,
        typed: String,
        attached: Option<&'a OsStr>,
    },
    /// Anything else that starts with `-`, as typed (without an attached value).
    Unknown(String),
    /// A command word or an operand.
    Word,
}

fn classify(arg: &OsStr) -> Arg<'_> {
    let bytes = arg.as_bytes();
    if bytes == b"--" {
        return Arg::EndOfOptions;
    }
    if let Some(long) = bytes.strip_prefix(b"--") {
        let (name, attached) = match long.iter().position(|&b| b == b'=') {
            Some(i) => (&long[..i], Some(OsStr::from_bytes(&long[i + 1..]))),
            None => (long, None),
        };
        let typed = format!("--{}", String::from_utf8_lossy(name));
        return match Opt::ALL.into_iter().find(|o| o.long().as_bytes() == name) {
            Some(opt) => Arg::Option {
                opt,
                typed,
                attached,
            },
            None => Arg::Unknown(typed),
        };
    }
    let [b'-', short, rest @ ..] = bytes else {
        return Arg::Word;
    };
    match Opt::ALL.into_iter().find(|o| o.short() == Some(*short)) {
        // Flags are not bundled: `-hV` is no option.
        Some(opt) if opt.takes_value() || rest.is_empty() => Arg::Option {
            opt,
            typed: format!("-{}", char::from(*short)),
            attached: (!rest.is_empty()).then(|| OsStr::from_bytes(rest)),
        },
        _ => Arg::Unknown(lossy(arg)),
    }
}

fn lossy(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

fn utf8(s: OsString) -> Result<String, CliError> {
    s.into_string().map_err(|s| CliError::NotUnicode(lossy(&s)))
}

/// The options seen so far; a repeated one keeps its last value.
#[derive(Default)]
struct Seen {
    config: Option<PathBuf>,
    kind: Option<MessageType>,
    subject: Option<String>,
    file: Option<PathBuf>,
    no_wait: bool,
    scopes: Option<String>,
    expires: Option<String>,
    ttl: Option<String>,
}

/// Parse the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, CliError> {
    let mut seen = Seen::default();
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (opt, typed, attached) = match classify(&arg) {
            Arg::EndOfOptions => {
                for word in args.by_ref() {
                    words.push(utf8(word)?);
                }
                break;
            }
            Arg::Word => {
                words.push(utf8(arg)?);
                continue;
            }
            Arg::Unknown(typed) => return Err(CliError::UnknownOption(typed)),
            Arg::Option {
                opt,
                typed,
                attached,
            } => (opt, typed, attached.map(OsStr::to_os_string)),
        };
        if !opt.takes_value() && attached.is_some() {
            return Err(CliError::UnexpectedValue(typed));
        }
        let command = match opt {
            Opt::Help => Command::Help,
            Opt::Version => Command::Version,
            Opt::NoWait => {
                seen.no_wait = true;
                continue;
            }
            opt => {
                let value = attached
                    .or_else(|| args.next())
                    .ok_or(CliError::MissingValue(typed))?;
                seen.set(opt, value)?;
                continue;
            }
        };
        return Ok(Cli {
            config: seen.config,
            command,
        });
    }
    let command = command(&mut seen, &words)?;
    Ok(Cli {
        config: seen.config,
        command,
    })
}

impl Seen {
    /// Note the value of an option that takes one.
    fn set(&mut self, opt: Opt, value: OsString) -> Result<(), CliError> {
        match opt {
            Opt::Config => self.config = Some(value.into()),
            Opt::File => self.file = Some(value.into()),
            Opt::Type => {
                let v = utf8(value)?;
                self.kind = Some(MessageType::parse(&v).ok_or(CliError::UnknownMessageType(v))?);
            }
            Opt::Subject => self.subject = Some(utf8(value)?),
            Opt::Scope => self.scopes = Some(utf8(value)?),
            Opt::Expires => self.expires = Some(utf8(value)?),
            Opt::Ttl => self.ttl = Some(utf8(value)?),
            Opt::Help | Opt::Version | Opt::NoWait => {}
        }
        Ok(())
    }
}

/// The command `words` name, taking its options from `seen`; an option left over
/// belongs to another command.
fn command(seen: &mut Seen, words: &[String]) -> Result<Command, CliError> {
    let word = |i: usize| words.get(i).map(String::as_str);
    let owned = |i: usize| words.get(i).cloned().unwrap_or_default();
    let command = match (word(0), words.len()) {
        (None, _) | (Some("run"), 1) => Command::Run,
        (Some("check"), 1) => Command::Check,
        (Some("run"), _) => return Err(CliError::TakesNoArguments("run")),
        (Some("check"), _) => return Err(CliError::TakesNoArguments("check")),
        (Some("send"), 2 | 3) => Command::Send {
            kind: seen.kind.take(),
            subject: seen.subject.take(),
            to: owned(1),
            text: words.get(2).cloned(),
            file: seen.file.take(),
            wait: !std::mem::take(&mut seen.no_wait),
        },
        (Some("send"), _) => return Err(CliError::SendArguments),
        (Some("key"), n) => match (word(1), n) {
            (Some("create"), 2 | 3) => Command::KeyCreate {
                scopes: seen.scopes.take(),
                expires: seen.expires.take(),
                name: owned(2),
            },
            (Some("list"), 2) => Command::KeyList,
            (Some("delete"), 3) => Command::KeyDelete(owned(2)),
            _ => return Err(CliError::KeyArguments),
        },
        (Some("invite"), n) => match (word(1), n) {
            (Some("create"), 2 | 3) => Command::InviteCreate {
                ttl: seen.ttl.take(),
                name: owned(2),
            },
            (Some("list"), 2) => Command::InviteList,
            (Some("revoke"), 3) => Command::InviteRevoke(owned(2)),
            _ => return Err(CliError::InviteArguments),
        },
        (Some(c), _) => return Err(CliError::UnknownCommand(c.to_string())),
    };
    if seen.kind.is_some() || seen.subject.is_some() || seen.file.is_some() || seen.no_wait {
        return Err(CliError::SendOptionElsewhere);
    }
    if seen.scopes.is_some() || seen.expires.is_some() {
        return Err(CliError::KeyOptionElsewhere);
    }
    if seen.ttl.is_some() {
        return Err(CliError::TtlElsewhere);
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn parsed(args: &[&str]) -> Result<Cli, CliError> {
        parse(args.iter().map(OsString::from))
    }

    fn command(args: &[&str]) -> Command {
        parsed(args).unwrap().command
    }

    fn config(args: &[&str]) -> Option<PathBuf> {
        parsed(args).unwrap().config
    }

    fn err(args: &[&str]) -> CliError {
        parsed(args).unwrap_err()
    }

    fn send(to: &str, text: Option<&str>) -> Command {
        Command::Send {
            kind: None,
            subject: None,
            to: to.into(),
            text: text.map(Into::into),
            file: None,
            wait: true,
        }
    }

    /// Arguments with one that is not UTF-8 (`\xff`) made by `make`.
    fn with_bytes(args: &[&str], make: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<OsString> {
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push(OsString::from_vec(make(vec![0xff])));
        all
    }

    // Commands.

    #[test]
    fn no_arguments_run_the_daemon() {
        assert_eq!(
            parsed(&[]).unwrap(),
            Cli {
                config: None,
                command: Command::Run
            }
        );
    }

    #[test]
    fn run_runs_the_daemon() {
        assert_eq!(command(&["run"]), Command::Run);
    }

    #[test]
    fn run_with_an_argument_is_refused() {
        assert_eq!(err(&["run", "now"]), CliError::TakesNoArguments("run"));
    }

    #[test]
    fn check_checks() {
        assert_eq!(command(&["check"]), Command::Check);
    }

    #[test]
    fn check_with_an_argument_is_refused() {
        assert_eq!(err(&["check", "now"]), CliError::TakesNoArguments("check"));
    }

    #[test]
    fn send_takes_a_recipient_and_a_text() {
        assert_eq!(command(&["send", "alice", "hi"]), send("alice", Some("hi")));
    }

    #[test]
    fn send_without_a_text_reads_it_from_stdin() {
        assert_eq!(command(&["send", "alice"]), send("alice", None));
    }

    #[test]
    fn send_without_a_recipient_is_refused() {
        assert_eq!(err(&["send"]), CliError::SendArguments);
    }

    #[test]
    fn send_with_two_texts_is_refused() {
        assert_eq!(err(&["send", "alice", "a", "b"]), CliError::SendArguments);
    }

    #[test]
    fn send_options_shape_the_message() {
        let args = [
            "send",
            "-t",
            "headline",
            "-s",
            "nas01",
            "--file",
            "/tmp/f",
            "--no-wait",
            "alice",
        ];
        assert_eq!(
            command(&args),
            Command::Send {
                kind: Some(MessageType::Headline),
                subject: Some("nas01".into()),
                to: "alice".into(),
                text: None,
                file: Some("/tmp/f".into()),
                wait: false,
            }
        );
    }

    #[test]
    fn key_create_takes_scopes_an_expiry_and_a_name() {
        let args = [
            "key",
            "create",
            "--scope",
            "msg,rest",
            "--expires",
            "30d",
            "ci",
        ];
        assert_eq!(
            command(&args),
            Command::KeyCreate {
                scopes: Some("msg,rest".into()),
                expires: Some("30d".into()),
                name: "ci".into(),
            }
        );
    }

    #[test]
    fn key_create_without_a_name_makes_an_unnamed_key() {
        assert_eq!(
            command(&["key", "create"]),
            Command::KeyCreate {
                scopes: None,
                expires: None,
                name: String::new(),
            }
        );
    }

    #[test]
    fn key_create_with_two_names_is_refused() {
        assert_eq!(err(&["key", "create", "a", "b"]), CliError::KeyArguments);
    }

    #[test]
    fn key_list_lists_the_keys() {
        assert_eq!(command(&["key", "list"]), Command::KeyList);
    }

    #[test]
    fn key_list_with_an_argument_is_refused() {
        assert_eq!(err(&["key", "list", "all"]), CliError::KeyArguments);
    }

    #[test]
    fn key_delete_takes_an_id() {
        assert_eq!(
            command(&["key", "delete", "k1"]),
            Command::KeyDelete("k1".into())
        );
    }

    #[test]
    fn key_delete_without_an_id_is_refused() {
        assert_eq!(err(&["key", "delete"]), CliError::KeyArguments);
    }

    #[test]
    fn key_without_a_subcommand_is_refused() {
        assert_eq!(err(&["key"]), CliError::KeyArguments);
    }

    #[test]
    fn key_with_an_unknown_subcommand_is_refused() {
        assert_eq!(err(&["key", "rotate"]), CliError::KeyArguments);
    }

    #[test]
    fn invite_create_takes_a_ttl_and_a_name() {
        assert_eq!(
            command(&["invite", "create", "--ttl", "1d", "bob"]),
            Command::InviteCreate {
                ttl: Some("1d".into()),
                name: "bob".into(),
            }
        );
    }

    #[test]
    fn invite_create_without_a_name_makes_an_unnamed_invite() {
        assert_eq!(
            command(&["invite", "create"]),
            Command::InviteCreate {
                ttl: None,
                name: String::new(),
            }
        );
    }

    #[test]
    fn invite_list_lists_the_invites() {
        assert_eq!(command(&["invite", "list"]), Command::InviteList);
    }

    #[test]
    fn invite_revoke_takes_an_id() {
        assert_eq!(
            command(&["invite", "revoke", "i1"]),
            Command::InviteRevoke("i1".into())
        );
    }

    #[test]
    fn invite_revoke_without_an_id_is_refused() {
        assert_eq!(err(&["invite", "revoke"]), CliError::InviteArguments);
    }

    #[test]
    fn invite_without_a_subcommand_is_refused() {
        assert_eq!(err(&["invite"]), CliError::InviteArguments);
    }

    #[test]
    fn an_unknown_command_is_refused_by_name() {
        assert_eq!(err(&["start"]), CliError::UnknownCommand("start".into()));
    }

    #[test]
    fn help_long_and_short_ask_for_the_usage() {
        assert_eq!(command(&["--help"]), Command::Help);
        assert_eq!(command(&["-h"]), Command::Help);
    }

    #[test]
    fn version_long_and_short_ask_for_the_version() {
        assert_eq!(command(&["--version"]), Command::Version);
        assert_eq!(command(&["-V"]), Command::Version);
    }

    #[test]
    fn help_answers_whatever_follows_it() {
        assert_eq!(
            command(&["--help", "bogus", "--bogus", "-c"]),
            Command::Help
        );
    }

    #[test]
    fn help_after_a_command_still_asks_for_the_usage() {
        assert_eq!(command(&["send", "alice", "-h"]), Command::Help);
    }

    #[test]
    fn an_unknown_option_before_help_is_refused() {
        assert_eq!(
            err(&["--bogus", "--help"]),
            CliError::UnknownOption("--bogus".into())
        );
    }

    // The config option, in every form.

    #[test]
    fn config_long_takes_the_next_argument() {
        assert_eq!(
            config(&["--config", "/etc/x.toml"]),
            Some("/etc/x.toml".into())
        );
    }

    #[test]
    fn config_long_takes_an_attached_value() {
        assert_eq!(
            config(&["--config=/etc/x.toml"]),
            Some("/etc/x.toml".into())
        );
    }

    #[test]
    fn config_short_takes_the_next_argument() {
        assert_eq!(config(&["-c", "/etc/x.toml"]), Some("/etc/x.toml".into()));
    }

    #[test]
    fn config_short_takes_an_attached_value() {
        assert_eq!(config(&["-c/etc/x.toml"]), Some("/etc/x.toml".into()));
    }

    #[test]
    fn an_attached_value_runs_to_the_end_of_the_argument() {
        assert_eq!(config(&["--config=a=b.toml"]), Some("a=b.toml".into()));
    }

    #[test]
    fn an_attached_empty_value_is_an_empty_value() {
        assert_eq!(config(&["--config="]), Some(PathBuf::new()));
    }

    #[test]
    fn config_may_follow_the_command() {
        let cli = parsed(&["check", "-c", "x.toml"]).unwrap();
        assert_eq!(
            cli,
            Cli {
                config: Some("x.toml".into()),
                command: Command::Check
            }
        );
    }

    #[test]
    fn config_given_twice_keeps_the_last() {
        assert_eq!(
            config(&["-c", "a.toml", "--config=b.toml"]),
            Some("b.toml".into())
        );
    }

    #[test]
    fn config_is_kept_when_help_follows() {
        assert_eq!(config(&["-c", "a.toml", "--help"]), Some("a.toml".into()));
    }

    #[test]
    fn config_may_be_a_path_that_is_not_utf8() {
        let args = with_bytes(&["-c"], |b| b);
        let cli = parse(args).unwrap();
        assert_eq!(
            cli.config,
            Some(PathBuf::from(OsString::from_vec(vec![0xff])))
        );
    }

    #[test]
    fn an_attached_config_may_be_a_path_that_is_not_utf8() {
        let args = with_bytes(&[], |b| [b"-c".as_slice(), &b].concat());
        let cli = parse(args).unwrap();
        assert_eq!(
            cli.config,
            Some(PathBuf::from(OsString::from_vec(vec![0xff])))
        );
    }

    // The other options' forms.

    #[test]
    fn type_takes_an_attached_value_short_and_long() {
        let short = command(&["send", "-theadline", "alice", "x"]);
        let long = command(&["send", "--type=headline", "alice", "x"]);
        assert_eq!(short, long);
        assert!(matches!(
            short,
            Command::Send {
                kind: Some(MessageType::Headline),
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_message_type_is_refused() {
        assert_eq!(
            err(&["send", "-t", "shout", "alice", "x"]),
            CliError::UnknownMessageType("shout".into())
        );
    }

    #[test]
    fn subject_takes_an_attached_value_short_and_long() {
        let short = command(&["send", "-sDisk", "alice", "x"]);
        let long = command(&["send", "--subject=Disk", "alice", "x"]);
        assert_eq!(short, long);
        assert!(matches!(short, Command::Send { subject: Some(s), .. } if s == "Disk"));
    }

    #[test]
    fn a_value_starting_with_a_dash_is_taken_as_the_value() {
        let c = command(&["send", "-s", "-urgent-", "alice", "x"]);
        assert!(matches!(c, Command::Send { subject: Some(s), .. } if s == "-urgent-"));
    }

    #[test]
    fn file_takes_an_attached_value() {
        let c = command(&["send", "--file=/tmp/a b.png", "alice"]);
        assert!(
            matches!(c, Command::Send { file: Some(f), .. } if f == std::path::Path::new("/tmp/a b.png"))
        );
    }

    #[test]
    fn file_may_be_a_path_that_is_not_utf8() {
        let args = with_bytes(&["send", "alice", "--file"], |b| b);
        let expected = PathBuf::from(OsString::from_vec(vec![0xff]));
        assert!(
            matches!(parse(args).unwrap().command, Command::Send { file: Some(f), .. } if f == expected)
        );
    }

    #[test]
    fn scope_expires_and_ttl_take_attached_values() {
        let key = command(&["key", "create", "--scope=rest", "--expires=1h"]);
        assert!(
            matches!(key, Command::KeyCreate { scopes: Some(s), expires: Some(e), .. }
            if s == "rest" && e == "1h")
        );
        let invite = command(&["invite", "create", "--ttl=2d"]);
        assert!(matches!(invite, Command::InviteCreate { ttl: Some(t), .. } if t == "2d"));
    }

    #[test]
    fn options_may_come_between_the_words() {
        let c = command(&["send", "alice", "--no-wait", "hi"]);
        assert!(matches!(c, Command::Send { wait: false, text: Some(t), .. } if t == "hi"));
    }

    #[test]
    fn a_repeated_option_keeps_its_last_value() {
        let c = command(&["send", "-s", "one", "-s", "two", "alice", "x"]);
        assert!(matches!(c, Command::Send { subject: Some(s), .. } if s == "two"));
    }

    #[test]
    fn double_dash_makes_the_rest_words() {
        assert_eq!(
            command(&["send", "--", "-alice", "--help"]),
            send("-alice", Some("--help"))
        );
    }

    #[test]
    fn double_dash_alone_runs_the_daemon() {
        assert_eq!(command(&["--"]), Command::Run);
    }

    #[test]
    fn a_lone_dash_is_a_word() {
        assert_eq!(command(&["send", "alice", "-"]), send("alice", Some("-")));
    }

    // Errors.

    #[test]
    fn a_value_option_at_the_end_is_missing_its_value() {
        assert_eq!(err(&["-c"]), CliError::MissingValue("-c".into()));
    }

    #[test]
    fn a_missing_value_is_reported_as_the_option_was_typed() {
        assert_eq!(
            err(&["send", "alice", "--subject"]),
            CliError::MissingValue("--subject".into())
        );
    }

    #[test]
    fn an_unknown_long_option_is_refused() {
        assert_eq!(err(&["--bogus"]), CliError::UnknownOption("--bogus".into()));
    }

    #[test]
    fn an_unknown_long_option_is_named_without_its_value() {
        assert_eq!(
            err(&["--password=hunter2"]),
            CliError::UnknownOption("--password".into())
        );
    }

    #[test]
    fn an_unknown_short_option_is_refused() {
        assert_eq!(err(&["-x"]), CliError::UnknownOption("-x".into()));
    }

    #[test]
    fn flags_are_not_bundled() {
        assert_eq!(err(&["-hV"]), CliError::UnknownOption("-hV".into()));
    }

    #[test]
    fn a_flag_given_a_value_is_refused() {
        assert_eq!(
            err(&["send", "alice", "x", "--no-wait=yes"]),
            CliError::UnexpectedValue("--no-wait".into())
        );
    }

    #[test]
    fn a_send_option_without_send_is_refused() {
        assert_eq!(err(&["-t", "chat", "check"]), CliError::SendOptionElsewhere);
    }

    #[test]
    fn no_wait_without_send_is_refused() {
        assert_eq!(err(&["--no-wait"]), CliError::SendOptionElsewhere);
    }

    #[test]
    fn a_key_option_without_key_create_is_refused() {
        assert_eq!(
            err(&["key", "list", "--scope", "msg"]),
            CliError::KeyOptionElsewhere
        );
    }

    #[test]
    fn expires_on_invite_create_is_refused() {
        assert_eq!(
            err(&["invite", "create", "--expires", "1d"]),
            CliError::KeyOptionElsewhere
        );
    }

    #[test]
    fn ttl_without_invite_create_is_refused() {
        assert_eq!(
            err(&["key", "create", "--ttl", "1d"]),
            CliError::TtlElsewhere
        );
    }

    #[test]
    fn a_word_that_is_not_utf8_is_refused() {
        let args = with_bytes(&["send", "alice"], |b| b);
        assert_eq!(parse(args), Err(CliError::NotUnicode("\u{fffd}".into())));
    }

    #[test]
    fn a_text_option_that_is_not_utf8_is_refused() {
        let args = with_bytes(&["send", "alice", "x", "-s"], |b| b);
        assert!(matches!(parse(args), Err(CliError::NotUnicode(_))));
    }

    #[test]
    fn errors_read_as_they_always_have() {
        let cases = [
            (err(&["-c"]), "-c needs a value"),
            (err(&["--bogus"]), "unknown option --bogus"),
            (err(&["start"]), "unknown command \"start\""),
            (err(&["run", "x"]), "run takes no arguments"),
            (
                err(&["send"]),
                "send needs TO and at most one TEXT argument",
            ),
            (
                err(&["key"]),
                "key needs: create [NAME], list, or delete ID",
            ),
            (
                err(&["invite"]),
                "invite needs: create [NAME], list, or revoke ID",
            ),
            (err(&["-t", "x"]), "unknown message type \"x\""),
            (
                err(&["-s", "x"]),
                "-t, -s, --file and --no-wait belong to send",
            ),
            (
                err(&["--scope", "msg"]),
                "--scope and --expires belong to key create",
            ),
            (err(&["--ttl", "1d"]), "--ttl belongs to invite create"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn the_usage_names_every_command_and_option() {
        for word in [
            "run",
            "check",
            "send",
            "key create",
            "key list",
            "key delete",
        ] {
            assert!(USAGE.contains(word), "{word}");
        }
        for word in ["invite create", "invite list", "invite revoke"] {
            assert!(USAGE.contains(word), "{word}");
        }
        for opt in Opt::ALL {
            assert!(
                USAGE.contains(&format!("--{}", opt.long())),
                "--{}",
                opt.long()
            );
            if let Some(short) = opt.short().filter(|s| !b"hV".contains(s)) {
                assert!(USAGE.contains(&format!("-{}, --", char::from(short))));
            }
        }
    }
}
