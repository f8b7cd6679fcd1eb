//! Processes: rfork, exec, await, exits, sleep, notes to other processes.

use crate::sys::{self, checked, str_ref};
use crate::{Error, Result};
use abi::sys::{Sys, WaitMsg};
use alloc::string::String;
use alloc::vec::Vec;

pub use abi::sys::rfork::*;

/// Ends the process with `msg` (empty = success).
pub fn exits(msg: &str) -> ! {
    crate::io::flush_stdout();
    sys::exits(msg)
}

/// `rfork(flags)`: `Ok(0)` in a new child, the child's id in the parent.
pub fn rfork(flags: u64) -> Result<u64> {
    crate::io::flush_stdout();
    checked(Sys::Rfork, [flags, 0, 0, 0, 0, 0]).ok_or_else(Error::last)
}

/// Replaces the program with `path`, passing `args` and the current environment.
pub fn exec(path: &str, args: &[String]) -> Error {
    let env = crate::env::vars();
    exec_env(path, args, &env)
}

/// Replaces the program with `path`, passing `args` and `env` (`NAME=value` strings). Returns
/// only on failure.
pub fn exec_env(path: &str, args: &[String], env: &[String]) -> Error {
    let argv: Vec<_> = args.iter().map(|a| str_ref(a)).collect();
    let envp: Vec<_> = env.iter().map(|e| str_ref(e)).collect();
    crate::io::flush_stdout();
    sys::call(
        Sys::Exec,
        [
            path.as_ptr() as u64,
            path.len() as u64,
            argv.as_ptr() as u64,
            argv.len() as u64,
            envp.as_ptr() as u64,
            envp.len() as u64,
        ],
    );
    Error::last().context(path)
}

/// What `await` reports.
#[derive(Clone, Debug)]
pub struct Exit {
    pub pid: u64,
    /// The exit string; empty for success.
    pub msg: String,
    pub user_ms: u64,
    pub sys_ms: u64,
    pub real_ms: u64,
}

/// Waits for a child to exit.
pub fn await_child() -> Result<Exit> {
    let mut w = WaitMsg::default();
    sys::await_child(&mut w).ok_or_else(Error::last)?;
    Ok(Exit {
        pid: w.pid,
        msg: String::from(w.msg()),
        user_ms: w.utime_ms,
        sys_ms: w.stime_ms,
        real_ms: w.real_ms,
    })
}

/// Waits for the child `pid`, collecting (and returning) the others that exit first.
pub fn wait_for(pid: u64) -> Result<(Exit, Vec<Exit>)> {
    let mut others = Vec::new();
    loop {
        let e = await_child()?;
        if e.pid == pid {
            return Ok((e, others));
        }
        others.push(e);
    }
}

/// Starts `path` with `args` in a child process (sharing fds and namespace); returns its pid.
pub fn spawn(path: &str, args: &[String]) -> Result<u64> {
    match rfork(RFPROC | RFFDG)? {
        0 => {
            let e = exec(path, args);
            crate::eprintln!("{}: {}", crate::env::program(), e);
            exits(e.msg())
        }
        pid => Ok(pid),
    }
}

/// Sleeps `ms` milliseconds; a note cuts it short with "interrupted".
pub fn sleep(ms: u64) -> Result<()> {
    checked(Sys::Sleep, [ms, 0, 0, 0, 0, 0])
        .map(|_| ())
        .ok_or_else(Error::last)
}

/// Posts `note` to process `pid`.
pub fn postnote(pid: u64, note: &str) -> Result<()> {
    checked(
        Sys::Postnote,
        [pid, note.as_ptr() as u64, note.len() as u64, 0, 0, 0],
    )
    .map(|_| ())
    .ok_or_else(|| Error::last().context(alloc::format!("postnote {pid}")))
}

/// This process's pid.
pub fn getpid() -> u64 {
    sys::call(Sys::Getpid, [0; 6])
}
