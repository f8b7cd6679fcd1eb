//! The virtual Ethernet link between the guest and the NAT's smoltcp interface: one bounded
//! frame queue each way, and smoltcp's `Device` over them. When the queue to the guest is full
//! `transmit` says so and smoltcp keeps the data in its sockets for later; a reply produced
//! while receiving (an ARP answer, a RST) that finds the queue full is dropped and counted.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The two frame queues.
pub(super) struct Link {
    /// Checked frames from the guest, waiting for the stack.
    pub from_guest: VecDeque<Vec<u8>>,
    /// Frames for the guest, waiting for virtio-net.
    pub to_guest: VecDeque<Vec<u8>>,
    /// Bound of each queue.
    pub limit: usize,
    /// Frames for the guest dropped because `to_guest` was full.
    pub dropped_to_guest: u64,
    /// The largest frame either way (the MTU and the Ethernet header).
    max_frame: usize,
}

impl Link {
    pub fn new(limit: usize, max_frame: usize) -> Link {
        Link {
            from_guest: VecDeque::new(),
            to_guest: VecDeque::new(),
            limit,
            dropped_to_guest: 0,
            max_frame,
        }
    }

    /// The queue to the guest has no room.
    pub fn to_guest_full(&self) -> bool {
        self.to_guest.len() >= self.limit
    }
}

/// A frame from the guest, handed to the stack.
pub(super) struct RxFrame(Vec<u8>);

impl phy::RxToken for RxFrame {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

/// Room for one frame to the guest.
pub(super) struct TxFrame<'a> {
    link: &'a mut Link,
}

impl phy::TxToken for TxFrame<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if self.link.to_guest_full() {
            self.link.dropped_to_guest += 1;
        } else {
            self.link.to_guest.push_back(frame);
        }
        r
    }
}

impl phy::Device for Link {
    type RxToken<'a> = RxFrame;
    type TxToken<'a> = TxFrame<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxFrame, TxFrame<'_>)> {
        let frame = self.from_guest.pop_front()?;
        Some((RxFrame(frame), TxFrame { link: self }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxFrame<'_>> {
        if self.to_guest_full() {
            None
        } else {
            Some(TxFrame { link: self })
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut checksum = ChecksumCapabilities::default();
        // Frames from the guest were verified by `frame::classify`; frames to it get full
        // checksums, since the virtio-net device offers the guest no checksum offload.
        checksum.ipv4 = Checksum::Tx;
        checksum.tcp = Checksum::Tx;
        checksum.udp = Checksum::Tx;
        checksum.icmpv4 = Checksum::Tx;
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.max_frame;
        caps.max_burst_size = None;
        caps.checksum = checksum;
        caps
    }
}
