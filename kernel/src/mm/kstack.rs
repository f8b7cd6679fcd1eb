//! Kernel stacks: each in its own slot of a dedicated region, with an unmapped guard page below
//! it so that an overflow faults (and is reported as such) instead of corrupting memory.

use super::{PAGE_SIZE, frame, paging};
use crate::sync::IrqLock;
use alloc::vec::Vec;

/// Start of the stack region (PML4 slot 385).
pub const STACKS_BASE: u64 = 0xffff_c080_0000_0000;
/// Usable bytes of each kernel stack.
pub const STACK_SIZE: u64 = 64 * 1024;
/// Bytes each slot spans: a guard page, then the stack.
const SLOT: u64 = STACK_SIZE + PAGE_SIZE;
/// Number of slots in the region.
const SLOTS: u64 = (512 << 30) / SLOT;

struct Slots {
    next: u64,
    free: Vec<u64>,
}

static SLOTS_STATE: IrqLock<Slots> = IrqLock::new(Slots {
    next: 0,
    free: Vec::new(),
});

/// A kernel stack; unmapped and freed on drop.
#[derive(Debug)]
pub struct KernelStack {
    slot: u64,
}

impl KernelStack {
    /// Allocates and maps a stack.
    pub fn new() -> Option<KernelStack> {
        let slot = {
            let mut s = SLOTS_STATE.lock();
            match s.free.pop() {
                Some(slot) => slot,
                None if s.next < SLOTS => {
                    s.next += 1;
                    s.next - 1
                }
                None => return None,
            }
        };
        let stack = KernelStack { slot };
        for page in 0..STACK_SIZE / PAGE_SIZE {
            let f = frame::alloc()?;
            if paging::map_kernel_page(stack.bottom() + page * PAGE_SIZE, f, true).is_err() {
                frame::free(f);
                return None;
            }
        }
        Some(stack)
    }

    /// Lowest usable address.
    pub fn bottom(&self) -> u64 {
        STACKS_BASE + self.slot * SLOT + PAGE_SIZE
    }

    /// One past the highest usable address (the initial stack pointer).
    pub fn top(&self) -> u64 {
        self.bottom() + STACK_SIZE
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        for page in 0..STACK_SIZE / PAGE_SIZE {
            if let Some(f) = paging::unmap_kernel_page(self.bottom() + page * PAGE_SIZE) {
                frame::free(f);
            }
        }
        SLOTS_STATE.lock().free.push(self.slot);
    }
}

/// If `addr` is in the guard page of a kernel stack, that stack's slot number.
pub fn guard_page_slot(addr: u64) -> Option<u64> {
    let off = addr.checked_sub(STACKS_BASE)?;
    let slot = off / SLOT;
    (slot < SLOTS && off % SLOT < PAGE_SIZE).then_some(slot)
}
