//! Notes: install a handler that decides, for each note, whether the process carries on.

use crate::sys::call;
use abi::sys::{Sys, Ureg};
use core::sync::atomic::{AtomicUsize, Ordering};

pub use abi::sys::notes::{INTERRUPT, INTERRUPTED, KILL};

/// What a handler decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resume where the process was (a system call it was blocked in fails with
    /// "interrupted").
    Continue,
    /// Exit with the note as exit string.
    Die,
}

static HANDLER: AtomicUsize = AtomicUsize::new(0);

extern "C" fn trampoline(_ureg: *mut Ureg, note: *const u8) -> ! {
    // SAFETY: The kernel passes the note as a NUL-terminated string of at most ERRMAX bytes.
    let text = unsafe {
        let mut n = 0;
        while n < abi::sys::ERRMAX && *note.add(n) != 0 {
            n += 1;
        }
        core::str::from_utf8(core::slice::from_raw_parts(note, n)).unwrap_or("")
    };
    let handler = HANDLER.load(Ordering::Acquire);
    let action = if handler == 0 {
        Action::Die
    } else {
        // SAFETY: HANDLER only ever holds a `fn(&str) -> Action` stored by `set_handler`.
        let f: fn(&str) -> Action = unsafe { core::mem::transmute(handler) };
        f(text)
    };
    let how = match action {
        Action::Continue => abi::sys::notes::NCONT,
        Action::Die => abi::sys::notes::NDFLT,
    };
    call(Sys::Noted, [how, 0, 0, 0, 0, 0]);
    unreachable!("noted returned");
}

/// Calls `handler` for every note this process gets (except `kill`, which cannot be caught).
pub fn set_handler(handler: fn(&str) -> Action) {
    HANDLER.store(handler as usize, Ordering::Release);
    call(Sys::Notify, [trampoline as *const () as u64, 0, 0, 0, 0, 0]);
}

/// Removes the handler: notes kill the process again.
pub fn clear_handler() {
    call(Sys::Notify, [0; 6]);
    HANDLER.store(0, Ordering::Release);
}
