//! Device registers: physical MMIO ranges reached through the direct map when it covers them,
//! or mapped uncached into a window of their own (BARs placed above the end of RAM).

use super::{PAGE_SIZE, PHYS_OFFSET, frame::Frame, paging};
use crate::sync::IrqLock;
use core::sync::atomic::{AtomicU64, Ordering};

/// Window for MMIO above the direct map (PML4 slot 386).
const WINDOW: u64 = 0xffff_c100_0000_0000;

static NEXT: IrqLock<u64> = IrqLock::new(WINDOW);
/// End of the direct map (set by paging at boot).
pub static DIRECT_MAP_END: AtomicU64 = AtomicU64::new(1 << 32);

/// A kernel virtual address for `[phys, phys + size)` of device memory.
pub fn map(phys: u64, size: u64) -> Result<u64, &'static str> {
    let end = phys.checked_add(size).ok_or("bad MMIO range")?;
    if end <= DIRECT_MAP_END.load(Ordering::Relaxed) {
        return Ok(PHYS_OFFSET + phys);
    }
    let first = phys & !(PAGE_SIZE - 1);
    let pages = (end - first).div_ceil(PAGE_SIZE);
    let base = {
        let mut next = NEXT.lock();
        let base = *next;
        *next += pages * PAGE_SIZE;
        base
    };
    for i in 0..pages {
        paging::map_mmio_page(
            base + i * PAGE_SIZE,
            Frame(super::PhysAddr(first + i * PAGE_SIZE)),
        )?;
    }
    Ok(base + (phys - first))
}
