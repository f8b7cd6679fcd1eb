//! `#arch`: what the machine is. `cpu` (model, virtualization features, clock) and `pci`
//! (the PCI functions), the same text the kernel monitor's commands print; `tsc`, the TSC's
//! frequency in Hz (a VMM tells its guests); `idle`, nanoseconds the CPUs spent halted with
//! nothing to run since boot (benchmarks tell waiting from work with it).

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, DirTable, TableEntry, check_io, read_slice};
use alloc::string::String;
use ninep::Dir;

const QCPU: u64 = 1;
const QPCI: u64 = 2;
const QTSC: u64 = 3;
const QIDLE: u64 = 4;

const TABLE: DirTable = DirTable {
    entries: &[
        TableEntry {
            name: "cpu",
            path: QCPU,
            perm: 0o444,
        },
        TableEntry {
            name: "pci",
            path: QPCI,
            perm: 0o444,
        },
        TableEntry {
            name: "tsc",
            path: QTSC,
            perm: 0o444,
        },
        TableEntry {
            name: "idle",
            path: QIDLE,
            perm: 0o444,
        },
    ],
};

/// The `#arch` device.
pub struct Arch;

/// The one instance.
pub static ARCH: Arch = Arch;

fn text(path: u64) -> String {
    match path {
        QCPU => crate::arch::x86_64::cpuid::report(),
        QPCI => crate::drivers::pci::report(),
        QTSC => alloc::format!("{}\n", crate::time::tsc_hz()),
        QIDLE => alloc::format!("{}\n", crate::proc::sched::idle_ns()),
        _ => String::new(),
    }
}

impl Dev for Arch {
    fn name(&self) -> &'static str {
        "arch"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(
            self,
            0,
            TABLE.qid(0),
            String::from("#arch"),
            None,
        ))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        TABLE.walk(c, name)
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        Ok(TABLE.stat("arch", c.qid.path, text(c.qid.path).len() as u64))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        if c.qid.path == 0 {
            return TABLE.read_dir(buf, offset, |p| text(p).len() as u64);
        }
        check_io(c, false)?;
        Ok(read_slice(text(c.qid.path).as_bytes(), buf, offset))
    }
}
