//! Loading Linux into guest memory.
//!
//! Two ways in (DESIGN.md section 4):
//! - an uncompressed `vmlinux` ELF through its PVH entry point ([`elf`], [`pvh`]): no
//!   decompressor, no real-mode setup code; Linux finds its command line, initrd and memory
//!   map in `hvm_start_info` (Xen `start_info.h`, version 1);
//! - a `bzImage` through the 64-bit boot protocol ([`bzimage`]; Documentation/arch/x86/boot.rst):
//!   the protected-mode kernel at its preferred address, `boot_params` with the setup header,
//!   e820 map, command line and initrd.
//!
//! [`load`] tells the two apart, loads the kernel, puts the initrd at the top of low RAM, writes
//! the command line and boot structures, and returns the boot vCPU state ([`entry`]). Every field
//! of a kernel image or initrd is checked before use: a malformed or truncated image is a
//! [`LoadError`] that says what is wrong, never a panic or a write outside guest RAM.

pub mod bzimage;
pub mod elf;
pub mod entry;
pub mod pvh;

use alloc::string::String;
use core::fmt;

use crate::layout::{CMDLINE, CMDLINE_MAX, GuestLayout, KERNEL_AREA_START, PAGE_SIZE};
use crate::memory::{GuestMemory, MemoryError};
use entry::BootCpuState;

/// Why a kernel or initrd could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Neither an ELF file nor a bzImage.
    UnknownFormat,
    /// The image ends before a structure it declares.
    Truncated(&'static str),
    /// A field has a value we cannot boot.
    Invalid(String),
    /// The kernel does not fit where it must go.
    DoesNotFit(String),
    /// The command line is too long for the kernel.
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The most the kernel takes.
        max: usize,
    },
    /// The initrd is empty, of an unknown format, or truncated.
    BadInitrd(String),
    /// Writing guest memory failed (the layout does not match the memory given).
    Memory(MemoryError),
}

impl From<MemoryError> for LoadError {
    fn from(e: MemoryError) -> LoadError {
        LoadError::Memory(e)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::UnknownFormat => f.write_str("kernel: neither an ELF vmlinux nor a bzImage"),
            LoadError::Truncated(what) => {
                write!(f, "kernel: truncated: the file ends inside {what}")
            }
            LoadError::Invalid(m) => write!(f, "kernel: {m}"),
            LoadError::DoesNotFit(m) => write!(f, "kernel: {m}"),
            LoadError::CmdlineTooLong { len, max } => {
                write!(
                    f,
                    "command line of {len} bytes is longer than the kernel's limit of {max}"
                )
            }
            LoadError::BadInitrd(m) => write!(f, "initrd: {m}"),
            LoadError::Memory(e) => write!(f, "loading: {e}"),
        }
    }
}

/// The boot protocol a kernel was loaded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    /// `vmlinux` through PVH.
    Pvh,
    /// `bzImage` through the 64-bit boot protocol.
    Linux64,
}

/// A loaded kernel, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedKernel {
    /// How it is entered.
    pub protocol: BootProtocol,
    /// The boot vCPU's initial state.
    pub cpu: BootCpuState,
    /// Guest-physical range the kernel occupies (including what it will use while booting).
    pub kernel: (u64, u64),
    /// Guest-physical range of the initrd, if any.
    pub initrd: Option<(u64, u64)>,
}

/// Loads `kernel` (a `vmlinux` or a `bzImage`), `initrd` and `cmdline` into `mem` laid out as
/// `layout`, and builds everything the kernel reads at boot.
pub fn load(
    mem: &impl GuestMemory,
    layout: &GuestLayout,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<LoadedKernel, LoadError> {
    if let Some(i) = initrd {
        check_initrd(i)?;
    }
    if kernel.starts_with(elf::ELFMAG) {
        elf::load_pvh(mem, layout, kernel, initrd, cmdline)
    } else if bzimage::is_bzimage(kernel) {
        bzimage::load(mem, layout, kernel, initrd, cmdline)
    } else {
        Err(LoadError::UnknownFormat)
    }
}

/// Writes the NUL-terminated command line, if it fits both our buffer and the kernel's limit
/// (`max`, excluding the NUL).
pub(crate) fn write_cmdline(
    mem: &impl GuestMemory,
    cmdline: &str,
    max: usize,
) -> Result<u64, LoadError> {
    let max = max.min(CMDLINE_MAX as usize - 1);
    if cmdline.len() > max {
        return Err(LoadError::CmdlineTooLong {
            len: cmdline.len(),
            max,
        });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(LoadError::Invalid(
            "the command line contains a NUL byte".into(),
        ));
    }
    mem.write(CMDLINE, cmdline.as_bytes())?;
    mem.write(CMDLINE + cmdline.len() as u64, &[0])?;
    Ok(CMDLINE)
}

/// Places the initrd page-aligned at the top of low RAM, at most at `max_end` (exclusive), and
/// above the kernel, which ends at `kernel_end`.
pub(crate) fn place_initrd(
    mem: &impl GuestMemory,
    layout: &GuestLayout,
    kernel_end: u64,
    initrd: &[u8],
    max_end: u64,
) -> Result<(u64, u64), LoadError> {
    let len = initrd.len() as u64;
    let top = layout.low_ram_end().min(max_end);
    let kernel_end = kernel_end.next_multiple_of(PAGE_SIZE);
    let start = top.checked_sub(len).map(|s| s & !(PAGE_SIZE - 1)).filter(|&s| s >= kernel_end).ok_or_else(|| {
        LoadError::BadInitrd(alloc::format!(
            "{len} bytes do not fit between the kernel's end at {kernel_end:#x} and {top:#x}; give the guest more memory"
        ))
    })?;
    mem.write(start, initrd)?;
    Ok((start, len))
}

/// Checks that the kernel's claimed range lies in low RAM above our boot structures.
pub(crate) fn check_kernel_range(
    layout: &GuestLayout,
    start: u64,
    end: u64,
) -> Result<(), LoadError> {
    if start < KERNEL_AREA_START || end > layout.low_ram_end() || end < start {
        return Err(LoadError::DoesNotFit(alloc::format!(
            "needs guest memory {start:#x}..{end:#x}, but RAM for the kernel is {KERNEL_AREA_START:#x}..{:#x}",
            layout.low_ram_end()
        )));
    }
    Ok(())
}

/// Recognises the initrd formats Linux unpacks (a cpio "newc" archive, or one compressed with
/// gzip, which our guest kernel supports) and walks an uncompressed archive to its trailer, so a
/// truncated one is caught here rather than by a guest that cannot find /init.
pub fn check_initrd(initrd: &[u8]) -> Result<(), LoadError> {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    if initrd.is_empty() {
        return Err(LoadError::BadInitrd("the file is empty".into()));
    }
    if initrd.starts_with(b"070701") {
        for entry in cpio::Reader::new(initrd) {
            entry.map_err(|e| LoadError::BadInitrd(alloc::format!("{e}")))?;
        }
        return Ok(());
    }
    if initrd.starts_with(GZIP) {
        // The smallest gzip member is 18 bytes (10-byte header, empty deflate, 8-byte trailer).
        return if initrd.len() >= 18 {
            Ok(())
        } else {
            Err(LoadError::BadInitrd(
                "gzip stream shorter than its header and trailer".into(),
            ))
        };
    }
    let head: alloc::vec::Vec<String> = initrd
        .iter()
        .take(4)
        .map(|b| alloc::format!("{b:02x}"))
        .collect();
    Err(LoadError::BadInitrd(alloc::format!(
        "neither a cpio archive nor gzip-compressed (starts with {})",
        head.join(" ")
    )))
}

#[cfg(test)]
pub(crate) mod test_images;
#[cfg(test)]
mod tests;
