//! Memory: the physical frame allocator, the kernel's page tables and direct map, the heap and
//! kernel stacks.
//!
//! Virtual layout (kernel half):
//! - `PHYS_OFFSET` (PML4 256..): every physical address `p` is mapped at `PHYS_OFFSET + p`.
//! - `heap::HEAP_BASE` (PML4 384): the kernel heap, grown on demand.
//! - `kstack::STACKS_BASE` (PML4 385): kernel stacks, each below an unmapped guard page.
//! - `KERNEL_BASE` (PML4 511, top 2 GiB): the kernel image, as linked.

pub mod frame;
pub mod heap;
pub mod kstack;
pub mod mmio;
pub mod paging;
pub mod uaccess;
pub mod vmspace;

use crate::bootinfo::BootInfo;

/// Base of the direct map of physical memory.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Virtual address the kernel image is linked at, minus its physical load address.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// Size of a page and of a frame.
pub const PAGE_SIZE: u64 = 4096;

/// A physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhysAddr(pub u64);

impl PhysAddr {
    /// The address of this physical byte in the direct map.
    pub fn to_virt(self) -> *mut u8 {
        (PHYS_OFFSET + self.0) as *mut u8
    }
}

/// Reads a plain value from physical memory through the direct map. Only for memory that nothing
/// else writes concurrently (boot structures, firmware tables); devices use volatile accessors.
pub fn phys_read<T: Copy>(addr: PhysAddr) -> T {
    // SAFETY: The direct map covers all physical memory (the first 4 GiB from the first
    // instruction, all of it after `paging::init`), so the address is mapped; `read_unaligned`
    // has no alignment requirement, and T: Copy has no drop or validity invariants beyond its
    // bytes, which callers only use with integer types.
    unsafe { core::ptr::read_unaligned(addr.to_virt() as *const T) }
}

/// Brings up memory management from the loader's memory map.
pub fn init(info: &BootInfo) {
    frame::init(info);
    paging::init();
    heap::init();
}

/// Physical address of a kernel-image virtual address.
pub fn kernel_virt_to_phys(virt: u64) -> u64 {
    virt - KERNEL_BASE
}
