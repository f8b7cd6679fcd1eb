//! A fake guest driver for host tests: drives a device through the virtio-mmio registers in the
//! order Linux 6.1's `drivers/virtio/virtio_mmio.c` and `virtio_ring.c` do (probe, reset,
//! ACKNOWLEDGE, DRIVER, features, FEATURES_OK and read-back, queue setup with QueueReady read
//! first, DRIVER_OK, kicks, interrupt handling with InterruptACK, and reset), so each device is
//! tested as a Linux guest would use it.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::mmio::{INT_VRING, MAGIC, reg};
use super::queue::{VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use super::status::*;
use crate::bus::MmioDevice;
use crate::memory::{FakeGuestMemory, GuestMemory};

/// Where the fake driver allocates rings and buffers.
pub const ARENA: u64 = 0x10_0000;

/// A split virtqueue as the driver sees it.
pub struct DriverQueue {
    pub index: u32,
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
}

impl DriverQueue {
    /// Lays a queue of `size` out at `base` (desc, then avail, then used at 4 KiB alignment).
    pub fn new(index: u32, size: u16, base: u64) -> DriverQueue {
        let desc = base;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size) + 0xfff) & !0xfff;
        DriverQueue {
            index,
            size,
            desc,
            avail,
            used,
            free: (0..size).rev().collect(),
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// Bytes the queue occupies from `desc`.
    pub fn footprint(&self) -> u64 {
        self.used + 6 + 8 * u64::from(self.size) - self.desc
    }

    pub fn write_desc(
        mem: &impl GuestMemory,
        table: u64,
        i: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let a = table + 16 * u64::from(i);
        mem.write_u64(a, addr).unwrap();
        mem.write_u32(a + 8, len).unwrap();
        mem.write_u16(a + 12, flags).unwrap();
        mem.write_u16(a + 14, next).unwrap();
    }

    /// Adds a chain of direct descriptors: `bufs` of (address, length, device-writable).
    pub fn add(&mut self, mem: &impl GuestMemory, bufs: &[(u64, u32, bool)]) -> u16 {
        let ids: Vec<u16> = (0..bufs.len())
            .map(|_| self.free.pop().expect("queue full"))
            .collect();
        for (k, &(addr, len, w)) in bufs.iter().enumerate() {
            let last = k + 1 == bufs.len();
            let flags =
                if w { VIRTQ_DESC_F_WRITE } else { 0 } | if last { 0 } else { VIRTQ_DESC_F_NEXT };
            let next = if last { 0 } else { ids[k + 1] };
            Self::write_desc(mem, self.desc, ids[k], addr, len, flags, next);
        }
        self.publish(mem, ids[0]);
        ids[0]
    }

    /// Adds a chain through one indirect table placed at `table`.
    pub fn add_indirect(
        &mut self,
        mem: &impl GuestMemory,
        table: u64,
        bufs: &[(u64, u32, bool)],
    ) -> u16 {
        for (k, &(addr, len, w)) in bufs.iter().enumerate() {
            let last = k + 1 == bufs.len();
            let flags =
                if w { VIRTQ_DESC_F_WRITE } else { 0 } | if last { 0 } else { VIRTQ_DESC_F_NEXT };
            Self::write_desc(
                mem,
                table,
                k as u16,
                addr,
                len,
                flags,
                if last { 0 } else { k as u16 + 1 },
            );
        }
        let id = self.free.pop().expect("queue full");
        Self::write_desc(
            mem,
            self.desc,
            id,
            table,
            16 * bufs.len() as u32,
            VIRTQ_DESC_F_INDIRECT,
            0,
        );
        self.publish(mem, id);
        id
    }

    /// Puts `head` in the available ring and bumps the index.
    pub fn publish(&mut self, mem: &impl GuestMemory, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        mem.write_u16(self.avail + 4 + 2 * slot, head).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_u16(self.avail + 2, self.avail_idx).unwrap();
    }

    /// Sets the available ring's raw index (for tests of bad drivers).
    pub fn set_avail_idx(&mut self, mem: &impl GuestMemory, idx: u16) {
        self.avail_idx = idx;
        mem.write_u16(self.avail + 2, idx).unwrap();
    }

    /// Collects used entries (id, len) and frees their direct descriptors.
    pub fn take_used(&mut self, mem: &impl GuestMemory) -> Vec<(u16, u32)> {
        let idx = mem.read_u16(self.used + 2).unwrap();
        let mut v = Vec::new();
        while self.last_used != idx {
            let slot = u64::from(self.last_used % self.size);
            let id = mem.read_u32(self.used + 4 + 8 * slot).unwrap() as u16;
            let len = mem.read_u32(self.used + 8 + 8 * slot).unwrap();
            v.push((id, len));
            self.last_used = self.last_used.wrapping_add(1);
            // Free the whole chain.
            let mut i = id;
            loop {
                self.free.push(i);
                let a = self.desc + 16 * u64::from(i);
                let flags = mem.read_u16(a + 12).unwrap();
                if flags & VIRTQ_DESC_F_NEXT == 0 {
                    break;
                }
                i = mem.read_u16(a + 14).unwrap();
            }
        }
        // `virtqueue_enable_cb`: with EVENT_IDX, interrupt at the next used entry.
        self.set_used_event(mem, self.last_used);
        v
    }

    /// Sets used_event (VIRTIO_F_EVENT_IDX): interrupt once the used index passes `idx`.
    pub fn set_used_event(&self, mem: &impl GuestMemory, idx: u16) {
        mem.write_u16(self.avail + 4 + 2 * u64::from(self.size), idx)
            .unwrap();
    }

    /// Reads avail_event, where the device asks to be kicked.
    pub fn avail_event(&self, mem: &impl GuestMemory) -> u16 {
        mem.read_u16(self.used + 4 + 8 * u64::from(self.size))
            .unwrap()
    }

    /// Sets the available ring's flags.
    pub fn set_avail_flags(&self, mem: &impl GuestMemory, flags: u16) {
        mem.write_u16(self.avail, flags).unwrap();
    }
}

/// The driver: guest memory, a bump allocator in it, and the queues it set up.
pub struct FakeDriver {
    pub mem: Arc<FakeGuestMemory>,
    pub queues: Vec<DriverQueue>,
    pub next_free: u64,
    pub features: u64,
}

impl FakeDriver {
    pub fn new(mem: Arc<FakeGuestMemory>) -> FakeDriver {
        FakeDriver {
            mem,
            queues: Vec::new(),
            next_free: ARENA,
            features: 0,
        }
    }

    /// A fresh page-aligned buffer of `len` bytes.
    pub fn alloc(&mut self, len: u64) -> u64 {
        let a = self.next_free;
        self.next_free = (a + len.max(1) + 0xfff) & !0xfff;
        a
    }

    pub fn r(dev: &mut impl MmioDevice, off: u64) -> u32 {
        dev.read(off, 4) as u32
    }

    pub fn w(dev: &mut impl MmioDevice, off: u64, v: u32) {
        dev.write(off, 4, u64::from(v));
    }

    /// `virtio_mmio_probe` + `register_virtio_device` + `virtio_dev_probe` up to the point where
    /// the device driver sets up queues. Returns the device's features and whether FEATURES_OK
    /// stuck.
    pub fn probe(&mut self, dev: &mut impl MmioDevice, expect_id: u32, wanted: u64) -> bool {
        assert_eq!(Self::r(dev, reg::MAGIC_VALUE), MAGIC);
        assert_eq!(Self::r(dev, reg::VERSION), 2);
        assert_eq!(Self::r(dev, reg::DEVICE_ID), expect_id);
        let _vendor = Self::r(dev, reg::VENDOR_ID);
        Self::w(dev, reg::STATUS, 0);
        self.add_status(dev, ACKNOWLEDGE);
        self.add_status(dev, DRIVER);
        Self::w(dev, reg::DEVICE_FEATURES_SEL, 1);
        let hi = u64::from(Self::r(dev, reg::DEVICE_FEATURES));
        Self::w(dev, reg::DEVICE_FEATURES_SEL, 0);
        let lo = u64::from(Self::r(dev, reg::DEVICE_FEATURES));
        let offered = hi << 32 | lo;
        self.features = offered & wanted;
        Self::w(dev, reg::DRIVER_FEATURES_SEL, 1);
        Self::w(dev, reg::DRIVER_FEATURES, (self.features >> 32) as u32);
        Self::w(dev, reg::DRIVER_FEATURES_SEL, 0);
        Self::w(dev, reg::DRIVER_FEATURES, self.features as u32);
        self.add_status(dev, FEATURES_OK);
        Self::r(dev, reg::STATUS) as u8 & FEATURES_OK != 0
    }

    pub fn add_status(&mut self, dev: &mut impl MmioDevice, bits: u8) {
        let s = Self::r(dev, reg::STATUS);
        Self::w(dev, reg::STATUS, s | u32::from(bits));
    }

    /// `vm_setup_vq`: QueueSel, QueueReady must read 0, QueueNumMax, QueueNum, addresses, Ready.
    pub fn setup_queue(&mut self, dev: &mut impl MmioDevice, index: u32, size: u16) {
        Self::w(dev, reg::QUEUE_SEL, index);
        assert_eq!(Self::r(dev, reg::QUEUE_READY), 0);
        let max = Self::r(dev, reg::QUEUE_NUM_MAX);
        assert!(max > 0);
        let size = size.min(max as u16);
        let base = self.alloc(0x1000);
        let q = DriverQueue::new(index, size, base);
        self.next_free = (base + q.footprint() + 0xfff) & !0xfff;
        Self::w(dev, reg::QUEUE_NUM, u32::from(size));
        Self::w(dev, reg::QUEUE_DESC_LOW, q.desc as u32);
        Self::w(dev, reg::QUEUE_DESC_HIGH, (q.desc >> 32) as u32);
        Self::w(dev, reg::QUEUE_DRIVER_LOW, q.avail as u32);
        Self::w(dev, reg::QUEUE_DRIVER_HIGH, (q.avail >> 32) as u32);
        Self::w(dev, reg::QUEUE_DEVICE_LOW, q.used as u32);
        Self::w(dev, reg::QUEUE_DEVICE_HIGH, (q.used >> 32) as u32);
        Self::w(dev, reg::QUEUE_READY, 1);
        self.queues.push(q);
    }

    /// Probe, negotiate, set up `nqueues` queues of `size`, DRIVER_OK.
    pub fn bring_up(
        &mut self,
        dev: &mut impl MmioDevice,
        id: u32,
        wanted: u64,
        nqueues: u32,
        size: u16,
    ) {
        assert!(
            self.probe(dev, id, wanted),
            "device refused features {wanted:#x}"
        );
        for i in 0..nqueues {
            self.setup_queue(dev, i, size);
        }
        self.add_status(dev, DRIVER_OK);
        assert_eq!(
            Self::r(dev, reg::STATUS) as u8,
            ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK
        );
    }

    pub fn notify(&self, dev: &mut impl MmioDevice, queue: u32) {
        Self::w(dev, reg::QUEUE_NOTIFY, queue);
    }

    /// `vm_interrupt`: read InterruptStatus, acknowledge it, return it.
    pub fn interrupt(&self, dev: &mut impl MmioDevice) -> u32 {
        let s = Self::r(dev, reg::INTERRUPT_STATUS);
        if s != 0 {
            Self::w(dev, reg::INTERRUPT_ACK, s);
        }
        s
    }

    /// Whether a used-buffer interrupt is pending (then acknowledged).
    pub fn vring_interrupt(&self, dev: &mut impl MmioDevice) -> bool {
        self.interrupt(dev) & INT_VRING != 0
    }

    /// `vm_reset` followed by `vm_del_vqs`, as on driver removal.
    pub fn remove(&mut self, dev: &mut impl MmioDevice) {
        Self::w(dev, reg::STATUS, 0);
        for q in self.queues.drain(..) {
            Self::w(dev, reg::QUEUE_SEL, q.index);
            Self::w(dev, reg::QUEUE_READY, 0);
            assert_eq!(Self::r(dev, reg::QUEUE_READY), 0);
        }
        assert_eq!(Self::r(dev, reg::STATUS), 0);
    }

    /// Reads `len` bytes of config space at `off` the way `vm_get` does for version 2.
    pub fn config(&self, dev: &mut impl MmioDevice, off: u64, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let mut o = 0;
        while o < len {
            let (n, val) = match len - o {
                1 => (1, dev.read(reg::CONFIG + off + o as u64, 1)),
                2 | 3 => (2, dev.read(reg::CONFIG + off + o as u64, 2)),
                _ => (4, dev.read(reg::CONFIG + off + o as u64, 4)),
            };
            v.extend_from_slice(&val.to_le_bytes()[..n]);
            o += n;
        }
        v
    }
}
