//! The control protocol on the guest's `hvc0` (virtio-console), the channel through which the
//! host side of the session (the `fsvm` script through our VMM, or a QEMU harness) drives the
//! agent. Lines in both directions end in `\n` (a `\r` before it is ignored).
//!
//! Commands (host to guest), one per line, case-sensitive, surrounding blanks ignored, blank
//! lines ignored:
//!
//! - `SHUTDOWN`: stop the 9P server, sync, unmount, power off with status 0.
//! - `STATUS`: print one `status` line.
//!
//! Replies (guest to host) all start with [`PREFIX`] and are the [`Reply`] forms:
//!
//! ```text
//! fsvm-agent: ready tcp!10.0.2.15!564 /dev/vda1
//! fsvm-agent: status serving /dev/vda1 tcp!10.0.2.15!564 uptime 12.345 connections 1
//! fsvm-agent: error unknown control line "REBOOT" (expected SHUTDOWN or STATUS)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop serving, sync, unmount, power off.
    Shutdown,
    /// Report the agent's state.
    Status,
}

impl Command {
    /// The command as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Shutdown => "SHUTDOWN",
            Command::Status => "STATUS",
        }
    }
}

/// A control line that is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Not one of the commands (the line, trimmed).
    Unknown(String),
    /// Longer than [`MAX_COMMAND_LEN`] bytes (the length).
    TooLong(usize),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Unknown(line) => {
                write!(
                    f,
                    "unknown control line {line:?} (expected SHUTDOWN or STATUS)"
                )
            }
            ControlError::TooLong(n) => {
                write!(
                    f,
                    "control line of {n} bytes is too long (at most {MAX_COMMAND_LEN})"
                )
            }
        }
    }
}

/// Parses one control line (without or with its newline). Blank lines are `Ok(None)`.
pub fn parse_command(line: &str) -> Result<Option<Command>, ControlError> {
    if line.len() > MAX_COMMAND_LEN {
        return Err(ControlError::TooLong(line.len()));
    }
    match line.trim() {
        "" => Ok(None),
        "SHUTDOWN" => Ok(Some(Command::Shutdown)),
        "STATUS" => Ok(Some(Command::Status)),
        other => Err(ControlError::Unknown(other.to_string())),
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
        for c in [Command::Shutdown, Command::Status] {
            assert_eq!(parse_command(c.as_str()), Ok(Some(c)));
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
            assert!(err.to_string().contains("expected SHUTDOWN or STATUS"));
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
        ] {
            assert_eq!(Reply::parse(junk), None, "{junk:?}");
        }
    }
}
