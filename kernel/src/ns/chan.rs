//! Channels and devices, in Plan 9's shape (`port/portdat.h`, `port/dev.c`).
//!
//! A `Chan` names one file of one device instance: the device, the instance number (`devno`),
//! the file's `Qid`, and whatever the device keeps per file (`aux`). Every `#` device
//! implements the `Dev` trait; operations it does not support fail with Plan 9's errors.
//! Simple devices describe their files with a `DirTable`.

use crate::error::{Error, KResult};
use crate::sync::IrqLock;
use abi::errors::{EBADARG, EISDIR, EMODE, ENOTDIR, ENOTEXIST, EPERM};
use abi::sys::mode::{OEXEC, ORDWR, OREAD, OTRUNC, OWRITE};
use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use ninep::{Dialect, Dir, QTDIR, Qid};

/// Per-file device state.
pub type Aux = Arc<dyn Any + Send + Sync>;

/// A union directory: the members bound at one mount point, in order, each with its flags.
#[derive(Clone)]
pub struct Union {
    /// The mount point this union stands at.
    pub key: MountKey,
    pub members: Vec<(Arc<Chan>, u64)>,
}

/// An open or unopened file of a device instance.
pub struct Chan {
    pub dev: &'static dyn Dev,
    /// Which instance of the device (each attach of `#tmpfs` or `#pipe` is a new one).
    pub devno: u64,
    pub qid: Qid,
    /// The path this channel was reached by (for `fd2path` and messages).
    pub path: String,
    /// Open mode (`OREAD`...), or `None` before `open`.
    pub mode: Option<u64>,
    /// The file offset, shared by every fd that dups this channel.
    pub offset: IrqLock<u64>,
    pub aux: Option<Aux>,
    /// Set on a channel that stands for a union directory.
    pub union: Option<Arc<Union>>,
}

impl core::fmt::Debug for Chan {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Chan(#{} {} {:#x} {})",
            self.dev.name(),
            self.devno,
            self.qid.path,
            self.path
        )
    }
}

impl Chan {
    /// A new unopened channel.
    pub fn new(
        dev: &'static dyn Dev,
        devno: u64,
        qid: Qid,
        path: String,
        aux: Option<Aux>,
    ) -> Chan {
        Chan {
            dev,
            devno,
            qid,
            path,
            mode: None,
            offset: IrqLock::new(0),
            aux,
            union: None,
        }
    }

    /// A copy naming the same file (unopened, offset 0) with a new path and qid.
    pub fn walked(&self, qid: Qid, name: &str, aux: Option<Aux>) -> Chan {
        Chan::new(self.dev, self.devno, qid, join(&self.path, name), aux)
    }

    /// A copy of this channel opened with `mode`.
    pub fn opened(&self, mode: u64) -> Chan {
        Chan {
            dev: self.dev,
            devno: self.devno,
            qid: self.qid,
            path: self.path.clone(),
            mode: Some(mode),
            offset: IrqLock::new(0),
            aux: self.aux.clone(),
            union: self.union.clone(),
        }
    }

    /// The device state, downcast.
    pub fn aux<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.aux.clone()?.downcast::<T>().ok()
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.qid.ty & QTDIR != 0
    }

    /// The key of this file in a mount table.
    pub fn key(&self) -> MountKey {
        MountKey {
            dev: self.dev.name(),
            devno: self.devno,
            path: self.qid.path,
        }
    }

    /// Whether the channel was opened for reading.
    pub fn readable(&self) -> bool {
        matches!(self.mode.map(|m| m & 3), Some(OREAD | ORDWR | OEXEC))
    }

    /// Whether the channel was opened for writing.
    pub fn writable(&self) -> bool {
        matches!(self.mode.map(|m| m & 3), Some(OWRITE | ORDWR))
    }
}

impl Drop for Chan {
    fn drop(&mut self) {
        if self.mode.is_some() {
            self.dev.close(self);
        }
    }
}

/// Identifies a file for the mount table: device type, instance and qid path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MountKey {
    pub dev: &'static str,
    pub devno: u64,
    pub path: u64,
}

/// Appends a path element.
pub fn join(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        alloc::format!("{base}{name}")
    } else {
        alloc::format!("{base}/{name}")
    }
}

static NEXT_DEVNO: AtomicU64 = AtomicU64::new(1);

/// A fresh device instance number.
pub fn new_devno() -> u64 {
    NEXT_DEVNO.fetch_add(1, Ordering::Relaxed)
}

/// A device: one implementation per `#name`, shared by all its instances.
pub trait Dev: Send + Sync {
    /// The name after `#`.
    fn name(&self) -> &'static str;

    /// A channel for the root of an instance (`spec` is what followed `#name/`... before the
    /// first `/`, usually empty).
    fn attach(&'static self, spec: &str) -> KResult<Chan>;

    /// Walks one element from the directory `c`.
    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan>;

    /// The file's directory entry.
    fn stat(&self, c: &Chan) -> KResult<Dir<'static>>;

    /// Opens `c`. The default checks the mode against the file's permissions. A device may
    /// return a channel of another device (`#srv` gives back what was posted).
    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        let d = self.stat(c)?;
        check_open(&d, mode)?;
        Ok(Arc::new(c.opened(mode)))
    }

    /// Creates `name` in the directory `c` and returns it open with `mode`.
    fn create(&self, _c: &Chan, _name: &str, _mode: u64, _perm: u32) -> KResult<Chan> {
        Err(EPERM.into())
    }

    /// Reads at `offset`; directories return whole `Dir` entries.
    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize>;

    /// Writes at `offset`.
    fn write(&self, _c: &Chan, _buf: &[u8], _offset: u64) -> KResult<usize> {
        Err(EPERM.into())
    }

    /// Removes the file.
    fn remove(&self, _c: &Chan) -> KResult<()> {
        Err(EPERM.into())
    }

    /// Changes the file's directory entry (name, length, mode, mtime).
    fn wstat(&self, _c: &Chan, _d: &Dir<'_>) -> KResult<()> {
        Err(EPERM.into())
    }

    /// Called when the last reference to an open channel goes away.
    fn close(&self, _c: &Chan) {}
}

/// Checks an open mode against a file's permissions (owner bits: there is one user).
pub fn check_open(d: &Dir<'_>, mode: u64) -> KResult<()> {
    let is_dir = d.qid.ty & QTDIR != 0;
    let want = match mode & 3 {
        OREAD => 4,
        OWRITE => 2,
        ORDWR => 6,
        _ => 1, // OEXEC
    };
    if is_dir && (mode & 3 != OREAD || mode & OTRUNC != 0) {
        return Err(EISDIR.into());
    }
    let perm = (d.mode >> 6) & 7;
    if perm & want != want {
        return Err(EPERM.into());
    }
    Ok(())
}

/// Checks that an access matches the channel's open mode.
pub fn check_io(c: &Chan, write: bool) -> KResult<()> {
    let ok = if write { c.writable() } else { c.readable() };
    if ok { Ok(()) } else { Err(EMODE.into()) }
}

/// One file of a table-described device.
#[derive(Clone, Copy, Debug)]
pub struct TableEntry {
    pub name: &'static str,
    /// qid.path; 0 is the device's root directory.
    pub path: u64,
    /// Permission bits, with `DMDIR` for directories.
    pub perm: u32,
}

/// A device whose namespace is one directory of fixed files.
pub struct DirTable {
    pub entries: &'static [TableEntry],
}

impl DirTable {
    /// The qid of `path` (0 = the root directory).
    pub fn qid(&self, path: u64) -> Qid {
        let dir = path == 0 || self.entry(path).is_some_and(|e| e.perm & ninep::DMDIR != 0);
        Qid {
            ty: if dir { QTDIR } else { 0 },
            version: 0,
            path,
        }
    }

    fn entry(&self, path: u64) -> Option<&TableEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Walks from the root to one of the files.
    pub fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        if c.qid.path != 0 {
            return Err(ENOTDIR.into());
        }
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or(ENOTEXIST)?;
        Ok(c.walked(self.qid(e.path), name, c.aux.clone()))
    }

    /// The directory entry of `path`, with `length` for files.
    pub fn stat(&self, dev: &str, path: u64, length: u64) -> Dir<'static> {
        match self.entry(path) {
            Some(e) => dir_entry(e.name, self.qid(path), e.perm, length),
            None => dir_entry(dev, self.qid(0), ninep::DMDIR | 0o555, 0),
        }
    }

    /// Reads the root directory.
    pub fn read_dir(
        &self,
        buf: &mut [u8],
        offset: u64,
        length: impl Fn(u64) -> u64,
    ) -> KResult<usize> {
        let entries: Vec<Dir<'static>> = self
            .entries
            .iter()
            .map(|e| dir_entry(e.name, self.qid(e.path), e.perm, length(e.path)))
            .collect();
        read_dir_entries(&entries, buf, offset)
    }
}

/// A directory entry with the kernel's defaults for owner and times.
pub fn dir_entry(name: &str, qid: Qid, perm: u32, length: u64) -> Dir<'static> {
    let now = crate::time::unix_seconds() as u32;
    Dir {
        qid,
        mode: perm,
        atime: now,
        mtime: now,
        length,
        name: Cow::Owned(name.into()),
        uid: Cow::Borrowed("tern"),
        gid: Cow::Borrowed("tern"),
        muid: Cow::Borrowed("tern"),
        ..Dir::default()
    }
}

/// Serves a directory read from a list of entries: whole entries only, starting at the entry
/// that begins at byte `offset` of the concatenated encoding.
pub fn read_dir_entries(entries: &[Dir<'_>], buf: &mut [u8], offset: u64) -> KResult<usize> {
    let mut pos = 0u64;
    let mut n = 0;
    for d in entries {
        let len = d
            .encoded_len(Dialect::V9P2000)
            .map_err(|_| Error::from(EBADARG))? as u64;
        if pos >= offset {
            if n + len as usize > buf.len() {
                if n == 0 && !buf.is_empty() {
                    return Err(abi::errors::ESHORTSTAT.into());
                }
                break;
            }
            d.encode(Dialect::V9P2000, &mut buf[n..])
                .map_err(|_| Error::from(EBADARG))?;
            n += len as usize;
        }
        pos += len;
    }
    Ok(n)
}

/// Copies `data[offset..]` into `buf`, for files whose whole content is at hand.
pub fn read_slice(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}
