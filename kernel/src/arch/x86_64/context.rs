//! Kernel thread context switching: callee-saved registers on the old stack, stack pointers
//! exchanged, callee-saved registers popped from the new stack (System V ABI: RBX, RBP,
//! R12-R15 belong to the caller).

core::arch::global_asm!(
    r#"
    .text
    .global switch_context
switch_context:                 /* (save_rsp: *mut u64, next_rsp: u64) */
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global thread_trampoline
thread_trampoline:              /* first return of a new thread: r12 = entry, r13 = argument */
    sti
    mov rdi, r13
    xor ebp, ebp
    call r12
    ud2

    .global user_trampoline
user_trampoline:                /* first return of a new user thread: r12 = its trap frame */
    mov rsp, r12
    jmp trap_return
"#
);

unsafe extern "C" {
    fn switch_context(save_rsp: *mut u64, next_rsp: u64);
    fn thread_trampoline();
    fn user_trampoline();
}

/// Saves the current context into `*save` and resumes the one saved at `next`.
///
/// # Safety
/// Interrupts must be off. `next` must be a stack pointer saved by this function or prepared by
/// [`initial_stack`], on a stack that stays mapped while the thread may run; `save` must be
/// valid for writes and stay so until the current thread is resumed.
pub unsafe fn switch(save: *mut u64, next: u64) {
    // SAFETY: Forwarded from the caller.
    unsafe { switch_context(save, next) }
}

/// How a new thread starts.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// Call `entry(arg)` in the kernel (it never returns): kernel threads.
    Kernel {
        entry: extern "C" fn(usize) -> !,
        arg: usize,
    },
    /// Return to user mode through the trap frame at this address on the thread's stack.
    User { frame: u64 },
}

/// Writes the first context of a thread below `top` and returns its saved stack pointer.
///
/// # Safety
/// `[top - 64, top)` must be writable memory owned by the new thread's stack.
pub unsafe fn initial_stack(top: u64, start: Start) -> u64 {
    let (ret, r12, r13) = match start {
        Start::Kernel { entry, arg } => (
            thread_trampoline as *const () as u64,
            entry as *const () as u64,
            arg as u64,
        ),
        Start::User { frame } => (user_trampoline as *const () as u64, frame, 0),
    };
    // Popped by switch_context: r15, r14, r13, r12, rbx, rbp, then `ret`.
    let words = [0, 0, r13, r12, 0, 0, ret, 0];
    let sp = top - 8 * words.len() as u64;
    for (i, w) in words.iter().enumerate() {
        // SAFETY: The caller gives us these 64 bytes below `top`.
        unsafe { ((sp + 8 * i as u64) as *mut u64).write(*w) };
    }
    sp
}
