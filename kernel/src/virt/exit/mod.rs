//! Exit handlers: one small module per kind of exit, each deciding what happens next
//! ([`Action`]). The run loop (`virt::vcpu`) calls [`handle`] with our [`Exit`]; a handler that
//! needs the VMM fills the exit record in [`Ctx::out`] and returns [`Action::Reflect`].

pub mod cpuid;
pub mod cr;
pub mod fault;
pub mod hlt;
pub mod hypercall;
pub mod io;
pub mod msr;
pub mod npf;

use super::hw::{Event, Exit, Len};
use super::vcpu::{self, Vcpu, VcpuInner};
use super::vm::Vm;
use abi::vm::{Exit as ExitRecord, ExitReason};

/// What the run loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Enter the guest again.
    Continue,
    /// Return the exit record in `out` to the VMM.
    Reflect,
    /// The guest halted with interrupts enabled: sleep until an interrupt is pending.
    Halt,
    /// The kernel cannot go on (out of memory): the read fails with this error.
    Fail(&'static str),
}

/// What a handler works on.
pub struct Ctx<'a> {
    /// The VM.
    pub vm: &'a Vm,
    /// The vCPU (shared parts).
    pub vcpu: &'a Vcpu,
    /// The vCPU's state, which only its thread touches.
    pub inner: &'a mut VcpuInner,
    /// Where a reflected exit is written.
    pub out: &'a mut ExitRecord,
}

impl Ctx<'_> {
    /// Starts an exit record for the VMM.
    pub fn reflect(&mut self, reason: ExitReason) -> Action {
        *self.out = ExitRecord {
            reason: reason as u32,
            ..ExitRecord::default()
        };
        Action::Reflect
    }

    /// The exiting instruction's length, or `None` if it cannot be read (then the exit is
    /// reported as an emulation failure).
    pub fn len(&mut self, len: Len) -> Option<u8> {
        vcpu::insn_len(self.vm, self.inner, len)
    }

    /// Skips the exiting instruction of length `len`.
    pub fn skip(&mut self, len: Len) -> Action {
        match self.len(len) {
            Some(n) => {
                vcpu::skip(self.inner, n);
                Action::Continue
            }
            None => self.fetch_failed(),
        }
    }

    /// Injects `e` at the next entry.
    pub fn raise(&mut self, e: Event) -> Action {
        vcpu::raise(self.inner, e);
        Action::Continue
    }

    /// The instruction at RIP could not be read: reported to the VMM.
    pub fn fetch_failed(&mut self) -> Action {
        let rip = self.inner.hw.rip();
        let a = self.reflect(ExitReason::EmulationFailed);
        self.out.code = abi::vm::emulation::FETCH;
        self.out.gpa = rip;
        a
    }
}

/// Dispatches one exit to its handler.
pub fn handle(ctx: &mut Ctx, exit: Exit) -> Action {
    match exit {
        // The interrupt is taken when the run loop enables interrupts; the LAPIC timer is
        // polled before the next entry.
        Exit::ExternalInterrupt | Exit::Nmi | Exit::TimerDeadline | Exit::InterruptWindow => {
            Action::Continue
        }
        Exit::Cpuid(len) => cpuid::handle(ctx, len),
        Exit::Hlt(len) => hlt::handle(ctx, len),
        Exit::Rdmsr(len) => msr::rdmsr(ctx, len),
        Exit::Wrmsr(len) => msr::wrmsr(ctx, len),
        Exit::Xsetbv(len) => cr::xsetbv(ctx, len),
        Exit::Hypercall(len) => hypercall::handle(ctx, len),
        Exit::Skip(len) => ctx.skip(len),
        Exit::Undefined => ctx.raise(super::hw::Fault::UD.0),
        Exit::CrWrite { cr, gpr, len } => cr::write(ctx, cr, gpr, len),
        Exit::CrRead { cr, gpr, len } => cr::read(ctx, cr, gpr, len),
        Exit::Clts(len) => cr::clts(ctx, len),
        Exit::Lmsw { value, len } => cr::lmsw(ctx, value, len),
        Exit::DrAccess {
            dr,
            gpr,
            write,
            len,
        } => cr::dr(ctx, dr, gpr, write, len),
        Exit::Io(io) => io::handle(ctx, io),
        Exit::NestedFault { gpa, write, fetch } => npf::handle(ctx, gpa, write, fetch),
        Exit::TripleFault => fault::triple_fault(ctx),
        Exit::Exception { vector, error } => fault::exception(ctx, vector, error),
        Exit::EntryFailed {
            code,
            qualification,
        } => fault::entry_failed(ctx, code, qualification),
        Exit::Unhandled {
            code,
            qualification,
        } => fault::unhandled(ctx, code, qualification),
    }
}
