//! System calls: decoding the registers of a `SYSCALL` (see `abi::sys`), running the call, and
//! returning its result or error string. Every pointer is checked by `mm::uaccess` before use;
//! a bad one is an error return, never a fault.

mod file;
mod process;

use crate::arch::x86_64::trap::TrapFrame;
use crate::error::{Error, KResult};
use crate::mm::uaccess::{UserSlice, read_value};
use abi::errors::{EBADSYSCALL, ETOOLONG};
use abi::sys::{ERRMAX, ERROR, StrRef, Sys};
use alloc::string::String;
use alloc::vec::Vec;

/// What a system call gives back.
pub enum Ret {
    /// A value for RAX.
    Value(u64),
    /// The call rewrote the whole user register frame (exec, noted); leave RAX alone.
    Frame,
}

/// The arguments of a call (RDI, RSI, RDX, R10, R8, R9).
#[derive(Clone, Copy)]
pub struct Args([u64; 6]);

impl Args {
    fn get(&self, i: usize) -> u64 {
        self.0[i]
    }
}

/// Called by the SYSCALL entry with the user's registers.
#[unsafe(no_mangle)]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    x86_64::instructions::interrupts::enable();
    let args = Args([
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ]);
    let result = match Sys::from_raw(frame.rax) {
        Some(call) => run(call, args, frame),
        None => Err(EBADSYSCALL.into()),
    };
    match result {
        Ok(Ret::Value(v)) => frame.rax = v,
        Ok(Ret::Frame) => {}
        Err(e) => {
            set_errstr(e);
            frame.rax = ERROR;
        }
    }
    x86_64::instructions::interrupts::disable();
    crate::proc::return_to_user(frame);
}

fn set_errstr(e: Error) {
    let mut msg = String::from(e.as_str());
    if msg.len() > ERRMAX {
        let mut cut = ERRMAX;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    *crate::proc::sched::current().errstr.lock() = msg;
}

fn run(call: Sys, a: Args, frame: &mut TrapFrame) -> KResult<Ret> {
    use Sys::*;
    match call {
        Nop => Ok(Ret::Value(0)),
        ExitThread => crate::proc::thread_exit(),
        Exits | Errstr | Rfork | Exec | Await | Sleep | Brk | Notify | Noted | Postnote
        | Semacquire | Semrelease | Getpid | Nsec => process::run(call, a, frame),
        _ => file::run(call, a),
    }
}

/// A string argument of at most `max` bytes.
pub fn user_str(ptr: u64, len: u64, max: usize) -> KResult<String> {
    Ok(UserSlice::new(ptr, len)?.to_string(max, ETOOLONG)?)
}

/// An array of `count` string arguments (`StrRef`s at `ptr`).
pub fn user_strs(ptr: u64, count: u64, max_count: usize, max_bytes: usize) -> KResult<Vec<String>> {
    if count > max_count as u64 {
        return Err(ETOOLONG.into());
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut bytes = 0;
    for i in 0..count {
        let r: StrRef = read_value(ptr.checked_add(i * 16).ok_or(abi::errors::EBADADDR)?)?;
        bytes += r.len as usize;
        if bytes > max_bytes {
            return Err(ETOOLONG.into());
        }
        out.push(user_str(r.ptr, r.len, max_bytes)?);
    }
    Ok(out)
}
