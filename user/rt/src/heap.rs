//! The global allocator: `linked_list_allocator` over the data segment's heap, grown with
//! `brk` when it runs out.

use abi::sys::Sys;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;

/// The least the heap grows by.
const GROW: u64 = 256 * 1024;

struct State {
    heap: Heap,
    end: u64,
}

static HEAP: spin::Mutex<State> = spin::Mutex::new(State {
    heap: Heap::empty(),
    end: 0,
});

#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

struct Allocator;

/// Sets up the heap at the current end of the data segment.
pub fn init() {
    let start = crate::sys::call(Sys::Brk, [0; 6]);
    let end = crate::sys::call(Sys::Brk, [start + GROW, 0, 0, 0, 0, 0]);
    let mut s = HEAP.lock();
    if end != abi::sys::ERROR && end > start {
        // SAFETY: [start, end) is the heap segment the kernel just sized for us, used by
        // nothing else.
        unsafe { s.heap.init(start as *mut u8, (end - start) as usize) };
        s.end = end;
    }
}

// SAFETY: Allocation is delegated to linked_list_allocator under a lock; growth appends memory
// the kernel has just added to the top of the heap segment.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut s = HEAP.lock();
        if let Ok(p) = s.heap.allocate_first_fit(layout) {
            return p.as_ptr();
        }
        let want = (layout.size() as u64 + layout.align() as u64).max(GROW);
        let end = crate::sys::call(Sys::Brk, [s.end + want, 0, 0, 0, 0, 0]);
        if end != abi::sys::ERROR && end > s.end {
            let added = (end - s.end) as usize;
            s.end = end;
            // SAFETY: The kernel extended the heap segment by `added` bytes at its old end.
            unsafe { s.heap.extend(added) };
        }
        s.heap
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: The caller passes a pointer this allocator returned for `layout`.
            unsafe { HEAP.lock().heap.deallocate(p, layout) };
        }
    }
}
