use super::backend::FakeConsole;
use super::*;
use crate::bus::MmioDevice;
use crate::irq::FakeIrqLine;
use crate::memory::FakeGuestMemory;
use crate::virtio::fake_driver::FakeDriver;
use crate::virtio::mmio::MmioTransport;
use alloc::sync::Arc;
use alloc::vec::Vec;

type T = MmioTransport<Console<FakeConsole>, Arc<FakeGuestMemory>, Arc<FakeIrqLine>>;

const LINUX: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC;

fn console() -> (T, FakeDriver, Arc<FakeIrqLine>) {
    let mem = Arc::new(FakeGuestMemory::with_size(0x40_0000));
    let irq = Arc::new(FakeIrqLine::default());
    let mut t = MmioTransport::new(
        Console::new(FakeConsole::default()),
        mem.clone(),
        irq.clone(),
    );
    let mut d = FakeDriver::new(mem);
    d.bring_up(&mut t, device_id::CONSOLE, LINUX, 2, 16);
    (t, d, irq)
}

/// Offers `n` receive buffers of `len` bytes, as `fill_queue` does at port setup.
fn offer_rx(t: &mut T, d: &mut FakeDriver, n: usize, len: u32) -> Vec<u64> {
    let mem = d.mem.clone();
    let bufs: Vec<u64> = (0..n).map(|_| d.alloc(u64::from(len))).collect();
    for &b in &bufs {
        d.queues[0].add(&*mem, &[(b, len, true)]);
    }
    d.notify(t, RECEIVEQ as u32);
    bufs
}

fn received(d: &mut FakeDriver, bufs: &[u64]) -> Vec<u8> {
    let mem = d.mem.clone();
    let mut out = Vec::new();
    for (id, len) in d.queues[0].take_used(&*mem) {
        // Descriptor ids were handed out in order, so id k is buffer k of the latest offer.
        let addr = mem.read_u64(d.queues[0].desc + 16 * u64::from(id)).unwrap();
        assert!(bufs.contains(&addr));
        let mut b = alloc::vec![0; len as usize];
        mem.read(addr, &mut b).unwrap();
        out.extend(b);
    }
    out
}

#[test]
fn output_reaches_the_backend() {
    let (mut t, mut d, irq) = console();
    let mem = d.mem.clone();
    let (a, b) = (d.alloc(16), d.alloc(16));
    mem.write(a, b"hello, ").unwrap();
    mem.write(b, b"world\n").unwrap();
    d.queues[1].add(&*mem, &[(a, 7, false)]);
    d.queues[1].add(&*mem, &[(b, 6, false)]);
    d.notify(&mut t, TRANSMITQ as u32);
    assert_eq!(t.device().backend().output, b"hello, world\n");
    assert!(irq.level());
    assert_eq!(d.queues[1].take_used(&*mem).len(), 2);
}

#[test]
fn input_waits_for_buffers_and_is_split_across_them() {
    let (mut t, mut d, _) = console();
    t.device_mut().backend_mut().input.extend(b"SHUTDOWN\n");
    t.poll();
    assert_eq!(
        t.device().backend().input.len(),
        0,
        "read into the device's pending buffer"
    );
    let bufs = offer_rx(&mut t, &mut d, 3, 4);
    assert!(d.vring_interrupt(&mut t));
    assert_eq!(received(&mut d, &bufs), b"SHUTDOWN\n");
}

#[test]
fn end_of_input_does_not_wedge_the_device() {
    let (mut t, mut d, irq) = console();
    t.device_mut().backend_mut().input.extend(b"bye\n");
    t.device_mut().backend_mut().closed = true;
    let bufs = offer_rx(&mut t, &mut d, 2, 64);
    assert_eq!(received(&mut d, &bufs), b"bye\n");
    d.interrupt(&mut t);
    for _ in 0..100 {
        t.poll();
    }
    assert!(t.device().input_closed());
    assert_eq!(
        t.device().backend().reads_after_close,
        0,
        "no busy polling after EOF"
    );
    assert!(!irq.level(), "no interrupt storm after EOF");
    // Output still works.
    let mem = d.mem.clone();
    let a = d.alloc(8);
    mem.write(a, b"still").unwrap();
    d.queues[1].add(&*mem, &[(a, 5, false)]);
    d.notify(&mut t, TRANSMITQ as u32);
    assert_eq!(t.device().backend().output, b"still");
}

#[test]
fn rx_chain_with_a_readable_buffer_is_handled() {
    let (mut t, mut d, _) = console();
    let mem = d.mem.clone();
    t.device_mut().backend_mut().input.extend(b"x");
    let a = d.alloc(8);
    // A receive buffer the device cannot write: accepted, returned with nothing in it.
    d.queues[0].add(&*mem, &[(a, 8, false)]);
    d.notify(&mut t, RECEIVEQ as u32);
    assert_eq!(d.queues[0].take_used(&*mem), [(0, 0)]);
    assert_eq!(t.violations(), 0);
    assert_eq!(t.read(0x100, 4), 0, "config space is all zero");
}
