//! virtio-net queue handling (virtio 1.2 §5.1.6): receiveq1 (queue 0) and transmitq1 (queue 1).
//! Every buffer starts with a 12-byte `virtio_net_hdr` (VERSION_1 always has `num_buffers`).

use super::Net;
use super::backend::NetBackend;
use crate::memory::GuestMemory;
use crate::virtio::{DeviceError, Queues};

/// Queue index of the receive queue.
pub const RECEIVEQ: usize = 0;
/// Queue index of the transmit queue.
pub const TRANSMITQ: usize = 1;
/// Size of `struct virtio_net_hdr` with `num_buffers`.
pub const HEADER_LEN: usize = 12;
/// Largest frame taken from the guest or given to it: without GSO offloads Linux never sends more
/// than an MTU-sized frame, so anything larger is a broken driver or a backend bug, and dropped.
pub const MAX_FRAME: usize = 65535;

/// Sends each transmit chain's frame (after the header) to the backend.
pub(super) fn transmit<B: NetBackend, M: GuestMemory>(
    dev: &mut Net<B>,
    queues: &mut Queues<'_, M>,
) -> Result<(), DeviceError> {
    while let Some(chain) = queues.pop(TRANSMITQ)? {
        let len = chain.readable_len();
        if len < HEADER_LEN as u64 || len > (HEADER_LEN + MAX_FRAME) as u64 {
            log::info!("virtio-net: dropped a transmit buffer of {len} bytes");
            dev.stats.tx_dropped += 1;
        } else {
            // The frame alone, straight into the vector the backend keeps.
            let mut frame = alloc::vec![0; len as usize - HEADER_LEN];
            chain.read_at(queues.mem(), HEADER_LEN as u64, &mut frame)?;
            dev.backend.send(frame);
            dev.stats.tx_frames += 1;
        }
        queues.add_used(TRANSMITQ, &chain, 0)?;
    }
    Ok(())
}

fn header(num_buffers: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    // flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE, no checksum offload: all zero but num_buffers.
    h[10..12].copy_from_slice(&num_buffers.to_le_bytes());
    h
}

/// Delivers frames from the backend while the guest has receive buffers for them. A frame that
/// does not fit waits (with VIRTIO_NET_F_MRG_RXBUF it is spread over several buffers); a frame
/// too large for any one buffer without mergeable buffers is dropped.
pub(super) fn receive<B: NetBackend, M: GuestMemory>(
    dev: &mut Net<B>,
    queues: &mut Queues<'_, M>,
) -> Result<(), DeviceError> {
    loop {
        let frame = match dev.pending.take() {
            Some(f) => f,
            None => match dev.backend.receive() {
                Some(f) if f.len() <= MAX_FRAME => f,
                Some(f) => {
                    log::info!(
                        "virtio-net: dropped a {}-byte frame from the backend",
                        f.len()
                    );
                    dev.stats.rx_dropped += 1;
                    continue;
                }
                None => return Ok(()),
            },
        };
        if !deliver(dev, queues, &frame)? {
            dev.pending = Some(frame);
            return Ok(());
        }
    }
}

/// Puts one frame into receive buffers; false if there are not enough buffers yet.
fn deliver<B: NetBackend, M: GuestMemory>(
    dev: &mut Net<B>,
    queues: &mut Queues<'_, M>,
    frame: &[u8],
) -> Result<bool, DeviceError> {
    let total = HEADER_LEN + frame.len();
    let mut chains = alloc::vec::Vec::new();
    let mut room = 0u64;
    while room < total as u64 {
        let Some(c) = queues.pop(RECEIVEQ)? else {
            queues.unpop(RECEIVEQ, chains.len() as u16);
            return Ok(false);
        };
        room += c.writable_len();
        chains.push(c);
        if !dev.mergeable {
            break;
        }
    }
    if room < total as u64 {
        // Only without mergeable buffers: the one buffer is too small. Linux's small buffers
        // hold a full 1514-byte frame, so this is a frame larger than the link allows.
        log::info!(
            "virtio-net: dropped a {}-byte frame: receive buffer of {room} bytes",
            frame.len()
        );
        dev.stats.rx_dropped += 1;
        queues.add_used(RECEIVEQ, &chains[0], 0)?;
        return Ok(true);
    }
    let mut data = alloc::vec::Vec::with_capacity(total);
    data.extend_from_slice(&header(chains.len() as u16));
    data.extend_from_slice(frame);
    let mut off = 0;
    for c in &chains {
        let n = c.write_at(queues.mem(), 0, &data[off..])?;
        off += n;
        queues.add_used(RECEIVEQ, c, n as u32)?;
    }
    dev.stats.rx_frames += 1;
    Ok(true)
}
