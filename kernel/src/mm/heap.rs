//! The kernel heap: `linked_list_allocator` over a virtual region that grows on demand by
//! mapping fresh frames at its top.

use super::{PAGE_SIZE, frame, paging};
use crate::sync::IrqLock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use linked_list_allocator::Heap;

/// Start of the heap region (PML4 slot 384).
pub const HEAP_BASE: u64 = 0xffff_c000_0000_0000;
/// The heap never grows past this size.
pub const HEAP_MAX: u64 = 64 << 30;
/// Mapped at boot.
const HEAP_INITIAL: u64 = 1 << 20;
/// The least the heap grows by at a time.
const GROW_MIN: u64 = 256 << 10;

struct KernelHeap {
    heap: Heap,
    /// Bytes mapped from HEAP_BASE.
    mapped: u64,
}

/// Bytes of live allocations, as requested (the allocator's own count includes padding and
/// fragments, which move with the allocation pattern).
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
/// Number of live allocations.
static LIVE_OBJECTS: AtomicU64 = AtomicU64::new(0);

static HEAP: IrqLock<KernelHeap> = IrqLock::new(KernelHeap {
    heap: Heap::empty(),
    mapped: 0,
});

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

struct Allocator;

impl KernelHeap {
    /// Maps at least `bytes` more at the top of the heap; returns how much was mapped.
    fn map_more(&mut self, bytes: u64) -> u64 {
        let want = bytes.next_multiple_of(PAGE_SIZE);
        let mut done = 0;
        while done < want && self.mapped + done < HEAP_MAX {
            let Some(f) = frame::alloc() else { break };
            if paging::map_kernel_page(HEAP_BASE + self.mapped + done, f, true).is_err() {
                frame::free(f);
                break;
            }
            done += PAGE_SIZE;
        }
        self.mapped += done;
        done
    }
}

/// Maps the initial heap.
pub fn init() {
    let mut h = HEAP.lock();
    let mapped = h.map_more(HEAP_INITIAL);
    assert_eq!(
        mapped, HEAP_INITIAL,
        "out of memory for the initial kernel heap"
    );
    // SAFETY: [HEAP_BASE, HEAP_BASE + mapped) was just mapped, writable, and is used by
    // nothing but this heap.
    unsafe { h.heap.init(HEAP_BASE as *mut u8, mapped as usize) };
}

// SAFETY: Allocation is delegated to linked_list_allocator under a lock; growth only appends
// freshly mapped pages to the top of the heap's region.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut h = HEAP.lock();
        let p = match h.heap.allocate_first_fit(layout) {
            Ok(p) => p.as_ptr(),
            Err(()) => h.grow_and_allocate(layout),
        };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
            LIVE_OBJECTS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            LIVE_BYTES.fetch_sub(layout.size() as u64, Ordering::Relaxed);
            LIVE_OBJECTS.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: The caller passes a pointer this allocator returned for `layout`.
            unsafe { HEAP.lock().heap.deallocate(p, layout) };
        }
    }
}

impl KernelHeap {
    /// Maps more pages at the top of the heap and retries the allocation.
    fn grow_and_allocate(&mut self, layout: Layout) -> *mut u8 {
        let h = self;
        let grow = (layout.size() as u64 + layout.align() as u64).max(GROW_MIN);
        let added = h.map_more(grow);
        if added > 0 {
            // SAFETY: The pages just mapped follow the heap's current top.
            unsafe { h.heap.extend(added as usize) };
        }
        h.heap
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
}

/// (bytes mapped, bytes in use) of the kernel heap.
pub fn usage() -> (u64, u64) {
    let h = HEAP.lock();
    (h.mapped, h.heap.used() as u64)
}

/// (bytes, count) of live allocations, as requested by their owners.
pub fn live() -> (u64, u64) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_OBJECTS.load(Ordering::Relaxed),
    )
}
