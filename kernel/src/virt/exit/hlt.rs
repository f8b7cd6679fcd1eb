//! HLT: the vCPU's thread sleeps until an interrupt is pending for it (the run loop waits on
//! the vCPU's halt queue, which IOAPIC deliveries, IPIs and the LAPIC timer's deadline wake).
//! HLT with interrupts disabled can never end (no NMIs are delivered to guests): the VMM is
//! told with a [`abi::vm::ExitReason::Halted`] exit.

use super::{Action, Ctx};
use crate::virt::hw::Len;
use abi::vm::ExitReason;

/// Handles HLT.
pub fn handle(ctx: &mut Ctx, len: Len) -> Action {
    if let Action::Reflect = ctx.skip(len) {
        return Action::Reflect;
    }
    if ctx.inner.hw.rflags() & (1 << 9) == 0 {
        return ctx.reflect(ExitReason::Halted);
    }
    if ctx.vcpu.lapic.lock().pending().is_some() {
        Action::Continue
    } else {
        Action::Halt
    }
}
