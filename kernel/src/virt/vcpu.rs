//! A vCPU and its run loop.
//!
//! A read of `vcpuK` calls [`run`]: the thread takes the vCPU's state (one thread runs a vCPU
//! at a time), completes the last reflected exit, and then loops: poll the LAPIC timer, inject
//! what is pending, enter the guest, handle the exit. Exits the kernel handles (see
//! `virt::exit`) go round the loop; the first that needs the VMM is written to the caller's
//! buffer and the read returns. Between entries the loop lets host interrupts in, gives the CPU
//! away when its time slice is over, and stops for a note (`interrupted`), a destroyed VM or
//! a killed thread, so no guest can keep the kernel or its other threads from running.
//!
//! The guest context (FPU registers, the MSRs the hardware does not switch) is loaded before
//! the first entry and unloaded before the thread sleeps, reschedules or returns.

use super::decode::{self, MmioInsn, Paging};
use super::exit::{self, Action};
use super::fpu::GuestFpu;
use super::hw::{Event, Gprs, HwVcpu, Len, SegReg, gpr};
use super::lapic::Lapic;
use super::vm::{Stat, Vm};
use crate::error::KResult;
use crate::proc::sched;
use crate::proc::wait::{WaitQueue, Woken};
use crate::sync::IrqLock;
use abi::errors::{EINTR, EINUSE, ENOMEM};
use abi::vm::{Complete, Exit as ExitRecord, ExitReason, Regs, Sregs, VcpuState};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;

/// Error of a read on a vCPU of a destroyed VM.
pub const EDESTROYED: &str = "virtual machine destroyed";

/// What the last reflected exit still needs when the vCPU next runs.
#[derive(Clone, Copy, Debug)]
pub enum Pending {
    None,
    /// Advance RIP (OUT, MMIO store).
    Skip(u8),
    /// IN: the value goes to AL/AX/EAX.
    PioIn {
        size: u8,
        len: u8,
    },
    /// INS or OUTS moved `count` elements (the VMM supplies INS data).
    PioString(exit::io::StringOp),
    /// A MMIO load: the value goes to its register.
    MmioLoad(MmioInsn),
    /// VMCALL/VMMCALL: the result goes to RAX.
    Hypercall(u8),
}

/// Startup events from other vCPUs (INIT, SIPI; SDM Vol. 3A §9.4.4).
#[derive(Clone, Copy, Debug, Default)]
pub struct MpEvents {
    /// An INIT arrived.
    pub init: bool,
    /// A start-up IPI arrived, with its vector.
    pub sipi: Option<u8>,
}

/// Whether the vCPU executes or waits for a start-up IPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpState {
    Running,
    WaitForSipi,
}

/// The state only the running thread touches.
pub struct VcpuInner {
    /// The VMCS or VMCB.
    pub hw: Box<dyn HwVcpu>,
    /// The general registers and CR2.
    pub gprs: Gprs,
    /// The FPU/SSE/AVX state and XCR0.
    pub fpu: GuestFpu,
    /// What the last reflected exit still needs.
    pub pending: Pending,
    /// A `Complete` written since the exit.
    pub completion: Option<Complete>,
    /// A triple fault stopped the vCPU until the VMM sets a new state.
    pub stopped: bool,
    /// Running, or waiting for a start-up IPI.
    pub mp: MpState,
    /// An exception to inject at the next entry.
    pub exception: Option<Event>,
    /// DR0-DR7 as the guest sees them (never loaded into the hardware).
    pub dr: [u64; 8],
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
    in_context: bool,
}

/// A vCPU.
pub struct Vcpu {
    /// Its number in the VM (and its APIC ID).
    pub index: u32,
    /// Its local APIC.
    pub lapic: IrqLock<Lapic>,
    /// Where the thread sleeps while the guest halts; woken by interrupts for the vCPU.
    pub halt: WaitQueue,
    /// INIT and SIPI sent to it, handled by its own thread.
    pub mp_events: IrqLock<MpEvents>,
    inner: IrqLock<Option<Box<VcpuInner>>>,
    /// Set by `destroy`: the inner state is dropped by whoever holds it.
    dead: AtomicBool,
}

impl Vcpu {
    /// vCPU `index` of a VM whose nested page tables are rooted at `npt_root`.
    pub fn new(vm: &Vm, index: u32) -> KResult<Vcpu> {
        let hw = vm.backend.new_vcpu(vm.npt_root)?;
        let inner = VcpuInner {
            hw,
            gprs: Gprs::default(),
            fpu: GuestFpu::new().ok_or(ENOMEM)?,
            pending: Pending::None,
            completion: None,
            stopped: false,
            // Application processors wait for INIT/SIPI (or a state from the VMM), like a real
            // machine's after reset (SDM Vol. 3A §9.4.1).
            mp: if index == 0 {
                MpState::Running
            } else {
                MpState::WaitForSipi
            },
            exception: None,
            dr: [0, 0, 0, 0, 0xffff_0ff0, 0x400, 0xffff_0ff0, 0x400],
            misc_enable: 1,
            in_context: false,
        };
        Ok(Vcpu {
            index,
            lapic: IrqLock::new(Lapic::new(index, crate::time::tsc_hz())),
            halt: WaitQueue::new(),
            mp_events: IrqLock::new(MpEvents::default()),
            inner: IrqLock::new(Some(Box::new(inner))),
            dead: AtomicBool::new(false),
        })
    }

    /// Wakes the vCPU if it sleeps in HLT (an interrupt or event arrived for it). With one
    /// CPU, a vCPU that is not sleeping is not in guest mode either: its loop checks for
    /// interrupts before every entry. (With SMP this must also IPI a CPU running it.)
    pub fn kick(&self) {
        self.halt.wake_all();
    }

    fn take(&self) -> KResult<Box<VcpuInner>> {
        if self.dead.load(Ordering::Acquire) {
            return Err(EDESTROYED.into());
        }
        self.inner
            .lock()
            .take()
            .ok_or_else(|| "vcpu in use by another thread".into())
    }

    fn put(&self, inner: Box<VcpuInner>) {
        if self.dead.load(Ordering::Acquire) {
            drop(inner);
        } else {
            *self.inner.lock() = Some(inner);
        }
    }

    /// Frees the hardware state now if no thread runs the vCPU, or when that thread is done.
    pub fn destroy(&self) {
        self.dead.store(true, Ordering::Release);
        let inner = self.inner.lock().take();
        drop(inner);
        self.kick();
    }

    /// Runs `f` on the state of a vCPU that no thread runs.
    fn with_inner<T>(&self, f: impl FnOnce(&mut VcpuInner) -> KResult<T>) -> KResult<T> {
        let mut inner = self.take().map_err(|e| {
            if e.as_str() == EDESTROYED {
                e
            } else {
                EINUSE.into()
            }
        })?;
        let r = f(&mut inner);
        self.put(inner);
        r
    }

    /// A write of the `vcpuK` file: `SetRegs`, `SetState` or `Complete`.
    pub fn command(&self, bytes: &[u8]) -> KResult<()> {
        use abi::vm::{CMD_COMPLETE, CMD_SET_REGS, CMD_SET_STATE, Record, SetRegs, SetState};
        let bad = || crate::error::Error::from("bad vcpu command record");
        match abi::vm::command_of(bytes) {
            Some(CMD_SET_REGS) => {
                let c = SetRegs::from_bytes(bytes).ok_or_else(bad)?;
                self.with_inner(|i| {
                    set_regs(i, &c.regs);
                    i.pending = Pending::None;
                    i.completion = None;
                    Ok(())
                })
            }
            Some(CMD_SET_STATE) => {
                let c = SetState::from_bytes(bytes).ok_or_else(bad)?;
                self.with_inner(|i| {
                    set_regs(i, &c.state.regs);
                    set_sregs(self, i, &c.state.sregs);
                    i.pending = Pending::None;
                    i.completion = None;
                    i.stopped = false;
                    i.mp = MpState::Running;
                    i.exception = None;
                    i.hw.clear_events();
                    Ok(())
                })
            }
            Some(CMD_COMPLETE) => {
                let c = Complete::from_bytes(bytes).ok_or_else(bad)?;
                self.with_inner(|i| {
                    i.completion = Some(c);
                    Ok(())
                })
            }
            _ => Err(bad()),
        }
    }
}

fn set_regs(i: &mut VcpuInner, r: &Regs) {
    let g = &mut i.gprs.r;
    (g[0], g[1], g[2], g[3]) = (r.rax, r.rcx, r.rdx, r.rbx);
    (g[4], g[5], g[6], g[7]) = (r.rsp, r.rbp, r.rsi, r.rdi);
    (g[8], g[9], g[10], g[11]) = (r.r8, r.r9, r.r10, r.r11);
    (g[12], g[13], g[14], g[15]) = (r.r12, r.r13, r.r14, r.r15);
    i.hw.set_rip(r.rip);
    // Bit 1 of RFLAGS is always set (Akaros lost days to this, commits 8dc899e1, 5a7c61d3).
    i.hw.set_rflags(r.rflags | 2);
}

fn set_sregs(v: &Vcpu, i: &mut VcpuInner, s: &Sregs) {
    i.hw.set_sregs(s);
    i.gprs.cr2 = s.cr2;
    let mut l = v.lapic.lock();
    l.set_tpr(((s.cr8 & 0xf) << 4) as u8);
    i.hw.set_hw_tpr(l.tpr());
}

fn regs_of(i: &mut VcpuInner) -> Regs {
    let g = &i.gprs.r;
    Regs {
        rax: g[0],
        rcx: g[1],
        rdx: g[2],
        rbx: g[3],
        rsp: g[4],
        rbp: g[5],
        rsi: g[6],
        rdi: g[7],
        r8: g[8],
        r9: g[9],
        r10: g[10],
        r11: g[11],
        r12: g[12],
        r13: g[13],
        r14: g[14],
        r15: g[15],
        rip: i.hw.rip(),
        rflags: i.hw.rflags(),
    }
}

fn state_of(v: &Vcpu, i: &mut VcpuInner) -> VcpuState {
    let mut sregs = i.hw.sregs();
    sregs.cr2 = i.gprs.cr2;
    let l = v.lapic.lock();
    sregs.cr8 = u64::from(l.tpr() >> 4);
    sregs.apic_base = l.base();
    drop(l);
    VcpuState {
        regs: regs_of(i),
        sregs,
    }
}

/// Advances RIP past the instruction that exited; a pending STI/MOV SS shadow ends with it.
pub fn skip(i: &mut VcpuInner, len: u8) {
    let rip = i.hw.rip().wrapping_add(u64::from(len));
    let rip = if decode::bitness(i.hw.as_mut()) == 64 {
        rip
    } else {
        rip & 0xffff_ffff
    };
    i.hw.set_rip(rip);
    i.hw.clear_interrupt_shadow();
}

/// The length of the exiting instruction: from the hardware, or by decoding it.
pub fn insn_len(vm: &Vm, i: &mut VcpuInner, len: Len) -> Option<u8> {
    match len {
        Len::Known(n) if n > 0 => Some(n),
        _ => {
            let mem = vm.mem.lock();
            let mem = mem.as_ref()?;
            let (bytes, n) = decode::fetch_bytes(i.hw.as_mut(), mem)?;
            decode::quick_len(&bytes[..n]).or_else(|| {
                decode::fetch(i.hw.as_mut(), mem, Some((bytes, n)))
                    .map(|(instr, _, _)| instr.len() as u8)
            })
        }
    }
}

/// Queues #GP(0), #UD or another exception for the next entry.
pub fn raise(i: &mut VcpuInner, e: Event) {
    i.exception = Some(e);
}

/// Completes the last reflected exit with the VMM's `Complete` (or the default result).
fn complete(vm: &Vm, i: &mut VcpuInner) {
    let c = i.completion.take();
    let value = c.map(|c| c.value);
    match core::mem::replace(&mut i.pending, Pending::None) {
        Pending::None => {}
        Pending::Skip(len) => skip(i, len),
        Pending::PioIn { size, len } => {
            let v = value.unwrap_or(u64::MAX);
            let reg = decode::GprOperand {
                number: 0,
                size,
                high_byte: false,
            };
            i.gprs.r[gpr::RAX] = reg.put(i.gprs.r[gpr::RAX], v);
            skip(i, len);
        }
        Pending::PioString(op) => exit::io::complete_string(vm, i, op, c.as_ref()),
        Pending::MmioLoad(insn) => {
            insn.complete_load(&mut i.gprs.r, value.unwrap_or(u64::MAX));
            skip(i, insn.len);
        }
        Pending::Hypercall(len) => {
            i.gprs.r[gpr::RAX] = value.unwrap_or(abi::hv::HYPERCALL_UNKNOWN);
            skip(i, len);
        }
    }
}

/// Injects the exception or interrupt the guest should see next, or asks for an exit as soon
/// as it can take one (SDM Vol. 3C §27.6; APM §15.20-15.21).
fn inject(v: &Vcpu, i: &mut VcpuInner) {
    let mut lapic = v.lapic.lock();
    if let Some(tpr) = i.hw.hw_tpr() {
        // SVM: the guest may have written CR8 through V_TPR.
        let low = lapic.tpr() & 0xf;
        lapic.set_tpr(tpr | low);
    }
    let pending = lapic.pending();
    if !i.hw.event_pending()
        && let Some(e) = i.exception.take()
    {
        i.hw.inject(e);
    }
    let mut want_window = false;
    if let Some(vector) = pending {
        let can =
            !i.hw.event_pending() && i.hw.rflags() & (1 << 9) != 0 && !i.hw.interrupt_shadow();
        if can {
            i.hw.inject(Event::Interrupt(vector));
            lapic.delivered(vector);
            want_window = lapic.pending().is_some();
        } else {
            want_window = true;
        }
    }
    i.hw.set_interrupt_window(want_window);
    i.hw.set_hw_tpr(lapic.tpr());
}

fn enter_context(i: &mut VcpuInner) {
    if !i.in_context {
        i.hw.enter_context();
        i.fpu.enter();
        i.in_context = true;
    }
}

/// Unloads the guest context (before sleeping, rescheduling or returning to the VMM).
pub fn leave_context(i: &mut VcpuInner) {
    if i.in_context {
        let were = interrupts::are_enabled();
        interrupts::disable();
        i.fpu.leave();
        i.hw.leave_context();
        i.in_context = false;
        if were {
            interrupts::enable();
        }
    }
}

/// Handles INIT and SIPI from other vCPUs (SDM Vol. 3A §9.4.4, §11.6.1).
fn startup_events(v: &Vcpu, i: &mut VcpuInner) {
    let ev = core::mem::take(&mut *v.mp_events.lock());
    if ev.init {
        v.lapic.lock().init();
        let mut s = VcpuState::real_mode(0);
        s.regs.rip = 0;
        i.hw.clear_events();
        i.hw.set_sregs(&s.sregs);
        set_regs(i, &s.regs);
        i.pending = Pending::None;
        i.exception = None;
        i.mp = MpState::WaitForSipi;
    }
    if let (Some(vector), MpState::WaitForSipi) = (ev.sipi, i.mp) {
        // Start at vector * 4 KiB in real mode: CS = vector << 8, IP = 0.
        let mut s = VcpuState::real_mode(0);
        let sel = u16::from(vector) << 8;
        s.sregs.cs = abi::vm::Segment::real(sel, abi::vm::access::REAL_CODE);
        i.hw.set_sregs(&s.sregs);
        set_regs(i, &s.regs);
        i.mp = MpState::Running;
    }
}

/// Converts a TSC deadline to uptime nanoseconds.
fn tsc_to_uptime(deadline: u64) -> u64 {
    let now = crate::arch::x86_64::rdtsc();
    let hz = crate::time::tsc_hz().max(1);
    let delta = deadline.saturating_sub(now);
    crate::time::uptime_ns()
        .saturating_add((u128::from(delta) * 1_000_000_000 / u128::from(hz)) as u64)
}

/// Runs the vCPU until an exit for the VMM, which is written to `out`.
pub fn run(vm: &Vm, v: &Vcpu, out: &mut ExitRecord) -> KResult<()> {
    let mut inner = v.take()?;
    let started = crate::arch::x86_64::rdtsc();
    let result = run_inner(vm, v, &mut inner, out);
    leave_context(&mut inner);
    v.put(inner);
    vm.stats
        .add(Stat::KernelCycles, crate::arch::x86_64::rdtsc() - started);
    result
}

fn run_inner(vm: &Vm, v: &Vcpu, i: &mut VcpuInner, out: &mut ExitRecord) -> KResult<()> {
    if i.stopped {
        return Err("vcpu stopped by a triple fault: write a new state to run it".into());
    }
    complete(vm, i);
    let me = sched::current();
    loop {
        if vm.is_dead() {
            return Err(EDESTROYED.into());
        }
        if me.interrupted() {
            return Err(EINTR.into());
        }
        if sched::need_resched() {
            leave_context(i);
            sched::schedule();
            continue;
        }
        startup_events(v, i);
        if i.mp == MpState::WaitForSipi {
            leave_context(i);
            let slept = crate::arch::x86_64::rdtsc();
            let woken = v
                .halt
                .wait_until(|| vm.is_dead() || v.mp_events.lock().sipi.is_some());
            vm.stats
                .add(Stat::HaltCycles, crate::arch::x86_64::rdtsc() - slept);
            woken?;
            continue;
        }

        interrupts::disable();
        let now = crate::arch::x86_64::rdtsc();
        let deadline = {
            let mut l = v.lapic.lock();
            l.poll_timer(now);
            l.deadline()
        };
        inject(v, i);
        enter_context(i);
        let t0 = crate::arch::x86_64::rdtsc();
        let hw_exit = i.hw.run(&mut i.gprs, deadline);
        let t1 = crate::arch::x86_64::rdtsc();
        // Host interrupts that arrived while the guest ran are taken here.
        interrupts::enable();
        vm.stats.add(Stat::GuestCycles, t1 - t0);
        vm.stats.count(&hw_exit);
        if log::log_enabled!(log::Level::Trace) {
            let rip = i.hw.rip();
            log::trace!("vm {} vcpu {}: {hw_exit:?} at {rip:#x}", vm.id, v.index);
        }

        let mut ctx = exit::Ctx {
            vm,
            vcpu: v,
            inner: i,
            out,
        };
        match exit::handle(&mut ctx, hw_exit) {
            Action::Continue => {}
            Action::Reflect => {
                leave_context(i);
                out.state = state_of(v, i);
                if let Some(reason) = out.kind() {
                    vm.stats.reflected(reason);
                }
                if out.kind() == Some(ExitReason::TripleFault) {
                    i.stopped = true;
                }
                return Ok(());
            }
            Action::Fail(e) => return Err(e.into()),
            Action::Halt => {
                leave_context(i);
                let slept = crate::arch::x86_64::rdtsc();
                let deadline = v.lapic.lock().deadline().map(tsc_to_uptime);
                let woken = v.halt.wait_deadline(deadline, || {
                    vm.is_dead() || v.lapic.lock().pending().is_some() || {
                        let e = v.mp_events.lock();
                        e.init || e.sipi.is_some()
                    }
                });
                vm.stats
                    .add(Stat::HaltCycles, crate::arch::x86_64::rdtsc() - slept);
                if woken? == Woken::TimedOut {
                    vm.stats.add(Stat::TimerWakeups, 1);
                }
            }
        }
    }
}

/// The linear address of `offset` in segment `seg` (whose base counts only outside 64-bit
/// mode, and for FS and GS).
pub fn linear(i: &mut VcpuInner, seg: SegReg, offset: u64) -> u64 {
    let base = if Paging::of(i.hw.as_mut()).long_mode()
        && decode::bitness(i.hw.as_mut()) == 64
        && !matches!(seg, SegReg::Fs | SegReg::Gs)
    {
        0
    } else {
        i.hw.segment(seg).base
    };
    base.wrapping_add(offset)
}
