//! `#vm`: virtual machines, in Plan 9's shape (compare `#ip`'s `clone`).
//!
//! ```text
//! #vm/clone        open it to make a VM; the open file is the new VM's ctl
//! #vm/N/ctl        read: "N\n"; write: mem GPA LEN VA | vcpu K | irq LINE LEVEL | destroy
//! #vm/N/stats      exits by kind, exits reflected by reason, time in guest, kernel and VMM
//! #vm/N/vcpuK      read: run until an exit for the VMM, get an abi::vm::Exit;
//!                  write: abi::vm::SetRegs, SetState or Complete
//! ```
//!
//! The binary records and the command language are specified in `abi::vm`. Only the process
//! that made a VM may register its memory, create and run its vCPUs and destroy it; anyone may
//! read `stats` or raise its interrupt lines. A VM lives while a channel refers to it.

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, check_io, check_open, dir_entry, read_dir_entries, read_slice};
use crate::virt::vm::{self, Vm};
use abi::errors::{EBADARG, ENOTDIR, ENOTEXIST};
use abi::vm::{Exit, Record};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ninep::{DMDIR, Dir, QTDIR, Qid};

const QCLONE: u64 = 1;
/// A VM's files: qid.path = VM number << 16 | one of these.
const QDIR: u64 = 0;
const QCTL: u64 = 1;
const QSTATS: u64 = 2;
const QVCPU: u64 = 0x10;

fn qid(path: u64) -> Qid {
    let dir = path == 0 || (path >> 16 != 0 && path & 0xffff == QDIR);
    Qid {
        ty: if dir { QTDIR } else { 0 },
        version: 0,
        path,
    }
}

/// The `#vm` device.
pub struct VmDev;

/// The one instance.
pub static VM: VmDev = VmDev;

fn vm_of(c: &Chan) -> KResult<Arc<Vm>> {
    c.aux::<Vm>().ok_or_else(|| ENOTEXIST.into())
}

/// The name and permissions of a file.
fn file(path: u64) -> (String, u32) {
    match path & 0xffff {
        QDIR => (alloc::format!("{}", path >> 16), DMDIR | 0o555),
        QCTL => (String::from("ctl"), 0o660),
        QSTATS => (String::from("stats"), 0o444),
        k => (alloc::format!("vcpu{}", k - QVCPU), 0o660),
    }
}

fn entries(c: &Chan) -> Vec<Dir<'static>> {
    if c.qid.path == 0 {
        let mut d = alloc::vec![dir_entry("clone", qid(QCLONE), 0o660, 0)];
        for id in vm::list() {
            d.push(dir_entry(
                &alloc::format!("{id}"),
                qid(id << 16),
                DMDIR | 0o555,
                0,
            ));
        }
        return d;
    }
    let Ok(vm) = vm_of(c) else {
        return Vec::new();
    };
    let base = vm.id << 16;
    let mut paths = alloc::vec![base | QCTL, base | QSTATS];
    paths.extend(
        vm.vcpus()
            .iter()
            .map(|v| base | (QVCPU + u64::from(v.index))),
    );
    paths
        .into_iter()
        .map(|p| {
            let (name, perm) = file(p);
            dir_entry(&name, qid(p), perm, 0)
        })
        .collect()
}

impl Dev for VmDev {
    fn name(&self) -> &'static str {
        "vm"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(self, 0, qid(0), String::from("#vm"), None))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        if !c.is_dir() {
            return Err(ENOTDIR.into());
        }
        if c.qid.path == 0 {
            if name == "clone" {
                return Ok(c.walked(qid(QCLONE), name, None));
            }
            let id: u64 = name.parse().map_err(|_| ENOTEXIST)?;
            let vm = vm::lookup(id).ok_or(ENOTEXIST)?;
            return Ok(c.walked(qid(id << 16), name, Some(vm)));
        }
        let vm = vm_of(c)?;
        let base = vm.id << 16;
        let path = match name {
            "ctl" => base | QCTL,
            "stats" => base | QSTATS,
            n => {
                let k: u32 = n
                    .strip_prefix("vcpu")
                    .and_then(|k| k.parse().ok())
                    .ok_or(ENOTEXIST)?;
                vm.vcpu(k).ok_or(ENOTEXIST)?;
                base | (QVCPU + u64::from(k))
            }
        };
        Ok(c.walked(qid(path), name, Some(vm)))
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        Ok(match c.qid.path {
            0 => dir_entry("vm", qid(0), DMDIR | 0o555, 0),
            QCLONE => dir_entry("clone", qid(QCLONE), 0o660, 0),
            p => {
                let (name, perm) = file(p);
                dir_entry(&name, qid(p), perm, 0)
            }
        })
    }

    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        check_open(&self.stat(c)?, mode)?;
        if c.qid.path != QCLONE {
            return Ok(Arc::new(c.opened(mode)));
        }
        let vm = vm::create()?;
        let path = vm.id << 16 | QCTL;
        let ctl = Chan::new(
            &VM,
            0,
            qid(path),
            alloc::format!("#vm/{}/ctl", vm.id),
            Some(vm),
        );
        Ok(Arc::new(ctl.opened(mode)))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        if c.is_dir() {
            return read_dir_entries(&entries(c), buf, offset);
        }
        check_io(c, false)?;
        let vm = vm_of(c)?;
        match c.qid.path & 0xffff {
            QCTL => Ok(read_slice(
                alloc::format!("{}\n", vm.id).as_bytes(),
                buf,
                offset,
            )),
            QSTATS => Ok(read_slice(vm.stats_text().as_bytes(), buf, offset)),
            k => {
                vm.check_owner()?;
                if buf.len() < core::mem::size_of::<Exit>() {
                    return Err(alloc::format!(
                        "{EBADARG}: a vcpu read needs {} bytes",
                        core::mem::size_of::<Exit>()
                    )
                    .into());
                }
                let v = vm.vcpu((k - QVCPU) as u32).ok_or(ENOTEXIST)?;
                let mut exit = Exit::default();
                crate::virt::vcpu::run(&vm, &v, &mut exit)?;
                let bytes = exit.as_bytes();
                buf[..bytes.len()].copy_from_slice(bytes);
                Ok(bytes.len())
            }
        }
    }

    /// A VMM that dies closes all its channels: the first one closed destroys its VMs at once,
    /// even if another process still holds a channel to one (which then only sees `stats`).
    fn close(&self, c: &Chan) {
        let Ok(vm) = vm_of(c) else { return };
        let me = crate::proc::sched::current();
        let dying = me.killed.load(core::sync::atomic::Ordering::Acquire);
        if dying && me.process.as_ref().is_some_and(|p| p.pid == vm.owner) {
            vm.destroy();
        }
    }

    fn write(&self, c: &Chan, buf: &[u8], _offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        let vm = vm_of(c)?;
        match c.qid.path & 0xffff {
            QCTL => {
                let text = core::str::from_utf8(buf).map_err(|_| EBADARG)?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    vm.ctl(line)?;
                }
                Ok(buf.len())
            }
            QSTATS => Err(abi::errors::EPERM.into()),
            k => {
                vm.check_owner()?;
                let v = vm.vcpu((k - QVCPU) as u32).ok_or(ENOTEXIST)?;
                v.command(buf)?;
                Ok(buf.len())
            }
        }
    }
}
