//! Raw system calls (see `abi::sys` for the convention). The wrappers return the kernel's raw
//! result; `None` means the call failed and `Error::last()` says why.

use abi::sys::{ERROR, StrRef, Sys, WaitMsg};

/// Issues a system call with up to six arguments.
#[inline]
pub fn call(nr: Sys, a: [u64; 6]) -> u64 {
    let ret: u64;
    // SAFETY: SYSCALL enters the kernel, which validates every argument; it clobbers only RCX
    // and R11 (and returns in RAX). Memory the arguments point to is the caller's concern and
    // is accessed by the kernel through checked copies.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as u64 => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `Some(result)` or `None` on failure.
#[inline]
pub fn checked(nr: Sys, a: [u64; 6]) -> Option<u64> {
    let r = call(nr, a);
    (r != ERROR).then_some(r)
}

/// A string as the kernel takes it.
pub fn str_ref(s: &str) -> StrRef {
    StrRef {
        ptr: s.as_ptr() as u64,
        len: s.len() as u64,
    }
}

/// `errstr`: copies the last error string into `buf`; returns its length.
pub fn errstr(buf: &mut [u8]) -> usize {
    call(
        Sys::Errstr,
        [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0],
    ) as usize
}

/// `exits`: ends the process.
pub fn exits(msg: &str) -> ! {
    call(
        Sys::Exits,
        [msg.as_ptr() as u64, msg.len() as u64, 0, 0, 0, 0],
    );
    unreachable!("exits returned");
}

/// `exitthread`: ends the calling thread.
pub fn exit_thread() -> ! {
    call(Sys::ExitThread, [0; 6]);
    unreachable!("exitthread returned");
}

/// `await`.
pub fn await_child(msg: &mut WaitMsg) -> Option<u64> {
    checked(Sys::Await, [msg as *mut WaitMsg as u64, 0, 0, 0, 0, 0])
}

/// `nsec`: nanoseconds since boot.
pub fn nsec() -> u64 {
    call(Sys::Nsec, [0; 6])
}
