//! Processes (Plan 9 `port/proc.c`, `port/sysproc.c`): creation by `rfork`, exit with an exit
//! string, `await`, the process table, and the return-to-user path where preemption, notes and
//! kills take effect.
//!
//! A process owns an address space, an fd table, a namespace, a current directory and its
//! threads (`rfork(RFPROC|RFMEM)` adds a thread; the first thread's id is the pid). `exits`
//! ends the whole process; when its last thread is gone, everything it held is released, its
//! children pass to init, and its parent's `await` gets the exit string.

pub mod elf;
pub mod exec;
pub mod note;
pub mod sched;
pub mod wait;

use crate::arch::x86_64::trap::TrapFrame;
use crate::error::KResult;
use crate::mm::vmspace::{AddressSpace, FaultError};
use crate::ns::fgrp::Fgrp;
use crate::ns::{Namespace, Walked};
use crate::sync::IrqLock;
use abi::errors::{ENOCHILD, ENOMEM, ENOPROC};
use abi::sys::rfork::*;
use abi::sys::{ERRMAX, WaitMsg};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use sched::{Thread, ThreadState};
use wait::WaitQueue;

/// The pid of init, which inherits orphans.
pub const INIT_PID: u64 = 1;

/// An address space shared by a process's threads.
pub type SharedSpace = Arc<IrqLock<AddressSpace>>;

struct Children {
    /// Children that will send a wait message when they exit.
    live: usize,
    /// Wait messages not yet collected by `await`.
    exited: VecDeque<WaitMsg>,
}

/// A process.
pub struct Process {
    pub pid: u64,
    pub name: IrqLock<String>,
    ppid: AtomicU64,
    notegroup: AtomicU64,
    space: IrqLock<Option<SharedSpace>>,
    /// The PML4 of `space`, readable by the scheduler without taking locks.
    pml4: AtomicU64,
    threads: IrqLock<Vec<Arc<Thread>>>,
    pub fgrp: IrqLock<Arc<Fgrp>>,
    ns: IrqLock<Option<Arc<Namespace>>>,
    dot: IrqLock<Option<Walked>>,
    pub notes: IrqLock<note::Notes>,
    children: IrqLock<Children>,
    child_exited: WaitQueue,
    exit_msg: IrqLock<Option<String>>,
    start_ns: u64,
    /// The parent does not wait for this process (`RFNOWAIT`).
    nowait: bool,
    /// Stop at the next exec (`#proc/N/ctl` `hang`).
    hang: core::sync::atomic::AtomicBool,
    /// Ticks used by threads that have exited.
    utime: AtomicU64,
    stime: AtomicU64,
}

static PROCS: IrqLock<BTreeMap<u64, Arc<Process>>> = IrqLock::new(BTreeMap::new());

impl Process {
    /// The root of its page tables, if it has an address space.
    pub fn address_space_root(&self) -> Option<u64> {
        match self.pml4.load(Ordering::Acquire) {
            0 => None,
            p => Some(p),
        }
    }

    /// Its address space.
    pub fn space(&self) -> Option<SharedSpace> {
        self.space.lock().clone()
    }

    fn set_space(&self, space: Option<SharedSpace>) -> Option<SharedSpace> {
        let root = space.as_ref().map_or(0, |s| s.lock().pml4());
        self.pml4.store(root, Ordering::Release);
        core::mem::replace(&mut *self.space.lock(), space)
    }

    /// Its namespace.
    pub fn ns(&self) -> Option<Arc<Namespace>> {
        self.ns.lock().clone()
    }

    /// Replaces its namespace.
    pub fn set_ns(&self, ns: Arc<Namespace>) {
        let old = self.ns.lock().replace(ns);
        drop(old);
    }

    /// Its current directory.
    pub fn dot(&self) -> Option<Walked> {
        self.dot.lock().clone()
    }

    /// Changes its current directory.
    pub fn set_dot(&self, dot: Walked) {
        let old = self.dot.lock().replace(dot);
        drop(old);
    }

    /// Its fd table.
    pub fn fds(&self) -> Arc<Fgrp> {
        self.fgrp.lock().clone()
    }

    /// Its note group (^C goes to a whole group).
    pub fn notegroup(&self) -> u64 {
        self.notegroup.load(Ordering::Relaxed)
    }

    /// Its parent's pid.
    pub fn ppid(&self) -> u64 {
        self.ppid.load(Ordering::Relaxed)
    }

    /// Whether a note waits to be delivered.
    pub fn note_pending(&self) -> bool {
        self.notes.lock().deliverable()
    }

    /// Makes the process stop at its next exec (or no longer).
    pub fn set_hang(&self, on: bool) {
        self.hang.store(on, Ordering::Release);
    }

    /// Whether it stops at its next exec.
    pub fn hang(&self) -> bool {
        self.hang.load(Ordering::Acquire)
    }

    /// Its threads.
    pub fn threads(&self) -> Vec<Arc<Thread>> {
        self.threads.lock().clone()
    }

    /// `RUNNING`, `READY` or `WAITING`, from its threads.
    pub fn state(&self) -> &'static str {
        let states = sched::thread_states(&self.threads.lock());
        if states.contains(&ThreadState::Running) {
            "RUNNING"
        } else if states.contains(&ThreadState::Ready) {
            "READY"
        } else if states.is_empty() {
            "EXITING"
        } else {
            "WAITING"
        }
    }
}

/// The process with pid `pid`.
pub fn lookup(pid: u64) -> Option<Arc<Process>> {
    PROCS.lock().get(&pid).cloned()
}

/// Every process, in pid order.
pub fn list() -> Vec<Arc<Process>> {
    PROCS.lock().values().cloned().collect()
}

/// Everything a new process starts with.
struct Birth {
    pid: u64,
    name: String,
    ppid: u64,
    notegroup: u64,
    space: SharedSpace,
    fgrp: Arc<Fgrp>,
    ns: Arc<Namespace>,
    dot: Walked,
    nowait: bool,
}

/// Creates a process whose first thread returns to user mode with `frame`, and starts it.
fn start_process(b: Birth, frame: &TrapFrame) -> KResult<u64> {
    let p = Arc::new(Process {
        pid: b.pid,
        name: IrqLock::new(b.name),
        ppid: AtomicU64::new(b.ppid),
        notegroup: AtomicU64::new(b.notegroup),
        space: IrqLock::new(None),
        pml4: AtomicU64::new(0),
        threads: IrqLock::new(Vec::new()),
        fgrp: IrqLock::new(b.fgrp),
        ns: IrqLock::new(Some(b.ns)),
        dot: IrqLock::new(Some(b.dot)),
        notes: IrqLock::new(note::Notes::default()),
        children: IrqLock::new(Children {
            live: 0,
            exited: VecDeque::new(),
        }),
        child_exited: WaitQueue::new(),
        exit_msg: IrqLock::new(None),
        start_ns: crate::time::uptime_ns(),
        nowait: b.nowait,
        hang: core::sync::atomic::AtomicBool::new(false),
        utime: AtomicU64::new(0),
        stime: AtomicU64::new(0),
    });
    p.set_space(Some(b.space));
    let thread = Thread::new(Some(p.clone()), None).ok_or(ENOMEM)?;
    // SAFETY: The frame slot at the top of the new thread's stack is ours until it runs.
    unsafe { thread.user_frame().write(frame.clone()) };
    p.threads.lock().push(thread.clone());
    PROCS.lock().insert(b.pid, p);
    sched::spawn(thread);
    Ok(b.pid)
}

/// Starts init (pid 1) from `path` in the boot namespace, with the console as fds 0-2.
pub fn start_init(path: &str) -> KResult<()> {
    let ns = crate::boot_namespace()?;
    let root = ns.root();
    let fgrp = Fgrp::new();
    for mode in [
        abi::sys::mode::OREAD,
        abi::sys::mode::OWRITE,
        abi::sys::mode::OWRITE,
    ] {
        let cons = ns.walk(root.clone(), &["dev", "cons"])?;
        let opened = cons.chan.dev.open(&cons.chan, mode)?;
        fgrp.add(opened, false)?;
    }
    let space = Arc::new(IrqLock::new(AddressSpace::new().ok_or(ENOMEM)?));
    let mut frame = TrapFrame::default();
    let name = exec::load(
        &ns,
        &root,
        &space,
        path,
        &[String::from(path)],
        &[],
        &mut frame,
    )?;
    let pid = sched::next_id();
    debug_assert_eq!(pid, INIT_PID, "init must be the first process");
    start_process(
        Birth {
            pid,
            name,
            ppid: 0,
            notegroup: pid,
            space,
            fgrp,
            ns,
            dot: root,
            nowait: true,
        },
        &frame,
    )?;
    Ok(())
}

/// `rfork(flags)` from the thread whose user registers are `frame`.
pub fn rfork(flags: u64, frame: &TrapFrame) -> KResult<u64> {
    if flags & !ALL != 0
        || (flags & RFFDG != 0 && flags & RFCFDG != 0)
        || (flags & RFNAMEG != 0 && flags & RFCNAMEG != 0)
    {
        return Err(abi::errors::EBADARG.into());
    }
    let p = sched::current_process().ok_or(ENOPROC)?;
    if flags & RFPROC == 0 {
        // Change the caller's own resources.
        if flags & RFFDG != 0 {
            let copy = p.fds().fork();
            *p.fgrp.lock() = copy;
        }
        if flags & RFCFDG != 0 {
            *p.fgrp.lock() = Fgrp::new();
        }
        if flags & RFNAMEG != 0 {
            let copy = p.ns().ok_or(ENOPROC)?.fork();
            p.set_ns(copy);
        }
        if flags & RFCNAMEG != 0 {
            let ns = crate::boot_namespace()?;
            p.set_dot(ns.root());
            p.set_ns(ns);
        }
        if flags & RFNOTEG != 0 {
            p.notegroup.store(sched::next_id(), Ordering::Relaxed);
        }
        return Ok(0);
    }
    let mut child_frame = frame.clone();
    child_frame.rax = 0;
    let id = sched::next_id();
    if flags & RFMEM != 0 {
        let t = Thread::new(Some(p.clone()), None).ok_or(ENOMEM)?;
        // SAFETY: The frame slot of the new thread's stack is ours until it runs.
        unsafe { t.user_frame().write(child_frame) };
        p.threads.lock().push(t.clone());
        sched::spawn(t);
        return Ok(id);
    }
    let space = p.space().ok_or(ENOPROC)?;
    let copy = space.lock().fork().ok_or(ENOMEM)?;
    let fgrp = match flags {
        f if f & RFCFDG != 0 => Fgrp::new(),
        f if f & RFFDG != 0 => p.fds().fork(),
        _ => p.fds(),
    };
    let (ns, dot) = if flags & RFCNAMEG != 0 {
        let ns = crate::boot_namespace()?;
        let root = ns.root();
        (ns, root)
    } else {
        let ns = p.ns().ok_or(ENOPROC)?;
        let ns = if flags & RFNAMEG != 0 { ns.fork() } else { ns };
        (ns, p.dot().ok_or(ENOPROC)?)
    };
    let nowait = flags & RFNOWAIT != 0;
    if !nowait {
        p.children.lock().live += 1;
    }
    let birth = Birth {
        pid: id,
        name: p.name.lock().clone(),
        ppid: p.pid,
        notegroup: if flags & RFNOTEG != 0 {
            id
        } else {
            p.notegroup()
        },
        space: Arc::new(IrqLock::new(copy)),
        fgrp,
        ns,
        dot,
        nowait,
    };
    start_process(birth, &child_frame).inspect_err(|_| {
        if !nowait {
            p.children.lock().live -= 1;
        }
    })
}

/// Replaces the current process's address space (exec) and switches to it.
pub fn replace_space(p: &Process, space: SharedSpace) {
    let root = space.lock().pml4();
    let old = p.set_space(Some(space));
    sched::load_page_tables(root);
    drop(old);
}

/// Ends the current process with exit string `msg`. The calling frames must hold no
/// references that need dropping: this never returns.
pub fn exits(msg: &str) -> ! {
    if let Some(p) = sched::current_process() {
        set_exit(&p, msg);
    }
    thread_exit()
}

/// Records the exit string (the first one wins) and tells every thread to die.
fn set_exit(p: &Process, msg: &str) {
    {
        let mut e = p.exit_msg.lock();
        if e.is_none() {
            let mut m = String::from(msg);
            truncate(&mut m, ERRMAX);
            *e = Some(m);
        }
    }
    for t in p.threads() {
        t.killed.store(true, Ordering::Release);
        sched::wake(&t);
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// Ends the current thread; the last thread out releases the process.
pub fn thread_exit() -> ! {
    {
        let me = sched::current();
        if let Some(p) = me.process.clone() {
            p.utime
                .fetch_add(me.utime.load(Ordering::Relaxed), Ordering::Relaxed);
            p.stime
                .fetch_add(me.stime.load(Ordering::Relaxed), Ordering::Relaxed);
            let last = {
                let mut threads = p.threads.lock();
                threads.retain(|t| !Arc::ptr_eq(t, &me));
                threads.is_empty()
            };
            if last {
                teardown(&p);
            }
        }
    }
    sched::exit_current()
}

/// Releases everything a process held and reports its exit to its parent.
fn teardown(p: &Arc<Process>) {
    // Leave the process's page tables before they are freed.
    sched::load_page_tables(crate::mm::paging::kernel_pml4());
    let space = p.set_space(None);
    drop(space);
    let fds = core::mem::replace(&mut *p.fgrp.lock(), Fgrp::new());
    drop(fds);
    let dot = p.dot.lock().take();
    drop(dot);
    let ns = p.ns.lock().take();
    drop(ns);

    // Orphans go to init, which reaps them.
    let procs: Vec<Arc<Process>> = PROCS.lock().values().cloned().collect();
    let mut adopted = 0;
    for child in procs.iter().filter(|c| c.ppid() == p.pid) {
        child.ppid.store(INIT_PID, Ordering::Relaxed);
        if !child.nowait {
            adopted += 1;
        }
    }
    if adopted > 0
        && let Some(init) = lookup(INIT_PID)
    {
        init.children.lock().live += adopted;
    }

    let msg = p.exit_msg.lock().clone().unwrap_or_default();
    PROCS.lock().remove(&p.pid);
    if p.nowait {
        return;
    }
    if let Some(parent) = lookup(p.ppid()) {
        let mut w = WaitMsg {
            pid: p.pid,
            utime_ms: p.utime.load(Ordering::Relaxed) * 1000 / crate::time::HZ,
            stime_ms: p.stime.load(Ordering::Relaxed) * 1000 / crate::time::HZ,
            real_ms: (crate::time::uptime_ns() - p.start_ns) / 1_000_000,
            msg_len: msg.len() as u64,
            ..WaitMsg::default()
        };
        w.msg[..msg.len()].copy_from_slice(msg.as_bytes());
        {
            let mut c = parent.children.lock();
            c.live = c.live.saturating_sub(1);
            c.exited.push_back(w);
        }
        parent.child_exited.wake_all();
    }
}

/// `await`: waits for a child to exit.
pub fn await_child() -> KResult<WaitMsg> {
    let p = sched::current_process().ok_or(ENOPROC)?;
    let mut got = None;
    p.child_exited.wait_until(|| {
        let mut c = p.children.lock();
        if let Some(w) = c.exited.pop_front() {
            got = Some(Ok(w));
            true
        } else if c.live == 0 {
            got = Some(Err(ENOCHILD));
            true
        } else {
            false
        }
    })?;
    got.unwrap_or(Err(ENOCHILD)).map_err(Into::into)
}

/// Posts a note to process `pid`.
pub fn post_note(pid: u64, text: &str) -> KResult<()> {
    let p = lookup(pid).ok_or(ENOPROC)?;
    note::post(&p, text);
    Ok(())
}

/// Posts a note to every process of a note group.
pub fn post_note_group(group: u64, text: &str) {
    let procs: Vec<Arc<Process>> = PROCS
        .lock()
        .values()
        .filter(|p| p.notegroup() == group)
        .cloned()
        .collect();
    for p in &procs {
        note::post(p, text);
    }
}

/// Makes the page at `addr` of the current process present, if its segments allow the access.
pub fn user_fault(addr: u64, write: bool, exec: bool) -> Result<(), FaultError> {
    let space = sched::current_process()
        .and_then(|p| p.space())
        .ok_or(FaultError::Unmapped)?;
    let mut s = space.lock();
    s.fault(addr, write, exec)
}

/// Runs on every return to user mode: preemption, kills and note delivery.
pub fn return_to_user(frame: &mut TrapFrame) {
    loop {
        if sched::need_resched() {
            sched::schedule();
        }
        let me = sched::current();
        if me.killed.load(Ordering::Acquire) {
            drop(me);
            thread_exit();
        }
        let Some(p) = me.process.clone() else { return };
        drop(me);
        match note::take(&p) {
            None => return,
            Some(note::Action::Deliver(handler, text)) => {
                if note::push_handler(&p, frame, handler, &text).is_err() {
                    set_exit(&p, &text);
                }
                // A kill may have raced in; loop to act on it.
                if !sched::current().killed.load(Ordering::Acquire) {
                    return;
                }
            }
            Some(note::Action::Die(text)) => {
                set_exit(&p, &text);
            }
        }
        drop(p);
    }
}
