//! Static ELF64 executables (System V ABI, ELF-64 Object File Format 1.5): the header and the
//! PT_LOAD segments, every field checked against the file and the user address range before
//! anything is loaded. Anything else is "exec header invalid".

use crate::mm::PAGE_SIZE;
use crate::mm::vmspace::Prot;
use abi::errors::EBADEXEC;
use abi::sys::layout::{USER_END, USER_MIN};
use alloc::vec::Vec;

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// One loadable segment.
#[derive(Debug)]
pub struct LoadSegment<'a> {
    pub vaddr: u64,
    pub memsz: u64,
    /// The bytes from the file (the rest, up to `memsz`, is zero).
    pub data: &'a [u8],
    pub prot: Prot,
}

/// A checked executable.
#[derive(Debug)]
pub struct Image<'a> {
    pub entry: u64,
    pub segments: Vec<LoadSegment<'a>>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Parses and checks `file`.
pub fn parse(file: &[u8]) -> Result<Image<'_>, &'static str> {
    parse_inner(file).ok_or(EBADEXEC)
}

fn parse_inner(file: &[u8]) -> Option<Image<'_>> {
    // e_ident: magic, ELFCLASS64, little-endian, version 1; e_type ET_EXEC; e_machine x86-64.
    if file.get(..7)? != b"\x7fELF\x02\x01\x01" || u16_at(file, 16)? != 2 || u16_at(file, 18)? != 62
    {
        return None;
    }
    let entry = u64_at(file, 24)?;
    let phoff = usize::try_from(u64_at(file, 32)?).ok()?;
    let phentsize = usize::from(u16_at(file, 54)?);
    let phnum = usize::from(u16_at(file, 56)?);
    if phentsize < 56 || phnum == 0 || phnum > 64 {
        return None;
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(file, ph)? != PT_LOAD {
            continue;
        }
        let flags = u32_at(file, ph + 4)?;
        let offset = usize::try_from(u64_at(file, ph + 8)?).ok()?;
        let vaddr = u64_at(file, ph + 16)?;
        let filesz = usize::try_from(u64_at(file, ph + 32)?).ok()?;
        let memsz = u64_at(file, ph + 40)?;
        let end = vaddr.checked_add(memsz)?;
        if (filesz as u64) > memsz || vaddr < USER_MIN || end > USER_END || memsz == 0 {
            return None;
        }
        let data = file.get(offset..offset.checked_add(filesz)?)?;
        let mut prot = Prot::empty();
        if flags & PF_R != 0 {
            prot |= Prot::READ;
        }
        if flags & PF_W != 0 {
            prot |= Prot::WRITE;
        }
        if flags & PF_X != 0 {
            prot |= Prot::EXEC;
        }
        segments.push(LoadSegment {
            vaddr,
            memsz,
            data,
            prot,
        });
    }
    segments.sort_by_key(|s| s.vaddr);
    let in_text = segments
        .iter()
        .any(|s| s.prot.contains(Prot::EXEC) && s.vaddr <= entry && entry < s.vaddr + s.memsz);
    let overlapping = segments
        .windows(2)
        .any(|w| w[0].vaddr + w[0].memsz > w[1].vaddr);
    (in_text && !overlapping).then_some(Image { entry, segments })
}

/// Page-aligned ranges to map for an image: segments that share a page are merged, with the
/// union of their protections.
pub fn page_ranges(image: &Image<'_>) -> Vec<(u64, u64, Prot)> {
    let mut ranges: Vec<(u64, u64, Prot)> = Vec::new();
    for s in &image.segments {
        let start = s.vaddr & !(PAGE_SIZE - 1);
        let end = (s.vaddr + s.memsz).next_multiple_of(PAGE_SIZE);
        match ranges.last_mut() {
            Some(last) if start < last.1 => {
                last.1 = last.1.max(end);
                last.2 |= s.prot;
            }
            _ => ranges.push((start, end, s.prot)),
        }
    }
    ranges
}
