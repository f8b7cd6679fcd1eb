use super::backend::FakeNet;
use super::*;
use crate::irq::FakeIrqLine;
use crate::memory::FakeGuestMemory;
use crate::virtio::fake_driver::FakeDriver;
use crate::virtio::mmio::MmioTransport;
use alloc::sync::Arc;

type T = MmioTransport<Net<FakeNet>, Arc<FakeGuestMemory>, Arc<FakeIrqLine>>;

const LINUX: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_F_EVENT_IDX
    | VIRTIO_F_INDIRECT_DESC
    | VIRTIO_NET_F_MAC
    | VIRTIO_NET_F_STATUS
    | VIRTIO_NET_F_MRG_RXBUF;
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

fn card(mergeable: bool) -> (T, FakeDriver) {
    let mem = Arc::new(FakeGuestMemory::with_size(0x40_0000));
    let mut t = MmioTransport::new(
        Net::new(FakeNet::default(), MAC, mergeable),
        mem.clone(),
        Arc::new(FakeIrqLine::default()),
    );
    let mut d = FakeDriver::new(mem);
    d.bring_up(&mut t, device_id::NET, LINUX, 2, 64);
    (t, d)
}

fn frame(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

fn rx_buffers(t: &mut T, d: &mut FakeDriver, n: usize, len: u32) {
    let mem = d.mem.clone();
    for _ in 0..n {
        let a = d.alloc(u64::from(len));
        d.queues[0].add(&*mem, &[(a, len, true)]);
    }
    d.notify(t, RECEIVEQ as u32);
}

fn used_rx(d: &mut FakeDriver) -> Vec<(Vec<u8>, u32)> {
    let mem = d.mem.clone();
    d.queues[0]
        .take_used(&*mem)
        .into_iter()
        .map(|(id, len)| {
            let addr = mem.read_u64(d.queues[0].desc + 16 * u64::from(id)).unwrap();
            let mut b = alloc::vec![0; len as usize];
            mem.read(addr, &mut b).unwrap();
            (b, len)
        })
        .collect()
}

#[test]
fn config_space_has_the_mac_and_link_up() {
    let (mut t, d) = card(false);
    assert_eq!(d.config(&mut t, 0, 6), MAC);
    assert_eq!(d.config(&mut t, 6, 2), [1, 0]);
    assert_eq!(d.features & VIRTIO_NET_F_MRG_RXBUF, 0);
}

#[test]
fn transmitted_frames_lose_their_header() {
    let (mut t, mut d) = card(false);
    let mem = d.mem.clone();
    let (h, f) = (d.alloc(12), d.alloc(64));
    mem.write(f, &frame(60)).unwrap();
    // Header and frame in separate descriptors, as Linux does without ANY_LAYOUT tricks.
    d.queues[1].add(&*mem, &[(h, 12, false), (f, 60, false)]);
    // And a buffer shorter than a header, which is dropped, not fatal.
    d.queues[1].add(&*mem, &[(h, 4, false)]);
    d.notify(&mut t, TRANSMITQ as u32);
    assert_eq!(t.device().backend().from_guest, [frame(60)]);
    assert_eq!(t.device().stats().tx_dropped, 1);
    assert_eq!(d.queues[1].take_used(&*mem).len(), 2);
    assert_eq!(t.violations(), 0);
}

#[test]
fn received_frames_wait_for_buffers() {
    let (mut t, mut d) = card(false);
    t.device_mut()
        .backend_mut()
        .to_guest
        .extend([frame(100), frame(1514)]);
    t.poll();
    assert!(!d.vring_interrupt(&mut t));
    rx_buffers(&mut t, &mut d, 1, 1526);
    assert!(d.vring_interrupt(&mut t));
    let got = used_rx(&mut d);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, 112);
    assert_eq!(&got[0].0[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&got[0].0[12..], &frame(100)[..]);
    rx_buffers(&mut t, &mut d, 1, 1526);
    assert_eq!(used_rx(&mut d)[0].1, 1526);
    assert_eq!(t.device().stats().rx_frames, 2);
}

#[test]
fn oversized_frames_are_dropped_without_mergeable_buffers() {
    let (mut t, mut d) = card(false);
    t.device_mut()
        .backend_mut()
        .to_guest
        .extend([frame(3000), frame(64)]);
    rx_buffers(&mut t, &mut d, 2, 1526);
    let got = used_rx(&mut d);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 76]);
    assert_eq!(t.device().stats().rx_dropped, 1);
}

#[test]
fn mergeable_buffers_carry_a_large_frame() {
    let (mut t, mut d) = card(true);
    assert_ne!(d.features & VIRTIO_NET_F_MRG_RXBUF, 0);
    t.device_mut().backend_mut().to_guest.push_back(frame(3000));
    // Two buffers are not enough: the frame waits, and the buffers stay available.
    rx_buffers(&mut t, &mut d, 2, 1024);
    assert!(used_rx(&mut d).is_empty());
    rx_buffers(&mut t, &mut d, 1, 1024);
    let got = used_rx(&mut d);
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        [1024, 1024, 964]
    );
    assert_eq!(u16::from_le_bytes([got[0].0[10], got[0].0[11]]), 3);
    let joined: Vec<u8> = got.iter().flat_map(|g| g.0.clone()).collect();
    assert_eq!(&joined[12..], &frame(3000)[..]);
}

#[test]
fn reset_and_reprobe_without_mergeable() {
    let (mut t, mut d) = card(true);
    d.remove(&mut t);
    d.bring_up(
        &mut t,
        device_id::NET,
        LINUX & !VIRTIO_NET_F_MRG_RXBUF,
        2,
        64,
    );
    t.device_mut().backend_mut().to_guest.push_back(frame(2000));
    rx_buffers(&mut t, &mut d, 2, 1024);
    assert_eq!(
        used_rx(&mut d)[0].1,
        0,
        "dropped: one buffer only without MRG_RXBUF"
    );
}

#[test]
fn an_mtu_is_offered_and_frames_of_it_pass_both_ways() {
    let mem = Arc::new(FakeGuestMemory::with_size(0x40_0000));
    let mut t = MmioTransport::new(
        Net::new(FakeNet::default(), MAC, false).with_mtu(65520),
        mem.clone(),
        Arc::new(FakeIrqLine::default()),
    );
    let mut d = FakeDriver::new(mem.clone());
    d.bring_up(&mut t, device_id::NET, LINUX | VIRTIO_NET_F_MTU, 2, 64);
    assert_ne!(d.features & VIRTIO_NET_F_MTU, 0);
    assert_eq!(d.config(&mut t, 10, 2), 65520u16.to_le_bytes());
    // The largest frame the MTU allows goes out whole, one byte more is dropped.
    let big = frame(65534);
    let (h, f) = (d.alloc(12), d.alloc(65536));
    mem.write(f, &big).unwrap();
    d.queues[1].add(&*mem, &[(h, 12, false), (f, 65534, false)]);
    d.queues[1].add(&*mem, &[(h, 12, false), (f, 65536, false)]);
    d.notify(&mut t, TRANSMITQ as u32);
    assert_eq!(t.device().backend().from_guest, core::slice::from_ref(&big));
    assert_eq!(t.device().stats().tx_dropped, 1);
    // And one comes in through a buffer as large as Linux posts for it.
    t.device_mut().backend_mut().to_guest.push_back(big.clone());
    rx_buffers(&mut t, &mut d, 1, 12 + 65534);
    let got = used_rx(&mut d);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].0[12..], &big[..]);
    assert_eq!(t.violations(), 0);
}

#[test]
fn no_mtu_is_offered_without_one() {
    let (mut t, d) = card(false);
    assert_eq!(d.features & VIRTIO_NET_F_MTU, 0);
    assert_eq!(d.config(&mut t, 10, 2), [0, 0]);
    let t2 = Net::new(FakeNet::default(), MAC, false).with_mtu(u16::MAX);
    assert_eq!(t2.device_features() & VIRTIO_NET_F_MTU, VIRTIO_NET_F_MTU);
    assert_eq!(
        t2.mtu,
        (MAX_FRAME - 14) as u16,
        "clamped to the largest frame"
    );
}
