//! Nested page tables: guest-physical to host-physical, four levels of 4 KiB pages, in the
//! format of Intel's EPT (SDM Vol. 3C §29.3.2, Tables 29-1 to 29-6) or AMD's nested paging,
//! which is ordinary long-mode paging walked as user accesses (APM Vol. 2 §15.25.5).
//!
//! The tables own only their table pages; the pages they map belong to the VMM's address space
//! (pinned there while the VM lives). Dropping the tables frees the table pages; the backend
//! must have flushed cached translations first.

use crate::mm::frame::{self, Frame};
use crate::mm::{PAGE_SIZE, PhysAddr, phys_read};

/// Which format the hardware walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Intel EPT.
    Ept,
    /// AMD nested paging.
    Npt,
}

const ADDR: u64 = 0x000f_ffff_ffff_f000;

impl Format {
    /// Bits of an entry that points to the next table.
    fn table_bits(self) -> u64 {
        match self {
            // Read, write, execute (SDM Table 29-2..29-4).
            Format::Ept => 0b111,
            // Present, writable, user (APM §15.25.5: nested walks are user accesses).
            Format::Npt => 0b111,
        }
    }

    /// Bits of a leaf entry mapping ordinary write-back RAM.
    fn leaf_bits(self, writable: bool) -> u64 {
        match self {
            // Read, execute, write; memory type WB (6) in bits 5:3, guest PAT honoured
            // (ignore-PAT clear) (SDM Table 29-6, §29.3.7).
            Format::Ept => 0b101 | if writable { 0b010 } else { 0 } | 6 << 3,
            Format::Npt => 0b101 | if writable { 0b010 } else { 0 },
        }
    }

    /// Whether an entry maps something.
    fn present(self, e: u64) -> bool {
        match self {
            Format::Ept => e & 0b111 != 0,
            Format::Npt => e & 1 != 0,
        }
    }
}

/// A set of nested page tables.
pub struct NestedTables {
    format: Format,
    root: Frame,
    /// Table pages, root excluded (for accounting).
    tables: u64,
}

fn entry(table: u64, i: u64) -> *mut u64 {
    PhysAddr(table + i * 8).to_virt().cast()
}

fn index(gpa: u64, level: u32) -> u64 {
    (gpa >> (12 + 9 * (level - 1))) & 0x1ff
}

impl NestedTables {
    /// Empty tables.
    pub fn new(format: Format) -> Option<NestedTables> {
        Some(NestedTables {
            format,
            root: frame::alloc_zeroed()?,
            tables: 0,
        })
    }

    /// Physical address of the root (for the EPTP or nCR3).
    pub fn root(&self) -> u64 {
        self.root.addr()
    }

    /// Maps the guest page at `gpa` to the host frame at `hpa`. A page that is already mapped
    /// is remapped (the caller flushes if it changed).
    pub fn map(&mut self, gpa: u64, hpa: u64, writable: bool) -> Result<(), &'static str> {
        let mut table = self.root.addr();
        for level in (2..=4).rev() {
            let p = entry(table, index(gpa, level));
            // SAFETY: `table` is one of our table pages, reached through the direct map, and
            // only this (locked) structure writes it.
            let e = unsafe { p.read() };
            if self.format.present(e) {
                table = e & ADDR;
                continue;
            }
            let t = frame::alloc_zeroed().ok_or(abi::errors::ENOMEM)?;
            // SAFETY: As above; the new entry points to a fresh zeroed table page.
            unsafe { p.write(t.addr() | self.format.table_bits()) };
            self.tables += 1;
            table = t.addr();
        }
        let leaf = (hpa & ADDR) | self.format.leaf_bits(writable);
        // SAFETY: As above.
        unsafe { entry(table, index(gpa, 1)).write(leaf) };
        Ok(())
    }

    /// Whether `gpa` is mapped.
    pub fn is_mapped(&self, gpa: u64) -> bool {
        let mut table = self.root.addr();
        for level in (1..=4).rev() {
            let e: u64 = phys_read(PhysAddr(table + index(gpa, level) * 8));
            if !self.format.present(e) {
                return false;
            }
            table = e & ADDR;
        }
        true
    }

    /// Bytes of table pages.
    pub fn table_bytes(&self) -> u64 {
        (self.tables + 1) * PAGE_SIZE
    }
}

impl Drop for NestedTables {
    fn drop(&mut self) {
        fn free(format: Format, table: u64, level: u32) {
            for i in 0..512 {
                let e: u64 = phys_read(PhysAddr(table + i * 8));
                if format.present(e) && level > 1 {
                    free(format, e & ADDR, level - 1);
                    frame::free(Frame(PhysAddr(e & ADDR)));
                }
            }
        }
        free(self.format, self.root.addr(), 4);
        frame::free(self.root);
    }
}
