//! What virtio-net talks to: Ethernet frames to and from the NAT, and an in-memory fake.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The host side of the network card.
pub trait NetBackend {
    /// A frame the guest sent (without the virtio-net header), handed over so the backend can
    /// keep it without another copy.
    fn send(&mut self, frame: Vec<u8>);
    /// The next frame for the guest, if any.
    fn receive(&mut self) -> Option<Vec<u8>>;
}

/// Queued frames for the guest and captured frames from it, for tests.
#[derive(Debug, Default)]
pub struct FakeNet {
    /// Frames the guest will receive.
    pub to_guest: VecDeque<Vec<u8>>,
    /// Frames the guest sent.
    pub from_guest: Vec<Vec<u8>>,
}

impl NetBackend for FakeNet {
    fn send(&mut self, frame: Vec<u8>) {
        self.from_guest.push(frame);
    }
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.to_guest.pop_front()
    }
}
