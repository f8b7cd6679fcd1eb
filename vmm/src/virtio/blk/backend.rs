//! What virtio-blk stores its data in: a byte-addressable store, and an in-memory fake.

use alloc::vec::Vec;
use core::fmt;

/// A failed store operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot do this (discard on a store that has no notion of it).
    Unsupported,
    /// The underlying file or device failed.
    Io,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreError::Unsupported => "operation not supported by the store",
            StoreError::Io => "I/O error",
        })
    }
}

/// A disk: bytes addressed from 0 to `len()`. The device checks every range against `len()`
/// before calling in, so implementations see only in-range requests.
pub trait BlockStore {
    /// Size in bytes (the device exposes `len() / 512` sectors).
    fn len(&self) -> u64;
    /// Whether the store is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether writes are refused.
    fn read_only(&self) -> bool {
        false
    }
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;
    /// Writes `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError>;
    /// Makes every completed write durable (VIRTIO_BLK_T_FLUSH).
    fn flush(&mut self) -> Result<(), StoreError>;
    /// Whether [`BlockStore::discard`] does anything; if so the device offers
    /// VIRTIO_BLK_F_DISCARD.
    fn supports_discard(&self) -> bool {
        false
    }
    /// Tells the store `len` bytes at `offset` are no longer needed.
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StoreError> {
        let _ = (offset, len);
        Err(StoreError::Unsupported)
    }
}

/// A disk in memory, with counters and fault injection for tests.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    /// The disk's bytes.
    pub data: Vec<u8>,
    /// Refuse writes.
    pub read_only: bool,
    /// Accept discards (which zero the range).
    pub discard: bool,
    /// Fail every operation with [`StoreError::Io`].
    pub failing: bool,
    /// Flushes so far.
    pub flushes: u64,
    /// Writes since the last flush.
    pub unflushed_writes: u64,
}

impl MemStore {
    /// A zeroed disk of `len` bytes.
    pub fn new(len: usize) -> MemStore {
        MemStore {
            data: alloc::vec![0; len],
            ..MemStore::default()
        }
    }

    fn range(&self, offset: u64, len: usize) -> Result<core::ops::Range<usize>, StoreError> {
        if self.failing {
            return Err(StoreError::Io);
        }
        let start = usize::try_from(offset).map_err(|_| StoreError::Io)?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or(StoreError::Io)?;
        Ok(start..end)
    }
}

impl BlockStore for MemStore {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let r = self.range(offset, data.len())?;
        self.data[r].copy_from_slice(data);
        self.unflushed_writes += 1;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.failing {
            return Err(StoreError::Io);
        }
        self.flushes += 1;
        self.unflushed_writes = 0;
        Ok(())
    }
    fn supports_discard(&self) -> bool {
        self.discard
    }
    fn discard(&mut self, offset: u64, len: u64) -> Result<(), StoreError> {
        if !self.discard {
            return Err(StoreError::Unsupported);
        }
        let r = self.range(offset, usize::try_from(len).map_err(|_| StoreError::Io)?)?;
        self.data[r].fill(0);
        Ok(())
    }
}
