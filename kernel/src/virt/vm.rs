//! A virtual machine: its memory, vCPUs, IOAPIC and statistics, the `ctl` commands, and the
//! routing of interrupts between the IOAPIC, the LAPICs and IPIs.
//!
//! A VM belongs to the process that made it (its VMM): only that process's threads run its
//! vCPUs and register its memory. It lives as long as a channel refers to it; `destroy`, or the
//! last channel going away (the VMM's exit closes them all), stops its vCPUs and frees its
//! hardware state, nested page tables and the pins on the VMM's memory at once.

use super::hw::{Backend, Exit};
use super::ioapic::{Ioapic, Message};
use super::lapic::{Delivery, Destination, Ipi};
use super::memory::GuestMemory;
use super::vcpu::Vcpu;
use crate::error::KResult;
use crate::sync::IrqLock;
use abi::errors::{EBADCTL, EEXIST, EPERM};
use abi::vm::{ExitReason, IOAPIC_BASE, IOAPIC_PINS, LAPIC_BASE, MAX_VCPUS};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters in `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    /// Cycles in guest mode (exits of each kind are counted before it, see [`KINDS`]).
    GuestCycles = KINDS.len(),
    /// Cycles in the kernel's run loop (guest and halted time included).
    KernelCycles,
    /// Cycles the vCPU threads slept in HLT.
    HaltCycles,
    /// Guest pages mapped on first touch.
    MemoryFaults,
    LapicAccesses,
    IoapicAccesses,
    /// HLTs ended by the LAPIC timer.
    TimerWakeups,
    /// Exits reflected to the VMM (see [`REFLECTED`]).
    Reflected,
}

/// The names of exit kinds, in counter order.
const KINDS: [&str; 22] = [
    "external-interrupt",
    "nmi",
    "interrupt-window",
    "timer-deadline",
    "cpuid",
    "hlt",
    "rdmsr",
    "wrmsr",
    "xsetbv",
    "hypercall",
    "skipped-insn",
    "undefined-insn",
    "cr-access",
    "dr-access",
    "io",
    "nested-fault",
    "triple-fault",
    "exception",
    "entry-failed",
    "unhandled",
    "clts-lmsw",
    "cr-read",
];

const REFLECTED: [ExitReason; 8] = [
    ExitReason::Pio,
    ExitReason::Mmio,
    ExitReason::Hypercall,
    ExitReason::TripleFault,
    ExitReason::EntryFailed,
    ExitReason::Halted,
    ExitReason::EmulationFailed,
    ExitReason::Unhandled,
];

const NSTATS: usize = Stat::Reflected as usize + REFLECTED.len();

/// Ports whose reflected accesses `stats` counts one by one.
const PORTS: usize = 16;

/// A VM's counters.
pub struct Stats {
    counters: [AtomicU64; NSTATS],
    /// Reflected port I/O by port: the first `PORTS` ports seen, and everything else.
    ports: IrqLock<([(u16, u64); PORTS], u64)>,
    /// TSC when the last vCPU read returned to the VMM (for VMM time).
    created_tsc: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            counters: [const { AtomicU64::new(0) }; NSTATS],
            ports: IrqLock::new(([(0, 0); PORTS], 0)),
            created_tsc: crate::arch::x86_64::rdtsc(),
        }
    }

    /// Adds `n` to a counter.
    pub fn add(&self, s: Stat, n: u64) {
        self.counters[s as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one exit.
    pub fn count(&self, e: &Exit) {
        let k = match e {
            Exit::ExternalInterrupt => 0,
            Exit::Nmi => 1,
            Exit::InterruptWindow => 2,
            Exit::TimerDeadline => 3,
            Exit::Cpuid(_) => 4,
            Exit::Hlt(_) => 5,
            Exit::Rdmsr(_) => 6,
            Exit::Wrmsr(_) => 7,
            Exit::Xsetbv(_) => 8,
            Exit::Hypercall(_) => 9,
            Exit::Skip(_) => 10,
            Exit::Undefined => 11,
            Exit::CrWrite { .. } => 12,
            Exit::DrAccess { .. } => 13,
            Exit::Io(_) => 14,
            Exit::NestedFault { .. } => 15,
            Exit::TripleFault => 16,
            Exit::Exception { .. } => 17,
            Exit::EntryFailed { .. } => 18,
            Exit::Unhandled { .. } => 19,
            Exit::Clts(_) | Exit::Lmsw { .. } => 20,
            Exit::CrRead { .. } => 21,
        };
        self.counters[k].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a reflected access to `port`.
    pub fn port(&self, port: u16) {
        let mut p = self.ports.lock();
        let (table, others) = &mut *p;
        match table.iter_mut().find(|e| e.0 == port || e.1 == 0) {
            Some(e) => *e = (port, e.1 + 1),
            None => *others += 1,
        }
    }

    /// Counts an exit reflected to the VMM.
    pub fn reflected(&self, r: ExitReason) {
        if let Some(i) = REFLECTED.iter().position(|&x| x == r) {
            self.counters[Stat::Reflected as usize + i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, i: usize) -> u64 {
        self.counters[i].load(Ordering::Relaxed)
    }
}

/// A virtual machine.
pub struct Vm {
    /// Its number (`#vm/N`).
    pub id: u64,
    /// The pid of its VMM.
    pub owner: u64,
    pub(super) backend: &'static dyn Backend,
    /// Its memory; `None` once destroyed.
    pub mem: IrqLock<Option<GuestMemory>>,
    pub(super) npt_root: u64,
    vcpus: IrqLock<Vec<Option<Arc<Vcpu>>>>,
    /// Its IOAPIC (locked before any LAPIC).
    pub ioapic: IrqLock<Ioapic>,
    dead: AtomicBool,
    /// Its counters.
    pub stats: Stats,
}

static VMS: IrqLock<BTreeMap<u64, Weak<Vm>>> = IrqLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Makes a VM for the current process (`#vm/clone`).
pub fn create() -> KResult<Arc<Vm>> {
    let backend = super::backend()?;
    backend.enable_this_cpu()?;
    let p = crate::proc::sched::current_process().ok_or(abi::errors::ENOPROC)?;
    let space = p.space().ok_or(abi::errors::ENOPROC)?;
    let mem = GuestMemory::new(space, backend.npt_format())?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let vm = Arc::new(Vm {
        id,
        owner: p.pid,
        backend,
        npt_root: mem.root(),
        mem: IrqLock::new(Some(mem)),
        vcpus: IrqLock::new((0..MAX_VCPUS).map(|_| None).collect()),
        ioapic: IrqLock::new(Ioapic::new()),
        dead: AtomicBool::new(false),
        stats: Stats::new(),
    });
    VMS.lock().insert(id, Arc::downgrade(&vm));
    log::debug!("vm {id}: created by pid {} ({})", p.pid, backend.name());
    Ok(vm)
}

/// The VM with number `id`, if it exists.
pub fn lookup(id: u64) -> Option<Arc<Vm>> {
    VMS.lock().get(&id)?.upgrade()
}

/// The numbers of the VMs that exist.
pub fn list() -> Vec<u64> {
    let vms = VMS.lock();
    vms.iter()
        .filter(|(_, w)| w.strong_count() > 0)
        .map(|(id, _)| *id)
        .collect()
}

fn number(s: &str) -> KResult<u64> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| alloc::format!("bad number '{s}'").into())
}

impl Vm {
    /// Whether it was destroyed.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Fails unless the caller is the VM's VMM and the VM lives.
    pub fn check_owner(&self) -> KResult<()> {
        if self.is_dead() {
            return Err(super::vcpu::EDESTROYED.into());
        }
        let pid = crate::proc::sched::current_process().map_or(0, |p| p.pid);
        if pid != self.owner {
            return Err(EPERM.into());
        }
        Ok(())
    }

    /// vCPU `n`.
    pub fn vcpu(&self, n: u32) -> Option<Arc<Vcpu>> {
        self.vcpus.lock().get(n as usize)?.clone()
    }

    /// The vCPUs that exist.
    pub fn vcpus(&self) -> Vec<Arc<Vcpu>> {
        self.vcpus.lock().iter().flatten().cloned().collect()
    }

    /// How many vCPUs exist (at least 1, for CPUID's topology).
    pub fn vcpu_count(&self) -> u32 {
        (self.vcpus.lock().iter().flatten().count() as u32).max(1)
    }

    /// Runs one `ctl` command.
    pub fn ctl(&self, line: &str) -> KResult<()> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["mem", gpa, len, va] => {
                self.check_owner()?;
                let (gpa, len, va) = (number(gpa)?, number(len)?, number(va)?);
                let end = gpa.saturating_add(len);
                for page in [IOAPIC_BASE, LAPIC_BASE] {
                    if gpa < page + 0x1000 && page < end {
                        return Err(alloc::format!(
                            "mem {gpa:#x} {len:#x}: overlaps the in-kernel APIC at {page:#x}"
                        )
                        .into());
                    }
                }
                let mut mem = self.mem.lock();
                let mem = mem.as_mut().ok_or(super::vcpu::EDESTROYED)?;
                mem.add_region(gpa, len, va)
            }
            ["vcpu", n] => {
                self.check_owner()?;
                let n = number(n)?;
                if n >= u64::from(MAX_VCPUS) {
                    return Err(alloc::format!("vcpu {n}: at most {MAX_VCPUS} vCPUs").into());
                }
                if self.vcpu(n as u32).is_some() {
                    return Err(EEXIST.into());
                }
                let v = Arc::new(Vcpu::new(self, n as u32)?);
                let mut slots = self.vcpus.lock();
                if slots[n as usize].is_some() {
                    return Err(EEXIST.into());
                }
                slots[n as usize] = Some(v);
                Ok(())
            }
            ["irq", line, level] => {
                let (line, level) = (number(line)?, number(level)?);
                if line >= u64::from(IOAPIC_PINS) || level > 1 {
                    return Err(alloc::format!("irq {line} {level}: bad line or level").into());
                }
                if self.is_dead() {
                    return Err(super::vcpu::EDESTROYED.into());
                }
                self.set_irq(line as u32, level == 1);
                Ok(())
            }
            ["destroy"] => {
                self.check_owner()?;
                self.destroy();
                Ok(())
            }
            _ => Err(alloc::format!("{EBADCTL}: '{line}'").into()),
        }
    }

    /// Drives IOAPIC input `pin`.
    pub fn set_irq(&self, pin: u32, asserted: bool) {
        let mut io = self.ioapic.lock();
        io.set_irq(pin, asserted, &mut |m| self.deliver_message(m));
    }

    /// A guest write to the IOAPIC.
    pub fn ioapic_write(&self, offset: u64, value: u32) {
        let mut io = self.ioapic.lock();
        io.mmio_write(offset, value, &mut |m| self.deliver_message(m));
    }

    /// Routes an IOAPIC message to the LAPICs it addresses (lowest priority: the first).
    fn deliver_message(&self, m: Message) {
        let dest = if m.logical {
            Destination::Logical(u32::from(m.dest))
        } else {
            Destination::Physical(u32::from(m.dest))
        };
        let delivery = match m.mode {
            0 | 1 => Delivery::Fixed(m.vector),
            4 => Delivery::Nmi,
            5 => Delivery::Init,
            _ => return,
        };
        self.deliver(
            Ipi {
                delivery,
                destination: dest,
                level: m.level,
            },
            u32::MAX,
            m.mode == 1,
        );
    }

    /// Delivers an interrupt, NMI, INIT or SIPI to the vCPUs `ipi` addresses.
    fn deliver(&self, ipi: Ipi, sender: u32, lowest: bool) {
        for v in self.vcpus() {
            let hit = v.lapic.lock().matches(ipi.destination, sender);
            if !hit {
                continue;
            }
            match ipi.delivery {
                Delivery::Fixed(vector) => v.lapic.lock().accept_irq(vector, ipi.level),
                Delivery::Init => v.mp_events.lock().init = true,
                Delivery::Startup(vector) => v.mp_events.lock().sipi = Some(vector),
                Delivery::Nmi => log::debug!("vm {}: NMI to vcpu {} dropped", self.id, v.index),
            }
            v.kick();
            if lowest {
                break;
            }
        }
    }

    /// What a LAPIC register write caused: an IPI to route, an EOI for the IOAPIC.
    pub fn lapic_effects(&self, from: &Vcpu, ipi: Option<Ipi>, eoi: Option<u8>) {
        if let Some(ipi) = ipi {
            // Not in the argument list: the guard would live through `deliver`, which locks
            // every LAPIC, the sender's too.
            let sender = from.lapic.lock().id();
            self.deliver(ipi, sender, false);
        }
        if let Some(vector) = eoi {
            let mut io = self.ioapic.lock();
            io.eoi(vector, &mut |m| self.deliver_message(m));
        }
    }

    /// Stops every vCPU and frees what the VM holds (idempotent).
    pub fn destroy(&self) {
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        for v in self.vcpus() {
            v.destroy();
        }
        let mem = self.mem.lock().take();
        if mem.is_some() {
            self.backend.flush_npt(self.npt_root);
        }
        drop(mem);
        self.vcpus.lock().iter_mut().for_each(|s| *s = None);
        log::debug!("vm {}: destroyed", self.id);
    }

    /// The `stats` file.
    pub fn stats_text(&self) -> String {
        let mut s = String::new();
        let hz = crate::time::tsc_hz().max(1);
        let ns = |cycles: u64| (u128::from(cycles) * 1_000_000_000 / u128::from(hz)) as u64;
        let st = &self.stats;
        let total: u64 = (0..KINDS.len()).map(|i| st.get(i)).sum();
        let _ = writeln!(s, "backend {}", self.backend.name());
        let _ = writeln!(
            s,
            "state {}",
            if self.is_dead() { "destroyed" } else { "live" }
        );
        let _ = writeln!(s, "vcpus {}", self.vcpus().len());
        let _ = writeln!(s, "exits {total}");
        for (i, name) in KINDS.iter().enumerate() {
            if st.get(i) != 0 {
                let _ = writeln!(s, "exit {name} {}", st.get(i));
            }
        }
        for (i, r) in REFLECTED.iter().enumerate() {
            let n = st.get(Stat::Reflected as usize + i);
            if n != 0 {
                let _ = writeln!(s, "reflected {} {n}", r.name());
            }
        }
        let (ports, others) = *st.ports.lock();
        let mut ports: Vec<(u16, u64)> = ports.iter().copied().filter(|p| p.1 != 0).collect();
        ports.sort_by_key(|p| core::cmp::Reverse(p.1));
        for (port, n) in ports {
            let _ = writeln!(s, "reflected pio port {port:#x} {n}");
        }
        if others != 0 {
            let _ = writeln!(s, "reflected pio other-ports {others}");
        }
        let guest = st.get(Stat::GuestCycles as usize);
        let halted = st.get(Stat::HaltCycles as usize);
        let kernel = st.get(Stat::KernelCycles as usize);
        let alive = crate::arch::x86_64::rdtsc().saturating_sub(st.created_tsc);
        let _ = writeln!(s, "guest-ns {}", ns(guest));
        let _ = writeln!(s, "halted-ns {}", ns(halted));
        let _ = writeln!(
            s,
            "kernel-ns {}",
            ns(kernel.saturating_sub(guest).saturating_sub(halted))
        );
        let _ = writeln!(s, "outside-ns {}", ns(alive.saturating_sub(kernel)));
        for (name, stat) in [
            ("memory-faults", Stat::MemoryFaults),
            ("lapic-accesses", Stat::LapicAccesses),
            ("ioapic-accesses", Stat::IoapicAccesses),
            ("timer-wakeups", Stat::TimerWakeups),
        ] {
            let _ = writeln!(s, "{name} {}", st.get(stat as usize));
        }
        if let Some(m) = self.mem.lock().as_ref() {
            let _ = writeln!(s, "memory-registered {}", m.registered_bytes());
            let _ = writeln!(s, "memory-mapped {}", m.mapped_pages * 4096);
            let _ = writeln!(s, "nested-tables {}", m.table_bytes());
        }
        s
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.destroy();
        VMS.lock().remove(&self.id);
    }
}
