//! What the boot loader told us: memory map, command line, modules (the boot archive) and the
//! ACPI RSDP. Two formats are read: PVH `hvm_start_info` (QEMU `-kernel`) and multiboot2 (GRUB).
//!
//! This runs before the frame allocator and heap exist, so everything is copied into fixed-size
//! arrays. The loader's structures are read through the early direct map (first 4 GiB).

use crate::arch::x86_64::boot::{MULTIBOOT2_MAGIC, PVH_MAGIC};
use crate::mm::{PhysAddr, phys_read};

/// At most this many memory-map entries are kept.
const MAX_REGIONS: usize = 128;
/// At most this many boot modules are kept.
const MAX_MODULES: usize = 4;
/// The command line is cut at this length.
const MAX_CMDLINE: usize = 512;
/// Length of an ACPI 2.0+ RSDP.
pub const RSDP_LEN: usize = 36;

/// The kind of a memory-map entry (e820 numbering, which both loaders use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Bad,
}

impl RegionKind {
    fn from_e820(kind: u32) -> Self {
        match kind {
            1 => RegionKind::Usable,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Bad,
            _ => RegionKind::Reserved,
        }
    }
}

/// One range of physical memory from the loader's map.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub kind: RegionKind,
}

/// A file the loader placed in memory for us (the boot archive).
#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub start: u64,
    pub len: u64,
}

/// Everything `kmain` needs from the loader, copied out of the loader's memory.
pub struct BootInfo {
    pub loader: &'static str,
    regions: [Region; MAX_REGIONS],
    nregions: usize,
    modules: [Module; MAX_MODULES],
    nmodules: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// A copy of the ACPI RSDP (ACPI 6.5 section 5.2.5.3), if the loader knew where it was.
    pub rsdp: Option<[u8; RSDP_LEN]>,
}

impl BootInfo {
    const fn empty(loader: &'static str) -> Self {
        BootInfo {
            loader,
            regions: [Region {
                start: 0,
                len: 0,
                kind: RegionKind::Reserved,
            }; MAX_REGIONS],
            nregions: 0,
            modules: [Module { start: 0, len: 0 }; MAX_MODULES],
            nmodules: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            rsdp: None,
        }
    }

    /// The memory map.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.nregions]
    }

    /// The boot modules, in the loader's order.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.nmodules]
    }

    /// The kernel command line (invalid UTF-8 is cut at the first bad byte).
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    fn push_region(&mut self, start: u64, len: u64, kind: u32) {
        if self.nregions < MAX_REGIONS && len > 0 {
            self.regions[self.nregions] = Region {
                start,
                len,
                kind: RegionKind::from_e820(kind),
            };
            self.nregions += 1;
        }
    }

    fn push_module(&mut self, start: u64, len: u64) {
        if self.nmodules < MAX_MODULES && len > 0 {
            self.modules[self.nmodules] = Module { start, len };
            self.nmodules += 1;
        }
    }

    fn set_rsdp(&mut self, addr: u64) {
        let mut copy = [0u8; RSDP_LEN];
        for (i, b) in copy.iter_mut().enumerate() {
            *b = phys_read(PhysAddr(addr + i as u64));
        }
        self.rsdp = Some(copy);
    }

    fn set_cmdline(&mut self, addr: u64) {
        if addr == 0 {
            return;
        }
        let mut n = 0;
        while n < MAX_CMDLINE {
            let b = phys_read::<u8>(PhysAddr(addr + n as u64));
            if b == 0 {
                break;
            }
            self.cmdline[n] = b;
            n += 1;
        }
        self.cmdline_len = n;
    }
}

/// Why the boot information could not be used.
#[derive(Debug)]
pub enum BootInfoError {
    UnknownLoader(u32),
    BadPvhMagic(u32),
    NoMemoryMap,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::UnknownLoader(m) => write!(f, "unknown boot protocol (magic {m:#x})"),
            BootInfoError::BadPvhMagic(m) => write!(f, "bad hvm_start_info magic {m:#x}"),
            BootInfoError::NoMemoryMap => write!(f, "the loader gave no memory map"),
        }
    }
}

/// Reads the loader's information. `info` is a physical address below 4 GiB.
pub fn parse(magic: u32, info: u32) -> Result<BootInfo, BootInfoError> {
    let info = u64::from(info);
    let parsed = match magic {
        PVH_MAGIC => parse_pvh(info)?,
        MULTIBOOT2_MAGIC => parse_multiboot2(info),
        other => return Err(BootInfoError::UnknownLoader(other)),
    };
    if parsed.nregions == 0 {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(parsed)
}

/// `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h), version 0 or 1.
fn parse_pvh(info: u64) -> Result<BootInfo, BootInfoError> {
    let at = |off: u64| PhysAddr(info + off);
    let magic = phys_read::<u32>(at(0));
    if magic != PVH_MAGIC {
        return Err(BootInfoError::BadPvhMagic(magic));
    }
    let mut bi = BootInfo::empty("PVH");
    let version = phys_read::<u32>(at(4));
    let nr_modules = phys_read::<u32>(at(12));
    let modlist = phys_read::<u64>(at(16));
    bi.set_cmdline(phys_read::<u64>(at(24)));
    let rsdp = phys_read::<u64>(at(32));
    if rsdp != 0 {
        bi.set_rsdp(rsdp);
    }
    for i in 0..u64::from(nr_modules) {
        // hvm_modlist_entry: paddr, size, cmdline_paddr, reserved.
        let entry = modlist + i * 32;
        bi.push_module(phys_read(PhysAddr(entry)), phys_read(PhysAddr(entry + 8)));
    }
    if version >= 1 {
        let memmap = phys_read::<u64>(at(40));
        let entries = phys_read::<u32>(at(48));
        for i in 0..u64::from(entries) {
            // hvm_memmap_table_entry: addr, size, type, reserved.
            let e = memmap + i * 24;
            bi.push_region(
                phys_read(PhysAddr(e)),
                phys_read(PhysAddr(e + 8)),
                phys_read(PhysAddr(e + 16)),
            );
        }
    }
    Ok(bi)
}

/// The multiboot2 information structure (Multiboot2 specification, section 3.6).
fn parse_multiboot2(info: u64) -> BootInfo {
    let mut bi = BootInfo::empty("multiboot2");
    let total = u64::from(phys_read::<u32>(PhysAddr(info)));
    let mut tag = info + 8;
    while tag + 8 <= info + total {
        let kind = phys_read::<u32>(PhysAddr(tag));
        let size = u64::from(phys_read::<u32>(PhysAddr(tag + 4)));
        if kind == 0 || size < 8 {
            break;
        }
        match kind {
            1 => bi.set_cmdline(tag + 8),
            3 => {
                let start = u64::from(phys_read::<u32>(PhysAddr(tag + 8)));
                let end = u64::from(phys_read::<u32>(PhysAddr(tag + 12)));
                bi.push_module(start, end.saturating_sub(start));
            }
            6 => {
                let entry_size = u64::from(phys_read::<u32>(PhysAddr(tag + 8)));
                let mut e = tag + 16;
                while entry_size >= 20 && e + entry_size <= tag + size {
                    bi.push_region(
                        phys_read(PhysAddr(e)),
                        phys_read(PhysAddr(e + 8)),
                        phys_read(PhysAddr(e + 16)),
                    );
                    e += entry_size;
                }
            }
            // The tag holds a copy of the RSDP itself.
            14 | 15 => bi.set_rsdp(tag + 8),
            _ => {}
        }
        tag += size.next_multiple_of(8);
    }
    bi
}
