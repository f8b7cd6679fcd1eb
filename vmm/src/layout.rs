//! The guest-physical address map: where RAM, the boot structures and the MMIO window live.
//!
//! ```text
//! 0x0000_0000  real-mode IVT and BIOS data area (left zero: no EBDA pointer)
//! 0x0000_0500  boot GDT                       BOOT_GDT
//! 0x0000_1000  identity page tables (6 pages)  PML4, PDPT, 4 PDs mapping 0..4 GiB with 2 MiB pages
//! 0x0000_7000  boot_params ("zero page")       ZERO_PAGE     (64-bit boot protocol)
//! 0x0000_8000  hvm_start_info, modlist, memmap PVH_START_INFO (PVH entry)
//! 0x0000_f000  top of the boot stack           BOOT_STACK_TOP
//! 0x0002_0000  kernel command line             CMDLINE, at most CMDLINE_MAX bytes
//! 0x0009_fc00  MP floating pointer + table     MP_TABLE (reserved in e820, like an EBDA)
//! 0x000a_0000  legacy VGA/BIOS hole            reserved in e820
//! 0x0010_0000  RAM: the kernel (at its own load address, 16 MiB for Linux), the initrd at the top
//! 0xc000_0000  the 32-bit MMIO hole: virtio-mmio window, IOAPIC, LAPIC
//! 0x1_0000_0000 RAM above the hole, when the guest has more than 3 GiB
//! ```
//!
//! Everything below 1 MiB that Linux must not reuse before it has read it is either inside the
//! first megabyte, which Linux 6.1 reserves as a whole, or marked reserved in the memory map. The
//! e820 types are the ACPI address range types, which PVH's `hvm_memmap_table_entry` shares
//! (boot.rst, zero-page.rst; Xen `start_info.h`).

use alloc::vec::Vec;

use crate::memory::RamRegion;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;
/// Size of a page.
pub const PAGE_SIZE: u64 = 0x1000;

/// The boot GDT (the entries are described in [`crate::linux::entry`]).
pub const BOOT_GDT: u64 = 0x500;
/// Root of the boot page tables (PML4).
pub const PML4: u64 = 0x1000;
/// The one page-directory-pointer table.
pub const PDPT: u64 = 0x2000;
/// The first of four page directories, mapping 0..4 GiB with 2 MiB pages.
pub const PD: u64 = 0x3000;
/// Linux `struct boot_params`, the "zero page".
pub const ZERO_PAGE: u64 = 0x7000;
/// PVH `struct hvm_start_info`, followed by its module list and memory map.
pub const PVH_START_INFO: u64 = 0x8000;
/// Initial stack pointer (neither Linux entry needs one, but a defined value costs nothing).
pub const BOOT_STACK_TOP: u64 = 0xf000;
/// The kernel command line.
pub const CMDLINE: u64 = 0x2_0000;
/// Room for the command line, including its terminating NUL.
pub const CMDLINE_MAX: u64 = 0x1_0000;
/// The MP floating pointer structure, followed by the MP configuration table. Linux scans the
/// last KiB of base memory (639 KiB) for it (MP spec 1.4 §4).
pub const MP_TABLE: u64 = 0x9_fc00;
/// End of usable base memory: `[MP_TABLE, 1 MiB)` is reserved.
pub const BASE_RAM_END: u64 = MP_TABLE;
/// Start of RAM above the legacy hole.
pub const HIGH_RAM_START: u64 = MIB;
/// Where the kernel and initrd may go: nothing of ours lives above this in low RAM.
pub const KERNEL_AREA_START: u64 = MIB;

/// Start of the 32-bit MMIO hole; RAM below 4 GiB ends here.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole; RAM continues here.
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// First virtio-mmio device.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// Address space of each virtio-mmio device (registers at 0x000-0x0ff, config from 0x100).
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// Most virtio-mmio devices the window holds.
pub const VIRTIO_MMIO_SLOTS: u64 = 64;
const _: () = assert!(VIRTIO_MMIO_BASE + VIRTIO_MMIO_SLOTS * VIRTIO_MMIO_SIZE <= IOAPIC_BASE);
/// The IOAPIC's registers (the kernel's in-kernel IOAPIC answers here).
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Pins on the IOAPIC.
pub const IOAPIC_PINS: u8 = 24;
/// The local APICs' registers.
pub const LAPIC_BASE: u64 = 0xfee0_0000;

/// Smallest guest we build: the kernel loads at 16 MiB and needs room above it.
pub const MIN_MEMORY: u64 = 32 * MIB;
/// Largest guest we build: an explicit limit rather than whatever the host lets us map.
pub const MAX_MEMORY: u64 = 64 * GIB;

/// Address range types of the e820 map (ACPI 6.5 §15, boot.rst; PVH uses the same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// Usable RAM.
    Ram = 1,
    /// Reserved; not for the OS.
    Reserved = 2,
    /// ACPI tables, reclaimable.
    Acpi = 3,
    /// ACPI non-volatile storage.
    Nvs = 4,
    /// Unusable.
    Unusable = 5,
}

/// One entry of the memory map the guest gets (e820 for bzImage, the PVH memmap for vmlinux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// Start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: E820Type,
}

/// The address map of one guest, derived from its memory size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLayout {
    memory: u64,
}

/// A memory size outside [`MIN_MEMORY`, `MAX_MEMORY`] or not page-aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMemorySize(pub u64);

impl core::fmt::Display for BadMemorySize {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "guest memory of {} bytes: must be a multiple of 4 KiB between {} MiB and {} GiB",
            self.0,
            MIN_MEMORY / MIB,
            MAX_MEMORY / GIB
        )
    }
}

impl GuestLayout {
    /// The layout of a guest with `memory` bytes of RAM.
    pub fn new(memory: u64) -> Result<GuestLayout, BadMemorySize> {
        if !(MIN_MEMORY..=MAX_MEMORY).contains(&memory) || !memory.is_multiple_of(PAGE_SIZE) {
            return Err(BadMemorySize(memory));
        }
        Ok(GuestLayout { memory })
    }

    /// Bytes of guest RAM.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    /// End of RAM below the 32-bit hole.
    pub fn low_ram_end(&self) -> u64 {
        self.memory.min(MMIO_HOLE_START)
    }

    /// The guest-physical RAM regions the VMM must back: one below the hole, and one above
    /// 4 GiB for what does not fit below it.
    pub fn ram_regions(&self) -> Vec<RamRegion> {
        let mut v = alloc::vec![RamRegion {
            start: 0,
            len: self.low_ram_end()
        }];
        if self.memory > MMIO_HOLE_START {
            v.push(RamRegion {
                start: MMIO_HOLE_END,
                len: self.memory - MMIO_HOLE_START,
            });
        }
        v
    }

    /// The memory map the guest sees.
    pub fn e820(&self) -> Vec<E820Entry> {
        let mut v = alloc::vec![
            E820Entry {
                addr: 0,
                size: BASE_RAM_END,
                kind: E820Type::Ram
            },
            E820Entry {
                addr: BASE_RAM_END,
                size: HIGH_RAM_START - BASE_RAM_END,
                kind: E820Type::Reserved
            },
            E820Entry {
                addr: HIGH_RAM_START,
                size: self.low_ram_end() - HIGH_RAM_START,
                kind: E820Type::Ram
            },
        ];
        if self.memory > MMIO_HOLE_START {
            v.push(E820Entry {
                addr: MMIO_HOLE_END,
                size: self.memory - MMIO_HOLE_START,
                kind: E820Type::Ram,
            });
        }
        v
    }

    /// Guest-physical base of virtio-mmio device `slot`.
    pub fn virtio_mmio_base(slot: u64) -> Option<u64> {
        (slot < VIRTIO_MMIO_SLOTS).then(|| VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_limits_are_refused() {
        assert!(GuestLayout::new(MIN_MEMORY - PAGE_SIZE).is_err());
        assert!(GuestLayout::new(MIN_MEMORY).is_ok());
        assert!(GuestLayout::new(MAX_MEMORY).is_ok());
        assert!(GuestLayout::new(MAX_MEMORY + PAGE_SIZE).is_err());
        assert!(GuestLayout::new(MIN_MEMORY + 1).is_err());
    }

    #[test]
    fn small_guest_has_one_region_and_a_reserved_bios_area() {
        let l = GuestLayout::new(256 * MIB).unwrap();
        assert_eq!(
            l.ram_regions(),
            [RamRegion {
                start: 0,
                len: 256 * MIB
            }]
        );
        let e = l.e820();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            E820Entry {
                addr: 0x9fc00,
                size: 0x60400,
                kind: E820Type::Reserved
            }
        );
        let ram: u64 = e
            .iter()
            .filter(|x| x.kind == E820Type::Ram)
            .map(|x| x.size)
            .sum();
        assert_eq!(ram, 256 * MIB - 0x60400);
    }

    #[test]
    fn large_guest_continues_above_the_hole() {
        let l = GuestLayout::new(4 * GIB).unwrap();
        assert_eq!(
            l.ram_regions()[1],
            RamRegion {
                start: 4 * GIB,
                len: GIB
            }
        );
        assert_eq!(l.e820().last().unwrap().addr, 4 * GIB);
        let hole = MMIO_HOLE_START..MMIO_HOLE_END;
        assert!(
            hole.contains(&VIRTIO_MMIO_BASE)
                && hole.contains(&IOAPIC_BASE)
                && hole.contains(&LAPIC_BASE)
        );
        assert_eq!(GuestLayout::virtio_mmio_base(VIRTIO_MMIO_SLOTS), None);
    }
}
