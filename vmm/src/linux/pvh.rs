//! The PVH boot structures (Xen `xen/include/public/arch-x86/hvm/start_info.h`): the
//! `hvm_start_info` a PVH kernel gets in EBX, its module list and its memory map. Linux 6.1
//! (`arch/x86/platform/pvh/enlighten.c`) takes the first module as the initrd and, for a guest
//! that is not Xen, requires version 1 with a memory map.

use alloc::vec::Vec;

use crate::layout::{E820Entry, PVH_START_INFO};
use crate::memory::GuestMemory;
use crate::wire::{put_u32, put_u64};

/// `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Version with `memmap_paddr` and `memmap_entries`.
pub const START_INFO_VERSION: u32 = 1;
/// Size of `struct hvm_start_info` (version 1).
pub const START_INFO_SIZE: usize = 56;
/// Size of `struct hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = 32;
/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Where the module list goes, after the start info.
pub const MODLIST: u64 = PVH_START_INFO + 0x40;
/// Where the memory map goes, after the (one-entry) module list.
pub const MEMMAP: u64 = MODLIST + 0x40;
/// Most memory map entries that fit in the page the structures share.
pub const MAX_MEMMAP_ENTRIES: usize = (0x1000 - 0x80) / MEMMAP_ENTRY_SIZE;

/// Encodes `hvm_start_info`.
pub fn encode_start_info(cmdline: u64, modules: u32, memmap_entries: u32) -> [u8; START_INFO_SIZE] {
    let mut b = [0u8; START_INFO_SIZE];
    put_u32(&mut b, 0, XEN_HVM_START_MAGIC_VALUE);
    put_u32(&mut b, 4, START_INFO_VERSION);
    put_u32(&mut b, 8, 0); // flags
    put_u32(&mut b, 12, modules);
    put_u64(&mut b, 16, if modules > 0 { MODLIST } else { 0 });
    put_u64(&mut b, 24, cmdline);
    put_u64(&mut b, 32, 0); // rsdp_paddr: no ACPI
    put_u64(&mut b, 40, MEMMAP);
    put_u32(&mut b, 48, memmap_entries);
    b
}

/// Writes the start info, the initrd module and the memory map; returns the start info's
/// address (the value for EBX).
pub fn write(
    mem: &impl GuestMemory,
    cmdline: u64,
    initrd: Option<(u64, u64)>,
    memmap: &[E820Entry],
) -> Result<u64, super::LoadError> {
    if memmap.len() > MAX_MEMMAP_ENTRIES {
        return Err(super::LoadError::Invalid(alloc::format!(
            "memory map of {} entries is too long",
            memmap.len()
        )));
    }
    let modules = u32::from(initrd.is_some());
    mem.write(
        PVH_START_INFO,
        &encode_start_info(cmdline, modules, memmap.len() as u32),
    )?;
    if let Some((addr, len)) = initrd {
        let mut m = [0u8; MODLIST_ENTRY_SIZE];
        put_u64(&mut m, 0, addr);
        put_u64(&mut m, 8, len);
        mem.write(MODLIST, &m)?;
    }
    let mut table: Vec<u8> = Vec::with_capacity(memmap.len() * MEMMAP_ENTRY_SIZE);
    for e in memmap {
        let mut b = [0u8; MEMMAP_ENTRY_SIZE];
        put_u64(&mut b, 0, e.addr);
        put_u64(&mut b, 8, e.size);
        put_u32(&mut b, 16, e.kind as u32);
        table.extend_from_slice(&b);
    }
    mem.write(MEMMAP, &table)?;
    Ok(PVH_START_INFO)
}
