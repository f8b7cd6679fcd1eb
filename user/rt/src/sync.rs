//! Synchronisation for threads: a semaphore on the kernel's `semacquire`/`semrelease`, and a
//! mutex built on it.

use crate::sys::checked;
use abi::sys::Sys;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicI64, Ordering};

/// A counting semaphore.
#[repr(align(8))]
pub struct Semaphore(AtomicI64);

impl Semaphore {
    /// A semaphore with `n` units.
    pub const fn new(n: i64) -> Self {
        Semaphore(AtomicI64::new(n))
    }

    pub(crate) fn addr(&self) -> u64 {
        &self.0 as *const AtomicI64 as u64
    }

    /// Takes a unit, waiting for one. Fails only if a note interrupts the wait.
    pub fn acquire(&self) -> crate::Result<()> {
        // Fast path without a system call.
        let v = self.0.load(Ordering::Acquire);
        if v > 0
            && self
                .0
                .compare_exchange(v, v - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(());
        }
        checked(Sys::Semacquire, [self.addr(), 1, 0, 0, 0, 0])
            .map(|_| ())
            .ok_or_else(crate::Error::last)
    }

    /// Takes a unit if one is there.
    pub fn try_acquire(&self) -> bool {
        checked(Sys::Semacquire, [self.addr(), 0, 0, 0, 0, 0]) == Some(1)
    }

    /// Adds a unit and wakes a waiter.
    pub fn release(&self) {
        checked(Sys::Semrelease, [self.addr(), 1, 0, 0, 0, 0]);
    }
}

/// A mutual-exclusion lock for data shared between threads.
pub struct Mutex<T> {
    sem: Semaphore,
    value: UnsafeCell<T>,
}

// SAFETY: The semaphore serialises all access to `value`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: As above.
unsafe impl<T: Send> Send for Mutex<T> {}

/// Proof of holding a `Mutex`.
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Mutex {
            sem: Semaphore::new(1),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, retrying if a note interrupts the wait.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        while self.sem.acquire().is_err() {}
        MutexGuard { lock: self }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: The guard proves the semaphore's only unit is ours.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As in `deref`, exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release();
    }
}
