//! Process system calls: exits, errstr, rfork, exec, await, sleep, brk, notes, semaphores.

use super::{Args, Ret, user_str, user_strs};
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::KResult;
use crate::mm::uaccess::{UserSlice, write_value};
use crate::proc::{self, note, sched, wait};
use abi::errors::{EBADADDR, EBADARG, ENOPROC};
use abi::sys::layout::USER_END;
use abi::sys::notes::{NCONT, NDFLT};
use abi::sys::{ERRMAX, MAXARGBYTES, MAXARGS, PATHMAX, Sys, WaitMsg};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicI64, Ordering};

/// Semaphore waiters of every process (woken together; each rechecks its own semaphore).
static SEMAPHORES: wait::WaitQueue = wait::WaitQueue::new();

pub fn run(call: Sys, a: Args, frame: &mut TrapFrame) -> KResult<Ret> {
    let value = match call {
        Sys::Exits => sys_exits(a.get(0), a.get(1)),
        Sys::Errstr => {
            let msg = sched::current().errstr.lock().clone();
            let n = msg.len().min(a.get(1) as usize);
            UserSlice::new(a.get(0), n as u64)?.write(&msg.as_bytes()[..n])?;
            n as u64
        }
        Sys::Rfork => proc::rfork(a.get(0), frame)?,
        Sys::Exec => return sys_exec(a, frame),
        Sys::Await => {
            // Check the buffer first, so that a bad pointer loses no child's exit message.
            write_value(a.get(0), &WaitMsg::default())?;
            let w = proc::await_child()?;
            write_value(a.get(0), &w)?;
            w.pid
        }
        Sys::Sleep => {
            wait::sleep_ns(a.get(0).saturating_mul(1_000_000))?;
            0
        }
        Sys::Brk => {
            let p = sched::current_process().ok_or(ENOPROC)?;
            let space = p.space().ok_or(ENOPROC)?;
            let mut s = space.lock();
            if a.get(0) == 0 {
                s.segments()
                    .iter()
                    .find(|seg| seg.kind == crate::mm::vmspace::SegKind::Heap)
                    .map_or(0, |seg| seg.end)
            } else {
                s.set_heap_end(a.get(0)).map_err(|_| abi::errors::ENOMEM)?
            }
        }
        Sys::Notify => {
            let handler = a.get(0);
            if handler >= USER_END {
                return Err(EBADADDR.into());
            }
            sched::current_process()
                .ok_or(ENOPROC)?
                .notes
                .lock()
                .handler = handler;
            0
        }
        Sys::Noted => {
            let p = sched::current_process().ok_or(ENOPROC)?;
            match a.get(0) {
                NCONT => {
                    note::resume(&p, frame)?;
                    return Ok(Ret::Frame);
                }
                NDFLT => {
                    let text = note::finish(&p);
                    let mut buf = [0u8; ERRMAX];
                    let n = text.len().min(ERRMAX);
                    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                    drop(text);
                    drop(p);
                    exit_with(&buf[..n]);
                }
                _ => return Err(EBADARG.into()),
            }
        }
        Sys::Postnote => {
            let text = user_str(a.get(1), a.get(2), ERRMAX - 1)?;
            proc::post_note(a.get(0), &text)?;
            0
        }
        Sys::Semacquire => semacquire(a.get(0), a.get(1) != 0)?,
        Sys::Semrelease => {
            let count = i64::try_from(a.get(1)).map_err(|_| EBADARG)?;
            let sem = semaphore(a.get(0))?;
            let value = sem.fetch_add(count, Ordering::AcqRel) + count;
            SEMAPHORES.wake_all();
            value as u64
        }
        Sys::Getpid => sched::current_process().ok_or(ENOPROC)?.pid,
        Sys::Nsec => crate::time::uptime_ns(),
        _ => return Err(abi::errors::EBADSYSCALL.into()),
    };
    Ok(Ret::Value(value))
}

fn sys_exits(ptr: u64, len: u64) -> ! {
    let mut buf = [0u8; ERRMAX];
    let n = (len as usize).min(ERRMAX);
    let msg: &[u8] = match UserSlice::new(ptr, n as u64).and_then(|s| s.read(&mut buf[..n])) {
        Ok(()) => &buf[..n],
        Err(_) => b"exits: bad address",
    };
    exit_with(msg)
}

/// Exits with `msg`, copied to the stack first: nothing on the heap may be pending a drop in
/// the frames of a call that never returns.
fn exit_with(msg: &[u8]) -> ! {
    let mut buf = [0u8; ERRMAX];
    let n = msg.len().min(ERRMAX);
    buf[..n].copy_from_slice(&msg[..n]);
    let text = core::str::from_utf8(&buf[..n]).unwrap_or("exit string is not UTF-8");
    proc::exits(text)
}

fn sys_exec(a: Args, frame: &mut TrapFrame) -> KResult<Ret> {
    let path = user_str(a.get(0), a.get(1), PATHMAX)?;
    let argv = user_strs(a.get(2), a.get(3), MAXARGS, MAXARGBYTES)?;
    let envp = user_strs(a.get(4), a.get(5), MAXARGS, MAXARGBYTES)?;
    let p = sched::current_process().ok_or(ENOPROC)?;
    if p.hang() {
        // Stopped until a note arrives (a debugger attaches, or the process is killed).
        p.set_hang(false);
        wait::WaitQueue::new().wait_until(|| false)?;
    }
    if p.threads().len() > 1 {
        return Err("exec: the process has other threads".into());
    }
    let ns = p.ns().ok_or(ENOPROC)?;
    let dot = p.dot().ok_or(ENOPROC)?;
    let space = crate::mm::vmspace::AddressSpace::new().ok_or(abi::errors::ENOMEM)?;
    let space = Arc::new(crate::sync::IrqLock::new(space));
    let mut new_frame = TrapFrame::default();
    let name = proc::exec::load(&ns, &dot, &space, &path, &argv, &envp, &mut new_frame)?;
    proc::replace_space(&p, space);
    *frame = new_frame;
    *p.name.lock() = name;
    let closed = p.fds().close_on_exec();
    drop(closed);
    p.notes.lock().reset_handler();
    Ok(Ret::Frame)
}

/// The semaphore at user address `addr` (8-byte aligned), through the direct map.
fn semaphore(addr: u64) -> KResult<&'static AtomicI64> {
    if !addr.is_multiple_of(8) || addr >= USER_END {
        return Err(EBADADDR.into());
    }
    let p = sched::current_process().ok_or(ENOPROC)?;
    let space = p.space().ok_or(ENOPROC)?;
    let phys = space.lock().resolve(addr, true).map_err(|_| EBADADDR)?;
    // SAFETY: `phys` is a present, writable, 8-byte-aligned word of a user page of this process;
    // atomics on it are how user threads synchronise with each other and with us. The page stays
    // while the process lives, and we only use the reference during this system call.
    Ok(unsafe { &*(crate::mm::PhysAddr(phys).to_virt() as *const AtomicI64) })
}

fn semacquire(addr: u64, block: bool) -> KResult<u64> {
    let try_take = |sem: &AtomicI64| {
        let mut v = sem.load(Ordering::Acquire);
        while v > 0 {
            match sem.compare_exchange(v, v - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    };
    if try_take(semaphore(addr)?) {
        return Ok(1);
    }
    if !block {
        return Ok(0);
    }
    let mut gone = false;
    SEMAPHORES.wait_until(|| match semaphore(addr) {
        Ok(sem) => try_take(sem),
        Err(_) => {
            gone = true;
            true
        }
    })?;
    if gone { Err(EBADADDR.into()) } else { Ok(1) }
}
