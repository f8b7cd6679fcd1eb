//! Threads: `rfork(RFPROC|RFMEM)` with a stack of their own, joined through a semaphore.

use crate::sync::{Mutex, Semaphore};
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
    /// The handle's semaphore, released as the thread ends; the handle (or, once dropped,
    /// [`DETACHED`]) keeps it alive until then.
    done: *const Semaphore,
}

// SAFETY: `done` points at a semaphore kept alive by the handle until the thread has released
// it; semaphores are shared between threads by design.
unsafe impl Send for Start {}

core::arch::global_asm!(
    r#"
    .text
    .global rt_thread_end
rt_thread_end:                  /* (semaphore) -> never: release it, then exit, off the stack */
    mov esi, 1
    mov eax, {semrelease}
    syscall
    mov eax, {exitthread}
    syscall
    ud2
"#,
    semrelease = const abi::sys::Sys::Semrelease as u64,
    exitthread = const abi::sys::Sys::ExitThread as u64,
);

unsafe extern "C" {
    /// Releases `done` and ends the thread without touching its stack in between, so whoever
    /// acquires `done` may free the stack at once.
    fn rt_thread_end(done: u64) -> !;
}

extern "C" fn thread_main(arg: usize) -> ! {
    // SAFETY: `arg` is the Box<Start> that `spawn` leaked for this thread.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let Start { f, done } = *start;
    f();
    // SAFETY: `done` is alive (see `Start`); nothing of ours is left to drop.
    unsafe { rt_thread_end((*done).addr()) }
}

/// A running thread. Dropping the handle detaches the thread: its stack is freed by a later
/// `spawn` once the thread has ended.
pub struct JoinHandle {
    pub id: u64,
    /// `None` once joined or detached.
    parts: Option<Parts>,
}

/// What a thread's end frees: its semaphore and its stack.
struct Parts {
    done: Arc<Semaphore>,
    _stack: Vec<u8>,
}

/// Detached threads' parts, freed once their thread has ended.
static DETACHED: Mutex<Vec<Parts>> = Mutex::new(Vec::new());

impl JoinHandle {
    /// Waits for the thread to finish, then frees its stack.
    pub fn join(mut self) {
        if let Some(p) = self.parts.take() {
            while p.done.acquire().is_err() {}
        }
    }
}

impl Drop for JoinHandle {
    fn drop(&mut self) {
        if let Some(p) = self.parts.take() {
            DETACHED.lock().push(p);
        }
    }
}

/// Frees the stacks of detached threads that have ended.
fn reap() {
    DETACHED.lock().retain(|p| !p.done.try_acquire());
}

/// Runs `f` in a new thread of this process.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Result<JoinHandle> {
    reap();
    let stack = alloc::vec![0u8; STACK_SIZE];
    let top = (stack.as_ptr() as u64 + STACK_SIZE as u64) & !15;
    let done = Arc::new(Semaphore::new(0));
    let start = Box::into_raw(Box::new(Start {
        f: Box::new(f),
        done: Arc::as_ptr(&done),
    }));
    crate::io::flush_stdout();
    // SAFETY: The child runs `thread_main` on `stack`, which the handle (or `DETACHED`) keeps
    // alive until the thread has released `done`, after which it no longer touches the stack.
    let id = unsafe { rt_rfork_thread(RFPROC | RFMEM, top, thread_main, start as usize) };
    if id == abi::sys::ERROR {
        // SAFETY: The thread was not created, so the Box is still ours.
        drop(unsafe { Box::from_raw(start) });
        return Err(Error::last());
    }
    Ok(JoinHandle {
        id,
        parts: Some(Parts {
            done,
            _stack: stack,
        }),
    })
}
