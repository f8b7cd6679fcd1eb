//! Signals, as `kill` and `trap` name them, and the notes they stand for. Our kernel delivers
//! notes (text), not numbered signals; this table is the one place the two meet:
//!
//! | signal | number | note        |
//! |--------|--------|-------------|
//! | HUP    | 1      | `hangup`    |
//! | INT    | 2      | `interrupt` (what ^C posts) |
//! | QUIT   | 3      | `quit`      |
//! | KILL   | 9      | `kill` (cannot be caught) |
//! | USR1   | 10     | `usr1`      |
//! | USR2   | 12     | `usr2`      |
//! | ALRM   | 14     | `alarm`     |
//! | TERM   | 15     | `term` (what `kill PID` posts) |
//!
//! An exit string becomes a status (`$?`) with [`exit_code`]: empty is 0, a number is itself,
//! a signal's note is 128 + its number, anything else is 1.

use alloc::string::String;

/// One signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal {
    /// The POSIX name without `SIG`.
    pub name: &'static str,
    /// The POSIX number.
    pub number: u32,
    /// The note posted for it.
    pub note: &'static str,
}

/// Every signal we know.
pub const SIGNALS: &[Signal] = &[
    Signal {
        name: "HUP",
        number: 1,
        note: "hangup",
    },
    Signal {
        name: "INT",
        number: 2,
        note: "interrupt",
    },
    Signal {
        name: "QUIT",
        number: 3,
        note: "quit",
    },
    Signal {
        name: "KILL",
        number: 9,
        note: "kill",
    },
    Signal {
        name: "USR1",
        number: 10,
        note: "usr1",
    },
    Signal {
        name: "USR2",
        number: 12,
        note: "usr2",
    },
    Signal {
        name: "ALRM",
        number: 14,
        note: "alarm",
    },
    Signal {
        name: "TERM",
        number: 15,
        note: "term",
    },
];

/// The signal `kill` sends by default.
pub const TERM: Signal = SIGNALS[7];

/// Looks a signal up by name (`TERM`, `SIGTERM`, `term`), number (`15`) or note (`hangup`).
pub fn parse(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<u32>() {
        return SIGNALS.iter().find(|sig| sig.number == n).copied();
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|sig| sig.name == name || sig.note == s)
        .copied()
}

/// The signal a note stands for.
pub fn from_note(note: &str) -> Option<Signal> {
    SIGNALS.iter().find(|sig| sig.note == note).copied()
}

/// The status (`$?`) of an exit string.
pub fn exit_code(msg: &str) -> i32 {
    if msg.is_empty() {
        return 0;
    }
    if let Ok(n) = msg.trim().parse::<i64>() {
        let code = (n & 0xff) as i32;
        return if code == 0 { 1 } else { code };
    }
    match from_note(msg) {
        Some(sig) => 128 + sig.number as i32,
        None => 1,
    }
}

/// The exit string for a status: empty for 0, else its number.
pub fn exit_string(code: i32) -> String {
    if code == 0 {
        String::new()
    } else {
        alloc::format!("{code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_notes() {
        assert_eq!(parse("TERM"), Some(TERM));
        assert_eq!(parse("SIGTERM"), Some(TERM));
        assert_eq!(parse("term"), Some(TERM));
        assert_eq!(parse("15"), Some(TERM));
        assert_eq!(parse("INT").map(|s| s.note), Some("interrupt"));
        assert_eq!(parse("hangup").map(|s| s.name), Some("HUP"));
        assert_eq!(parse("KILL").map(|s| s.note), Some("kill"));
        assert_eq!(parse("BOGUS"), None);
        assert_eq!(parse("99"), None);
        assert_eq!(from_note("interrupt").map(|s| s.number), Some(2));
    }

    #[test]
    fn exit_strings_to_statuses() {
        assert_eq!(exit_code(""), 0);
        assert_eq!(exit_code("3"), 3);
        assert_eq!(exit_code("256"), 1);
        assert_eq!(exit_code("interrupt"), 130);
        assert_eq!(exit_code("term"), 143);
        assert_eq!(exit_code("kill"), 137);
        assert_eq!(exit_code("file does not exist"), 1);
        assert_eq!(exit_string(0), "");
        assert_eq!(exit_string(2), "2");
    }
}
