//! Copying and removing files and trees, path names (for `cp`, `mv` and `rm`), and file facts for the shell's
//! conditions (`test`, the builtin and the program).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rt::{fs, io};
use shell::cond::{FileInfo, Files};

/// What `test` asks about files and fds, answered from our namespace (the `sh` builtin and
/// `/bin/test` share it, so they agree).
pub struct CondFiles;

impl Files for CondFiles {
    fn stat(&mut self, path: &str) -> Option<FileInfo> {
        fs::stat(path).ok().map(|d| FileInfo {
            dir: d.mode & fs::DMDIR != 0,
            size: d.length,
            perm: d.mode & 0o777,
            mtime: u64::from(d.mtime),
        })
    }

    fn is_terminal(&mut self, fd: u32) -> bool {
        fs::fd2path(u64::from(fd)).is_ok_and(|p| p.ends_with("/cons") || p == "#cons/cons")
    }
}

/// The last element of a path.
pub fn basename(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/";
    }
    t.rsplit('/').next().unwrap_or(t)
}

/// The directory part of a path (`.` if none).
pub fn dirname(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => "/",
        Some(i) => &t[..i],
        None => ".",
    }
}

/// `dir/name`.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `path` is a directory.
pub fn is_dir(path: &str) -> bool {
    fs::stat(path).is_ok_and(|d| d.mode & fs::DMDIR != 0)
}

/// Copies the file `src` to `dst` (created, or truncated if it exists), keeping its
/// permission bits.
pub fn copy_file(src: &str, dst: &str) -> rt::Result<()> {
    let d = fs::stat(src)?;
    let from = fs::open(src, fs::OREAD)?;
    let to = match fs::open(dst, fs::OWRITE | fs::OTRUNC) {
        Ok(fd) => Ok(fd),
        Err(e) if e.msg().ends_with(abi::errors::ENOTEXIST) => {
            fs::create(dst, fs::OWRITE, d.mode & 0o777)
        }
        Err(e) => Err(e),
    };
    let to = match to {
        Ok(fd) => fd,
        Err(e) => {
            let _ = io::close(from);
            return Err(e);
        }
    };
    let mut buf = alloc::vec![0u8; 64 * 1024];
    let r = (|| loop {
        let n = io::read(from, &mut buf).map_err(|e| e.context(src))?;
        if n == 0 {
            return Ok(());
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let w = io::write(to, rest).map_err(|e| e.context(dst))?;
            if w == 0 {
                return Err(rt::Error(format!("{dst}: short write")));
            }
            rest = &rest[w..];
        }
    })();
    let _ = io::close(from);
    let _ = io::close(to);
    r
}

/// The (source, target) pairs of `cp` and `mv` operands (at least two): the last operand is
/// a directory to put every source in under its last element, or, with one source, the new
/// name. More than one source and no directory is an error naming it.
pub fn targets(operands: &[String]) -> Result<Vec<(&str, String)>, String> {
    let (srcs, dst) = operands.split_at(operands.len().saturating_sub(1));
    let dst = dst.first().map_or("", String::as_str);
    let into = is_dir(dst);
    if srcs.len() > 1 && !into {
        return Err(format!("{dst}: not a directory"));
    }
    Ok(srcs
        .iter()
        .map(|src| {
            let target = if into {
                join(dst, basename(src))
            } else {
                String::from(dst)
            };
            (src.as_str(), target)
        })
        .collect())
}

/// Removes `path`, directories with everything in them.
pub fn remove_tree(path: &str) -> rt::Result<()> {
    if fs::stat(path)?.mode & fs::DMDIR != 0 {
        for entry in fs::read_dir(path)? {
            remove_tree(&join(path, &entry.name))?;
        }
    }
    fs::remove(path)
}

/// Copies `src` to `dst`, directories with everything in them.
pub fn copy_tree(src: &str, dst: &str) -> rt::Result<()> {
    let d = fs::stat(src)?;
    if d.mode & fs::DMDIR == 0 {
        return copy_file(src, dst);
    }
    if !is_dir(dst) {
        let fd = fs::create(dst, fs::OREAD, fs::DMDIR | (d.mode & 0o777))?;
        let _ = io::close(fd);
    }
    for entry in fs::read_dir(src)? {
        copy_tree(&join(src, &entry.name), &join(dst, &entry.name))?;
    }
    Ok(())
}
