//! Partition tables: the MBR (four primary entries at byte 446 of sector 0, signature 0x55aa)
//! and the GPT (a header at LBA 1 with signature "EFI PART", found through a protective MBR
//! entry of type 0xee; UEFI 2.10 section 5.3). Partitions are numbered from 1 in table order,
//! as Linux numbers `/dev/vdaN`.
//!
//! Every field comes from a disk, so every one is checked: a partition that runs past the end
//! of the disk, a table too large or a bad signature is an error value, never a panic.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

/// Bytes per sector the tables assume.
pub const SECTOR: usize = 512;
/// Most GPT entries read.
const MAX_GPT_ENTRIES: u32 = 256;

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, in table order.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// MBR type byte, or 0 for GPT entries.
    pub mbr_type: u8,
}

/// What kind of table was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// No partition table: the whole disk is one file system (or nothing).
    None,
    Mbr,
    Gpt,
}

/// Why the table could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A sector could not be read (past the end of the disk, or an I/O error).
    Unreadable(u64),
    /// A partition does not fit the disk.
    OutOfRange { number: u32 },
    /// The GPT header is malformed.
    BadGpt(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreadable(s) => write!(f, "partition table: cannot read sector {s}"),
            Error::OutOfRange { number } => {
                write!(f, "partition {number} runs past the end of the disk")
            }
            Error::BadGpt(why) => write!(f, "GPT: {why}"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

/// Reads the partition table of a disk of `sectors` sectors; `read(lba)` returns one sector.
pub fn read(
    sectors: u64,
    mut read: impl FnMut(u64) -> Option<[u8; SECTOR]>,
) -> Result<(Scheme, Vec<Partition>), Error> {
    let mbr = read(0).ok_or(Error::Unreadable(0))?;
    if mbr[510] != 0x55 || mbr[511] != 0xaa {
        return Ok((Scheme::None, Vec::new()));
    }
    let entries: Vec<(u8, u64, u64)> = (0..4)
        .map(|i| {
            let e = &mbr[446 + 16 * i..446 + 16 * (i + 1)];
            (e[4], u64::from(u32_at(e, 8)), u64::from(u32_at(e, 12)))
        })
        .collect();
    if entries.iter().any(|e| e.0 == 0xee) {
        return read_gpt(sectors, &mut read).map(|p| (Scheme::Gpt, p));
    }
    let mut parts = Vec::new();
    for (i, &(kind, start, count)) in entries.iter().enumerate() {
        let number = i as u32 + 1;
        if kind == 0 || count == 0 {
            continue;
        }
        if start.checked_add(count).is_none_or(|end| end > sectors) {
            return Err(Error::OutOfRange { number });
        }
        parts.push(Partition {
            number,
            start,
            sectors: count,
            mbr_type: kind,
        });
    }
    Ok((Scheme::Mbr, parts))
}

fn read_gpt(
    sectors: u64,
    read: &mut impl FnMut(u64) -> Option<[u8; SECTOR]>,
) -> Result<Vec<Partition>, Error> {
    let h = read(1).ok_or(Error::Unreadable(1))?;
    if &h[..8] != b"EFI PART" {
        return Err(Error::BadGpt("no header signature at LBA 1"));
    }
    let entries_lba = u64_at(&h, 72);
    let count = u32_at(&h, 80);
    let entry_size = u32_at(&h, 84) as usize;
    if count > MAX_GPT_ENTRIES
        || !(128..=SECTOR).contains(&entry_size)
        || !SECTOR.is_multiple_of(entry_size)
    {
        return Err(Error::BadGpt("unsupported entry count or size"));
    }
    let per_sector = SECTOR / entry_size;
    let mut parts = Vec::new();
    for i in 0..count as usize {
        let lba = entries_lba + (i / per_sector) as u64;
        let s = read(lba).ok_or(Error::Unreadable(lba))?;
        let e = &s[(i % per_sector) * entry_size..][..entry_size];
        if e[..16].iter().all(|&b| b == 0) {
            continue; // unused entry (zero type GUID)
        }
        let (first, last) = (u64_at(e, 32), u64_at(e, 40));
        let number = i as u32 + 1;
        if last < first || last >= sectors {
            return Err(Error::OutOfRange { number });
        }
        parts.push(Partition {
            number,
            start: first,
            sectors: last - first + 1,
            mbr_type: 0,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_with_mbr(entries: &[(u8, u32, u32)]) -> Vec<[u8; SECTOR]> {
        let mut d = vec![[0u8; SECTOR]; 4];
        for (i, &(kind, start, count)) in entries.iter().enumerate() {
            let e = &mut d[0][446 + 16 * i..];
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&count.to_le_bytes());
        }
        d[0][510] = 0x55;
        d[0][511] = 0xaa;
        d
    }

    fn reader(d: &[[u8; SECTOR]]) -> impl Fn(u64) -> Option<[u8; SECTOR]> + '_ {
        move |lba| d.get(lba as usize).copied()
    }

    #[test]
    fn mbr_partitions_are_listed_in_table_order() {
        let d = disk_with_mbr(&[(0x83, 2048, 1000), (0, 0, 0), (0x0c, 4096, 10)]);
        let (scheme, parts) = read(8192, reader(&d)).unwrap();
        assert_eq!(scheme, Scheme::Mbr);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            Partition {
                number: 1,
                start: 2048,
                sectors: 1000,
                mbr_type: 0x83
            }
        );
        assert_eq!(parts[1].number, 3);
    }

    #[test]
    fn no_signature_means_no_table() {
        let d = vec![[0u8; SECTOR]; 2];
        assert_eq!(read(100, reader(&d)).unwrap(), (Scheme::None, vec![]));
    }

    #[test]
    fn a_partition_past_the_end_is_an_error() {
        let d = disk_with_mbr(&[(0x83, 2048, u32::MAX)]);
        assert_eq!(read(8192, reader(&d)), Err(Error::OutOfRange { number: 1 }));
    }

    #[test]
    fn an_unreadable_first_sector_is_an_error() {
        assert_eq!(read(0, |_| None), Err(Error::Unreadable(0)));
    }

    #[test]
    fn gpt_entries_are_read() {
        let mut d = disk_with_mbr(&[(0xee, 1, 100)]);
        d[1][..8].copy_from_slice(b"EFI PART");
        d[1][72..80].copy_from_slice(&2u64.to_le_bytes());
        d[1][80..84].copy_from_slice(&4u32.to_le_bytes());
        d[1][84..88].copy_from_slice(&128u32.to_le_bytes());
        d[2][0] = 1; // a non-zero type GUID
        d[2][32..40].copy_from_slice(&34u64.to_le_bytes());
        d[2][40..48].copy_from_slice(&99u64.to_le_bytes());
        let (scheme, parts) = read(100, reader(&d)).unwrap();
        assert_eq!(scheme, Scheme::Gpt);
        assert_eq!(
            parts,
            vec![Partition {
                number: 1,
                start: 34,
                sectors: 66,
                mbr_type: 0
            }]
        );
    }

    #[test]
    fn a_bad_gpt_header_is_an_error() {
        let d = disk_with_mbr(&[(0xee, 1, 100)]);
        assert!(matches!(read(100, reader(&d)), Err(Error::BadGpt(_))));
    }
}
