//! The control protocol on the guest's `hvc0` (virtio-console), the channel through which the
//! host side of the session (the `fsvm` script through our VMM, or a QEMU harness) drives the
//! agent. Lines in both directions end in `\n` (a `\r` before it is ignored).
//!
//! Commands (host to guest), one per line, case-sensitive, surrounding blanks ignored, blank
//! lines ignored:
//!
//! - `SHUTDOWN`: stop the 9P server, sync, unmount, power off with status 0.
//! - `STATUS`: print one `status` line.
//! - `READ PATH`: read the file `PATH` of the served tree (relative to its root; a leading `/`
//!   is allowed, `.` and `..` are not, and the path has no blanks) from start to end in 1 MiB
//!   reads, inside the guest, and print a `read` line with the bytes read and the nanoseconds it
//!   took, or an `error` line. It is a benchmark: the host compares reading the same file
//!   through its 9P mount with this figure (DESIGN.md section 8). The read runs beside the
//!   other commands; a `SHUTDOWN` meanwhile does not wait for it. (Symbolic links are followed
//!   as the guest's kernel resolves them: the channel is the VM owner's, not a 9P client's.)
//!
//! Replies (guest to host) all start with [`PREFIX`] and are the [`Reply`] forms:
//!
//! ```text
//! fsvm-agent: ready tcp!10.0.2.15!564 /dev/vda1
//! fsvm-agent: status serving /dev/vda1 tcp!10.0.2.15!564 uptime 12.345 connections 1
//! fsvm-agent: read usr/share/fsvm/random-32m.bin 33554432 81234567
//! fsvm-agent: error unknown control line "REBOOT" (expected SHUTDOWN, STATUS or READ PATH)
//! fsvm-agent: shutting down
//! fsvm-agent: exit status 3 (the partition is not ext4)
//! ```
//!
//! The `exit status` line is the last thing the agent prints, on `hvc0` and on the serial console
//! alike, right before it powers off. Its number is an [`abi::hv::PowerOffStatus`], the value the
//! power-off hypercall carries to our VMM; under a VMM without that hypercall (QEMU `microvm`)
//! this line is the only way the status reaches the host.

use abi::hv::PowerOffStatus;
use core::fmt;

/// What every reply line starts with.
pub const PREFIX: &str = "fsvm-agent: ";
/// The longest command line the agent reads; longer lines are an error.
pub const MAX_COMMAND_LEN: usize = 256;

/// A command from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop serving, sync, unmount, power off.
    Shutdown,
    /// Report the agent's state.
    Status,
    /// Time reading a file of the served tree inside the guest.
    Read(TreePath),
}

impl fmt::Display for Command {
    /// The command as written on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shutdown => f.write_str("SHUTDOWN"),
            Command::Status => f.write_str("STATUS"),
            Command::Read(p) => write!(f, "READ {}", p.as_str()),
        }
    }
}

/// A path of the served tree as a `READ` names it: relative, one or more plain names joined
/// by `/` (a leading `/` and repeated `/` are dropped), no `.` or `..`, no blanks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreePath(String);

impl TreePath {
    /// Checks `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<TreePath, &'static str> {
        let names: Vec<&str> = text.split('/').filter(|n| !n.is_empty()).collect();
        if names.is_empty() {
            return Err("names no file");
        }
        if names.iter().any(|&n| n == "." || n == "..") {
            return Err("has a . or .. in it");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("has a blank or control character in it");
        }
        Ok(TreePath(names.join("/")))
    }

    /// The path, relative to the tree's root.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A control line that is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Not one of the commands (the line, trimmed).
    Unknown(String),
    /// Longer than [`MAX_COMMAND_LEN`] bytes (the length).
    TooLong(usize),
    /// `READ` without a path, or with one that [`TreePath::parse`] refuses (the path and why).
    BadPath(String, &'static str),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Unknown(line) => {
                write!(
                    f,
                    "unknown control line {line:?} (expected SHUTDOWN, STATUS or READ PATH)"
                )
            }
            ControlError::TooLong(n) => {
                write!(
                    f,
                    "control line of {n} bytes is too long (at most {MAX_COMMAND_LEN})"
                )
            }
            ControlError::BadPath(path, why) => {
                write!(f, "READ {path:?}: the path {why} (usage: READ PATH)")
            }
        }
    }
}

/// Parses one control line (without or with its newline). Blank lines are `Ok(None)`.
pub fn parse_command(line: &str) -> Result<Option<Command>, ControlError> {
    if line.len() > MAX_COMMAND_LEN {
        return Err(ControlError::TooLong(line.len()));
    }
    let line = line.trim();
    match line.split_once(|c: char| c.is_ascii_whitespace()) {
        Some(("READ", path)) => {
            let path = path.trim();
            TreePath::parse(path)
                .map(|p| Some(Command::Read(p)))
                .map_err(|why| ControlError::BadPath(path.to_string(), why))
        }
        _ => match line {
            "" => Ok(None),
            "SHUTDOWN" => Ok(Some(Command::Shutdown)),
            "STATUS" => Ok(Some(Command::Status)),
            "READ" => Err(ControlError::BadPath(String::new(), "names no file")),
            other => Err(ControlError::Unknown(other.to_string())),
        },
    }
}

/// A line the agent prints on the control channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The 9P server accepts connections at `addr` (a Plan 9 dial string, `tcp!IP!PORT`) and
    /// serves `device`.
    Ready {
        /// Dial string of the 9P server.
        addr: String,
        /// The block device being served.
        device: String,
    },
    /// Answer to `STATUS`: the state, the device, the 9P address, the seconds since boot and
    /// the number of open 9P connections.
    Status {
        /// One word; `serving` while the agent obeys commands.
        state: String,
        /// The block device being served.
        device: String,
        /// Dial string of the 9P server.
        addr: String,
        /// Seconds since boot, with millisecond precision.
        uptime: String,
        /// Open 9P connections.
        connections: usize,
    },
    /// Answer to `READ`: the file read inside the guest, its length and the time taken.
    Read {
        /// The path as the command gave it (relative to the served tree's root).
        path: String,
        /// Bytes read.
        bytes: u64,
        /// Nanoseconds from opening the file to reading its end.
        ns: u64,
    },
    /// A failure: a bad control line (the agent keeps running) or the reason for a failure exit.
    Error(String),
    /// `SHUTDOWN` was accepted.
    ShuttingDown,
    /// The last line before power-off: the status (an [`abi::hv::PowerOffStatus`] number) and its
    /// description.
    Exit {
        /// The power-off status.
        status: u64,
        /// What it means, for people.
        text: String,
    },
}

impl Reply {
    /// The `exit status` reply for a power-off status.
    pub fn exit(status: PowerOffStatus) -> Reply {
        Reply::Exit {
            status: status as u64,
            text: status.describe().to_string(),
        }
    }

    /// Finds a reply in a line of console output (anything before [`PREFIX`], such as a
    /// timestamp, is skipped). `None` if the line holds no well-formed reply.
    pub fn parse(line: &str) -> Option<Reply> {
        let at = line.find(PREFIX)?;
        let body = line[at + PREFIX.len()..].trim_end_matches(['\r', '\n']);
        let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
        match word {
            "ready" => {
                let (addr, device) = rest.split_once(' ')?;
                Some(Reply::Ready {
                    addr: addr.to_string(),
                    device: device.to_string(),
                })
            }
            "status" => {
                let mut w = rest.split(' ');
                let (state, device, addr) = (w.next()?, w.next()?, w.next()?);
                let (_, uptime) = (w.next().filter(|&u| u == "uptime")?, w.next()?);
                let (_, conns) = (w.next().filter(|&c| c == "connections")?, w.next()?);
                Some(Reply::Status {
                    state: state.to_string(),
                    device: device.to_string(),
                    addr: addr.to_string(),
                    uptime: uptime.to_string(),
                    connections: conns.parse().ok()?,
                })
            }
            "read" => {
                let mut w = rest.split(' ');
                let (path, bytes, ns) = (w.next()?, w.next()?, w.next()?);
                if path.is_empty() || w.next().is_some() {
                    return None;
                }
                Some(Reply::Read {
                    path: path.to_string(),
                    bytes: bytes.parse().ok()?,
                    ns: ns.parse().ok()?,
                })
            }
            "error" => Some(Reply::Error(rest.to_string())),
            "shutting" if rest == "down" => Some(Reply::ShuttingDown),
            "exit" => {
                let rest = rest.strip_prefix("status ")?;
                let (number, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let text = text
                    .strip_prefix('(')
                    .and_then(|t| t.strip_suffix(')'))
                    .unwrap_or(text);
                Some(Reply::Exit {
                    status: number.parse().ok()?,
                    text: text.to_string(),
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        match self {
            Reply::Ready { addr, device } => write!(f, "ready {addr} {device}"),
            Reply::Status {
                state,
                device,
                addr,
                uptime,
                connections,
            } => write!(
                f,
                "status {state} {device} {addr} uptime {uptime} connections {connections}"
            ),
            Reply::Read { path, bytes, ns } => write!(f, "read {path} {bytes} {ns}"),
            Reply::Error(msg) => write!(f, "error {msg}"),
            Reply::ShuttingDown => f.write_str("shutting down"),
            Reply::Exit { status, text } => write!(f, "exit status {status} ({text})"),
        }
    }
}

/// A Plan 9 dial string for a TCP address (`tcp!10.0.2.15!564`).
pub fn dial_string(ip: std::net::Ipv4Addr, port: u16) -> String {
    format!("tcp!{ip}!{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command("SHUTDOWN\n"), Ok(Some(Command::Shutdown)));
        assert_eq!(parse_command("  STATUS\r\n"), Ok(Some(Command::Status)));
        assert_eq!(parse_command("\n"), Ok(None));
        assert_eq!(parse_command(" \t \r\n"), Ok(None));
        assert_eq!(parse_command(""), Ok(None));
        let big = TreePath::parse("usr/share/fsvm/random-32m.bin").unwrap();
        assert_eq!(
            parse_command("READ usr/share/fsvm/random-32m.bin\n"),
            Ok(Some(Command::Read(big.clone())))
        );
        assert_eq!(
            parse_command("  READ \t //usr//share/fsvm/random-32m.bin/ \r\n"),
            Ok(Some(Command::Read(big.clone())))
        );
        for c in [Command::Shutdown, Command::Status, Command::Read(big)] {
            assert_eq!(parse_command(&c.to_string()), Ok(Some(c)));
        }
    }

    #[test]
    fn read_paths_stay_in_the_tree() {
        for (line, path, why) in [
            ("READ", "", "names no file"),
            ("READ /", "/", "names no file"),
            ("READ ../etc/shadow", "../etc/shadow", "has a . or .. in it"),
            ("READ etc/../../x", "etc/../../x", "has a . or .. in it"),
            ("READ ./etc", "./etc", "has a . or .. in it"),
            ("READ a b", "a b", "has a blank or control character in it"),
            (
                "READ a\u{7}b",
                "a\u{7}b",
                "has a blank or control character in it",
            ),
            (
                "READ etc/\u{0}",
                "etc/\u{0}",
                "has a blank or control character in it",
            ),
            ("READ ..", "..", "has a . or .. in it"),
        ] {
            let err = parse_command(line).expect_err(line);
            assert_eq!(err, ControlError::BadPath(path.into(), why), "{line}");
            assert!(err.to_string().contains("usage: READ PATH"), "{err}");
        }
        assert_eq!(
            TreePath::parse("/etc/hostname").map(|p| p.as_str().to_string()),
            Ok("etc/hostname".to_string())
        );
        // Not a command word of its own: READX and a lower-case read are unknown lines.
        for bad in ["READX etc", "read etc"] {
            assert!(matches!(parse_command(bad), Err(ControlError::Unknown(_))));
        }
    }

    #[test]
    fn bad_commands() {
        for bad in [
            "shutdown",
            "SHUTDOWN NOW",
            "STAT",
            "REBOOT",
            "SHUTDOWN;STATUS",
            "\u{1b}[A",
            "ÿ",
        ] {
            let err = parse_command(bad).expect_err(bad);
            assert_eq!(err, ControlError::Unknown(bad.trim().to_string()));
            assert!(
                err.to_string()
                    .contains("expected SHUTDOWN, STATUS or READ PATH")
            );
        }
        let long = "S".repeat(MAX_COMMAND_LEN + 1);
        assert_eq!(
            parse_command(&long),
            Err(ControlError::TooLong(MAX_COMMAND_LEN + 1))
        );
        assert!(parse_command(&"S".repeat(MAX_COMMAND_LEN)).is_err());
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Ready {
                addr: dial_string([10, 0, 2, 15].into(), 564),
                device: "/dev/vda1".into(),
            },
            Reply::Status {
                state: "serving".into(),
                device: "/dev/vda".into(),
                addr: "tcp!10.0.2.15!5640".into(),
                uptime: "1.250".into(),
                connections: 3,
            },
            Reply::Error("partition 3 of /dev/vda does not exist".into()),
            Reply::Read {
                path: "usr/share/fsvm/random-32m.bin".into(),
                bytes: 32 << 20,
                ns: 81_234_567,
            },
            Reply::ShuttingDown,
            Reply::exit(PowerOffStatus::NotExt4),
            Reply::exit(PowerOffStatus::Clean),
        ];
        for r in replies {
            let line = r.to_string();
            assert!(line.starts_with(PREFIX));
            assert_eq!(Reply::parse(&line), Some(r.clone()), "{line}");
            assert_eq!(Reply::parse(&format!("[    1.234567] {line}\r\n")), Some(r));
        }
    }

    #[test]
    fn exit_line_format_is_stable() {
        assert_eq!(
            Reply::exit(PowerOffStatus::NoSuchPartition).to_string(),
            "fsvm-agent: exit status 2 (the partition does not exist)"
        );
        assert_eq!(
            Reply::parse("fsvm-agent: exit status 0 (clean shutdown)"),
            Some(Reply::Exit {
                status: 0,
                text: "clean shutdown".into()
            })
        );
    }

    #[test]
    fn junk_is_not_a_reply() {
        for junk in [
            "",
            "[    0.5] Linux version 6.1",
            "fsvm-agent:",
            "fsvm-agent: ",
            "fsvm-agent: exit status x (y)",
            "fsvm-agent: exit code 1",
            "fsvm-agent: ready tcp!1!2",
            "fsvm-agent: status serving /dev/vda",
            "fsvm-agent: status serving /dev/vda tcp!1!2 uptime 1.0",
            "fsvm-agent: status serving /dev/vda tcp!1!2 uptime 1.0 connections x",
            "fsvm-agent: shutting up",
            "fsvm-agent: mounted /dev/vda1",
            "fsvm-agent: read x 12",
            "fsvm-agent: read x 12 y",
            "fsvm-agent: read x 12 34 56",
            "fsvm-agent: read  12 34",
        ] {
            assert_eq!(Reply::parse(junk), None, "{junk:?}");
        }
    }
}
