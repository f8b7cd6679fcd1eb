//! Buffered writing to an fd, and ending a command that has already said what went wrong.

use alloc::vec::Vec;
use rt::io;

/// Bytes collected for an fd and written in large pieces.
pub struct Output {
    fd: u64,
    buf: Vec<u8>,
    failed: bool,
}

/// Flush when this much is buffered.
const LIMIT: usize = 16 * 1024;

impl Output {
    /// Before file number `i` of several (`head`, `tail`): `==> NAME <==`, after a blank line
    /// from the second on.
    pub fn file_header(&mut self, i: usize, name: &str) {
        self.str(&rt::format!(
            "{}==> {name} <==\n",
            if i > 0 { "\n" } else { "" }
        ));
    }

    /// Output to standard output.
    pub fn stdout() -> Output {
        Output::new(io::STDOUT)
    }

    /// Output to `fd`.
    pub fn new(fd: u64) -> Output {
        Output {
            fd,
            buf: Vec::new(),
            failed: false,
        }
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= LIMIT {
            self.flush();
        }
    }

    /// Adds text.
    pub fn str(&mut self, s: &str) {
        self.write(s.as_bytes());
    }

    /// Writes out what is buffered; false if writing has ever failed.
    pub fn flush(&mut self) -> bool {
        let mut rest = &self.buf[..];
        while !rest.is_empty() && !self.failed {
            match io::write(self.fd, rest) {
                // The reader of a pipe has gone (`cat big | head`): nobody wants the rest,
                // and there is nobody to complain to.
                Err(e) if e.msg().ends_with(abi::errors::EHUNGUP) => {
                    rt::process::exits(abi::errors::EHUNGUP)
                }
                Ok(0) | Err(_) => self.failed = true,
                Ok(n) => rest = &rest[n..],
            }
        }
        self.buf.clear();
        !self.failed
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Ends the command: success if `failure` is `None`, otherwise exits with that string (the
/// message was printed already).
pub fn finish(failure: Option<alloc::string::String>) -> rt::Result<()> {
    match failure {
        None => Ok(()),
        Some(msg) => {
            rt::io::flush_stdout();
            rt::process::exits(&msg)
        }
    }
}

/// Prints `program: msg` on standard error and returns `msg` (for [`finish`]).
pub fn complain(msg: alloc::string::String) -> alloc::string::String {
    rt::eprintln!("{}: {msg}", rt::env::program());
    msg
}
