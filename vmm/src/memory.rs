//! Guest memory: the only way the VMM touches guest RAM.
//!
//! Guest RAM is memory the guest writes behind our back at any moment, so the VMM never holds a
//! Rust reference into it. Every access goes through [`GuestMemory`], which checks that the whole
//! guest-physical range lies inside one RAM region and copies bytes in or out. Above this trait
//! everything is safe Rust: the loaders, the virtqueues and the device models take any
//! `GuestMemory`, and host tests give them [`FakeGuestMemory`].
//!
//! [`MappedGuestMemory`] is the real accessor over the VMM's own mapping of guest RAM (DESIGN.md
//! section 4: guest-physical regions map user memory of the VMM process). It uses volatile
//! accesses, and it is the one `unsafe` place in this crate.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// An access that does not lie inside guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryError {
    /// Guest-physical address of the access.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest range {:#x}+{:#x} is not guest RAM",
            self.addr, self.len
        )
    }
}

/// One contiguous range of guest-physical RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRegion {
    /// First guest-physical address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl RamRegion {
    /// Offset of `[addr, addr + len)` inside this region, if the range lies wholly inside it.
    pub fn offset_of(&self, addr: u64, len: u64) -> Option<u64> {
        let off = addr.checked_sub(self.start)?;
        let end = off.checked_add(len)?;
        (end <= self.len).then_some(off)
    }
}

/// Checked access to guest-physical memory.
///
/// `read` and `write` either copy the whole range or fail without touching anything; a range
/// that straddles two regions or reaches into an MMIO hole is an error.
pub trait GuestMemory {
    /// Copies guest bytes at `addr` into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Copies `data` into guest memory at `addr`.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError>;
    /// Whether `[addr, addr + len)` lies inside one RAM region.
    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError>;

    /// Reads a little-endian `u16`.
    fn read_u16(&self, addr: u64) -> Result<u16, MemoryError> {
        let mut b = [0; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Reads a little-endian `u32`.
    fn read_u32(&self, addr: u64) -> Result<u32, MemoryError> {
        let mut b = [0; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a little-endian `u64`.
    fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Writes a little-endian `u16`.
    fn write_u16(&self, addr: u64, value: u16) -> Result<(), MemoryError> {
        self.write(addr, &value.to_le_bytes())
    }
    /// Writes a little-endian `u32`.
    fn write_u32(&self, addr: u64, value: u32) -> Result<(), MemoryError> {
        self.write(addr, &value.to_le_bytes())
    }
    /// Writes a little-endian `u64`.
    fn write_u64(&self, addr: u64, value: u64) -> Result<(), MemoryError> {
        self.write(addr, &value.to_le_bytes())
    }
    /// Fills `[addr, addr + len)` with zeroes.
    fn zero(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.check_range(addr, len)?;
        let chunk = [0u8; 4096];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len() as u64);
            self.write(addr + done, &chunk[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}

impl<T: GuestMemory + ?Sized> GuestMemory for &T {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(addr, buf)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        (**self).write(addr, data)
    }
    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        (**self).check_range(addr, len)
    }
}

impl<T: GuestMemory + ?Sized> GuestMemory for alloc::sync::Arc<T> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(addr, buf)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        (**self).write(addr, data)
    }
    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        (**self).check_range(addr, len)
    }
}

fn find_region(regions: &[RamRegion], addr: u64, len: u64) -> Result<(usize, u64), MemoryError> {
    regions
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.offset_of(addr, len).map(|off| (i, off)))
        .ok_or(MemoryError { addr, len })
}

/// In-memory guest RAM for host tests (and for tools that build a guest image offline).
///
/// Bytes are atomics so the fake can be shared through `&self` like real guest memory, without
/// `unsafe`.
pub struct FakeGuestMemory {
    regions: Vec<RamRegion>,
    bytes: Vec<Box<[AtomicU8]>>,
}

impl FakeGuestMemory {
    /// Zeroed RAM covering `regions`.
    pub fn new(regions: &[RamRegion]) -> FakeGuestMemory {
        let bytes = regions
            .iter()
            .map(|r| {
                core::iter::repeat_with(|| AtomicU8::new(0))
                    .take(r.len as usize)
                    .collect()
            })
            .collect();
        FakeGuestMemory {
            regions: regions.to_vec(),
            bytes,
        }
    }

    /// One zeroed region `[0, size)`.
    pub fn with_size(size: u64) -> FakeGuestMemory {
        FakeGuestMemory::new(&[RamRegion {
            start: 0,
            len: size,
        }])
    }

    /// The regions this memory covers.
    pub fn regions(&self) -> &[RamRegion] {
        &self.regions
    }
}

impl GuestMemory for FakeGuestMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let (i, off) = find_region(&self.regions, addr, buf.len() as u64)?;
        let src = &self.bytes[i][off as usize..off as usize + buf.len()];
        for (d, s) in buf.iter_mut().zip(src) {
            *d = s.load(Ordering::Relaxed);
        }
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let (i, off) = find_region(&self.regions, addr, data.len() as u64)?;
        let dst = &self.bytes[i][off as usize..off as usize + data.len()];
        for (d, s) in dst.iter().zip(data) {
            d.store(*s, Ordering::Relaxed);
        }
        Ok(())
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        find_region(&self.regions, addr, len).map(|_| ())
    }
}

/// One guest RAM region and where the VMM has it mapped.
#[derive(Clone, Copy, Debug)]
pub struct MappedRegion {
    /// The guest-physical range.
    pub guest: RamRegion,
    /// The VMM's virtual address of `guest.start`.
    pub host: *mut u8,
}

/// Guest RAM as mapped into the VMM's address space.
pub struct MappedGuestMemory {
    regions: Vec<MappedRegion>,
    guest: Vec<RamRegion>,
}

// SAFETY: the mapping is valid for the whole lifetime of the value (the contract of `new`) and
// is only ever accessed through volatile copies, never through references, so sharing it across
// threads adds no aliasing beyond what the guest's own vCPUs already do concurrently.
unsafe impl Send for MappedGuestMemory {}
// SAFETY: as for `Send`: all access is by volatile copy through raw pointers.
unsafe impl Sync for MappedGuestMemory {}

impl MappedGuestMemory {
    /// Wraps the VMM's mappings of guest RAM.
    ///
    /// # Safety
    ///
    /// Each `host..host + guest.len` must be a mapping that is readable and writable and stays
    /// mapped for as long as the returned value (and any copy of the pointers) lives, and no
    /// Rust reference may point into it. The guest may change it concurrently; that is why every
    /// access is a volatile copy.
    pub unsafe fn new(regions: &[MappedRegion]) -> MappedGuestMemory {
        MappedGuestMemory {
            regions: regions.to_vec(),
            guest: regions.iter().map(|r| r.guest).collect(),
        }
    }

    fn host_ptr(&self, addr: u64, len: usize) -> Result<*mut u8, MemoryError> {
        let (i, off) = find_region(&self.guest, addr, len as u64)?;
        // Inside the region (checked just above), so the offset stays within the mapping.
        Ok(self.regions[i].host.wrapping_add(off as usize))
    }
}

impl GuestMemory for MappedGuestMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let src = self.host_ptr(addr, buf.len())?;
        // SAFETY: `src..src + buf.len()` lies inside a live mapping (checked by `host_ptr`,
        // guaranteed by the contract of `new`), and `buf` is ours and as long.
        unsafe { volatile_copy(src, buf.as_mut_ptr(), buf.len(), Side::Source) };
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let dst = self.host_ptr(addr, data.len())?;
        // SAFETY: as in `read`: the range is inside a live, writable mapping, and `data` is
        // ours and as long.
        unsafe { volatile_copy(data.as_ptr(), dst, data.len(), Side::Destination) };
        Ok(())
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        find_region(&self.guest, addr, len).map(|_| ())
    }
}

/// Which end of a [`volatile_copy`] is guest memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// Copies `len` bytes from `src` to `dst`, touching the guest's end (`guest`) only with
/// volatile accesses: aligned 8-byte words in the middle, bytes at the unaligned edges (the
/// other end takes unaligned plain accesses). Byte-at-a-time volatile copies made every
/// virtio buffer cost eight times the loads and stores it needs, which under emulation was a
/// visible share of a 9P read through the NAT.
///
/// # Safety
///
/// `src..src + len` must be readable and `dst..dst + len` writable, the ranges must not
/// overlap, and the end that is not guest memory must be memory the caller may access as
/// plain bytes.
unsafe fn volatile_copy(src: *const u8, dst: *mut u8, len: usize, guest: Side) {
    let guest_addr = match guest {
        Side::Source => src as usize,
        Side::Destination => dst as usize,
    };
    let head = guest_addr.wrapping_neg() % 8;
    let head = head.min(len);
    let words = (len - head) / 8;
    let mut i = 0;
    // Every offset below is under `len`, so inside both ranges (the caller's contract); the
    // guest end is touched only by volatile accesses, and the 8-byte ones are aligned because
    // `head` brings the guest pointer to a multiple of 8.
    while i < head {
        // SAFETY: a byte inside both ranges; volatile at both ends.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
    for _ in 0..words {
        match guest {
            // SAFETY: 8 bytes inside both ranges; the guest's (source) word is aligned.
            Side::Source => unsafe {
                let w = src.add(i).cast::<u64>().read_volatile();
                dst.add(i).cast::<u64>().write_unaligned(w);
            },
            // SAFETY: 8 bytes inside both ranges; the guest's (destination) word is aligned.
            Side::Destination => unsafe {
                let w = src.add(i).cast::<u64>().read_unaligned();
                dst.add(i).cast::<u64>().write_volatile(w);
            },
        }
        i += 8;
    }
    while i < len {
        // SAFETY: a byte inside both ranges; volatile at both ends.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_copies_of_every_alignment_and_length() {
        let src: Vec<u8> = (0..100u8).map(|b| b.wrapping_mul(7) ^ 0x5a).collect();
        for side in [Side::Source, Side::Destination] {
            for from in 0..9 {
                for to in 0..9 {
                    for len in [0, 1, 7, 8, 9, 15, 16, 17, 40, 80] {
                        let mut dst = alloc::vec![0xeeu8; 100];
                        // SAFETY: both ranges lie inside their vectors and do not overlap.
                        unsafe {
                            volatile_copy(src[from..].as_ptr(), dst[to..].as_mut_ptr(), len, side)
                        };
                        assert_eq!(&dst[to..to + len], &src[from..from + len]);
                        assert!(dst[..to].iter().all(|&b| b == 0xee));
                        assert!(dst[to + len..].iter().all(|&b| b == 0xee));
                    }
                }
            }
        }
    }

    fn two_regions() -> [RamRegion; 2] {
        [
            RamRegion {
                start: 0,
                len: 0x1000,
            },
            RamRegion {
                start: 0x10_0000,
                len: 0x1000,
            },
        ]
    }

    #[test]
    fn fake_reads_back_what_was_written() {
        let m = FakeGuestMemory::new(&two_regions());
        m.write_u64(0x10_0ff8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u64(0x10_0ff8).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(m.read_u16(0x10_0ffe).unwrap(), 0x1122);
    }

    #[test]
    fn accesses_outside_or_across_regions_fail_without_side_effects() {
        let m = FakeGuestMemory::new(&two_regions());
        assert_eq!(
            m.write_u32(0xffe, 1),
            Err(MemoryError {
                addr: 0xffe,
                len: 4
            })
        );
        assert_eq!(
            m.read_u16(0xffe).unwrap(),
            0,
            "a failed write must not write a prefix"
        );
        assert!(m.read_u32(0x5000).is_err());
        assert!(m.read_u8_range_overflows());
        assert!(m.check_range(0x10_0000, 0x1000).is_ok());
        assert!(m.check_range(0x10_0000, 0x1001).is_err());
        assert!(m.check_range(0, 0).is_ok());
    }

    impl FakeGuestMemory {
        fn read_u8_range_overflows(&self) -> bool {
            self.check_range(u64::MAX, 2).is_err() && self.read(u64::MAX - 1, &mut [0; 4]).is_err()
        }
    }

    #[test]
    fn mapped_memory_checks_bounds_and_copies() {
        let mut backing = alloc::vec![0u8; 0x2000];
        let host = backing.as_mut_ptr();
        // SAFETY: `backing` outlives `m` and is only touched through `m` until it is dropped.
        let m = unsafe {
            MappedGuestMemory::new(&[
                MappedRegion {
                    guest: RamRegion {
                        start: 0,
                        len: 0x1000,
                    },
                    host,
                },
                MappedRegion {
                    guest: RamRegion {
                        start: 0x4000,
                        len: 0x1000,
                    },
                    host: host.wrapping_add(0x1000),
                },
            ])
        };
        m.write_u32(0x4000, 0xdead_beef).unwrap();
        assert_eq!(m.read_u32(0x4000).unwrap(), 0xdead_beef);
        assert!(m.write_u32(0xffd, 0).is_err());
        assert!(m.read_u32(0x1000).is_err());
        m.zero(0x4000, 4).unwrap();
        drop(m);
        assert_eq!(&backing[0x1000..0x1004], &[0, 0, 0, 0]);
    }
}
