//! The physical frame allocator: one bit per 4 KiB frame (set = free), kept in usable memory
//! found from the boot memory map.
//!
//! Reserved at boot: the first MiB (firmware, real-mode structures), the kernel image, the boot
//! modules (the boot archive stays where the loader put it) and the bitmap itself.

use super::{PAGE_SIZE, PhysAddr, kernel_virt_to_phys};
use crate::bootinfo::{BootInfo, RegionKind};
use crate::sync::IrqLock;
use core::sync::atomic::{AtomicU64, Ordering};

struct Bitmap {
    /// One bit per frame, frame 0 first; points into the direct map.
    words: &'static mut [u64],
    /// Where the next search starts (a word index).
    hint: usize,
    free: u64,
}

static BITMAP: IrqLock<Option<Bitmap>> = IrqLock::new(None);
static TOTAL: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    static __kernel_end: u8;
}

/// A physical frame handed out by the allocator. Ownership is by convention: whoever holds it
/// gives it back with `free`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame(pub PhysAddr);

impl Frame {
    /// The frame's physical address.
    pub fn addr(self) -> u64 {
        self.0.0
    }

    /// The frame's contents through the direct map.
    pub fn as_mut_ptr(self) -> *mut u8 {
        self.0.to_virt()
    }
}

/// Builds the allocator from the memory map.
pub fn init(info: &BootInfo) {
    let usable = || {
        info.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
    };
    let top = usable().map(|r| r.start + r.len).max().unwrap_or(0);
    let frames = top / PAGE_SIZE;
    let words = frames.div_ceil(64);
    let bitmap_bytes = (words * 8).next_multiple_of(PAGE_SIZE);

    let kernel_end = kernel_virt_to_phys(&raw const __kernel_end as u64);
    let reserved = |start: u64, end: u64| {
        start < kernel_end
            || info
                .modules()
                .iter()
                .any(|m| start < m.start + m.len && m.start < end)
    };

    // The bitmap goes in the first usable stretch (below 4 GiB, inside the early direct map)
    // that is big enough and overlaps nothing reserved.
    let mut place = None;
    'regions: for r in usable() {
        let mut start = r.start.next_multiple_of(PAGE_SIZE).max(kernel_end);
        while start + bitmap_bytes <= r.start + r.len && start + bitmap_bytes <= 1 << 32 {
            if !reserved(start, start + bitmap_bytes) {
                place = Some(start);
                break 'regions;
            }
            start += PAGE_SIZE;
        }
    }
    let Some(bitmap_at) = place else {
        panic!("no room for the frame bitmap ({bitmap_bytes} bytes)");
    };

    // SAFETY: The range is usable RAM that nothing else uses (checked above), mapped by the
    // early direct map, and this is the only reference to it from now on.
    let words: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(PhysAddr(bitmap_at).to_virt().cast(), words as usize)
    };
    words.fill(0);
    let mut bitmap = Bitmap {
        words,
        hint: 0,
        free: 0,
    };
    let mut total = 0;
    for r in usable() {
        let first = r.start.div_ceil(PAGE_SIZE);
        let last = (r.start + r.len) / PAGE_SIZE;
        for f in first..last {
            total += PAGE_SIZE;
            let (start, end) = (f * PAGE_SIZE, (f + 1) * PAGE_SIZE);
            let is_bitmap = start < bitmap_at + bitmap_bytes && bitmap_at < end;
            if start >= 1 << 20 && !reserved(start, end) && !is_bitmap {
                bitmap.set_free(f as usize);
            }
        }
    }
    TOTAL.store(total, Ordering::Relaxed);
    *BITMAP.lock() = Some(bitmap);
}

impl Bitmap {
    fn set_free(&mut self, frame: usize) {
        let (w, b) = (frame / 64, frame % 64);
        debug_assert!(
            self.words[w] & (1 << b) == 0,
            "frame {frame:#x} freed twice"
        );
        self.words[w] |= 1 << b;
        self.free += 1;
    }

    fn take(&mut self, frame: usize) {
        self.words[frame / 64] &= !(1 << (frame % 64));
        self.free -= 1;
    }

    fn alloc(&mut self) -> Option<usize> {
        let n = self.words.len();
        for i in 0..n {
            let w = (self.hint + i) % n;
            if self.words[w] != 0 {
                let frame = w * 64 + self.words[w].trailing_zeros() as usize;
                self.take(frame);
                self.hint = w;
                return Some(frame);
            }
        }
        None
    }

    /// First fit of `count` free frames whose first frame is a multiple of `align` frames.
    fn alloc_contiguous(&mut self, count: usize, align: usize) -> Option<usize> {
        let is_free = |words: &[u64], f: usize| words[f / 64] & (1 << (f % 64)) != 0;
        let frames = self.words.len() * 64;
        let mut start = 0;
        while start + count <= frames {
            match (start..start + count).find(|&f| !is_free(self.words, f)) {
                None => {
                    for f in start..start + count {
                        self.take(f);
                    }
                    return Some(start);
                }
                Some(used) => start = (used + 1).next_multiple_of(align),
            }
        }
        None
    }
}

/// Allocates one frame (contents undefined).
pub fn alloc() -> Option<Frame> {
    let f = BITMAP.lock().as_mut()?.alloc()?;
    Some(Frame(PhysAddr(f as u64 * PAGE_SIZE)))
}

/// Allocates one zeroed frame.
pub fn alloc_zeroed() -> Option<Frame> {
    let frame = alloc()?;
    // SAFETY: The frame was just allocated, so nothing else refers to it; the direct map covers it.
    unsafe { core::ptr::write_bytes(frame.as_mut_ptr(), 0, PAGE_SIZE as usize) };
    Some(frame)
}

/// Allocates `count` physically contiguous frames aligned to `align` bytes (a power of two,
/// at least a page). Returns the first frame.
pub fn alloc_contiguous(count: usize, align: u64) -> Option<Frame> {
    let align_frames = (align / PAGE_SIZE).max(1) as usize;
    let f = BITMAP
        .lock()
        .as_mut()?
        .alloc_contiguous(count, align_frames)?;
    Some(Frame(PhysAddr(f as u64 * PAGE_SIZE)))
}

/// Returns a frame to the allocator.
pub fn free(frame: Frame) {
    if let Some(b) = BITMAP.lock().as_mut() {
        b.set_free((frame.addr() / PAGE_SIZE) as usize);
    }
}

/// Frees `count` contiguous frames starting at `first`.
pub fn free_contiguous(first: Frame, count: usize) {
    if let Some(b) = BITMAP.lock().as_mut() {
        let f0 = (first.addr() / PAGE_SIZE) as usize;
        for f in f0..f0 + count {
            b.set_free(f);
        }
    }
}

/// Bytes of usable RAM the loader reported.
pub fn total_bytes() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Bytes currently free.
pub fn free_bytes() -> u64 {
    BITMAP.lock().as_ref().map_or(0, |b| b.free * PAGE_SIZE)
}

/// Highest physical address of usable RAM (exclusive).
pub fn top_of_ram() -> u64 {
    BITMAP
        .lock()
        .as_ref()
        .map_or(0, |b| b.words.len() as u64 * 64 * PAGE_SIZE)
}
