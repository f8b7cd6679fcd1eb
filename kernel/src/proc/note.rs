//! Notes (Plan 9 notify(2)): text messages posted to a process. A process with a handler gets
//! it called on its user stack (even if it was blocked in a system call, which then fails with
//! "interrupted"); without one, or for `kill`, the process exits with the note as its exit
//! string. While a handler runs, further notes wait.

use super::Process;
use crate::arch::x86_64::gdt::{USER_CS, USER_DS};
use crate::arch::x86_64::trap::TrapFrame;
use crate::mm::uaccess::{UserSlice, read_value, write_value};
use abi::sys::layout::USER_END;
use abi::sys::notes::{KILL, MAX_PENDING};
use abi::sys::{ERRMAX, Ureg};
use alloc::collections::VecDeque;
use alloc::string::String;

/// A process's notes.
#[derive(Default)]
pub struct Notes {
    pending: VecDeque<String>,
    /// User address of the handler (0: none).
    pub handler: u64,
    /// A handler is running; `saved` is where its `Ureg` is.
    in_handler: bool,
    saved: u64,
    /// The note being handled (the exit string if the handler gives up with NDFLT).
    current: String,
}

impl Notes {
    /// Whether a note can be delivered now.
    pub fn deliverable(&self) -> bool {
        !self.pending.is_empty() && (!self.in_handler || self.pending.iter().any(|n| n == KILL))
    }

    /// Forgets the handler (at exec).
    pub fn reset_handler(&mut self) {
        self.handler = 0;
        self.in_handler = false;
    }
}

/// What to do about the next note.
pub enum Action {
    /// Call the handler at this address.
    Deliver(u64, String),
    /// Exit with this string.
    Die(String),
}

/// Queues a note and interrupts the process's blocked threads.
pub fn post(p: &Process, text: &str) {
    let mut text = String::from(text);
    super::truncate(&mut text, ERRMAX - 1);
    {
        let mut n = p.notes.lock();
        if n.pending.len() >= MAX_PENDING && text != KILL {
            return;
        }
        n.pending.push_back(text);
    }
    for t in p.threads() {
        super::sched::wake(&t);
    }
}

/// Takes the next deliverable note.
pub fn take(p: &Process) -> Option<Action> {
    let mut n = p.notes.lock();
    if !n.deliverable() {
        return None;
    }
    if let Some(i) = n.pending.iter().position(|t| t == KILL) {
        n.pending.remove(i);
        return Some(Action::Die(String::from(KILL)));
    }
    let text = n.pending.pop_front()?;
    if n.handler == 0 {
        return Some(Action::Die(text));
    }
    Some(Action::Deliver(n.handler, text))
}

fn ureg_of(f: &TrapFrame) -> Ureg {
    Ureg {
        r15: f.r15,
        r14: f.r14,
        r13: f.r13,
        r12: f.r12,
        r11: f.r11,
        r10: f.r10,
        r9: f.r9,
        r8: f.r8,
        rbp: f.rbp,
        rdi: f.rdi,
        rsi: f.rsi,
        rdx: f.rdx,
        rcx: f.rcx,
        rbx: f.rbx,
        rax: f.rax,
        trap: f.vector,
        error: f.error,
        rip: f.rip,
        cs: f.cs,
        rflags: f.rflags,
        rsp: f.rsp,
        ss: f.ss,
    }
}

/// Arranges for the handler to run: the registers and the note go on the user stack, below a
/// gap, and the frame returns into `handler(ureg, note)`.
pub fn push_handler(
    p: &Process,
    frame: &mut TrapFrame,
    handler: u64,
    text: &str,
) -> Result<(), &'static str> {
    let mut sp = frame.rsp.checked_sub(256).ok_or(abi::errors::EBADADDR)?;
    sp = (sp - ERRMAX as u64) & !15;
    let note_at = sp;
    let mut note = [0u8; ERRMAX];
    note[..text.len()].copy_from_slice(text.as_bytes());
    UserSlice::new(note_at, ERRMAX as u64)?.write(&note)?;
    sp = (sp - core::mem::size_of::<Ureg>() as u64) & !15;
    let ureg_at = sp;
    write_value(ureg_at, &ureg_of(frame))?;
    sp -= 8;
    write_value(sp, &0u64)?; // the handler never returns: it calls noted()
    {
        let mut n = p.notes.lock();
        n.in_handler = true;
        n.saved = ureg_at;
        n.current = String::from(text);
    }
    frame.rip = handler;
    frame.rsp = sp;
    frame.rdi = ureg_at;
    frame.rsi = note_at;
    Ok(())
}

/// `noted(NCONT)`: restores the registers the handler may have edited. Only user-mode
/// segments and flags a user may set are accepted.
pub fn resume(p: &Process, frame: &mut TrapFrame) -> Result<(), &'static str> {
    let at = {
        let n = p.notes.lock();
        if !n.in_handler {
            return Err(abi::errors::EBADARG);
        }
        n.saved
    };
    let u: Ureg = read_value(at)?;
    if u.rip >= USER_END || u.rsp >= USER_END {
        return Err(abi::errors::EBADADDR);
    }
    // Arithmetic and control flags only: no IOPL, no interrupt flag changes.
    const USER_FLAGS: u64 = 0x0cd5 | (1 << 18);
    *frame = TrapFrame {
        r15: u.r15,
        r14: u.r14,
        r13: u.r13,
        r12: u.r12,
        r11: u.r11,
        r10: u.r10,
        r9: u.r9,
        r8: u.r8,
        rbp: u.rbp,
        rdi: u.rdi,
        rsi: u.rsi,
        rdx: u.rdx,
        rcx: u.rcx,
        rbx: u.rbx,
        rax: u.rax,
        vector: u.trap,
        error: u.error,
        rip: u.rip,
        cs: u64::from(USER_CS),
        rflags: (u.rflags & USER_FLAGS) | 0x202,
        rsp: u.rsp,
        ss: u64::from(USER_DS),
    };
    p.notes.lock().in_handler = false;
    Ok(())
}

/// `noted(NDFLT)`: the handler is done and the process takes the default action; returns the
/// note it was handling (the exit string).
pub fn finish(p: &Process) -> String {
    let mut n = p.notes.lock();
    n.in_handler = false;
    core::mem::take(&mut n.current)
}
