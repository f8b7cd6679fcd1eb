//! Threads and the scheduler: a round-robin run queue on one CPU, preemption of user mode by
//! the timer tick, blocking with wake-ups, and timed sleeps.
//!
//! The kernel itself is not preempted: a thread runs in the kernel until it blocks, yields or
//! returns to user mode, where a pending reschedule takes effect.

use super::Process;
use crate::arch::x86_64::{context, percpu};
use crate::mm::kstack::KernelStack;
use crate::sync::IrqLock;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use x86_64::instructions::interrupts;

/// Timer ticks a thread runs before another ready thread gets the CPU.
const TIMESLICE: u64 = 2;

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThreadState {
    Running = 0,
    Ready = 1,
    Blocked = 2,
    Dead = 3,
}

/// A thread of control: a kernel stack and a saved context, belonging to a process (user
/// threads) or to the kernel.
pub struct Thread {
    /// The process it belongs to; `None` for kernel threads.
    pub process: Option<Arc<Process>>,
    /// `None` for the boot thread, which runs on the boot stack.
    kstack: Option<KernelStack>,
    /// Saved stack pointer while not running; written only by `schedule` with interrupts off.
    context: UnsafeCell<u64>,
    state: AtomicU8,
    /// The last error string of a system call.
    pub errstr: IrqLock<String>,
    /// Set when the thread must die at its next return to user mode.
    pub killed: AtomicBool,
    /// While non-zero, a pending note does not end this thread's waits (see [`hold_notes`]).
    notes_held: AtomicU32,
    /// Ticks spent in user mode and in the kernel.
    pub utime: AtomicU64,
    pub stime: AtomicU64,
}

// SAFETY: `context` is only read and written by `schedule` on this CPU with interrupts off;
// everything else in a Thread is atomic or behind a lock.
unsafe impl Sync for Thread {}
// SAFETY: As above; nothing in a Thread is tied to the thread that created it.
unsafe impl Send for Thread {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh process or thread id (one counter serves both, so they never collide).
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl Thread {
    /// Size of the trap frame at the top of a user thread's kernel stack.
    const FRAME: u64 = core::mem::size_of::<crate::arch::x86_64::trap::TrapFrame>() as u64;

    /// A new thread that starts as `start`; `Start::User` frames live at [`Thread::user_frame`].
    pub fn new(
        process: Option<Arc<Process>>,
        start: Option<context::Start>,
    ) -> Option<Arc<Thread>> {
        let kstack = KernelStack::new()?;
        let top = kstack.top();
        let start = start.unwrap_or(context::Start::User {
            frame: top - Self::FRAME,
        });
        // The initial context goes below the user trap frame, if any.
        let context_top = match start {
            context::Start::User { frame } => frame,
            context::Start::Kernel { .. } => top,
        };
        // SAFETY: The stack was just mapped and belongs to this thread alone.
        let sp = unsafe { context::initial_stack(context_top, start) };
        Some(Arc::new(Thread {
            process,
            kstack: Some(kstack),
            context: UnsafeCell::new(sp),
            state: AtomicU8::new(ThreadState::Ready as u8),
            errstr: IrqLock::new(String::new()),
            killed: AtomicBool::new(false),
            notes_held: AtomicU32::new(0),
            utime: AtomicU64::new(0),
            stime: AtomicU64::new(0),
        }))
    }

    /// The trap frame of a user thread, at the top of its kernel stack.
    pub fn user_frame(&self) -> *mut crate::arch::x86_64::trap::TrapFrame {
        let top = self.kstack.as_ref().map_or(0, KernelStack::top);
        (top - Self::FRAME) as *mut _
    }

    /// Its state.
    pub fn state(&self) -> ThreadState {
        match self.state.load(Ordering::Acquire) {
            0 => ThreadState::Running,
            1 => ThreadState::Ready,
            2 => ThreadState::Blocked,
            _ => ThreadState::Dead,
        }
    }

    fn set_state(&self, s: ThreadState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Whether a blocking wait of this thread should give up: it was killed, or its process
    /// has a note to deliver and the thread does not hold notes off.
    pub fn interrupted(&self) -> bool {
        self.killed.load(Ordering::Acquire)
            || (self.notes_held.load(Ordering::Acquire) == 0
                && self.process.as_ref().is_some_and(|p| p.note_pending()))
    }
}

/// Holds notes off the current thread's waits until dropped: for work that must not stop
/// half-done, such as writing the rest of a 9P request once part of it is on the wire. Only
/// a kill still ends the waits, so the holder must cope with that (and its waits should be
/// ones a peer ends, not unbounded sleeps). The note stays pending and is delivered later.
pub struct NotesHeld(Arc<Thread>);

/// Holds notes off the current thread (see [`NotesHeld`]).
pub fn hold_notes() -> NotesHeld {
    let me = current();
    me.notes_held.fetch_add(1, Ordering::AcqRel);
    NotesHeld(me)
}

impl Drop for NotesHeld {
    fn drop(&mut self) {
        self.0.notes_held.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Scheduler {
    current: Option<Arc<Thread>>,
    idle: Option<Arc<Thread>>,
    ready: VecDeque<Arc<Thread>>,
    /// Threads sleeping until a deadline (uptime in ns).
    sleepers: Vec<(u64, Arc<Thread>)>,
    /// Threads switched away from: their last reference may be this one (a dead thread), and
    /// it must not be dropped while we still run on their stack. Cleared after each switch.
    retired: Vec<Arc<Thread>>,
    slice_left: u64,
}

static SCHED: IrqLock<Scheduler> = IrqLock::new(Scheduler {
    current: None,
    idle: None,
    ready: VecDeque::new(),
    sleepers: Vec::new(),
    retired: Vec::new(),
    slice_left: TIMESLICE,
});
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// Makes the boot thread the current (and idle) thread.
pub fn init() {
    let boot = Arc::new(Thread {
        process: None,
        kstack: None,
        context: UnsafeCell::new(0),
        state: AtomicU8::new(ThreadState::Running as u8),
        errstr: IrqLock::new(String::new()),
        killed: AtomicBool::new(false),
        notes_held: AtomicU32::new(0),
        utime: AtomicU64::new(0),
        stime: AtomicU64::new(0),
    });
    let mut s = SCHED.lock();
    s.current = Some(boot.clone());
    s.idle = Some(boot);
}

/// The running thread.
pub fn current() -> Arc<Thread> {
    SCHED
        .lock()
        .current
        .clone()
        .expect("the scheduler is initialised at boot")
}

/// The running thread's process, if it is a user thread.
pub fn current_process() -> Option<Arc<Process>> {
    SCHED
        .lock()
        .current
        .as_ref()
        .and_then(|t| t.process.clone())
}

/// Makes a new thread runnable.
pub fn spawn(t: Arc<Thread>) {
    t.set_state(ThreadState::Ready);
    SCHED.lock().ready.push_back(t);
}

/// Makes a blocked thread runnable again; does nothing to threads in other states.
pub fn wake(t: &Arc<Thread>) {
    let mut s = SCHED.lock();
    if t.state() == ThreadState::Blocked {
        t.set_state(ThreadState::Ready);
        s.ready.push_back(t.clone());
    }
}

/// Wakes `t` at `deadline` (uptime in ns) if nothing wakes it first.
pub fn wake_at(t: Arc<Thread>, deadline: u64) {
    SCHED.lock().sleepers.push((deadline, t));
}

/// Called on every timer tick: accounts time, wakes sleepers, ends time slices.
pub fn tick(from_user: bool) {
    let now = crate::time::uptime_ns();
    let mut s = SCHED.lock();
    if let Some(cur) = &s.current {
        let counter = if from_user { &cur.utime } else { &cur.stime };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let mut i = 0;
    while i < s.sleepers.len() {
        if s.sleepers[i].0 <= now {
            let (_, t) = s.sleepers.swap_remove(i);
            if t.state() == ThreadState::Blocked {
                t.set_state(ThreadState::Ready);
                s.ready.push_back(t);
            }
        } else {
            i += 1;
        }
    }
    s.slice_left = s.slice_left.saturating_sub(1);
    if s.slice_left == 0 && !s.ready.is_empty() {
        NEED_RESCHED.store(true, Ordering::Release);
    }
}

/// Whether the current thread's time slice is over.
pub fn need_resched() -> bool {
    NEED_RESCHED.load(Ordering::Acquire)
}

/// Blocks the current thread until `wake` (or a sleeper deadline) makes it ready.
pub fn block_current() {
    current().set_state(ThreadState::Blocked);
    schedule();
}

/// Ends the current thread. Its stack is freed by the next thread that schedules.
pub fn exit_current() -> ! {
    interrupts::disable();
    current().set_state(ThreadState::Dead);
    schedule();
    unreachable!("a dead thread was scheduled");
}

/// Switches to the next ready thread, or the idle thread if none is ready.
pub fn schedule() {
    let were_enabled = interrupts::are_enabled();
    interrupts::disable();
    NEED_RESCHED.store(false, Ordering::Release);
    let (save, next_sp) = {
        let mut s = SCHED.lock();
        s.slice_left = TIMESLICE;
        let prev = s.current.take().expect("a current thread");
        let idle = s.idle.clone().expect("an idle thread");
        if prev.state() == ThreadState::Running {
            if Arc::ptr_eq(&prev, &idle) {
                prev.set_state(ThreadState::Ready);
            } else {
                prev.set_state(ThreadState::Ready);
                s.ready.push_back(prev.clone());
            }
        }
        // Skip threads that died while queued.
        let next = loop {
            match s.ready.pop_front() {
                Some(t) if t.state() == ThreadState::Ready => break t,
                Some(_) => continue,
                None => break idle.clone(),
            }
        };
        next.set_state(ThreadState::Running);
        s.current = Some(next.clone());
        if Arc::ptr_eq(&prev, &next) {
            drop(s);
            if were_enabled {
                interrupts::enable();
            }
            return;
        }
        if let Some(stack) = &next.kstack {
            percpu::set_kernel_stack(stack.top());
        }
        switch_address_space(&next);
        let save = prev.context.get();
        s.retired.push(prev);
        (save, next.context.get())
    };
    // SAFETY: Interrupts are off. `save` belongs to the previous thread, which stays alive
    // until we are off its stack: `retired` holds a reference that only a later `schedule`,
    // running on another stack, drops. `next_sp` was saved by `switch` or built by
    // `initial_stack`, on a stack its thread (held in `current`) keeps mapped.
    unsafe { context::switch(save, *next_sp) };
    // Back on this thread's stack: drop the references to threads we switched away from
    // (freeing the stacks of those that died), except our own.
    let retired: Vec<Arc<Thread>> = {
        let mut s = SCHED.lock();
        let me = s.current.clone();
        let (gone, keep): (Vec<_>, Vec<_>) = s
            .retired
            .drain(..)
            .partition(|t| me.as_ref().is_none_or(|m| !Arc::ptr_eq(m, t)));
        s.retired = keep;
        gone
    };
    drop(retired);
    if were_enabled {
        interrupts::enable();
    }
}

/// Loads the page tables `next` runs on: its process's, or the kernel's for kernel threads.
fn switch_address_space(next: &Thread) {
    let pml4 = next
        .process
        .as_ref()
        .and_then(|p| p.address_space_root())
        .unwrap_or_else(crate::mm::paging::kernel_pml4);
    load_page_tables(pml4);
}

/// Writes CR3 if it differs from `pml4`.
pub fn load_page_tables(pml4: u64) {
    use x86_64::registers::control::{Cr3, Cr3Flags};
    use x86_64::structures::paging::PhysFrame;
    let (cur, _) = Cr3::read_raw();
    if cur.start_address().as_u64() != pml4 {
        // SAFETY: `pml4` is the kernel's PML4 or an address space's, whose upper half is the
        // kernel's, so the code and stack we run on stay mapped.
        unsafe {
            Cr3::write(
                PhysFrame::containing_address(x86_64::PhysAddr::new(pml4)),
                Cr3Flags::empty(),
            );
        }
    }
}

/// TSC cycles the idle loop spent halted, all CPUs together (`#arch/idle`).
static IDLE_CYCLES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Nanoseconds the CPUs spent halted with nothing to run, since boot: what a benchmark reads
/// to tell waiting (on a timer, a device) from work.
pub fn idle_ns() -> u64 {
    let cycles = IDLE_CYCLES.load(core::sync::atomic::Ordering::Relaxed);
    (u128::from(cycles) * 1_000_000_000 / u128::from(crate::time::tsc_hz().max(1))) as u64
}

/// The idle loop: runs whenever nothing else is ready.
pub fn idle() -> ! {
    loop {
        let ready = !SCHED.lock().ready.is_empty();
        if ready {
            schedule();
        } else {
            let t0 = crate::arch::x86_64::rdtsc();
            interrupts::enable_and_hlt();
            let cycles = crate::arch::x86_64::rdtsc().saturating_sub(t0);
            IDLE_CYCLES.fetch_add(cycles, core::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// (pid-less) statistics for `ps`-like views: the state of each thread of `p`.
pub fn thread_states(threads: &[Arc<Thread>]) -> Vec<ThreadState> {
    threads.iter().map(|t| t.state()).collect()
}
