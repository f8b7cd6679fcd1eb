//! Files and the namespace: open, create, stat, directories, bind, mount, chdir.

use crate::sys::checked;
use crate::{Error, Result};
use abi::sys::Sys;
use alloc::string::String;
use alloc::vec::Vec;
use ninep::{Dialect, Dir, DirEntries};

pub use abi::sys::bind::{MAFTER, MBEFORE, MCREATE, MREPL};
pub use abi::sys::mode::{OCEXEC, OEXCL, ORCLOSE, ORDWR, OREAD, OTRUNC, OWRITE};
pub use ninep::DMDIR;

fn path_args(path: &str) -> (u64, u64) {
    (path.as_ptr() as u64, path.len() as u64)
}

/// Opens `path` with `mode`; the error names the path.
pub fn open(path: &str, mode: u64) -> Result<u64> {
    let (p, l) = path_args(path);
    checked(Sys::Open, [p, l, mode, 0, 0, 0]).ok_or_else(|| Error::last().context(path))
}

/// Creates `path` (a directory if `perm` has `DMDIR`) and opens it with `mode`.
pub fn create(path: &str, mode: u64, perm: u32) -> Result<u64> {
    let (p, l) = path_args(path);
    checked(Sys::Create, [p, l, mode, u64::from(perm), 0, 0])
        .ok_or_else(|| Error::last().context(path))
}

/// Removes `path`.
pub fn remove(path: &str) -> Result<()> {
    let (p, l) = path_args(path);
    checked(Sys::Remove, [p, l, 0, 0, 0, 0])
        .map(|_| ())
        .ok_or_else(|| Error::last().context(path))
}

fn decode_stat(buf: &[u8]) -> Result<Dir<'static>> {
    Dir::decode_exact(buf, Dialect::V9P2000)
        .map(Dir::into_owned)
        .map_err(|e| Error(alloc::format!("{e}")))
}

/// The directory entry of `path`.
pub fn stat(path: &str) -> Result<Dir<'static>> {
    let (p, l) = path_args(path);
    let mut buf = alloc::vec![0u8; 1024];
    let n = checked(
        Sys::Stat,
        [p, l, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0],
    )
    .ok_or_else(|| Error::last().context(path))?;
    decode_stat(&buf[..n as usize])
}

/// The directory entry of an open file.
pub fn fstat(fd: u64) -> Result<Dir<'static>> {
    let mut buf = alloc::vec![0u8; 1024];
    let n = checked(
        Sys::Fstat,
        [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )
    .ok_or_else(Error::last)?;
    decode_stat(&buf[..n as usize])
}

/// Changes the directory entry of `path` (fields of `Dir::dont_touch()` stay).
pub fn wstat(path: &str, d: &Dir<'_>) -> Result<()> {
    let (p, l) = path_args(path);
    let mut buf = Vec::new();
    d.encode_vec(Dialect::V9P2000, &mut buf)
        .map_err(|e| Error(alloc::format!("{e}")))?;
    checked(
        Sys::Wstat,
        [p, l, buf.as_ptr() as u64, buf.len() as u64, 0, 0],
    )
    .map(|_| ())
    .ok_or_else(|| Error::last().context(path))
}

/// Reads a whole directory.
pub fn read_dir(path: &str) -> Result<Vec<Dir<'static>>> {
    let fd = open(path, OREAD)?;
    let data = crate::io::read_all(fd);
    let _ = crate::io::close(fd);
    let data = data.map_err(|e| e.context(path))?;
    DirEntries::new(&data, Dialect::V9P2000)
        .map(|d| {
            d.map(Dir::into_owned)
                .map_err(|e| Error(alloc::format!("{path}: {e}")))
        })
        .collect()
}

/// Reads a whole file.
pub fn read_file(path: &str) -> Result<Vec<u8>> {
    let fd = open(path, OREAD)?;
    let data = crate::io::read_all(fd);
    let _ = crate::io::close(fd);
    data.map_err(|e| e.context(path))
}

/// Reads a whole file as text.
pub fn read_to_string(path: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&read_file(path)?).into_owned())
}

/// Changes the current directory.
pub fn chdir(path: &str) -> Result<()> {
    let (p, l) = path_args(path);
    checked(Sys::Chdir, [p, l, 0, 0, 0, 0])
        .map(|_| ())
        .ok_or_else(|| Error::last().context(path))
}

/// The path an fd was opened by.
pub fn fd2path(fd: u64) -> Result<String> {
    let mut buf = alloc::vec![0u8; abi::sys::PATHMAX];
    let n = checked(
        Sys::Fd2path,
        [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0],
    )
    .ok_or_else(Error::last)?;
    Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// Binds `new` onto `old`.
pub fn bind(new: &str, old: &str, flags: u64) -> Result<()> {
    let ((np, nl), (op, ol)) = (path_args(new), path_args(old));
    checked(Sys::Bind, [np, nl, op, ol, flags, 0])
        .map(|_| ())
        .ok_or_else(|| Error::last().context(alloc::format!("bind {new} {old}")))
}

/// Mounts the 9P server on `fd` onto `old`.
pub fn mount(fd: u64, old: &str, flags: u64, aname: &str) -> Result<()> {
    let ((op, ol), (ap, al)) = (path_args(old), path_args(aname));
    checked(Sys::Mount, [fd, op, ol, flags, ap, al])
        .map(|_| ())
        .ok_or_else(|| Error::last().context(alloc::format!("mount {old}")))
}

/// Unmounts `new` (everything, if `None`) from `old`.
pub fn unmount(new: Option<&str>, old: &str) -> Result<()> {
    let (np, nl) = new.map_or((0, 0), path_args);
    let (op, ol) = path_args(old);
    checked(Sys::Unmount, [np, nl, op, ol, 0, 0])
        .map(|_| ())
        .ok_or_else(|| Error::last().context(alloc::format!("unmount {old}")))
}

/// Seeks; whence 0 = set, 1 = current, 2 = end.
pub fn seek(fd: u64, offset: i64, whence: u64) -> Result<u64> {
    checked(Sys::Seek, [fd, offset as u64, whence, 0, 0, 0]).ok_or_else(Error::last)
}
