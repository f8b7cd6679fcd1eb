//! `#proc`: a directory per process, named by pid, holding
//! - `status`: `pid name state ppid` (state `RUNNING`, `READY` or `WAITING`);
//! - `ctl`: write `kill` to kill it, `hang` to make it stop at its next exec (for debuggers);
//! - `note`: write a note to post it;
//! - `ns`: its namespace, as the bind commands that rebuild it.
//!
//! A process's directory disappears as soon as it has exited.

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, check_io, dir_entry, read_dir_entries, read_slice};
use crate::proc::{self, Process};
use abi::errors::{EBADCTL, ENOPROC, ENOTDIR, ENOTEXIST, EPERM};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ninep::{DMDIR, Dir, QTDIR, Qid};

/// Files of a process directory: (name, index, permissions).
const FILES: [(&str, u64, u32); 4] = [
    ("status", 1, 0o444),
    ("ctl", 2, 0o200),
    ("note", 3, 0o200),
    ("ns", 4, 0o444),
];
const QSTATUS: u64 = 1;
const QCTL: u64 = 2;
const QNOTE: u64 = 3;
const QNS: u64 = 4;

/// The `#proc` device.
pub struct ProcDev;

/// The one instance.
pub static PROC: ProcDev = ProcDev;

/// qid.path: the pid in the high bits, the file index (0 = the pid's directory) in the low 8.
fn qpath(pid: u64, file: u64) -> u64 {
    (pid << 8) | file
}

fn split(path: u64) -> (u64, u64) {
    (path >> 8, path & 0xff)
}

fn qid(path: u64) -> Qid {
    let (pid, file) = split(path);
    let dir = pid == 0 || file == 0;
    Qid {
        ty: if dir { QTDIR } else { 0 },
        version: 0,
        path,
    }
}

fn process(path: u64) -> KResult<Arc<Process>> {
    proc::lookup(split(path).0).ok_or_else(|| ENOTEXIST.into())
}

fn status_line(p: &Process) -> String {
    alloc::format!(
        "{} {} {} {}\n",
        p.pid,
        p.name.lock().as_str(),
        p.state(),
        p.ppid()
    )
}

fn text(path: u64) -> KResult<String> {
    let p = process(path)?;
    Ok(match split(path).1 {
        QSTATUS => status_line(&p),
        QNS => p.ns().map(|ns| ns.describe()).unwrap_or_default(),
        _ => String::new(),
    })
}

impl Dev for ProcDev {
    fn name(&self) -> &'static str {
        "proc"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(self, 0, qid(0), String::from("#proc"), None))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        let (pid, file) = split(c.qid.path);
        if pid == 0 {
            let pid: u64 = name.parse().map_err(|_| ENOTEXIST)?;
            proc::lookup(pid).ok_or(ENOTEXIST)?;
            return Ok(c.walked(qid(qpath(pid, 0)), name, None));
        }
        if file != 0 {
            return Err(ENOTDIR.into());
        }
        process(c.qid.path)?;
        let (_, index, _) = FILES.iter().find(|f| f.0 == name).ok_or(ENOTEXIST)?;
        Ok(c.walked(qid(qpath(pid, *index)), name, None))
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        let (pid, file) = split(c.qid.path);
        if pid == 0 {
            return Ok(dir_entry("proc", qid(0), DMDIR | 0o555, 0));
        }
        process(c.qid.path)?;
        if file == 0 {
            return Ok(dir_entry(
                &alloc::format!("{pid}"),
                qid(c.qid.path),
                DMDIR | 0o555,
                0,
            ));
        }
        let (name, _, perm) = FILES.iter().find(|f| f.1 == file).ok_or(ENOTEXIST)?;
        Ok(dir_entry(name, qid(c.qid.path), *perm, 0))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        let (pid, file) = split(c.qid.path);
        if pid == 0 {
            let entries: Vec<Dir<'static>> = proc::list()
                .iter()
                .map(|p| {
                    dir_entry(
                        &alloc::format!("{}", p.pid),
                        qid(qpath(p.pid, 0)),
                        DMDIR | 0o555,
                        0,
                    )
                })
                .collect();
            return read_dir_entries(&entries, buf, offset);
        }
        if file == 0 {
            process(c.qid.path)?;
            let entries: Vec<Dir<'static>> = FILES
                .iter()
                .map(|(name, i, perm)| dir_entry(name, qid(qpath(pid, *i)), *perm, 0))
                .collect();
            return read_dir_entries(&entries, buf, offset);
        }
        check_io(c, false)?;
        Ok(read_slice(text(c.qid.path)?.as_bytes(), buf, offset))
    }

    fn write(&self, c: &Chan, buf: &[u8], _offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        let p = process(c.qid.path).map_err(|_| crate::error::Error::from(ENOPROC))?;
        let text = core::str::from_utf8(buf).map_err(|_| EBADCTL)?;
        match split(c.qid.path).1 {
            QNOTE => proc::note::post(&p, text.trim_end_matches('\n')),
            QCTL => match text.trim() {
                "kill" => proc::note::post(&p, abi::sys::notes::KILL),
                "hang" => p.set_hang(true),
                _ => return Err(EBADCTL.into()),
            },
            _ => return Err(EPERM.into()),
        }
        Ok(buf.len())
    }
}
