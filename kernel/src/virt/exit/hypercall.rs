//! VMCALL (Intel) and VMMCALL (AMD) from any privilege level: reflected to the VMM with the
//! number in RAX and the arguments in RBX, RCX, RDX, RSI ([`abi::hv`]); the VMM's result goes
//! to RAX when the vCPU next runs.

use super::{Action, Ctx};
use crate::virt::hw::{Len, gpr};
use crate::virt::vcpu::Pending;
use abi::vm::ExitReason;

/// Handles a hypercall.
pub fn handle(ctx: &mut Ctx, len: Len) -> Action {
    let Some(n) = ctx.len(len) else {
        return ctx.fetch_failed();
    };
    let nr = ctx.inner.gprs.r[gpr::RAX];
    ctx.inner.pending = Pending::Hypercall(n);
    let a = ctx.reflect(ExitReason::Hypercall);
    ctx.out.value = nr;
    a
}
