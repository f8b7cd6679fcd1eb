//! Loading a `bzImage` through the 64-bit boot protocol (Documentation/arch/x86/boot.rst;
//! the zero page layout is Documentation/arch/x86/zero-page.rst).
//!
//! The file is the real-mode setup (`setup_sects + 1` sectors, the first holding the setup
//! header at 0x1f1) followed by the protected-mode kernel. We need protocol 2.12 or later
//! (`xloadflags` with XLF_KERNEL_64: a 64-bit entry at load address + 0x200), load the
//! protected-mode part at `pref_address` with `init_size` bytes of room, and hand the kernel a
//! `boot_params` page holding a copy of the setup header plus what a boot loader fills in:
//! `type_of_loader`, `cmd_line_ptr`, the initrd fields and the e820 map.

use super::entry::{self, EntryMode};
use super::{
    BootProtocol, LoadError, LoadedKernel, check_kernel_range, place_initrd, write_cmdline,
};
use crate::layout::{E820Entry, GuestLayout, ZERO_PAGE};
use crate::memory::GuestMemory;
use crate::wire::{put, put_u8, put_u32, u8_at, u16_at, u32_at, u64_at};

/// Offsets in `boot_params` / the bzImage's first sector (zero-page.rst, boot.rst).
pub mod offset {
    /// `ext_ramdisk_image`: high 32 bits of the initrd address.
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    /// `ext_ramdisk_size`.
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    /// `ext_cmd_line_ptr`.
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    /// `e820_entries`.
    pub const E820_ENTRIES: usize = 0x1e8;
    /// `sentinel`: a boot loader that leaves it non-zero did not clear the page.
    pub const SENTINEL: usize = 0x1ef;
    /// Start of the setup header: `setup_sects`.
    pub const SETUP_SECTS: usize = 0x1f1;
    /// `syssize`: size of the protected-mode code in 16-byte units (protocol 2.04+).
    pub const SYSSIZE: usize = 0x1f4;
    /// `boot_flag`, 0xAA55.
    pub const BOOT_FLAG: usize = 0x1fe;
    /// `jump`; its second byte gives the header's length.
    pub const JUMP: usize = 0x200;
    /// `header`, "HdrS".
    pub const HEADER: usize = 0x202;
    /// `version`.
    pub const VERSION: usize = 0x206;
    /// `type_of_loader`.
    pub const TYPE_OF_LOADER: usize = 0x210;
    /// `loadflags`.
    pub const LOADFLAGS: usize = 0x211;
    /// `ramdisk_image`.
    pub const RAMDISK_IMAGE: usize = 0x218;
    /// `ramdisk_size`.
    pub const RAMDISK_SIZE: usize = 0x21c;
    /// `cmd_line_ptr`.
    pub const CMD_LINE_PTR: usize = 0x228;
    /// `initrd_addr_max`.
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    /// `kernel_alignment`.
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    /// `relocatable_kernel`.
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    /// `xloadflags`.
    pub const XLOADFLAGS: usize = 0x236;
    /// `cmdline_size`.
    pub const CMDLINE_SIZE: usize = 0x238;
    /// `pref_address`.
    pub const PREF_ADDRESS: usize = 0x258;
    /// `init_size`.
    pub const INIT_SIZE: usize = 0x260;
    /// `e820_table`: up to 128 entries of 20 bytes.
    pub const E820_TABLE: usize = 0x2d0;
}

/// `boot_flag`.
pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header`.
pub const HDRS_MAGIC: &[u8; 4] = b"HdrS";
/// The oldest protocol with `xloadflags`.
pub const MIN_VERSION: u16 = 0x020c;
/// `loadflags`: the protected-mode kernel is loaded at 0x100000 or above.
pub const LOADED_HIGH: u8 = 1;
/// `xloadflags`: the kernel has the 64-bit entry point at +0x200.
pub const XLF_KERNEL_64: u16 = 1;
/// `type_of_loader`: a boot loader without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// Offset of the 64-bit entry point from the load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// Most e820 entries `boot_params` holds.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;

/// The setup header fields the loader uses, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupHeader {
    /// Protocol version (major << 8 | minor).
    pub version: u16,
    /// Size in bytes of the real-mode part, which precedes the protected-mode kernel.
    pub setup_size: usize,
    /// `loadflags`.
    pub loadflags: u8,
    /// `xloadflags`.
    pub xloadflags: u16,
    /// Whether the kernel may be loaded at any `kernel_alignment`-aligned address.
    pub relocatable: bool,
    /// Alignment for a relocated kernel.
    pub kernel_alignment: u32,
    /// Where the kernel wants to be loaded.
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address while it decompresses and boots.
    pub init_size: u32,
    /// Longest command line, excluding the NUL.
    pub cmdline_size: u32,
    /// Highest address the initrd may occupy (inclusive).
    pub initrd_addr_max: u32,
    /// End of the setup header in the file (0x202 + the byte at 0x201).
    pub header_end: usize,
}

/// Whether `image` looks like a bzImage (boot sector flag and "HdrS").
pub fn is_bzimage(image: &[u8]) -> bool {
    u16_at(image, offset::BOOT_FLAG) == Some(BOOT_FLAG_MAGIC)
        && image.get(offset::HEADER..offset::HEADER + 4) == Some(HDRS_MAGIC)
}

fn invalid(m: alloc::string::String) -> LoadError {
    LoadError::Invalid(m)
}

/// Parses and checks the setup header of `image`.
pub fn parse(image: &[u8]) -> Result<SetupHeader, LoadError> {
    use offset::*;
    if image.len() < INIT_SIZE + 4 {
        return Err(LoadError::Truncated("the setup header"));
    }
    if !is_bzimage(image) {
        return Err(invalid(
            "no boot sector flag 0xAA55 and \"HdrS\" header: not a bzImage".into(),
        ));
    }
    let field = |o| u32_at(image, o).unwrap_or(0);
    let version = u16_at(image, VERSION).unwrap_or(0);
    if version < MIN_VERSION {
        return Err(invalid(alloc::format!(
            "boot protocol {}.{:02} is older than 2.12, which the 64-bit entry needs",
            version >> 8,
            version & 0xff
        )));
    }
    let header_end = HEADER + usize::from(u8_at(image, JUMP + 1).unwrap_or(0));
    if !(INIT_SIZE + 4..=0x1000).contains(&header_end) {
        return Err(invalid(alloc::format!(
            "setup header ends at {header_end:#x}"
        )));
    }
    if header_end > image.len() {
        return Err(LoadError::Truncated("the setup header"));
    }
    let setup_sects = match u8_at(image, SETUP_SECTS).unwrap_or(0) {
        0 => 4,
        n => usize::from(n),
    };
    let h = SetupHeader {
        version,
        setup_size: (setup_sects + 1) * 512,
        loadflags: u8_at(image, LOADFLAGS).unwrap_or(0),
        xloadflags: u16_at(image, XLOADFLAGS).unwrap_or(0),
        relocatable: u8_at(image, RELOCATABLE_KERNEL).unwrap_or(0) != 0,
        kernel_alignment: field(KERNEL_ALIGNMENT),
        pref_address: u64_at(image, PREF_ADDRESS).unwrap_or(0),
        init_size: field(INIT_SIZE),
        cmdline_size: field(CMDLINE_SIZE),
        initrd_addr_max: field(INITRD_ADDR_MAX),
        header_end,
    };
    if h.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(invalid(
            "the kernel has no 64-bit entry point (XLF_KERNEL_64)".into(),
        ));
    }
    if h.loadflags & LOADED_HIGH == 0 {
        return Err(invalid(
            "a zImage (not LOADED_HIGH) cannot be booted".into(),
        ));
    }
    if h.setup_size >= image.len() {
        return Err(LoadError::Truncated("the real-mode setup code"));
    }
    if !h.kernel_alignment.is_power_of_two()
        || !h.pref_address.is_multiple_of(u64::from(h.kernel_alignment))
    {
        return Err(invalid(alloc::format!(
            "preferred address {:#x} does not have the kernel's alignment {:#x}",
            h.pref_address,
            h.kernel_alignment
        )));
    }
    let payload = image.len() - h.setup_size;
    if u64::from(field(SYSSIZE)) * 16 > payload as u64 {
        return Err(LoadError::Truncated(
            "the protected-mode kernel (shorter than syssize)",
        ));
    }
    if (h.init_size as usize) < payload {
        return Err(invalid(alloc::format!(
            "init_size {:#x} is smaller than the kernel ({payload:#x} bytes)",
            h.init_size
        )));
    }
    Ok(h)
}

/// Builds the zero page: zeroed, the setup header copied from the image, and the loader's fields.
fn zero_page(
    image: &[u8],
    h: &SetupHeader,
    cmdline: u64,
    initrd: Option<(u64, u64)>,
    e820: &[E820Entry],
) -> Result<[u8; 4096], LoadError> {
    use offset::*;
    if e820.len() > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(invalid(alloc::format!(
            "memory map of {} entries is too long",
            e820.len()
        )));
    }
    let mut p = [0u8; 4096];
    p[SETUP_SECTS..h.header_end].copy_from_slice(&image[SETUP_SECTS..h.header_end]);
    put_u8(&mut p, TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
    put_u32(&mut p, CMD_LINE_PTR, cmdline as u32);
    put_u32(&mut p, EXT_CMD_LINE_PTR, (cmdline >> 32) as u32);
    let (ri, rs) = initrd.unwrap_or((0, 0));
    put_u32(&mut p, RAMDISK_IMAGE, ri as u32);
    put_u32(&mut p, RAMDISK_SIZE, rs as u32);
    put_u32(&mut p, EXT_RAMDISK_IMAGE, (ri >> 32) as u32);
    put_u32(&mut p, EXT_RAMDISK_SIZE, (rs >> 32) as u32);
    put_u8(&mut p, E820_ENTRIES, e820.len() as u8);
    for (i, e) in e820.iter().enumerate() {
        let at = E820_TABLE + 20 * i;
        put(&mut p, at, &e.addr.to_le_bytes());
        put(&mut p, at + 8, &e.size.to_le_bytes());
        put_u32(&mut p, at + 16, e.kind as u32);
    }
    Ok(p)
}

/// Loads a bzImage and its `boot_params`.
pub fn load(
    mem: &impl GuestMemory,
    layout: &GuestLayout,
    image: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<LoadedKernel, LoadError> {
    let h = parse(image)?;
    let kernel = &image[h.setup_size..];
    // A relocatable kernel could go elsewhere, but its preferred address is where Linux runs
    // best (no relocation pass), and our layout keeps it free.
    let start = h.pref_address;
    let end = start
        .checked_add(u64::from(h.init_size))
        .ok_or_else(|| invalid("init_size wraps".into()))?;
    check_kernel_range(layout, start, end)?;
    mem.write(start, kernel)?;
    let initrd = match initrd {
        Some(i) => Some(place_initrd(
            mem,
            layout,
            end,
            i,
            u64::from(h.initrd_addr_max) + 1,
        )?),
        None => None,
    };
    let cmdline_addr = write_cmdline(mem, cmdline, h.cmdline_size as usize)?;
    let page = zero_page(image, &h, cmdline_addr, initrd, &layout.e820())?;
    mem.write(ZERO_PAGE, &page)?;
    let cpu = entry::setup(mem, EntryMode::Long64, start + ENTRY_64_OFFSET, ZERO_PAGE)?;
    Ok(LoadedKernel {
        protocol: BootProtocol::Linux64,
        cpu,
        kernel: (start, end),
        initrd,
    })
}
