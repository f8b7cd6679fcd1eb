//! `#srv`: a registry of open channels by name, shared by every namespace (Plan 9 srv(3)).
//! Create a file and write an fd number into it to post that fd's channel; opening the name
//! gives that channel (so a 9P server's pipe end can be mounted by anyone); removing it
//! unposts it.

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, check_open, dir_entry, read_dir_entries};
use crate::sync::IrqLock;
use abi::errors::{EBADARG, EEXIST, EINUSE, ENOTDIR, ENOTEXIST};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ninep::{DMDIR, Dir, QTDIR, Qid};

struct Entry {
    path: u64,
    chan: Option<Arc<Chan>>,
}

struct Registry {
    entries: BTreeMap<String, Entry>,
    next: u64,
}

static REGISTRY: IrqLock<Registry> = IrqLock::new(Registry {
    entries: BTreeMap::new(),
    next: 1,
});

/// The `#srv` device.
pub struct Srv;

/// The one instance.
pub static SRV: Srv = Srv;

fn root_qid() -> Qid {
    Qid {
        ty: QTDIR,
        version: 0,
        path: 0,
    }
}

fn name_of(c: &Chan) -> KResult<String> {
    let reg = REGISTRY.lock();
    reg.entries
        .iter()
        .find(|(_, e)| e.path == c.qid.path)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| ENOTEXIST.into())
}

impl Dev for Srv {
    fn name(&self) -> &'static str {
        "srv"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(self, 0, root_qid(), String::from("#srv"), None))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        if c.qid.path != 0 {
            return Err(ENOTDIR.into());
        }
        let reg = REGISTRY.lock();
        let e = reg.entries.get(name).ok_or(ENOTEXIST)?;
        Ok(c.walked(
            Qid {
                ty: 0,
                version: 0,
                path: e.path,
            },
            name,
            None,
        ))
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        if c.qid.path == 0 {
            return Ok(dir_entry("srv", root_qid(), DMDIR | 0o777, 0));
        }
        Ok(dir_entry(&name_of(c)?, c.qid, 0o666, 0))
    }

    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        check_open(&self.stat(c)?, mode)?;
        if c.qid.path == 0 {
            return Ok(Arc::new(c.opened(mode)));
        }
        let reg = REGISTRY.lock();
        let posted = reg
            .entries
            .values()
            .find(|e| e.path == c.qid.path)
            .and_then(|e| e.chan.clone());
        drop(reg);
        // An entry not posted yet opens as itself, so the creator can write the fd into it.
        Ok(posted.unwrap_or_else(|| Arc::new(c.opened(mode))))
    }

    fn create(&self, c: &Chan, name: &str, mode: u64, perm: u32) -> KResult<Chan> {
        if c.qid.path != 0 || perm & DMDIR != 0 || name.is_empty() || name.contains('/') {
            return Err(EBADARG.into());
        }
        let mut reg = REGISTRY.lock();
        if reg.entries.contains_key(name) {
            return Err(EEXIST.into());
        }
        let path = reg.next;
        reg.next += 1;
        reg.entries
            .insert(String::from(name), Entry { path, chan: None });
        Ok(c.walked(
            Qid {
                ty: 0,
                version: 0,
                path,
            },
            name,
            None,
        )
        .opened(mode))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        if c.qid.path != 0 {
            return Ok(0);
        }
        let entries: Vec<Dir<'static>> = REGISTRY
            .lock()
            .entries
            .iter()
            .map(|(n, e)| {
                dir_entry(
                    n,
                    Qid {
                        ty: 0,
                        version: 0,
                        path: e.path,
                    },
                    0o666,
                    0,
                )
            })
            .collect();
        read_dir_entries(&entries, buf, offset)
    }

    fn write(&self, c: &Chan, buf: &[u8], _offset: u64) -> KResult<usize> {
        let text = core::str::from_utf8(buf).map_err(|_| EBADARG)?;
        let fd: u64 = text.trim().parse().map_err(|_| EBADARG)?;
        let p = crate::proc::sched::current_process().ok_or(abi::errors::ENOPROC)?;
        let chan = p.fds().get(fd)?;
        let mut reg = REGISTRY.lock();
        let e = reg
            .entries
            .values_mut()
            .find(|e| e.path == c.qid.path)
            .ok_or(ENOTEXIST)?;
        if e.chan.is_some() {
            return Err(EINUSE.into());
        }
        e.chan = Some(chan);
        Ok(buf.len())
    }

    fn remove(&self, c: &Chan) -> KResult<()> {
        let name = name_of(c)?;
        let removed = REGISTRY.lock().entries.remove(&name);
        drop(removed);
        Ok(())
    }
}
