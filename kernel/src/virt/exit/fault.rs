//! Exits that end the guest's progress, and intercepted exceptions.
//!
//! - A triple fault (SDM Vol. 3C §28.2 exit reason 2; APM §15.12 shutdown intercept) is
//!   reported; the vCPU stays stopped until the VMM sets a new state.
//! - A failed VM entry (invalid guest state, SDM §27.8; VMEXIT_INVALID, APM §15.5.1) is
//!   reported with the hardware's reason; the VMM may fix the state and retry.
//! - #DB and #AC are intercepted only so that a guest cannot keep the CPU delivering them
//!   forever (CVE-2015-5307, CVE-2015-8104): each is given back to the guest, one exit each.
//! - #DF is intercepted under SVM: a #DF the guest's IDT cannot deliver is reported as the
//!   triple fault it would become. (Bochs 2.7 ignores the SHUTDOWN intercept on a triple fault
//!   and stops the whole emulator; on hardware this only moves the report one step earlier.)
//! - Anything else the kernel does not know is reported as unhandled.

use super::{Action, Ctx};
use crate::virt::decode::Paging;
use crate::virt::hw::Event;
use abi::vm::ExitReason;

/// A triple fault.
pub fn triple_fault(ctx: &mut Ctx) -> Action {
    ctx.reflect(ExitReason::TripleFault)
}

/// An intercepted exception: reflected into the guest.
pub fn exception(ctx: &mut Ctx, vector: u8, error: Option<u32>) -> Action {
    if vector == 8 && !gate_present(ctx, vector) {
        return triple_fault(ctx);
    }
    ctx.raise(Event::Exception { vector, error })
}

/// Whether the guest's IDT (or real-mode IVT) has a present entry for `vector` (SDM Vol. 3A
/// §6.10, §6.14.1; §20.1.4 for real mode).
fn gate_present(ctx: &mut Ctx, vector: u8) -> bool {
    let hw = ctx.inner.hw.as_mut();
    let idtr = hw.sregs().idtr;
    let paging = Paging::of(hw);
    let (size, protected) = if hw.cr0() & 1 == 0 {
        (4u64, false)
    } else if paging.long_mode() {
        (16, true)
    } else {
        (8, true)
    };
    let offset = u64::from(vector) * size;
    if offset + size - 1 > u64::from(idtr.limit) {
        return false;
    }
    if !protected {
        return true;
    }
    let mut gate = [0u8; 8];
    let mem = ctx.vm.mem.lock();
    let read = mem
        .as_ref()
        .and_then(|m| paging.read_linear(m, idtr.base.wrapping_add(offset), &mut gate));
    read.is_some() && gate[5] & 0x80 != 0
}

/// A failed VM entry.
pub fn entry_failed(ctx: &mut Ctx, code: u64, qualification: u64) -> Action {
    let a = ctx.reflect(ExitReason::EntryFailed);
    ctx.out.code = code;
    ctx.out.qualification = qualification;
    a
}

/// An exit the kernel does not handle.
pub fn unhandled(ctx: &mut Ctx, code: u64, qualification: u64) -> Action {
    let a = ctx.reflect(ExitReason::Unhandled);
    ctx.out.code = code;
    ctx.out.qualification = qualification;
    a
}
