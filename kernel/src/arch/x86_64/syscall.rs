//! The SYSCALL entry (SDM Vol. 2B, SYSCALL; Vol. 3A §5.8.8): switches to the thread's kernel
//! stack, builds a `TrapFrame` exactly like an interrupt from user mode would (vector
//! `SYSCALL_TRAP`), calls `syscall_dispatch`, and leaves through the common `trap_return`.

use super::gdt::{KERNEL_CS, USER_CS, USER_DS};
use super::percpu::{KERNEL_RSP_OFFSET, USER_RSP_OFFSET};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::gdt::SegmentSelector;

core::arch::global_asm!(
    r#"
    .text
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push {user_ds}
    push qword ptr gs:[{user_rsp}]
    push r11                    /* user RFLAGS */
    push {user_cs}
    push rcx                    /* user RIP */
    push 0                      /* error code */
    push {trap}
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    xor ebp, ebp
    call syscall_dispatch
    jmp trap_return
"#,
    user_rsp = const USER_RSP_OFFSET,
    kernel_rsp = const KERNEL_RSP_OFFSET,
    user_ds = const USER_DS,
    user_cs = const USER_CS,
    trap = const abi::sys::SYSCALL_TRAP,
);

unsafe extern "C" {
    fn syscall_entry();
}

/// Enables SYSCALL on this CPU.
pub fn init() {
    // SAFETY: STAR names the GDT layout gdt.rs asserts; LSTAR is the entry above; the mask
    // clears IF, TF, DF, AC and NT on entry so the entry runs with interrupts off and a sane
    // direction flag. EFER.SCE only enables the instruction.
    unsafe {
        Star::write(
            SegmentSelector(USER_CS),
            SegmentSelector(USER_DS),
            SegmentSelector(KERNEL_CS),
            SegmentSelector(super::gdt::KERNEL_DS),
        )
        .expect("GDT layout matches SYSCALL/SYSRET");
        LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::ALIGNMENT_CHECK
                | RFlags::NESTED_TASK,
        );
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}
