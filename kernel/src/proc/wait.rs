//! Wait queues: the one way a thread blocks in the kernel. Every wait is interruptible: a note
//! for the process (or a kill) ends it with `EINTR`, so a process blocked anywhere can run its
//! note handler or die.

use super::sched::{self, Thread};
use crate::sync::IrqLock;
use abi::errors::EINTR;
use alloc::sync::Arc;
use alloc::vec::Vec;
use x86_64::instructions::interrupts;

/// Threads waiting for a condition.
pub struct WaitQueue {
    waiters: IrqLock<Vec<Arc<Thread>>>,
}

/// How a timed wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The condition became true.
    Ready,
    /// The deadline passed first.
    TimedOut,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        WaitQueue {
            waiters: IrqLock::new(Vec::new()),
        }
    }

    /// Sleeps until `ready()` returns true. `ready` runs with interrupts off and must not block.
    pub fn wait_until(&self, ready: impl FnMut() -> bool) -> Result<(), &'static str> {
        self.wait_deadline(None, ready).map(|_| ())
    }

    /// Like `wait_until`, but gives up at `deadline` (uptime in ns), if any.
    pub fn wait_deadline(
        &self,
        deadline: Option<u64>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Woken, &'static str> {
        let were_enabled = interrupts::are_enabled();
        let me = sched::current();
        let result = loop {
            interrupts::disable();
            if ready() {
                break Ok(Woken::Ready);
            }
            if me.interrupted() {
                break Err(EINTR);
            }
            if deadline.is_some_and(|d| crate::time::uptime_ns() >= d) {
                break Ok(Woken::TimedOut);
            }
            self.waiters.lock().push(me.clone());
            if let Some(d) = deadline {
                sched::wake_at(me.clone(), d);
            }
            sched::block_current();
            self.waiters.lock().retain(|t| !Arc::ptr_eq(t, &me));
        };
        if were_enabled {
            interrupts::enable();
        }
        result
    }

    /// Wakes every waiter; each rechecks its condition.
    pub fn wake_all(&self) {
        let waiters: Vec<Arc<Thread>> = self.waiters.lock().clone();
        for t in &waiters {
            sched::wake(t);
        }
    }
}

/// Sleeps for `ns` nanoseconds; a note cuts it short with `EINTR`.
pub fn sleep_ns(ns: u64) -> Result<(), &'static str> {
    let deadline = crate::time::uptime_ns().saturating_add(ns);
    WaitQueue::new()
        .wait_deadline(Some(deadline), || false)
        .map(|_| ())
}

impl WaitQueue {
    /// Like `wait_deadline`, but a pending note does not end the wait (a kill still does, as a
    /// timeout): for the bounded clean-up a note itself started, such as flushing a 9P request.
    pub fn wait_deadline_through_notes(&self, deadline: u64, ready: impl FnMut() -> bool) -> Woken {
        let _held = sched::hold_notes();
        self.wait_deadline(Some(deadline), ready)
            .unwrap_or(Woken::TimedOut)
    }
}

/// A lock whose waiters sleep (Plan 9's qlock), for holding across blocking I/O. Waiting for it
/// is interruptible like every wait.
pub struct QLock {
    held: core::sync::atomic::AtomicBool,
    queue: WaitQueue,
}

/// Proof of holding a `QLock`.
pub struct QLockGuard<'a> {
    lock: &'a QLock,
}

impl Default for QLock {
    fn default() -> Self {
        Self::new()
    }
}

impl QLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        QLock {
            held: core::sync::atomic::AtomicBool::new(false),
            queue: WaitQueue::new(),
        }
    }

    /// Takes the lock, sleeping while another thread holds it.
    pub fn lock(&self) -> Result<QLockGuard<'_>, &'static str> {
        use core::sync::atomic::Ordering;
        self.queue.wait_until(|| {
            self.held
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        Ok(QLockGuard { lock: self })
    }
}

impl Drop for QLockGuard<'_> {
    fn drop(&mut self) {
        self.lock
            .held
            .store(false, core::sync::atomic::Ordering::Release);
        self.lock.queue.wake_all();
    }
}
