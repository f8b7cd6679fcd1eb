//! Per-CPU data, reached through the GS base in kernel mode (user mode has its own GS base,
//! swapped in and out by SWAPGS on every kernel entry and exit).
//!
//! The SYSCALL entry needs two slots at fixed offsets before it has a stack: where to stash the
//! user stack pointer and which kernel stack to switch to.

use alloc::boxed::Box;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

/// Offset of `user_rsp` in `PerCpu` (used by the SYSCALL entry assembly).
pub const USER_RSP_OFFSET: usize = 8;
/// Offset of `kernel_rsp` in `PerCpu` (used by the SYSCALL entry assembly).
pub const KERNEL_RSP_OFFSET: usize = 16;

/// One CPU's data. The first fields are read by assembly at fixed offsets.
#[repr(C)]
pub struct PerCpu {
    /// Points to this structure (so Rust can find it with one `mov` from `gs:0`).
    this: *mut PerCpu,
    /// The user RSP saved by the SYSCALL entry.
    user_rsp: u64,
    /// Top of the running thread's kernel stack: where the SYSCALL entry builds its frame.
    kernel_rsp: u64,
}

const _: () = assert!(core::mem::offset_of!(PerCpu, user_rsp) == USER_RSP_OFFSET);
const _: () = assert!(core::mem::offset_of!(PerCpu, kernel_rsp) == KERNEL_RSP_OFFSET);

/// Allocates this CPU's data and points GS at it.
pub fn init() {
    let cpu = Box::leak(Box::new(PerCpu {
        this: core::ptr::null_mut(),
        user_rsp: 0,
        kernel_rsp: 0,
    }));
    cpu.this = cpu;
    GsBase::write(VirtAddr::from_ptr(cpu));
    KernelGsBase::write(VirtAddr::zero());
}

fn this() -> *mut PerCpu {
    let p: *mut PerCpu;
    // SAFETY: GS points at this CPU's PerCpu in kernel mode (set by `init`, swapped by the trap
    // and syscall entries), whose first field is its own address.
    unsafe {
        core::arch::asm!("mov {}, gs:0", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    p
}

/// Sets the kernel stack used when this CPU enters the kernel from user mode (SYSCALL and the
/// TSS's RSP0 for interrupts and exceptions).
pub fn set_kernel_stack(top: u64) {
    // SAFETY: `this()` is this CPU's live PerCpu; only this CPU writes it, with interrupts off
    // around thread switches.
    unsafe { (*this()).kernel_rsp = top };
    super::gdt::set_kernel_stack(top);
}
