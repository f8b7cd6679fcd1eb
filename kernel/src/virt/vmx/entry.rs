//! VM entry and exit for VMX (SDM Vol. 3C §27 "VM Entries", §28.5 "Loading Host State"):
//! `vmx_enter` saves the host's callee-saved registers on the stack, points HOST_RSP at them,
//! loads the guest's registers and CR2 from a `Gprs`, and executes VMLAUNCH or VMRESUME. A VM
//! exit lands at `vmx_exit` (HOST_RIP) on that stack, stores the guest's registers and CR2
//! back, and returns 0 from `vmx_enter`. If the instruction itself fails, `vmx_enter` returns 1
//! (VMfailInvalid) or 2 (VMfailValid) with the guest registers untouched.

use crate::virt::hw::Gprs;

core::arch::global_asm!(
    r#"
    .text
    .global vmx_enter
vmx_enter:                      /* (gprs: rdi, launched: rsi) -> rax */
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                    /* the Gprs, at [HOST_RSP] after an exit */
    mov rax, {host_rsp}
    vmwrite rax, rsp
    mov rax, [rdi + 128]
    mov cr2, rax
    cmp rsi, 0
    mov rax, rdi
    mov rcx, [rax + 8]
    mov rdx, [rax + 16]
    mov rbx, [rax + 24]
    mov rbp, [rax + 40]
    mov rsi, [rax + 48]
    mov rdi, [rax + 56]
    mov r8, [rax + 64]
    mov r9, [rax + 72]
    mov r10, [rax + 80]
    mov r11, [rax + 88]
    mov r12, [rax + 96]
    mov r13, [rax + 104]
    mov r14, [rax + 112]
    mov r15, [rax + 120]
    mov rax, [rax]
    jne 1f
    vmlaunch
    jmp 2f
1:  vmresume
2:  pop rdi                     /* the instruction failed: CF or ZF says how */
    mov eax, 1
    jc 3f
    mov eax, 2
3:  pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global vmx_exit
vmx_exit:                       /* HOST_RIP: rsp = HOST_RSP, interrupts off */
    push rax
    mov rax, [rsp + 8]
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
    pop rcx
    mov [rax], rcx
    mov rcx, cr2
    mov [rax + 128], rcx
    pop rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    xor eax, eax
    ret
"#,
    host_rsp = const super::vmcs::HostNatural::Rsp as u32,
);

unsafe extern "C" {
    fn vmx_enter(gprs: *mut Gprs, launched: u64) -> u64;
    fn vmx_exit();
}

const _: () = assert!(core::mem::offset_of!(Gprs, cr2) == 128);

/// How an entry attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entered {
    /// The guest ran and exited; the exit fields of the VMCS say why.
    Exited,
    /// VMLAUNCH/VMRESUME failed with VMfailInvalid.
    FailInvalid,
    /// VMLAUNCH/VMRESUME failed with VMfailValid (see the VM-instruction error).
    FailValid,
}

/// Runs the guest of the current VMCS.
///
/// # Safety
/// VMX must be on, the VMCS current and fully set up (HOST_RIP = [`exit_address`], host state
/// of this CPU), interrupts off. `launched` must be the VMCS's launch state.
pub unsafe fn enter(gprs: &mut Gprs, launched: bool) -> Entered {
    // SAFETY: Forwarded from the caller; `gprs` is valid for the call and the assembly keeps
    // the System V callee-saved registers.
    match unsafe { vmx_enter(gprs, u64::from(launched)) } {
        0 => Entered::Exited,
        1 => Entered::FailInvalid,
        _ => Entered::FailValid,
    }
}

/// Where VM exits resume the host (HOST_RIP).
pub fn exit_address() -> u64 {
    vmx_exit as *const () as u64
}
