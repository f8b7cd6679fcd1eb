//! Reading and writing file descriptors, and `print!`/`eprint!` on fds 1 and 2.

use crate::sys::checked;
use crate::{Error, Result};
use abi::sys::Sys;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Standard input, output and error.
pub const STDIN: u64 = 0;
pub const STDOUT: u64 = 1;
pub const STDERR: u64 = 2;

/// Reads into `buf` at the fd's offset; 0 means end of file.
pub fn read(fd: u64, buf: &mut [u8]) -> Result<usize> {
    checked(
        Sys::Read,
        [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )
    .map(|n| n as usize)
    .ok_or_else(Error::last)
}

/// Reads at `offset`.
pub fn pread(fd: u64, buf: &mut [u8], offset: u64) -> Result<usize> {
    checked(
        Sys::Pread,
        [fd, buf.as_mut_ptr() as u64, buf.len() as u64, offset, 0, 0],
    )
    .map(|n| n as usize)
    .ok_or_else(Error::last)
}

/// Writes all of `buf`.
pub fn write(fd: u64, buf: &[u8]) -> Result<usize> {
    checked(
        Sys::Write,
        [fd, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )
    .map(|n| n as usize)
    .ok_or_else(Error::last)
}

/// Writes at `offset`.
pub fn pwrite(fd: u64, buf: &[u8], offset: u64) -> Result<usize> {
    checked(
        Sys::Pwrite,
        [fd, buf.as_ptr() as u64, buf.len() as u64, offset, 0, 0],
    )
    .map(|n| n as usize)
    .ok_or_else(Error::last)
}

/// Reads until end of file.
pub fn read_all(fd: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = alloc::vec![0u8; 64 * 1024];
    loop {
        let n = read(fd, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads one line (without its newline) from `fd`, a byte at a time; `None` at end of file.
pub fn read_line(fd: u64) -> Result<Option<String>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if read(fd, &mut b)? == 0 {
            return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        if b[0] == b'\n' {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        line.push(b[0]);
    }
}

/// Closes `fd`.
pub fn close(fd: u64) -> Result<()> {
    checked(Sys::Close, [fd, 0, 0, 0, 0, 0])
        .map(|_| ())
        .ok_or_else(Error::last)
}

/// Duplicates `old` onto `new` (or the lowest free fd if `new` is `None`).
pub fn dup(old: u64, new: Option<u64>) -> Result<u64> {
    checked(Sys::Dup, [old, new.unwrap_or(u64::MAX), 0, 0, 0, 0]).ok_or_else(Error::last)
}

/// Makes a pipe: (one end, the other end).
pub fn pipe() -> Result<(u64, u64)> {
    let mut fds = [0u64; 2];
    checked(Sys::Pipe, [fds.as_mut_ptr() as u64, 0, 0, 0, 0, 0]).ok_or_else(Error::last)?;
    Ok((fds[0], fds[1]))
}

/// A `fmt::Write` to an fd (unbuffered).
pub struct FdWriter(pub u64);

impl Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            match write(self.0, rest) {
                Ok(0) | Err(_) => return Err(fmt::Error),
                Ok(n) => rest = &rest[n..],
            }
        }
        Ok(())
    }
}

/// Output buffered until a newline, so a line reaches the console in one write.
static STDOUT_BUF: spin::Mutex<Vec<u8>> = spin::Mutex::new(Vec::new());

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut s = String::new();
    let _ = s.write_fmt(args);
    let mut buf = STDOUT_BUF.lock();
    buf.extend_from_slice(s.as_bytes());
    if buf.contains(&b'\n') || buf.len() >= 4096 {
        let _ = FdWriter(STDOUT).write_str(&String::from_utf8_lossy(&buf));
        buf.clear();
    }
}

/// Writes out what `print!` buffered.
pub fn flush_stdout() {
    let mut buf = STDOUT_BUF.lock();
    if !buf.is_empty() {
        let _ = FdWriter(STDOUT).write_str(&String::from_utf8_lossy(&buf));
        buf.clear();
    }
}

#[doc(hidden)]
pub fn _eprint(args: fmt::Arguments) {
    flush_stdout();
    let mut s = String::new();
    let _ = s.write_fmt(args);
    let _ = FdWriter(STDERR).write_str(&s);
}

/// Prints to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print(format_args!($($arg)*)) };
}

/// Prints a line to standard output.
#[macro_export]
macro_rules! println {
    () => { $crate::io::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard error.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_eprint(format_args!($($arg)*)) };
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::_eprint(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::_eprint(format_args!("{}\n", format_args!($($arg)*))) };
}
