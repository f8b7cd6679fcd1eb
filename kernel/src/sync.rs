//! Locks. `IrqLock` is a spin lock that also masks interrupts while held, so that data shared
//! with interrupt handlers cannot deadlock against the code they interrupted.

use core::ops::{Deref, DerefMut};
use x86_64::instructions::interrupts;

/// A spin lock that disables interrupts on this CPU while it is held.
pub struct IrqLock<T> {
    inner: spin::Mutex<T>,
}

/// Proof that an `IrqLock` is held; restores the interrupt flag when dropped.
pub struct IrqGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    were_enabled: bool,
}

impl<T> IrqLock<T> {
    /// A new lock around `value`.
    pub const fn new(value: T) -> Self {
        IrqLock {
            inner: spin::Mutex::new(value),
        }
    }

    /// Disables interrupts and takes the lock.
    pub fn lock(&self) -> IrqGuard<'_, T> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        IrqGuard {
            guard: Some(self.inner.lock()),
            were_enabled,
        }
    }

    /// Takes the lock if it is free (for the panic path, which must not wait on a holder).
    pub fn try_lock(&self) -> Option<IrqGuard<'_, T>> {
        let were_enabled = interrupts::are_enabled();
        interrupts::disable();
        match self.inner.try_lock() {
            Some(g) => Some(IrqGuard {
                guard: Some(g),
                were_enabled,
            }),
            None => {
                if were_enabled {
                    interrupts::enable();
                }
                None
            }
        }
    }
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard is present until drop")
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard is present until drop")
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.were_enabled {
            interrupts::enable();
        }
    }
}
