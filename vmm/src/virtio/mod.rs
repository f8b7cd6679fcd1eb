//! virtio 1.2: the device side of the virtio-mmio transport, split virtqueues and three devices.
//!
//! - [`mmio`]: the virtio-mmio version 2 register file and status machine (§4.2), generic over a
//!   [`VirtioDevice`].
//! - [`queue`]: split virtqueues (§2.7).
//! - [`blk`], [`console`], [`net`]: the devices (§5.2, §5.3, §5.1). Each is a folder of the same
//!   shape: `mod.rs` (the device: features, queues, activation), `config.rs` (its configuration
//!   space layout), `requests.rs` (its queue handling), `backend.rs` (the trait it talks to and an
//!   in-memory fake) and `tests.rs`.
//!
//! Guest protocol violations are values ([`DeviceError`]); the transport logs them and sets
//! DEVICE_NEEDS_RESET. Nothing a guest writes makes the VMM panic or exit (unlike Akaros, whose
//! transport called `errx` on any driver error: reference/akaros.md lesson 7).

use alloc::string::String;
use core::fmt;

use crate::memory::{GuestMemory, MemoryError};

pub mod blk;
pub mod console;
pub mod mmio;
pub mod net;
pub mod queue;

#[cfg(test)]
pub(crate) mod fake_driver;

use queue::{DescriptorChain, Queue, QueueError};

/// Device status bits (§2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Device-independent feature bits (§6).
pub mod features {
    /// Indirect descriptors (§2.7.5.3).
    pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
    /// used_event / avail_event (§2.7.7, §2.7.10).
    pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
    /// Compliance with virtio 1.x; mandatory for virtio-mmio version 2.
    pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
}

/// Device IDs (§5).
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
}

/// A request the device cannot carry out because the driver broke the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The virtqueue itself is malformed.
    Queue(QueueError),
    /// A device-specific rule was broken.
    Protocol(String),
}

impl From<QueueError> for DeviceError {
    fn from(e: QueueError) -> DeviceError {
        DeviceError::Queue(e)
    }
}

impl From<MemoryError> for DeviceError {
    fn from(e: MemoryError) -> DeviceError {
        DeviceError::Queue(QueueError::Memory(e))
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Queue(e) => write!(f, "virtqueue: {e}"),
            DeviceError::Protocol(m) => f.write_str(m),
        }
    }
}

/// The virtqueues of a live device, as a device model sees them while it handles a kick.
pub struct Queues<'a, M> {
    queues: &'a mut [Queue],
    mem: &'a M,
    used: u64,
}

impl<'a, M: GuestMemory> Queues<'a, M> {
    /// Wraps `queues`, which live in `mem`.
    pub fn new(queues: &'a mut [Queue], mem: &'a M) -> Queues<'a, M> {
        Queues {
            queues,
            mem,
            used: 0,
        }
    }

    /// Guest memory.
    pub fn mem(&self) -> &'a M {
        self.mem
    }

    fn queue(&mut self, index: usize) -> Option<&mut Queue> {
        self.queues.get_mut(index).filter(|q| q.ready)
    }

    /// The next chain the driver made available on queue `index` (`None` if the queue is empty
    /// or not ready).
    pub fn pop(&mut self, index: usize) -> Result<Option<DescriptorChain>, DeviceError> {
        let mem = self.mem;
        match self.queue(index) {
            Some(q) => Ok(q.pop(mem)?),
            None => Ok(None),
        }
    }

    /// Puts back the last `n` chains popped from queue `index`.
    pub fn unpop(&mut self, index: usize, n: u16) {
        if let Some(q) = self.queue(index) {
            q.unpop(n);
        }
    }

    /// Returns `chain` to the driver with `len` bytes written.
    pub fn add_used(
        &mut self,
        index: usize,
        chain: &DescriptorChain,
        len: u32,
    ) -> Result<(), DeviceError> {
        let mem = self.mem;
        if let Some(q) = self.queue(index) {
            q.add_used(mem, chain.head, len)?;
            self.used |= 1 << index.min(63);
        }
        Ok(())
    }

    /// Bit `i` is set if queue `i` got used entries.
    pub fn used_mask(&self) -> u64 {
        self.used
    }
}

/// A virtio device model behind a transport.
pub trait VirtioDevice {
    /// The device ID (§5).
    fn device_id(&self) -> u32;
    /// The features the device offers, VIRTIO_F_VERSION_1 included.
    fn device_features(&self) -> u64;
    /// QueueNumMax of each queue; the number of entries is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads the device configuration space at `offset` (bytes past its end read as zero).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver write to the configuration space. The default ignores it: our devices have no
    /// writable fields among the features they offer.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        log::debug!(
            "virtio: ignored config write of {} bytes at {offset:#x}",
            data.len()
        );
    }
    /// The driver set DRIVER_OK having accepted `features`.
    fn activate(&mut self, features: u64) {
        let _ = features;
    }
    /// Device reset: forget everything the driver set up.
    fn reset(&mut self);
    /// The driver notified queue `index`.
    fn process_queue<M: GuestMemory>(
        &mut self,
        index: usize,
        queues: &mut Queues<'_, M>,
    ) -> Result<(), DeviceError>;
    /// Backend work not triggered by the driver (input arriving). Default: none.
    fn poll<M: GuestMemory>(&mut self, queues: &mut Queues<'_, M>) -> Result<(), DeviceError> {
        let _ = queues;
        Ok(())
    }
}
