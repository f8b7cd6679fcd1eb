//! Interrupt lines out of the device models.
//!
//! A device model drives a level: asserted while it has an interrupt the guest has not
//! acknowledged (for virtio-mmio, while InterruptStatus is non-zero, virtio 1.2 §4.2.2). The
//! kernel's `#vm` device turns that into an IOAPIC pin. The MP table declares the virtio pins as
//! ISA interrupts, which are edge-triggered, so the glue should inject on each rising edge; that
//! is enough for Linux's virtio-mmio driver, which acknowledges InterruptStatus before it looks at
//! the used rings, so work that arrives while the line is already high is never missed.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// One interrupt line into the guest.
pub trait IrqLine {
    /// Sets the line's level. Called only on changes.
    fn set_level(&self, asserted: bool);
}

impl<T: IrqLine + ?Sized> IrqLine for alloc::sync::Arc<T> {
    fn set_level(&self, asserted: bool) {
        (**self).set_level(asserted)
    }
}

/// A line for tests: remembers its level and counts rising edges.
#[derive(Default)]
pub struct FakeIrqLine {
    level: AtomicBool,
    edges: AtomicU32,
}

impl FakeIrqLine {
    /// Whether the line is asserted.
    pub fn level(&self) -> bool {
        self.level.load(Ordering::SeqCst)
    }

    /// How many times the line went from low to high.
    pub fn rising_edges(&self) -> u32 {
        self.edges.load(Ordering::SeqCst)
    }
}

impl IrqLine for FakeIrqLine {
    fn set_level(&self, asserted: bool) {
        if asserted && !self.level.swap(true, Ordering::SeqCst) {
            self.edges.fetch_add(1, Ordering::SeqCst);
        } else if !asserted {
            self.level.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_counts_rising_edges_only() {
        let l = FakeIrqLine::default();
        l.set_level(true);
        l.set_level(true);
        assert_eq!(l.rising_edges(), 1);
        l.set_level(false);
        assert!(!l.level());
        l.set_level(true);
        assert_eq!(l.rising_edges(), 2);
    }
}
