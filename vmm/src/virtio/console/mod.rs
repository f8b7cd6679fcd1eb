//! virtio-console (virtio 1.2 §5.3): one port, bytes in and out, on a [`ConsoleBackend`].
//!
//! No features beyond VERSION_1, indirect descriptors and EVENT_IDX: no size, no multiport, no
//! emergency write, so Linux drives it as `hvc0`. End of input is explicit
//! ([`backend::ConsoleInput::Closed`]): the device stops asking for input but keeps delivering
//! what it has and keeps transmitting; Akaros' console instead burned a core injecting
//! interrupts after stdin EOF until it was fixed to kill its input thread
//! (reference/akaros.md §3.3, lesson 8).

pub mod backend;
pub mod config;
mod requests;
#[cfg(test)]
mod tests;

use alloc::collections::VecDeque;

use self::backend::ConsoleBackend;
use super::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use super::{DeviceError, Queues, VirtioDevice, device_id};
use crate::memory::GuestMemory;

pub use requests::{RECEIVEQ, TRANSMITQ};

/// QueueNumMax of both queues.
pub const QUEUE_SIZE: u16 = 64;

/// A virtio-console device.
pub struct Console<B> {
    backend: B,
    pending: VecDeque<u8>,
    input_closed: bool,
}

impl<B: ConsoleBackend> Console<B> {
    /// A console on `backend`.
    pub fn new(backend: B) -> Console<B> {
        Console {
            backend,
            pending: VecDeque::new(),
            input_closed: false,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Whether the backend has reported end of input.
    pub fn input_closed(&self) -> bool {
        self.input_closed
    }
}

impl<B: ConsoleBackend> VirtioDevice for Console<B> {
    fn device_id(&self) -> u32 {
        device_id::CONSOLE
    }

    fn device_features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::blk::copy_config(&config::encode(), offset, data);
    }

    fn reset(&mut self) {
        // Input already read from the host stays queued for the next driver; end of input
        // stays ended.
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
