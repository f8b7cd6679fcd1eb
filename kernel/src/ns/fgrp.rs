//! File descriptor tables (Plan 9's `Fgrp`): shared by processes until `rfork(RFFDG)`.

use super::chan::Chan;
use crate::error::KResult;
use crate::sync::IrqLock;
use abi::errors::{EBADFD, ENOFD};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Most open files per process.
pub const MAX_FDS: usize = 256;

/// An open file in an fd table.
#[derive(Clone)]
pub struct Fd {
    pub chan: Arc<Chan>,
    /// Close on exec.
    pub cexec: bool,
}

/// A file descriptor table.
pub struct Fgrp {
    fds: IrqLock<Vec<Option<Fd>>>,
}

impl Fgrp {
    /// An empty table.
    pub fn new() -> Arc<Fgrp> {
        Arc::new(Fgrp {
            fds: IrqLock::new(Vec::new()),
        })
    }

    /// A copy (`rfork(RFFDG)`): the same channels, so offsets stay shared with the original.
    pub fn fork(&self) -> Arc<Fgrp> {
        Arc::new(Fgrp {
            fds: IrqLock::new(self.fds.lock().clone()),
        })
    }

    /// Installs `chan` at the lowest free descriptor.
    pub fn add(&self, chan: Arc<Chan>, cexec: bool) -> KResult<usize> {
        let mut fds = self.fds.lock();
        let fd = match fds.iter().position(Option::is_none) {
            Some(fd) => fd,
            None if fds.len() < MAX_FDS => {
                fds.push(None);
                fds.len() - 1
            }
            None => return Err(ENOFD.into()),
        };
        fds[fd] = Some(Fd { chan, cexec });
        Ok(fd)
    }

    /// Installs `chan` at `fd`, closing what was there.
    pub fn set(&self, fd: usize, chan: Arc<Chan>) -> KResult<Option<Fd>> {
        if fd >= MAX_FDS {
            return Err(EBADFD.into());
        }
        let mut fds = self.fds.lock();
        if fds.len() <= fd {
            fds.resize(fd + 1, None);
        }
        Ok(fds[fd].replace(Fd { chan, cexec: false }))
    }

    /// The channel open at `fd`.
    pub fn get(&self, fd: u64) -> KResult<Arc<Chan>> {
        let fds = self.fds.lock();
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|i| fds.get(i))
            .and_then(Option::as_ref);
        slot.map(|f| f.chan.clone()).ok_or_else(|| EBADFD.into())
    }

    /// Closes `fd`, returning what was open there (dropped by the caller, outside the lock).
    pub fn close(&self, fd: u64) -> KResult<Fd> {
        let mut fds = self.fds.lock();
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|i| fds.get_mut(i))
            .ok_or(EBADFD)?;
        slot.take().ok_or_else(|| EBADFD.into())
    }

    /// Closes every close-on-exec descriptor.
    pub fn close_on_exec(&self) -> Vec<Fd> {
        let mut fds = self.fds.lock();
        fds.iter_mut()
            .filter(|f| f.as_ref().is_some_and(|f| f.cexec))
            .filter_map(Option::take)
            .collect()
    }
}
