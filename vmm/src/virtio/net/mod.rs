//! virtio-net (virtio 1.2 §5.1): one queue pair between the guest and a [`NetBackend`] (the NAT).
//!
//! Offers VIRTIO_NET_F_MAC (configurable) and VIRTIO_NET_F_STATUS (link always up), optionally
//! VIRTIO_NET_F_MTU (the backend's MTU, up to 64 KiB: large frames instead of segmentation
//! offloads) and VIRTIO_NET_F_MRG_RXBUF, and no checksum or segmentation offloads, so every
//! frame carries a full checksum the NAT can check (reference/akaros.md §3.4, §4).

pub mod backend;
pub mod config;
mod requests;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;

use self::backend::NetBackend;
use super::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use super::{DeviceError, Queues, VirtioDevice, device_id};
use crate::memory::GuestMemory;

pub use requests::{HEADER_LEN, MAX_FRAME, RECEIVEQ, TRANSMITQ};

/// `mtu` in the configuration space is the largest MTU the driver should use (§5.1.3).
pub const VIRTIO_NET_F_MTU: u64 = 1 << 3;
/// `mac` in the configuration space is valid.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// The driver can merge receive buffers.
pub const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
/// `status` in the configuration space is valid.
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// QueueNumMax of both queues.
pub const QUEUE_SIZE: u16 = 256;
/// The MAC used when the configuration names none (a locally administered address).
pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// Frame counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames delivered to the guest.
    pub rx_frames: u64,
    /// Frames for the guest that were dropped.
    pub rx_dropped: u64,
    /// Frames the guest sent.
    pub tx_frames: u64,
    /// Malformed transmit buffers dropped.
    pub tx_dropped: u64,
}

/// A virtio-net device.
pub struct Net<B> {
    backend: B,
    mac: [u8; 6],
    offer_mergeable: bool,
    mergeable: bool,
    /// The MTU announced with VIRTIO_NET_F_MTU, or 0 (not offered).
    mtu: u16,
    pending: Option<Vec<u8>>,
    stats: NetStats,
}

impl<B: NetBackend> Net<B> {
    /// A card with `mac` on `backend`; `mergeable` offers VIRTIO_NET_F_MRG_RXBUF.
    pub fn new(backend: B, mac: [u8; 6], mergeable: bool) -> Net<B> {
        Net {
            backend,
            mac,
            offer_mergeable: mergeable,
            mergeable: false,
            mtu: 0,
            pending: None,
            stats: NetStats::default(),
        }
    }

    /// Announces `mtu` to the driver (VIRTIO_NET_F_MTU), which then sends IP packets of up to
    /// that size and posts receive buffers for them. At most [`MAX_FRAME`] less the Ethernet
    /// header; 0 offers no MTU (the driver's default, 1500).
    pub fn with_mtu(mut self, mtu: u16) -> Net<B> {
        self.mtu = mtu.min((MAX_FRAME - 14) as u16);
        self
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Frame counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }
}

impl<B: NetBackend> VirtioDevice for Net<B> {
    fn device_id(&self) -> u32 {
        device_id::NET
    }

    fn device_features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1
            | VIRTIO_F_INDIRECT_DESC
            | VIRTIO_F_EVENT_IDX
            | VIRTIO_NET_F_MAC
            | VIRTIO_NET_F_STATUS;
        if self.offer_mergeable {
            f |= VIRTIO_NET_F_MRG_RXBUF;
        }
        if self.mtu != 0 {
            f |= VIRTIO_NET_F_MTU;
        }
        f
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::blk::copy_config(&config::encode(self.mac, self.mtu), offset, data);
    }

    fn activate(&mut self, features: u64) {
        self.mergeable = features & VIRTIO_NET_F_MRG_RXBUF != 0;
    }

    fn reset(&mut self) {
        self.mergeable = false;
    }

    fn process_queue<M: GuestMemory>(
        &mut self,
        index: usize,
        queues: &mut Queues<'_, M>,
    ) -> Result<(), DeviceError> {
        match index {
            RECEIVEQ => requests::receive(self, queues),
            TRANSMITQ => requests::transmit(self, queues),
            _ => Ok(()),
        }
    }

    fn poll<M: GuestMemory>(&mut self, queues: &mut Queues<'_, M>) -> Result<(), DeviceError> {
        requests::receive(self, queues)
    }
}
