//! VMRUN for SVM (APM Vol. 2 §15.5, §15.6): `svm_enter` saves the host's callee-saved
//! registers, loads the guest's general registers (RAX and RSP live in the VMCB), VMLOADs the
//! guest's FS, GS, TR, LDTR, KernelGsBase, STAR/LSTAR/CSTAR/SFMASK and SYSENTER state, runs the
//! guest with VMRUN, VMSAVEs that state back, stores the guest's registers, and VMLOADs the
//! host's (GS base first of all) from the per-CPU host area before it returns.
//!
//! The caller runs it with GIF clear (CLGI) and RFLAGS.IF set: physical interrupts then stay
//! pending, with the host's GS base wrong, until the guest runs, where they cause #VMEXIT(INTR)
//! (§15.17, §15.21.1); they are taken after STGI once the caller turns IF back on.

use crate::virt::hw::Gprs;

core::arch::global_asm!(
    r#"
    .text
    .global svm_enter
svm_enter:                      /* (gprs: rdi, vmcb: rsi, host_area: rdx) */
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdx
    push rdi
    mov rax, rsi
    mov rcx, [rdi + 8]
    mov rdx, [rdi + 16]
    mov rbx, [rdi + 24]
    mov rbp, [rdi + 40]
    mov rsi, [rdi + 48]
    mov r8, [rdi + 64]
    mov r9, [rdi + 72]
    mov r10, [rdi + 80]
    mov r11, [rdi + 88]
    mov r12, [rdi + 96]
    mov r13, [rdi + 104]
    mov r14, [rdi + 112]
    mov r15, [rdi + 120]
    mov rdi, [rdi + 56]
    vmload rax
    vmrun rax
    vmsave rax
    mov rax, [rsp]
    mov [rax + 8], rcx
    mov [rax + 16], rdx
    mov [rax + 24], rbx
    mov [rax + 40], rbp
    mov [rax + 48], rsi
    mov [rax + 56], rdi
    mov [rax + 64], r8
    mov [rax + 72], r9
    mov [rax + 80], r10
    mov [rax + 88], r11
    mov [rax + 96], r12
    mov [rax + 104], r13
    mov [rax + 112], r14
    mov [rax + 120], r15
    pop rdi
    pop rax
    vmload rax
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

unsafe extern "C" {
    fn svm_enter(gprs: *mut Gprs, vmcb: u64, host_area: u64);
}

/// Runs the guest of the VMCB at `vmcb` until #VMEXIT.
///
/// # Safety
/// SVM must be on (EFER.SVME, VM_HSAVE_PA), the VMCB valid and ours, `host_area` a page that
/// VMSAVE filled with this CPU's host state, and interrupts off on entry. GIF and IF are
/// managed here.
pub unsafe fn run(gprs: &mut Gprs, vmcb: u64, host_area: u64) {
    // SAFETY: Forwarded from the caller; see the module comment for CLGI/STI/CLI/STGI.
    unsafe {
        core::arch::asm!("clgi", "sti", options(nostack));
        svm_enter(gprs, vmcb, host_area);
        core::arch::asm!("cli", "stgi", options(nostack));
    }
}

/// VMSAVE of this CPU's host state into `area`.
///
/// # Safety
/// SVM must be on and `area` a page of ours.
pub unsafe fn vmsave(area: u64) {
    // SAFETY: Forwarded from the caller.
    unsafe { core::arch::asm!("vmsave rax", in("rax") area, options(nostack)) };
}
