//! Split virtqueues, device side (virtio 1.2 §2.7).
//!
//! The descriptor table, available ring and used ring live in guest memory and the guest may
//! change them at any moment, so every index and length read from them is checked here, once,
//! and what comes out is a [`DescriptorChain`]: the chain's buffers, each inside guest RAM,
//! device-readable ones first. Chains may be of any length up to the queue size (§2.7.5.3.1),
//! direct or through one indirect table (§2.7.5.3); loops, out-of-range indices, nested indirect
//! tables and readable-after-writable buffers are [`QueueError`]s, which the transport turns
//! into DEVICE_NEEDS_RESET.
//!
//! Notification suppression follows §2.7.7 and §2.7.10: without VIRTIO_F_EVENT_IDX the device
//! interrupts unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT; with it, the device compares the
//! driver's `used_event` with the used index (`vring_need_event`) and publishes `avail_event` so
//! the driver kicks only when the device may have gone idle.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{Ordering, fence};

use crate::memory::{GuestMemory, MemoryError};

/// The buffer continues via the `next` field.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// The buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// The buffer holds a table of descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// The driver asks for no interrupts (without EVENT_IDX).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Largest queue size virtio allows (§2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;

const DESC_SIZE: u64 = 16;

/// A violation of the split-virtqueue rules by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A ring or table address the guest gave is not guest RAM.
    Memory(MemoryError),
    /// QueueNum is zero, not a power of two, or above QueueNumMax.
    BadSize(u16),
    /// A ring is not aligned as §2.7 requires.
    Misaligned {
        /// Which part.
        part: &'static str,
        /// Its address.
        addr: u64,
    },
    /// The available index ran more than a queue size ahead of the device.
    AvailIndexTooFar {
        /// The index the driver published.
        avail_idx: u16,
        /// The device's next index.
        next: u16,
    },
    /// A head or `next` index is outside its table.
    DescriptorOutOfRange(u16),
    /// The chain is longer than the queue size: a loop or an over-long chain.
    ChainTooLong,
    /// An indirect descriptor inside an indirect table.
    NestedIndirect,
    /// An indirect descriptor with NEXT also set.
    IndirectWithNext,
    /// An indirect table whose length is zero or not a multiple of 16.
    BadIndirectLength(u32),
    /// A device-readable buffer after a device-writable one.
    ReadableAfterWritable,
}

impl From<MemoryError> for QueueError {
    fn from(e: MemoryError) -> QueueError {
        QueueError::Memory(e)
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Memory(e) => write!(f, "{e}"),
            QueueError::BadSize(n) => {
                write!(f, "queue size {n} is not a power of two within the maximum")
            }
            QueueError::Misaligned { part, addr } => write!(f, "{part} at {addr:#x} is misaligned"),
            QueueError::AvailIndexTooFar { avail_idx, next } => {
                write!(
                    f,
                    "available index {avail_idx} is more than a queue ahead of {next}"
                )
            }
            QueueError::DescriptorOutOfRange(i) => {
                write!(f, "descriptor index {i} is out of range")
            }
            QueueError::ChainTooLong => {
                write!(f, "descriptor chain loops or exceeds the queue size")
            }
            QueueError::NestedIndirect => write!(f, "indirect descriptor inside an indirect table"),
            QueueError::IndirectWithNext => write!(f, "indirect descriptor with NEXT set"),
            QueueError::BadIndirectLength(l) => write!(f, "indirect table of {l} bytes"),
            QueueError::ReadableAfterWritable => {
                write!(f, "device-readable buffer after a writable one")
            }
        }
    }
}

/// One buffer of a chain, known to lie inside guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// A validated descriptor chain: what one request from the driver consists of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescriptorChain {
    /// Index of the head descriptor, which goes back in the used ring.
    pub head: u16,
    /// Device-readable buffers, in order.
    pub readable: Vec<Buffer>,
    /// Device-writable buffers, in order.
    pub writable: Vec<Buffer>,
}

fn total(bufs: &[Buffer]) -> u64 {
    bufs.iter().map(|b| u64::from(b.len)).sum()
}

/// Copies between a byte stream at `offset` into `bufs` and `data`, one buffer piece at a time.
fn stream<E>(
    bufs: &[Buffer],
    offset: u64,
    len: usize,
    mut each: impl FnMut(u64, usize, usize) -> Result<(), E>,
) -> Result<usize, E> {
    let mut skip = offset;
    let mut done = 0usize;
    for b in bufs {
        if done == len {
            break;
        }
        let blen = u64::from(b.len);
        if skip >= blen {
            skip -= blen;
            continue;
        }
        let n = ((blen - skip) as usize).min(len - done);
        each(b.addr + skip, done, n)?;
        done += n;
        skip = 0;
    }
    Ok(done)
}

impl DescriptorChain {
    /// Total bytes the device may read.
    pub fn readable_len(&self) -> u64 {
        total(&self.readable)
    }

    /// Total bytes the device may write.
    pub fn writable_len(&self) -> u64 {
        total(&self.writable)
    }

    /// Reads the readable stream at `offset` into `buf`; returns how many bytes there were.
    pub fn read_at(
        &self,
        mem: &impl GuestMemory,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, MemoryError> {
        stream(&self.readable, offset, buf.len(), |addr, at, n| {
            mem.read(addr, &mut buf[at..at + n])
        })
    }

    /// Writes `data` into the writable stream at `offset`; returns how many bytes fitted.
    pub fn write_at(
        &self,
        mem: &impl GuestMemory,
        offset: u64,
        data: &[u8],
    ) -> Result<usize, MemoryError> {
        stream(&self.writable, offset, data.len(), |addr, at, n| {
            mem.write(addr, &data[at..at + n])
        })
    }

    /// The whole readable stream, up to `limit` bytes.
    pub fn read_all(&self, mem: &impl GuestMemory, limit: usize) -> Result<Vec<u8>, MemoryError> {
        let len = (self.readable_len().min(limit as u64)) as usize;
        let mut v = alloc::vec![0; len];
        self.read_at(mem, 0, &mut v)?;
        Ok(v)
    }
}

/// A descriptor as the driver wrote it (§2.7.5).
#[derive(Clone, Copy, Debug)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_descriptor(
    mem: &impl GuestMemory,
    table: u64,
    index: u16,
) -> Result<Descriptor, MemoryError> {
    let mut b = [0u8; 16];
    mem.read(table + u64::from(index) * DESC_SIZE, &mut b)?;
    Ok(Descriptor {
        addr: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
        len: u32::from_le_bytes(b[8..12].try_into().unwrap_or_default()),
        flags: u16::from_le_bytes([b[12], b[13]]),
        next: u16::from_le_bytes([b[14], b[15]]),
    })
}

/// Device-side state of one split virtqueue.
#[derive(Clone, Debug, Default)]
pub struct Queue {
    /// QueueNumMax: the largest size the device accepts.
    pub max_size: u16,
    /// QueueNum as the driver set it.
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// Guest-physical address of the descriptor table.
    pub desc_table: u64,
    /// Guest-physical address of the available ring (the "driver area").
    pub avail_ring: u64,
    /// Guest-physical address of the used ring (the "device area").
    pub used_ring: u64,
    event_idx: bool,
    next_avail: u16,
    next_used: u16,
    signalled_used: Option<u16>,
}

impl Queue {
    /// A queue that accepts up to `max_size` entries.
    pub fn new(max_size: u16) -> Queue {
        Queue {
            max_size,
            size: max_size,
            ..Queue::default()
        }
    }

    /// Back to the state after device reset, keeping the maximum.
    pub fn reset(&mut self) {
        *self = Queue::new(self.max_size);
    }

    /// Checks the driver's setup before the queue goes live (QueueReady = 1) and starts it.
    pub fn activate(&mut self, mem: &impl GuestMemory, event_idx: bool) -> Result<(), QueueError> {
        let n = self.size;
        if n == 0 || !n.is_power_of_two() || n > self.max_size {
            return Err(QueueError::BadSize(n));
        }
        let n = u64::from(n);
        for (part, addr, align, len) in [
            ("descriptor table", self.desc_table, 16, DESC_SIZE * n),
            ("available ring", self.avail_ring, 2, 6 + 2 * n),
            ("used ring", self.used_ring, 4, 6 + 8 * n),
        ] {
            if !addr.is_multiple_of(align) {
                return Err(QueueError::Misaligned { part, addr });
            }
            mem.check_range(addr, len)?;
        }
        self.event_idx = event_idx;
        self.next_avail = 0;
        self.next_used = 0;
        self.signalled_used = None;
        self.ready = true;
        Ok(())
    }

    fn avail_idx(&self, mem: &impl GuestMemory) -> Result<u16, QueueError> {
        let idx = mem.read_u16(self.avail_ring + 2)?;
        // Read the ring entries and descriptors only after the index that published them.
        fence(Ordering::Acquire);
        Ok(idx)
    }

    fn used_event_addr(&self) -> u64 {
        self.avail_ring + 4 + 2 * u64::from(self.size)
    }

    fn avail_event_addr(&self) -> u64 {
        self.used_ring + 4 + 8 * u64::from(self.size)
    }

    /// The next available chain, or `None` when the driver has offered nothing new.
    pub fn pop(&mut self, mem: &impl GuestMemory) -> Result<Option<DescriptorChain>, QueueError> {
        let mut avail_idx = self.avail_idx(mem)?;
        if avail_idx == self.next_avail && self.event_idx {
            // Ask for a kick at the next buffer, then look again in case one arrived meanwhile.
            mem.write_u16(self.avail_event_addr(), self.next_avail)?;
            fence(Ordering::SeqCst);
            avail_idx = self.avail_idx(mem)?;
        }
        let pending = avail_idx.wrapping_sub(self.next_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailIndexTooFar {
                avail_idx,
                next: self.next_avail,
            });
        }
        let slot = u64::from(self.next_avail % self.size);
        let head = mem.read_u16(self.avail_ring + 4 + 2 * slot)?;
        let chain = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// Gives back the last `n` chains popped and not yet used, so that they are popped again
    /// later (a device that found them too small for what it has to deliver).
    pub fn unpop(&mut self, n: u16) {
        self.next_avail = self.next_avail.wrapping_sub(n);
    }

    /// Walks the chain starting at `head` (§2.7.5.2, §2.7.5.3).
    pub fn walk(&self, mem: &impl GuestMemory, head: u16) -> Result<DescriptorChain, QueueError> {
        let mut chain = DescriptorChain {
            head,
            ..DescriptorChain::default()
        };
        let (mut table, mut table_len) = (self.desc_table, self.size);
        let mut index = head;
        let mut indirect = false;
        // Every descriptor counts, direct or indirect: no chain is longer than the queue, which
        // also bounds any loop the guest builds.
        let mut count: u32 = 0;
        loop {
            if index >= table_len {
                return Err(QueueError::DescriptorOutOfRange(index));
            }
            count += 1;
            if count > u32::from(self.size) {
                return Err(QueueError::ChainTooLong);
            }
            let d = read_descriptor(mem, table, index)?;
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if indirect {
                    return Err(QueueError::NestedIndirect);
                }
                if d.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext);
                }
                if d.len == 0
                    || !d.len.is_multiple_of(DESC_SIZE as u32)
                    || d.len / DESC_SIZE as u32 > u32::from(MAX_QUEUE_SIZE)
                {
                    return Err(QueueError::BadIndirectLength(d.len));
                }
                if !d.addr.is_multiple_of(16) {
                    return Err(QueueError::Misaligned {
                        part: "indirect table",
                        addr: d.addr,
                    });
                }
                mem.check_range(d.addr, u64::from(d.len))?;
                table = d.addr;
                table_len = (d.len / DESC_SIZE as u32) as u16;
                index = 0;
                indirect = true;
                // The indirect descriptor itself carries no data.
                count -= 1;
                continue;
            }
            mem.check_range(d.addr, u64::from(d.len))?;
            let buf = Buffer {
                addr: d.addr,
                len: d.len,
            };
            if d.flags & VIRTQ_DESC_F_WRITE != 0 {
                chain.writable.push(buf);
            } else if !chain.writable.is_empty() {
                return Err(QueueError::ReadableAfterWritable);
            } else {
                chain.readable.push(buf);
            }
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = d.next;
        }
    }

    /// Returns a chain to the driver with `len` bytes written into it (§2.7.8).
    pub fn add_used(
        &mut self,
        mem: &impl GuestMemory,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let slot = u64::from(self.next_used % self.size);
        let elem = self.used_ring + 4 + 8 * slot;
        mem.write_u32(elem, u32::from(head))?;
        mem.write_u32(elem + 4, len)?;
        self.next_used = self.next_used.wrapping_add(1);
        // The element must be visible before the index that publishes it.
        fence(Ordering::Release);
        mem.write_u16(self.used_ring + 2, self.next_used)?;
        Ok(())
    }

    /// Whether the driver wants an interrupt for the used entries added since the last call.
    pub fn needs_interrupt(&mut self, mem: &impl GuestMemory) -> Result<bool, QueueError> {
        // Our used index must be visible before we read the driver's suppression state.
        fence(Ordering::SeqCst);
        let new = self.next_used;
        let old = self.signalled_used.replace(new);
        if !self.event_idx {
            let flags = mem.read_u16(self.avail_ring)?;
            return Ok(old != Some(new) && flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0);
        }
        let Some(old) = old else { return Ok(true) };
        let used_event = mem.read_u16(self.used_event_addr())?;
        // vring_need_event: did the used index pass used_event since the last interrupt?
        Ok(new.wrapping_sub(used_event).wrapping_sub(1) < new.wrapping_sub(old))
    }

    /// The device's next available index (for tests and statistics).
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// The device's next used index.
    pub fn next_used(&self) -> u16 {
        self.next_used
    }
}

#[cfg(test)]
pub(crate) mod tests;
