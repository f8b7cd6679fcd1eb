//! File system calls: open, create, read, write, seek, stat, wstat, dup, close, chdir,
//! fd2path, pipe, bind, mount, unmount, remove.

use super::{Args, Ret, user_str};
use crate::error::KResult;
use crate::mm::uaccess::{UserSlice, write_value};
use crate::ns::chan::{Chan, check_io, read_dir_entries};
use crate::ns::{self, Namespace, Walked, create_target, split_last};
use crate::proc::{Process, sched};
use abi::errors::{
    EBADARG, EBADOFFSET, EBADSTAT, EBADUSEFD, EISDIR, ENOPROC, ENOTDIR, ENOTIMPL, ESHORTSTAT,
};
use abi::sys::bind::{MCREATE, MORDER, MSIZE_SHIFT};
use abi::sys::mode::{OCEXEC, OEXCL, ORCLOSE, OTRUNC};
use abi::sys::{PATHMAX, Sys};
use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ninep::{Dialect, Dir, DirEntries};

/// The most a single read or write moves through the kernel at once.
const IO_CHUNK: usize = 1 << 20;

pub fn run(call: Sys, a: Args) -> KResult<Ret> {
    let p = sched::current_process().ok_or(ENOPROC)?;
    let v = match call {
        Sys::Open => sys_open(&p, a)?,
        Sys::Create => sys_create(&p, a)?,
        Sys::Close => {
            let closed = p.fds().close(a.get(0))?;
            drop(closed);
            0
        }
        Sys::Read => io(&p, a.get(0), a.get(1), a.get(2), None, false)?,
        Sys::Pread => io(&p, a.get(0), a.get(1), a.get(2), Some(a.get(3)), false)?,
        Sys::Write => io(&p, a.get(0), a.get(1), a.get(2), None, true)?,
        Sys::Pwrite => io(&p, a.get(0), a.get(1), a.get(2), Some(a.get(3)), true)?,
        Sys::Seek => sys_seek(&p, a)?,
        Sys::Dup => {
            let fds = p.fds();
            let c = fds.get(a.get(0))?;
            if a.get(1) == u64::MAX {
                fds.add(c, false)? as u64
            } else {
                let new = usize::try_from(a.get(1)).map_err(|_| abi::errors::EBADFD)?;
                let old = fds.set(new, c)?;
                drop(old);
                new as u64
            }
        }
        Sys::Remove => {
            let w = lookup(&p, &path(a.get(0), a.get(1))?)?;
            w.chan.dev.remove(&w.chan)?;
            0
        }
        Sys::Stat => {
            let w = lookup(&p, &path(a.get(0), a.get(1))?)?;
            put_stat(&w.chan, a.get(2), a.get(3))?
        }
        Sys::Fstat => put_stat(&*p.fds().get(a.get(0))?, a.get(1), a.get(2))?,
        Sys::Wstat => {
            let w = lookup(&p, &path(a.get(0), a.get(1))?)?;
            wstat(&w.chan, a.get(2), a.get(3))?
        }
        Sys::Fwstat => wstat(&*p.fds().get(a.get(0))?, a.get(1), a.get(2))?,
        Sys::Chdir => {
            let w = lookup(&p, &path(a.get(0), a.get(1))?)?;
            if !w.chan.is_dir() {
                return Err(ENOTDIR.into());
            }
            p.set_dot(w);
            0
        }
        Sys::Fd2path => {
            let c = p.fds().get(a.get(0))?;
            let bytes = c.path.as_bytes();
            let n = bytes.len().min(a.get(2) as usize);
            UserSlice::new(a.get(1), n as u64)?.write(&bytes[..n])?;
            n as u64
        }
        Sys::Pipe => {
            let (c0, c1) = crate::dev::pipe::new_pipe()?;
            let fds = p.fds();
            // Check the result buffer before installing anything.
            write_value(a.get(0), &[0u64; 2])?;
            let f0 = fds.add(c0, false)?;
            let f1 = match fds.add(c1, false) {
                Ok(f) => f,
                Err(e) => {
                    let undone = fds.close(f0 as u64);
                    drop(undone);
                    return Err(e);
                }
            };
            write_value(a.get(0), &[f0 as u64, f1 as u64])?;
            0
        }
        Sys::Bind => {
            let new = lookup(&p, &path(a.get(0), a.get(1))?)?;
            let old = lookup(&p, &path(a.get(2), a.get(3))?)?;
            check_bind_flags(a.get(4))?;
            namespace(&p)?.bind(new.chan, &old.chan, a.get(4))?;
            0
        }
        Sys::Mount => {
            let fd = p.fds().get(a.get(0))?;
            let old = lookup(&p, &path(a.get(1), a.get(2))?)?;
            let (flags, msize) = (a.get(3) & 0xffff_ffff, (a.get(3) >> MSIZE_SHIFT) as u32);
            check_bind_flags(flags)?;
            let aname = user_str(a.get(4), a.get(5), PATHMAX)?;
            let root = crate::dev::mnt::attach(fd, &aname, msize, &old.chan.path)?;
            if root.is_dir() != old.chan.is_dir() {
                return Err(abi::errors::EMOUNT.into());
            }
            namespace(&p)?.bind(Arc::new(root), &old.chan, flags)?;
            0
        }
        Sys::Unmount => {
            let old = lookup(&p, &path(a.get(2), a.get(3))?)?;
            let new = if a.get(0) == 0 {
                None
            } else {
                Some(lookup(&p, &path(a.get(0), a.get(1))?)?)
            };
            namespace(&p)?.unmount(new.as_ref().map(|w| &w.chan), &old.chan)?;
            0
        }
        _ => return Err(ENOTIMPL.into()),
    };
    Ok(Ret::Value(v))
}

fn check_bind_flags(flags: u64) -> KResult<()> {
    if flags & !(MORDER | MCREATE) != 0 || flags & MORDER == MORDER {
        return Err(EBADARG.into());
    }
    Ok(())
}

fn path(ptr: u64, len: u64) -> KResult<alloc::string::String> {
    user_str(ptr, len, PATHMAX)
}

fn namespace(p: &Process) -> KResult<Arc<Namespace>> {
    p.ns().ok_or_else(|| ENOPROC.into())
}

/// Evaluates a path in the process's namespace.
pub fn lookup(p: &Process, path: &str) -> KResult<Walked> {
    let ns = namespace(p)?;
    let dot = p.dot().ok_or(ENOPROC)?;
    ns::lookup(&ns, &dot, path)
}

fn sys_open(p: &Process, a: Args) -> KResult<u64> {
    let mode = a.get(2);
    if mode & !(3 | OTRUNC | OCEXEC | ORCLOSE) != 0 {
        return Err(EBADARG.into());
    }
    let w = lookup(p, &path(a.get(0), a.get(1))?)?;
    let c = w.chan.dev.open(&w.chan, mode & !OCEXEC)?;
    Ok(p.fds().add(c, mode & OCEXEC != 0)? as u64)
}

fn sys_create(p: &Process, a: Args) -> KResult<u64> {
    let full = path(a.get(0), a.get(1))?;
    let (mode, perm) = (a.get(2), a.get(3) as u32);
    if mode & !(3 | OTRUNC | OCEXEC | ORCLOSE | OEXCL) != 0 {
        return Err(EBADARG.into());
    }
    let (dir, name) = split_last(&full).ok_or(EBADARG)?;
    let parent = lookup(p, dir)?;
    if !parent.chan.is_dir() {
        return Err(ENOTDIR.into());
    }
    let target = create_target(&parent.chan)?;
    let mut c = target.dev.create(&target, name, mode & !OCEXEC, perm)?;
    c.path = crate::ns::chan::join(&parent.chan.path, name);
    Ok(p.fds().add(Arc::new(c), mode & OCEXEC != 0)? as u64)
}

/// read/write/pread/pwrite on `fd` with the user buffer (`buf`, `len`).
fn io(p: &Process, fd: u64, buf: u64, len: u64, at: Option<u64>, write: bool) -> KResult<u64> {
    let c = p.fds().get(fd)?;
    let user = UserSlice::new(buf, len)?;
    check_io(&c, write)?;
    if write && c.is_dir() {
        return Err(EISDIR.into());
    }
    let offset = match at {
        Some(o) if i64::try_from(o).is_err() => return Err(EBADOFFSET.into()),
        Some(o) => o,
        None => *c.offset.lock(),
    };
    let n = if write {
        let mut done = 0;
        let mut chunk = alloc::vec![0u8; user.len().min(IO_CHUNK)];
        while done < user.len() {
            let part = user.sub(done, IO_CHUNK);
            let bytes = &mut chunk[..part.len()];
            part.read(bytes)?;
            // An error after some bytes went out returns their count, as write(2) does; the
            // next call reports the error.
            let n = match c.dev.write(&c, bytes, offset + done as u64) {
                Ok(n) => n,
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            done += n;
        }
        done
    } else {
        let mut chunk = alloc::vec![0u8; user.len().min(IO_CHUNK)];
        let n = if c.union.is_some() && c.is_dir() {
            read_union(&c, &mut chunk, offset)?
        } else {
            c.dev.read(&c, &mut chunk, offset)?
        };
        user.sub(0, n).write(&chunk[..n])?;
        n
    };
    if at.is_none() {
        *c.offset.lock() = offset + n as u64;
    }
    Ok(n as u64)
}

/// Reads a union directory: each member's entries, a name listed once (first member wins).
fn read_union(c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
    let Some(u) = &c.union else { return Ok(0) };
    let mut seen = BTreeSet::new();
    let mut all: Vec<Dir<'static>> = Vec::new();
    for (member, _) in &u.members {
        let Ok(open) = member.dev.open(member, abi::sys::mode::OREAD) else {
            continue;
        };
        let mut data = Vec::new();
        let mut chunk = alloc::vec![0u8; 64 * 1024];
        loop {
            let n = open.dev.read(&open, &mut chunk, data.len() as u64)?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(&chunk[..n]);
        }
        for d in DirEntries::new(&data, Dialect::V9P2000).flatten() {
            if seen.insert(d.name.clone().into_owned()) {
                all.push(d.into_owned());
            }
        }
    }
    read_dir_entries(&all, buf, offset)
}

fn sys_seek(p: &Process, a: Args) -> KResult<u64> {
    let c = p.fds().get(a.get(0))?;
    let off = a.get(1) as i64;
    let mut pos = c.offset.lock();
    let base: i64 = match a.get(2) {
        0 => 0,
        1 => *pos as i64,
        2 => c.dev.stat(&c)?.length as i64,
        _ => return Err(EBADARG.into()),
    };
    let new = base
        .checked_add(off)
        .filter(|n| *n >= 0)
        .ok_or(EBADOFFSET)?;
    if c.is_dir() && new != 0 {
        return Err(EBADUSEFD.into());
    }
    *pos = new as u64;
    Ok(new as u64)
}

fn put_stat(c: &Chan, buf: u64, len: u64) -> KResult<u64> {
    UserSlice::new(buf, len)?;
    let mut d = c.dev.stat(c)?;
    if let Some(name) = c
        .path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !c.path.ends_with('/'))
    {
        d.name = alloc::borrow::Cow::Owned(name.into());
    }
    let mut bytes = Vec::new();
    d.encode_vec(Dialect::V9P2000, &mut bytes)
        .map_err(|_| EBADSTAT)?;
    if bytes.len() as u64 > len {
        return Err(ESHORTSTAT.into());
    }
    UserSlice::new(buf, bytes.len() as u64)?.write(&bytes)?;
    Ok(bytes.len() as u64)
}

fn wstat(c: &Chan, buf: u64, len: u64) -> KResult<u64> {
    if len > 64 * 1024 {
        return Err(EBADSTAT.into());
    }
    let bytes = UserSlice::new(buf, len)?.to_vec()?;
    let d = Dir::decode_exact(&bytes, Dialect::V9P2000).map_err(|_| EBADSTAT)?;
    c.dev.wstat(c, &d)?;
    Ok(0)
}
