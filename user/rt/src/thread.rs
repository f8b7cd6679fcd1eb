//! Threads: `rfork(RFPROC|RFMEM)` with a stack of their own, joined through a semaphore.

use crate::sync::Semaphore;
use crate::{Error, Result};
use abi::sys::rfork::{RFMEM, RFPROC};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Bytes of stack each thread gets.
const STACK_SIZE: usize = 256 * 1024;

core::arch::global_asm!(
    r#"
    .text
    .global rt_rfork_thread
rt_rfork_thread:                /* (flags, stack_top, entry, arg) -> id, or 0 never */
    push r12
    push r13
    push r14
    mov r12, rsi
    mov r13, rdx
    mov r14, rcx
    mov eax, {rfork}
    syscall
    test rax, rax
    jz 1f
    pop r14
    pop r13
    pop r12
    ret
1:  mov rsp, r12                /* the child: its own stack, then entry(arg) */
    xor ebp, ebp
    mov rdi, r14
    call r13
    ud2
"#,
    rfork = const abi::sys::Sys::Rfork as u64,
);

unsafe extern "C" {
    fn rt_rfork_thread(
        flags: u64,
        stack_top: u64,
        entry: extern "C" fn(usize) -> !,
        arg: usize,
    ) -> u64;
}

struct Start {
    f: Box<dyn FnOnce() + Send>,
    done: Arc<Semaphore>,
}

extern "C" fn thread_main(arg: usize) -> ! {
    // SAFETY: `arg` is the Box<Start> that `spawn` leaked for this thread.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let Start { f, done } = *start;
    f();
    done.release();
    drop(done);
    crate::sys::exit_thread()
}

/// A running thread.
pub struct JoinHandle {
    pub id: u64,
    done: Arc<Semaphore>,
    _stack: Vec<u8>,
}

impl JoinHandle {
    /// Waits for the thread to finish (its stack is freed with the handle).
    pub fn join(self) {
        while self.done.acquire().is_err() {}
    }
}

/// Runs `f` in a new thread of this process.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<JoinHandle> {
    let stack = alloc::vec![0u8; STACK_SIZE];
    let top = (stack.as_ptr() as u64 + STACK_SIZE as u64) & !15;
    let done = Arc::new(Semaphore::new(0));
    let start = Box::into_raw(Box::new(Start {
        f: Box::new(f),
        done: done.clone(),
    }));
    crate::io::flush_stdout();
    // SAFETY: The child runs `thread_main` on `stack`, which the handle keeps alive until the
    // thread has signalled `done` (its last use of the stack is the exit system call).
    let id = unsafe { rt_rfork_thread(RFPROC | RFMEM, top, thread_main, start as usize) };
    if id == abi::sys::ERROR {
        // SAFETY: The thread was not created, so the Box is still ours.
        drop(unsafe { Box::from_raw(start) });
        return Err(Error::last());
    }
    Ok(JoinHandle {
        id,
        done,
        _stack: stack,
    })
}
