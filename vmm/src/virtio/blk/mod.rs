//! virtio-blk (virtio 1.2 §5.2): one request queue over a [`BlockStore`].
//!
//! Offers VIRTIO_BLK_F_SEG_MAX, BLK_SIZE and FLUSH, RO when the store is read-only and DISCARD
//! when it supports it, plus indirect descriptors and EVENT_IDX. Requests are IN, OUT, FLUSH,
//! GET_ID and (optionally) DISCARD; anything else is answered VIRTIO_BLK_S_UNSUPP (§5.2.6.1),
//! never a crash (Akaros aborted on FLUSH: reference/akaros.md §3.5). A request may use any
//! number of data buffers; data moves in bounded chunks, so a huge request costs no huge
//! allocation.

pub mod backend;
pub mod config;
mod requests;
#[cfg(test)]
mod tests;

use alloc::string::String;

use self::backend::BlockStore;
use super::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use super::{DeviceError, Queues, VirtioDevice, device_id};
use crate::memory::GuestMemory;

pub use requests::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};

/// Maximum number of segments in a request (`seg_max`).
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// The device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// `blk_size` is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// The device honours VIRTIO_BLK_T_FLUSH.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// The device honours VIRTIO_BLK_T_DISCARD.
pub const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;

/// Size of a sector, the unit of `capacity` and request offsets.
pub const SECTOR_SIZE: u64 = 512;
/// QueueNumMax of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Most discard segments in one request.
pub const MAX_DISCARD_SEGMENTS: u32 = 16;
/// Length of the GET_ID answer (VIRTIO_BLK_ID_BYTES).
pub const ID_BYTES: usize = 20;

/// A virtio-blk device.
pub struct Block<S> {
    store: S,
    id: [u8; ID_BYTES],
    requests: u64,
}

impl<S: BlockStore> Block<S> {
    /// A disk over `store`, answering GET_ID with (the first 20 bytes of) `id`.
    pub fn new(store: S, id: &str) -> Block<S> {
        let mut b = [0u8; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        b[..n].copy_from_slice(&id.as_bytes()[..n]);
        Block {
            store,
            id: b,
            requests: 0,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Requests completed so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The capacity in sectors (a partial last sector is not exposed).
    pub fn sectors(&self) -> u64 {
        self.store.len() / SECTOR_SIZE
    }

    /// The disk ID as text, for logs.
    pub fn id(&self) -> String {
        String::from_utf8_lossy(&self.id)
            .trim_end_matches('\0')
            .into()
    }
}

impl<S: BlockStore> VirtioDevice for Block<S> {
    fn device_id(&self) -> u32 {
        device_id::BLOCK
    }

    fn device_features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1
            | VIRTIO_F_INDIRECT_DESC
            | VIRTIO_F_EVENT_IDX
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH;
        if self.store.read_only() {
            f |= VIRTIO_BLK_F_RO;
        }
        if self.store.supports_discard() {
            f |= VIRTIO_BLK_F_DISCARD;
        }
        f
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // Room for the header and status descriptors, as Linux assumes (seg_max + 2 <= size).
        let c = config::encode(
            self.sectors(),
            u32::from(QUEUE_SIZE) - 2,
            self.store.supports_discard(),
        );
        copy_config(&c, offset, data);
    }

    fn reset(&mut self) {}

    fn process_queue<M: GuestMemory>(
        &mut self,
        index: usize,
        queues: &mut Queues<'_, M>,
    ) -> Result<(), DeviceError> {
        if index != 0 {
            return Ok(());
        }
        while let Some(chain) = queues.pop(0)? {
            let written = requests::handle(self, queues.mem(), &chain)?;
            queues.add_used(0, &chain, written)?;
            self.requests += 1;
        }
        Ok(())
    }
}

/// Copies `data.len()` bytes of `space` at `offset`; bytes past its end read as zero.
pub(crate) fn copy_config(space: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| space.get(o + i))
            .copied()
            .unwrap_or(0);
    }
}
