//! User address spaces: a PML4 whose upper half is the kernel's and whose lower half maps the
//! process's segments (text, data, heap, stack, anonymous memory).
//!
//! Pages of a segment are allocated on first touch (demand-zero), except where the loader fills
//! them. Fork copies every present page. Dropping an address space frees its pages and tables.
//! Page-table formats are those of SDM Vol. 3A §4.5 (4-level paging).

use super::frame::{self, Frame};
use super::{PAGE_SIZE, PhysAddr, phys_read};
use abi::sys::layout::{USER_END, USER_MIN};
use alloc::vec::Vec;

const P: u64 = 1;
const W: u64 = 1 << 1;
const U: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

bitflags::bitflags! {
    /// What a segment's pages allow.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Prot: u8 {
        const READ = 1;
        const WRITE = 2;
        const EXEC = 4;
    }
}

/// What a segment is for (shown by `#proc/N/segment` later, and used by `brk`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegKind {
    Text,
    Data,
    /// The data segment's growable end, moved by `brk`.
    Heap,
    Stack,
}

/// A range of the user half with one protection.
#[derive(Clone, Debug)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub kind: SegKind,
}

/// Why a user address could not be made present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// No segment covers the address.
    Unmapped,
    /// The segment does not allow the access.
    Protection,
    /// No memory for the page or its tables.
    OutOfMemory,
}

/// A process's address space.
pub struct AddressSpace {
    pml4: Frame,
    segments: Vec<Segment>,
    /// Number of user pages present (for accounting).
    resident: u64,
    /// Ranges a virtual machine maps into its guest (`virt`): their pages must stay put, so
    /// `set_heap_end` refuses to free them. Not inherited by `fork`.
    pinned: Vec<(u64, u64)>,
}

fn entry(table: u64, index: u64) -> *mut u64 {
    PhysAddr(table + index * 8).to_virt().cast()
}

fn read_entry(table: u64, index: u64) -> u64 {
    phys_read(PhysAddr(table + index * 8))
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & 0x1ff
}

impl AddressSpace {
    /// An empty address space sharing the kernel half.
    pub fn new() -> Option<AddressSpace> {
        let pml4 = frame::alloc_zeroed()?;
        let kernel = super::paging::kernel_pml4();
        for i in 256..512 {
            // SAFETY: Both tables are page-table frames reached through the direct map; the new
            // one is ours alone, the kernel's upper half never changes after boot.
            unsafe { entry(pml4.addr(), i).write(read_entry(kernel, i)) };
        }
        Some(AddressSpace {
            pml4,
            segments: Vec::new(),
            resident: 0,
            pinned: Vec::new(),
        })
    }

    /// Physical address of the PML4, for CR3.
    pub fn pml4(&self) -> u64 {
        self.pml4.addr()
    }

    /// The segments, in address order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Adds a segment over `[start, end)` (page-aligned, inside the user half, overlapping no
    /// other segment).
    pub fn add_segment(
        &mut self,
        start: u64,
        end: u64,
        prot: Prot,
        kind: SegKind,
    ) -> Result<(), &'static str> {
        if !start.is_multiple_of(PAGE_SIZE) || !end.is_multiple_of(PAGE_SIZE) || start >= end {
            return Err("segment not page aligned");
        }
        if start < USER_MIN || end > USER_END {
            return Err("segment outside the user address space");
        }
        if self.segments.iter().any(|s| start < s.end && s.start < end) {
            return Err("segments overlap");
        }
        let at = self.segments.partition_point(|s| s.start < start);
        self.segments.insert(
            at,
            Segment {
                start,
                end,
                prot,
                kind,
            },
        );
        Ok(())
    }

    fn segment_of(&self, va: u64) -> Option<usize> {
        self.segments
            .iter()
            .position(|s| s.start <= va && va < s.end)
    }

    /// Walks to the page-table entry of `va`, creating tables on the way if `create`.
    fn pte(&mut self, va: u64, create: bool) -> Result<Option<*mut u64>, FaultError> {
        let mut table = self.pml4.addr();
        for level in (2..=4).rev() {
            let i = index(va, level);
            let e = read_entry(table, i);
            if e & P == 0 {
                if !create {
                    return Ok(None);
                }
                let t = frame::alloc_zeroed().ok_or(FaultError::OutOfMemory)?;
                // SAFETY: `table` is one of our page tables; the entry points to a fresh zeroed
                // table, user-accessible and writable (the leaf decides the real rights).
                unsafe { entry(table, i).write(t.addr() | P | W | U) };
                table = t.addr();
            } else {
                table = e & ADDR;
            }
        }
        Ok(Some(entry(table, index(va, 1))))
    }

    fn leaf_flags(prot: Prot) -> u64 {
        let mut f = P | U;
        if prot.contains(Prot::WRITE) {
            f |= W;
        }
        if !prot.contains(Prot::EXEC) {
            f |= super::paging::nx().bits();
        }
        f
    }

    /// Maps a fresh zeroed page at `va` (page-aligned) with the protection of its segment.
    fn populate_page(&mut self, va: u64, prot: Prot) -> Result<u64, FaultError> {
        let pte = self.pte(va, true)?.ok_or(FaultError::OutOfMemory)?;
        // SAFETY: `pte` points into one of our page tables.
        let old = unsafe { pte.read() };
        if old & P != 0 {
            return Ok(old & ADDR);
        }
        let f = frame::alloc_zeroed().ok_or(FaultError::OutOfMemory)?;
        // SAFETY: As above; the page was not present, so no TLB entry needs flushing.
        unsafe { pte.write(f.addr() | Self::leaf_flags(prot)) };
        self.resident += 1;
        Ok(f.addr())
    }

    /// Handles a page fault at `va`: allocates the page if a segment allows the access.
    pub fn fault(&mut self, va: u64, write: bool, exec: bool) -> Result<(), FaultError> {
        let seg = self.segment_of(va).ok_or(FaultError::Unmapped)?;
        let prot = self.segments[seg].prot;
        if (write && !prot.contains(Prot::WRITE)) || (exec && !prot.contains(Prot::EXEC)) {
            return Err(FaultError::Protection);
        }
        let page = va & !(PAGE_SIZE - 1);
        if let Some(pte) = self.pte(page, false)?
            // SAFETY: Reading our own PTE.
            && unsafe { pte.read() } & P != 0
        {
            // Present and allowed: a spurious fault (another thread populated it).
            return Ok(());
        }
        self.populate_page(page, prot).map(|_| ())
    }

    /// The physical address backing `va`, populating the page if its segment allows `write`.
    pub fn resolve(&mut self, va: u64, write: bool) -> Result<u64, FaultError> {
        self.fault(va, write, false)?;
        let pte = self
            .pte(va & !(PAGE_SIZE - 1), false)?
            .ok_or(FaultError::Unmapped)?;
        // SAFETY: Reading our own PTE.
        let e = unsafe { pte.read() };
        Ok((e & ADDR) + (va & (PAGE_SIZE - 1)))
    }

    /// Copies `data` to user address `va` through the direct map, populating pages as needed
    /// (for the loader; it ignores write protection, which it is setting up).
    pub fn write_bytes(&mut self, mut va: u64, mut data: &[u8]) -> Result<(), FaultError> {
        while !data.is_empty() {
            let seg = self.segment_of(va).ok_or(FaultError::Unmapped)?;
            let phys = self.populate_page(va & !(PAGE_SIZE - 1), self.segments[seg].prot)?;
            let off = va % PAGE_SIZE;
            let n = data.len().min((PAGE_SIZE - off) as usize);
            // SAFETY: `phys + off .. + n` lies inside one frame we own, reached through the
            // direct map; `data` is kernel memory that does not overlap it.
            unsafe {
                core::ptr::copy_nonoverlapping(data.as_ptr(), PhysAddr(phys + off).to_virt(), n);
            }
            va += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// Moves the end of the heap segment to `new_end` (rounded up to a page); frees pages
    /// when it shrinks. Returns the new end.
    pub fn set_heap_end(&mut self, new_end: u64) -> Result<u64, &'static str> {
        let seg = self
            .segments
            .iter()
            .position(|s| s.kind == SegKind::Heap)
            .ok_or("no heap segment")?;
        let start = self.segments[seg].start;
        let end = new_end
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or("bad address")?
            .max(start + PAGE_SIZE);
        let next = self.segments.get(seg + 1).map_or(USER_END, |s| s.start);
        if end > next {
            return Err("heap would overlap another segment");
        }
        let old_end = self.segments[seg].end;
        if self.pinned.iter().any(|&(s, e)| s < old_end && end < e) {
            return Err("memory in use by a virtual machine");
        }
        self.segments[seg].end = end;
        if end < old_end {
            self.unmap_range(end, old_end);
        }
        Ok(end)
    }

    /// Pins `[start, end)` (page-aligned) for a virtual machine's guest memory: every page of
    /// it must lie in a writable segment, and none of it may be freed until `unpin`.
    pub fn pin(&mut self, start: u64, end: u64) -> Result<(), &'static str> {
        if !start.is_multiple_of(PAGE_SIZE) || !end.is_multiple_of(PAGE_SIZE) || start >= end {
            return Err("guest memory not page aligned");
        }
        let mut at = start;
        while at < end {
            let s = self
                .segment_of(at)
                .map(|i| &self.segments[i])
                .filter(|s| s.prot.contains(Prot::WRITE))
                .ok_or("guest memory is not writable memory of the process")?;
            at = s.end;
        }
        self.pinned.push((start, end));
        Ok(())
    }

    /// Undoes one `pin` of exactly `[start, end)`.
    pub fn unpin(&mut self, start: u64, end: u64) {
        if let Some(i) = self.pinned.iter().position(|&r| r == (start, end)) {
            self.pinned.swap_remove(i);
        }
    }

    /// Frees the pages of `[start, end)`.
    fn unmap_range(&mut self, start: u64, end: u64) {
        let mut va = start;
        while va < end {
            if let Ok(Some(pte)) = self.pte(va, false) {
                // SAFETY: Our own PTE; the page is removed and the TLB entry flushed below.
                let e = unsafe { pte.read() };
                if e & P != 0 {
                    // SAFETY: As above.
                    unsafe { pte.write(0) };
                    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
                    frame::free(Frame(PhysAddr(e & ADDR)));
                    self.resident -= 1;
                }
            }
            va += PAGE_SIZE;
        }
    }

    /// A copy: the same segments, every present page copied.
    pub fn fork(&self) -> Option<AddressSpace> {
        let mut child = AddressSpace::new()?;
        child.segments = self.segments.clone();
        let mut ok = true;
        self.for_each_page(&mut |va, e| {
            if !ok {
                return;
            }
            let Some(f) = frame::alloc() else {
                ok = false;
                return;
            };
            // SAFETY: Copies one whole frame to a fresh frame through the direct map.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    PhysAddr(e & ADDR).to_virt(),
                    f.as_mut_ptr(),
                    PAGE_SIZE as usize,
                );
            }
            match child.pte(va, true) {
                // SAFETY: A PTE of the child's fresh tables.
                Ok(Some(pte)) => unsafe { pte.write(f.addr() | (e & !ADDR)) },
                _ => {
                    frame::free(f);
                    ok = false;
                    return;
                }
            }
            child.resident += 1;
        });
        ok.then_some(child)
    }

    /// Calls `f(va, pte)` for every present user page.
    fn for_each_page(&self, f: &mut dyn FnMut(u64, u64)) {
        fn walk(table: u64, level: u32, base: u64, f: &mut dyn FnMut(u64, u64)) {
            let entries = if level == 4 { 256 } else { 512 };
            for i in 0..entries {
                let e = read_entry(table, i);
                if e & P == 0 {
                    continue;
                }
                let va = base | (i << (12 + 9 * (level - 1)));
                if level == 1 {
                    f(va, e);
                } else if e & PS == 0 {
                    walk(e & ADDR, level - 1, va, f);
                }
            }
        }
        walk(self.pml4.addr(), 4, 0, f);
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        fn free(table: u64, level: u32) {
            let entries = if level == 4 { 256 } else { 512 };
            for i in 0..entries {
                let e = read_entry(table, i);
                if e & P == 0 {
                    continue;
                }
                if level > 1 {
                    free(e & ADDR, level - 1);
                }
                frame::free(Frame(PhysAddr(e & ADDR)));
            }
        }
        // The caller made sure no CPU runs on these tables any more.
        free(self.pml4.addr(), 4);
        frame::free(self.pml4);
    }
}
