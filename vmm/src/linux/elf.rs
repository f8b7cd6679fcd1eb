//! Loading an uncompressed `vmlinux` (ELF64, System V gABI) for its PVH entry point.
//!
//! Each PT_LOAD segment is copied to its physical address (`p_paddr`; Linux links the kernel
//! at 16 MiB physical) and its `p_memsz - p_filesz` tail zeroed. The entry point is not
//! `e_entry` (a virtual address in 64-bit code) but the 32-bit physical address in the Xen
//! ELF note `XEN_ELFNOTE_PHYS32_ENTRY` (type 18, name "Xen"), which Linux emits with
//! CONFIG_PVH (`arch/x86/platform/pvh/head.S`).

use super::entry::{self, EntryMode};
use super::{
    BootProtocol, LoadError, LoadedKernel, check_kernel_range, place_initrd, pvh, write_cmdline,
};
use crate::layout::{GuestLayout, MMIO_HOLE_START};
use crate::memory::GuestMemory;
use crate::wire::{u16_at, u32_at, u64_at};

/// The ELF magic.
pub const ELFMAG: &[u8] = b"\x7fELF";
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// A loadable segment.
pub const PT_LOAD: u32 = 1;
/// A segment of notes.
pub const PT_NOTE: u32 = 4;
/// The PVH entry note's type.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Linux's limit on the command line (COMMAND_LINE_SIZE on x86, 6.1), excluding the NUL.
pub const PVH_CMDLINE_MAX: usize = 2047;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const MAX_PHDRS: usize = 256;

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type`.
    pub kind: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

/// The parts of a vmlinux the loader needs, checked against the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmlinux {
    /// Program headers, each with its file range inside the file.
    pub segments: alloc::vec::Vec<ProgramHeader>,
    /// The PVH entry point (physical).
    pub pvh_entry: u64,
}

fn bad(m: &str) -> LoadError {
    LoadError::Invalid(m.into())
}

/// Parses and checks `image` as an x86-64 ELF executable with a PVH note.
pub fn parse(image: &[u8]) -> Result<Vmlinux, LoadError> {
    if image.len() < EHDR_SIZE {
        return Err(LoadError::Truncated("the ELF header"));
    }
    if !image.starts_with(ELFMAG) {
        return Err(bad("not an ELF file"));
    }
    if image[4] != 2 || image[5] != 1 {
        return Err(bad("not a little-endian ELF64 file"));
    }
    if u16_at(image, 16) != Some(2) {
        return Err(bad("not an executable ELF file (e_type is not ET_EXEC)"));
    }
    if u16_at(image, 18) != Some(EM_X86_64) {
        return Err(bad("not an x86-64 ELF file"));
    }
    let phoff = u64_at(image, 32).unwrap_or(0);
    let phentsize = usize::from(u16_at(image, 54).unwrap_or(0));
    let phnum = usize::from(u16_at(image, 56).unwrap_or(0));
    if phentsize < PHDR_SIZE {
        return Err(bad("ELF program headers are smaller than 56 bytes"));
    }
    if phnum == 0 || phnum > MAX_PHDRS {
        return Err(LoadError::Invalid(alloc::format!(
            "ELF file has {phnum} program headers"
        )));
    }
    let table_end = usize::try_from(phoff)
        .ok()
        .and_then(|o| o.checked_add(phentsize * phnum))
        .ok_or(LoadError::Truncated("the program header table"))?;
    if table_end > image.len() {
        return Err(LoadError::Truncated("the program header table"));
    }
    let mut segments = alloc::vec::Vec::new();
    let mut pvh_entry = None;
    for i in 0..phnum {
        let h = phoff as usize + i * phentsize;
        let p = ProgramHeader {
            kind: u32_at(image, h).unwrap_or(0),
            offset: u64_at(image, h + 8).unwrap_or(0),
            paddr: u64_at(image, h + 24).unwrap_or(0),
            filesz: u64_at(image, h + 32).unwrap_or(0),
            memsz: u64_at(image, h + 40).unwrap_or(0),
        };
        if p.kind != PT_LOAD && p.kind != PT_NOTE {
            continue;
        }
        let file_end = p
            .offset
            .checked_add(p.filesz)
            .ok_or(LoadError::Truncated("a segment"))?;
        if file_end > image.len() as u64 {
            return Err(LoadError::Truncated(if p.kind == PT_LOAD {
                "a loadable segment"
            } else {
                "a note segment"
            }));
        }
        if p.kind == PT_NOTE {
            if let Some(e) = find_pvh_note(&image[p.offset as usize..file_end as usize])? {
                pvh_entry = Some(e);
            }
            continue;
        }
        if p.filesz > p.memsz {
            return Err(bad(
                "a loadable segment is larger in the file than in memory",
            ));
        }
        segments.push(p);
    }
    if segments.is_empty() {
        return Err(bad("the ELF file has no loadable segments"));
    }
    let pvh_entry = pvh_entry.ok_or_else(|| {
        bad("vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y")
    })?;
    if !segments
        .iter()
        .any(|s| pvh_entry >= s.paddr && pvh_entry - s.paddr < s.filesz)
    {
        return Err(LoadError::Invalid(alloc::format!(
            "PVH entry {pvh_entry:#x} is outside every loaded segment"
        )));
    }
    Ok(Vmlinux {
        segments,
        pvh_entry,
    })
}

/// Walks ELF notes (each: namesz, descsz, type, name and desc padded to 4 bytes) for the PVH
/// entry note.
fn find_pvh_note(notes: &[u8]) -> Result<Option<u64>, LoadError> {
    let mut off = 0usize;
    while off + 12 <= notes.len() {
        let namesz = u32_at(notes, off).unwrap_or(0) as usize;
        let descsz = u32_at(notes, off + 4).unwrap_or(0) as usize;
        let kind = u32_at(notes, off + 8).unwrap_or(0);
        let name_at = off + 12;
        let desc_at = name_at
            .checked_add(namesz.next_multiple_of(4))
            .ok_or(LoadError::Truncated("an ELF note"))?;
        let next = desc_at
            .checked_add(descsz.next_multiple_of(4))
            .ok_or(LoadError::Truncated("an ELF note"))?;
        if desc_at.checked_add(descsz).is_none_or(|e| e > notes.len()) {
            return Err(LoadError::Truncated("an ELF note"));
        }
        if kind == XEN_ELFNOTE_PHYS32_ENTRY
            && notes.get(name_at..name_at + namesz) == Some(b"Xen\0")
        {
            // Linux emits the address with _ASM_PTR, 8 bytes on x86-64; Xen's own are 4.
            return match descsz {
                4 => Ok(u32_at(notes, desc_at).map(u64::from)),
                8 => Ok(u64_at(notes, desc_at)),
                _ => Err(LoadError::Invalid(alloc::format!(
                    "PVH entry note of {descsz} bytes"
                ))),
            };
        }
        off = next;
    }
    Ok(None)
}

/// Loads a vmlinux and the PVH boot structures.
pub fn load_pvh(
    mem: &impl GuestMemory,
    layout: &GuestLayout,
    image: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<LoadedKernel, LoadError> {
    let v = parse(image)?;
    let loads = v.segments.iter().filter(|s| s.kind == PT_LOAD);
    let start = loads.clone().map(|s| s.paddr).min().unwrap_or(0);
    let end = loads
        .clone()
        .map(|s| {
            s.paddr
                .checked_add(s.memsz)
                .ok_or_else(|| bad("a segment wraps around the address space"))
        })
        .try_fold(0u64, |m, e| e.map(|e| m.max(e)))?;
    check_kernel_range(layout, start, end)?;
    if v.pvh_entry >= MMIO_HOLE_START {
        return Err(bad("the PVH entry point is not a 32-bit address"));
    }
    for s in loads {
        mem.write(
            s.paddr,
            &image[s.offset as usize..(s.offset + s.filesz) as usize],
        )?;
        mem.zero(s.paddr + s.filesz, s.memsz - s.filesz)?;
    }
    let initrd = match initrd {
        Some(i) => Some(place_initrd(mem, layout, end, i, u64::MAX)?),
        None => None,
    };
    let cmdline_addr = write_cmdline(mem, cmdline, PVH_CMDLINE_MAX)?;
    let info = pvh::write(mem, cmdline_addr, initrd, &layout.e820())?;
    let cpu = entry::setup(mem, EntryMode::Protected32, v.pvh_entry, info)?;
    Ok(LoadedKernel {
        protocol: BootProtocol::Pvh,
        cpu,
        kernel: (start, end),
        initrd,
    })
}
