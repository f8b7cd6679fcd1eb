//! The VMX instructions (SDM Vol. 3C chapter 32), each wrapped once. VMX instructions report
//! failure in RFLAGS (§32.2, "Conventions"): CF set is VMfailInvalid (no current VMCS), ZF set
//! is VMfailValid (the reason is in the VM-instruction error field).

use core::arch::asm;

/// How a VMX instruction failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// CF: no current VMCS, or a bad operand.
    Invalid,
    /// ZF: see the VM-instruction error field.
    Valid,
}

fn check(cf: u8, zf: u8) -> Result<(), VmFail> {
    match (cf, zf) {
        (0, 0) => Ok(()),
        (1, _) => Err(VmFail::Invalid),
        _ => Err(VmFail::Valid),
    }
}

/// VMXON with the region at physical address `region`.
///
/// # Safety
/// CR4.VMXE must be set, CR0/CR4 must satisfy the fixed-bit MSRs, and `region` must be a
/// zeroed, page-aligned frame holding the VMCS revision identifier, owned for as long as VMX
/// stays on.
pub unsafe fn vmxon(region: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: Forwarded from the caller; the operand is a memory location holding the address.
    unsafe {
        asm!("vmxon [{}]", "setc {}", "setz {}", in(reg) &region, out(reg_byte) cf, out(reg_byte) zf,
            options(nostack));
    }
    check(cf, zf)
}

/// VMCLEAR of the VMCS at `vmcs` (SDM §32.3 VMCLEAR): writes its data back to memory and makes
/// its launch state clear; it is no longer current.
///
/// # Safety
/// VMX must be on and `vmcs` must be a VMCS region we own.
pub unsafe fn vmclear(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: Forwarded from the caller.
    unsafe {
        asm!("vmclear [{}]", "setc {}", "setz {}", in(reg) &vmcs, out(reg_byte) cf, out(reg_byte) zf,
            options(nostack));
    }
    check(cf, zf)
}

/// VMPTRLD: makes the VMCS at `vmcs` current on this CPU.
///
/// # Safety
/// VMX must be on and `vmcs` must be a VMCS region we own, not active on another CPU.
pub unsafe fn vmptrld(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: Forwarded from the caller.
    unsafe {
        asm!("vmptrld [{}]", "setc {}", "setz {}", in(reg) &vmcs, out(reg_byte) cf, out(reg_byte) zf,
            options(nostack));
    }
    check(cf, zf)
}

/// VMREAD of `field` from the current VMCS.
///
/// # Safety
/// VMX must be on with a current VMCS (a field it lacks fails, it does not fault).
pub unsafe fn vmread(field: u32) -> Result<u64, VmFail> {
    let (value, cf, zf): (u64, u8, u8);
    // SAFETY: Forwarded from the caller.
    unsafe {
        asm!("vmread {}, {}", "setc {}", "setz {}", out(reg) value, in(reg) u64::from(field),
            out(reg_byte) cf, out(reg_byte) zf, options(nostack));
    }
    check(cf, zf).map(|()| value)
}

/// VMWRITE of `value` to `field` of the current VMCS.
///
/// # Safety
/// As for `vmread`; writing host-state or control fields must keep the VMCS consistent with
/// how the kernel uses it (the VMX module is their only writer).
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: Forwarded from the caller.
    unsafe {
        asm!("vmwrite {}, {}", "setc {}", "setz {}", in(reg) u64::from(field), in(reg) value,
            out(reg_byte) cf, out(reg_byte) zf, options(nostack));
    }
    check(cf, zf)
}

/// INVEPT of `kind` (1 = single context, 2 = all contexts) for the EPTP `eptp` (SDM §32.3
/// INVEPT).
///
/// # Safety
/// VMX must be on and the CPU must support INVEPT of that kind.
pub unsafe fn invept(kind: u64, eptp: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [eptp, 0];
    let (cf, zf): (u8, u8);
    // SAFETY: Forwarded from the caller; the descriptor is 16 bytes on our stack.
    unsafe {
        asm!("invept {}, [{}]", "setc {}", "setz {}", in(reg) kind, in(reg) &desc,
            out(reg_byte) cf, out(reg_byte) zf, options(nostack));
    }
    check(cf, zf)
}

/// INVVPID of `kind` (1 = single context, 2 = all contexts) for `vpid` (SDM §32.3 INVVPID).
///
/// # Safety
/// VMX must be on and the CPU must support INVVPID of that kind.
pub unsafe fn invvpid(kind: u64, vpid: u16) -> Result<(), VmFail> {
    let desc: [u64; 2] = [u64::from(vpid), 0];
    let (cf, zf): (u8, u8);
    // SAFETY: Forwarded from the caller.
    unsafe {
        asm!("invvpid {}, [{}]", "setc {}", "setz {}", in(reg) kind, in(reg) &desc,
            out(reg_byte) cf, out(reg_byte) zf, options(nostack));
    }
    check(cf, zf)
}
