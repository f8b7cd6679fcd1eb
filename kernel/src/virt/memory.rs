//! A VM's guest-physical memory: regions of the VMM process's own memory (`ctl` `mem GPA LEN
//! VA`), pinned in its address space, and the nested page tables that map them, filled on
//! demand when the guest first touches a page.
//!
//! The kernel reads and writes guest memory only through [`GuestMemory::read`] and
//! [`GuestMemory::write`], which resolve each page through the VMM's address space and copy
//! through the direct map: the guest may change the bytes at any moment, so nothing here keeps
//! a Rust reference into them.

use super::npt::{Format, NestedTables};
use crate::error::KResult;
use crate::mm::{PAGE_SIZE, PhysAddr};
use crate::proc::SharedSpace;
use abi::errors::{EBADARG, ENOMEM};
use alloc::vec::Vec;

/// Guest-physical addresses stop here (52-bit physical addresses).
const GPA_LIMIT: u64 = 1 << 52;
/// Pages in the aligned block a nested fault maps at once (64 KiB).
const FAULT_AROUND: u64 = 16;
/// Entries of the guest-page to host-page cache.
const CACHE: usize = 64;

/// One registered range.
#[derive(Clone, Copy, Debug)]
struct Region {
    gpa: u64,
    len: u64,
    va: u64,
}

/// A VM's memory.
pub struct GuestMemory {
    space: SharedSpace,
    regions: Vec<Region>,
    tables: NestedTables,
    /// Pages faulted in (for `stats`).
    pub mapped_pages: u64,
    /// Recently resolved pages, (guest page number + 1, host page address), direct-mapped: the
    /// VMM's pages are pinned while the VM lives, so an entry never goes stale. It spares the
    /// walk of the VMM's page tables on every guest page-table read (instruction fetch, MMIO
    /// decode, string I/O).
    cache: core::cell::RefCell<[(u64, u64); CACHE]>,
}

/// What a guest-physical page is.
pub enum Backing {
    /// RAM, now mapped.
    Ram,
    /// Nothing registered: MMIO for an in-kernel device or the VMM.
    Unbacked,
}

impl GuestMemory {
    /// Empty memory over the VMM's address space.
    pub fn new(space: SharedSpace, format: Format) -> KResult<GuestMemory> {
        Ok(GuestMemory {
            space,
            regions: Vec::new(),
            tables: NestedTables::new(format).ok_or(ENOMEM)?,
            mapped_pages: 0,
            cache: core::cell::RefCell::new([(0, 0); CACHE]),
        })
    }

    /// Root of the nested page tables.
    pub fn root(&self) -> u64 {
        self.tables.root()
    }

    /// Registers `[gpa, gpa+len)` as the VMM's memory at `va`.
    pub fn add_region(&mut self, gpa: u64, len: u64, va: u64) -> KResult<()> {
        let aligned = [gpa, len, va].iter().all(|v| v.is_multiple_of(PAGE_SIZE));
        let end = gpa.checked_add(len).filter(|&e| e <= GPA_LIMIT && len > 0);
        let (true, Some(end)) = (aligned, end) else {
            return Err(alloc::format!(
                "mem {gpa:#x} {len:#x} {va:#x}: needs page-aligned, non-empty ranges below 2^52"
            )
            .into());
        };
        if self
            .regions
            .iter()
            .any(|r| gpa < r.gpa + r.len && r.gpa < end)
        {
            return Err(alloc::format!("mem {gpa:#x} {len:#x}: overlaps another region").into());
        }
        let va_end = va.checked_add(len).ok_or(EBADARG)?;
        self.space
            .lock()
            .pin(va, va_end)
            .map_err(|e| alloc::format!("mem {gpa:#x} {len:#x} {va:#x}: {e}"))?;
        self.regions.push(Region { gpa, len, va });
        Ok(())
    }

    fn region(&self, gpa: u64) -> Option<&Region> {
        self.regions
            .iter()
            .find(|r| gpa >= r.gpa && gpa - r.gpa < r.len)
    }

    /// Host-physical address of the guest byte at `gpa`, populating the VMM's page if needed.
    fn resolve(&self, gpa: u64) -> Option<u64> {
        let page = gpa / PAGE_SIZE;
        let slot = page as usize % CACHE;
        let hit = self.cache.borrow()[slot];
        if hit.0 == page + 1 {
            return Some(hit.1 | (gpa % PAGE_SIZE));
        }
        let r = self.region(gpa)?;
        let va = r.va + (gpa - r.gpa);
        let hpa = self.space.lock().resolve(va, true).ok()?;
        self.cache.borrow_mut()[slot] = (page + 1, hpa & !(PAGE_SIZE - 1));
        Some(hpa)
    }

    /// Handles a nested fault at `gpa`: maps the page, and the rest of its aligned block of
    /// [`FAULT_AROUND`] pages, if it is RAM.
    pub fn fault(&mut self, gpa: u64) -> KResult<Backing> {
        let page = gpa & !(PAGE_SIZE - 1);
        let Some(r) = self.region(page).copied() else {
            return Ok(Backing::Unbacked);
        };
        let hpa = self.resolve(page).ok_or(ENOMEM)?;
        self.tables.map(page, hpa, true)?;
        self.mapped_pages += 1;
        // A guest touches memory in runs (a boot clears and fills megabytes), and each nested
        // fault is a VM exit, so the whole block is mapped at once, populating the VMM's pages
        // it has not touched yet (at most FAULT_AROUND - 1 pages more than the guest used).
        let block = FAULT_AROUND * PAGE_SIZE;
        let start = (page & !(block - 1)).max(r.gpa);
        let end = (r.gpa + r.len).min((page & !(block - 1)) + block);
        for next in (start..end).step_by(PAGE_SIZE as usize) {
            if next == page || self.tables.is_mapped(next) {
                continue;
            }
            // Out of memory here only ends the fault-around: the guest's page is mapped.
            match self.resolve(next).map(|h| self.tables.map(next, h, true)) {
                Some(Ok(())) => self.mapped_pages += 1,
                _ => break,
            }
        }
        Ok(Backing::Ram)
    }

    /// Whether `gpa` is RAM.
    pub fn is_ram(&self, gpa: u64) -> bool {
        self.region(gpa).is_some()
    }

    /// Copies guest bytes at `gpa` into `buf`; fails if any byte is not RAM.
    pub fn read(&self, mut gpa: u64, buf: &mut [u8]) -> Result<(), u64> {
        let mut done = 0;
        while done < buf.len() {
            let hpa = self.resolve(gpa).ok_or(gpa)?;
            let n = (buf.len() - done).min((PAGE_SIZE - gpa % PAGE_SIZE) as usize);
            // SAFETY: `hpa..hpa+n` lies in one frame of the VMM's (pinned) memory, reached
            // through the direct map; the guest may write it concurrently, which a byte copy
            // into our buffer tolerates.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    PhysAddr(hpa).to_virt(),
                    buf[done..].as_mut_ptr(),
                    n,
                );
            }
            done += n;
            gpa += n as u64;
        }
        Ok(())
    }

    /// Copies `data` into guest memory at `gpa`; fails (having copied nothing past the failing
    /// page) if a byte is not RAM.
    pub fn write(&self, mut gpa: u64, data: &[u8]) -> Result<(), u64> {
        let mut done = 0;
        while done < data.len() {
            let hpa = self.resolve(gpa).ok_or(gpa)?;
            let n = (data.len() - done).min((PAGE_SIZE - gpa % PAGE_SIZE) as usize);
            // SAFETY: As in `read`, with the copy going the other way.
            unsafe {
                core::ptr::copy_nonoverlapping(data[done..].as_ptr(), PhysAddr(hpa).to_virt(), n);
            }
            done += n;
            gpa += n as u64;
        }
        Ok(())
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&self, gpa: u64) -> Result<u64, u64> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Bytes of nested page tables.
    pub fn table_bytes(&self) -> u64 {
        self.tables.table_bytes()
    }

    /// Bytes registered.
    pub fn registered_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        let mut space = self.space.lock();
        for r in &self.regions {
            space.unpin(r.va, r.va + r.len);
        }
    }
}
