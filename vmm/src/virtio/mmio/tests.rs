use super::*;
use crate::irq::FakeIrqLine;
use crate::memory::FakeGuestMemory;
use crate::virtio::fake_driver::FakeDriver;
use alloc::sync::Arc;

/// A device that answers each request with its readable bytes reversed.
#[derive(Default)]
struct Mirror {
    resets: u32,
    activated: Option<u64>,
}

impl VirtioDevice for Mirror {
    fn device_id(&self) -> u32 {
        0x7e
    }
    fn device_features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | features::VIRTIO_F_EVENT_IDX | features::VIRTIO_F_INDIRECT_DESC | 1
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16]
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = (offset as u8).wrapping_add(i as u8);
        }
    }
    fn activate(&mut self, features: u64) {
        self.activated = Some(features);
    }
    fn reset(&mut self) {
        self.resets += 1;
        self.activated = None;
    }
    fn process_queue<M: GuestMemory>(
        &mut self,
        index: usize,
        queues: &mut Queues<'_, M>,
    ) -> Result<(), DeviceError> {
        while let Some(c) = queues.pop(index)? {
            let mut data = c.read_all(queues.mem(), 4096)?;
            data.reverse();
            let n = c.write_at(queues.mem(), 0, &data)?;
            queues.add_used(index, &c, n as u32)?;
        }
        Ok(())
    }
}

type T = MmioTransport<Mirror, Arc<FakeGuestMemory>, Arc<FakeIrqLine>>;

fn new() -> (T, FakeDriver, Arc<FakeIrqLine>) {
    let mem = Arc::new(FakeGuestMemory::with_size(0x40_0000));
    let irq = Arc::new(FakeIrqLine::default());
    (
        MmioTransport::new(Mirror::default(), mem.clone(), irq.clone()),
        FakeDriver::new(mem),
        irq,
    )
}

const WANT: u64 =
    VIRTIO_F_VERSION_1 | features::VIRTIO_F_EVENT_IDX | features::VIRTIO_F_INDIRECT_DESC;

fn request(t: &mut T, d: &mut FakeDriver, text: &[u8]) -> u16 {
    let (inb, outb) = (d.alloc(64), d.alloc(64));
    d.mem.write(inb, text).unwrap();
    let mem = d.mem.clone();
    d.queues[0].add(
        &*mem,
        &[
            (inb, text.len() as u32, false),
            (outb, text.len() as u32, true),
        ],
    );
    d.notify(t, 0);
    let _ = outb;
    text.len() as u16
}

#[test]
fn linux_style_probe_and_request() {
    let (mut t, mut d, irq) = new();
    d.bring_up(&mut t, 0x7e, WANT, 1, 8);
    assert_eq!(t.device().activated, Some(WANT));
    assert_eq!(t.read(reg::VENDOR_ID, 4) as u32, VENDOR);
    let (inb, outb) = (d.alloc(64), d.alloc(64));
    d.mem.write(inb, b"virtio").unwrap();
    let mem = d.mem.clone();
    let head = d.queues[0].add(&*mem, &[(inb, 6, false), (outb, 6, true)]);
    d.notify(&mut t, 0);
    assert!(irq.level());
    assert!(d.vring_interrupt(&mut t));
    assert!(!irq.level(), "InterruptACK lowers the line");
    assert_eq!(d.queues[0].take_used(&*mem), [(head, 6)]);
    let mut out = [0; 6];
    mem.read(outb, &mut out).unwrap();
    assert_eq!(&out, b"oitriv");
    assert_eq!(t.violations(), 0);
}

#[test]
fn buffers_offered_before_driver_ok_wait_for_it() {
    let (mut t, mut d, irq) = new();
    assert!(d.probe(&mut t, 0x7e, WANT));
    d.setup_queue(&mut t, 0, 8);
    request(&mut t, &mut d, b"early");
    assert_eq!(irq.rising_edges(), 0, "no used buffers before DRIVER_OK");
    d.add_status(&mut t, DRIVER_OK);
    assert!(d.vring_interrupt(&mut t));
    assert_eq!(d.queues[0].take_used(&*d.mem.clone()).len(), 1);
}

#[test]
fn features_the_device_did_not_offer_are_refused() {
    let (mut t, mut d, _) = new();
    // The device offers bit 0, but a driver accepting bit 1 must see FEATURES_OK stay clear.
    assert!(!d.probe(&mut t, 0x7e, WANT | 2 | 1 << 20 | 1 << 40) || d.features & 2 == 0);
    FakeDriver::w(&mut t, reg::STATUS, 0);
    FakeDriver::w(&mut t, reg::STATUS, u32::from(ACKNOWLEDGE | DRIVER));
    FakeDriver::w(&mut t, reg::DRIVER_FEATURES_SEL, 0);
    FakeDriver::w(&mut t, reg::DRIVER_FEATURES, 2);
    FakeDriver::w(
        &mut t,
        reg::STATUS,
        u32::from(ACKNOWLEDGE | DRIVER | FEATURES_OK),
    );
    assert_eq!(FakeDriver::r(&mut t, reg::STATUS) as u8 & FEATURES_OK, 0);
    // And so must a driver that leaves out VIRTIO_F_VERSION_1.
    assert!(!d.probe(&mut t, 0x7e, features::VIRTIO_F_EVENT_IDX));
    assert_eq!(t.violations(), 0, "refusing features is not a driver error");
}

#[test]
fn protocol_violations_set_needs_reset_and_a_reset_recovers() {
    type Step = fn(&mut T);
    let cases: [(&str, Step); 9] = [
        ("16-bit register read", |t| {
            t.read(reg::STATUS, 2);
        }),
        ("misaligned register write", |t| {
            t.write(reg::STATUS + 1, 4, 1)
        }),
        ("write to a read-only register", |t| {
            t.write(reg::MAGIC_VALUE, 4, 0)
        }),
        ("read of a write-only register", |t| {
            t.read(reg::QUEUE_NOTIFY, 4);
        }),
        ("DRIVER_OK without FEATURES_OK", |t| {
            t.write(reg::STATUS, 4, u64::from(ACKNOWLEDGE | DRIVER | DRIVER_OK))
        }),
        ("clearing status bits", |t| {
            t.write(reg::STATUS, 4, u64::from(ACKNOWLEDGE | DRIVER));
            t.write(reg::STATUS, 4, u64::from(ACKNOWLEDGE));
        }),
        ("queue enabled before FEATURES_OK", |t| {
            t.write(reg::QUEUE_READY, 4, 1)
        }),
        ("notify of a nonexistent queue", |t| {
            t.write(reg::QUEUE_NOTIFY, 4, 7)
        }),
        ("8-byte config read", |t| {
            t.read(reg::CONFIG, 8);
        }),
    ];
    for (what, step) in cases {
        let (mut t, mut d, _) = new();
        FakeDriver::w(&mut t, reg::STATUS, 0);
        step(&mut t);
        assert_ne!(t.status() & DEVICE_NEEDS_RESET, 0, "{what}");
        assert_eq!(t.violations(), 1, "{what}");
        // Reset and a full, working bring-up afterwards.
        d.bring_up(&mut t, 0x7e, WANT, 1, 8);
        request(&mut t, &mut d, b"again");
        assert!(d.vring_interrupt(&mut t), "{what}");
    }
}

#[test]
fn bad_queue_setup_is_a_violation() {
    let (mut t, mut d, _) = new();
    assert!(d.probe(&mut t, 0x7e, WANT));
    FakeDriver::w(&mut t, reg::QUEUE_SEL, 0);
    FakeDriver::w(&mut t, reg::QUEUE_NUM, 32); // above QueueNumMax (16)
    FakeDriver::w(&mut t, reg::QUEUE_DESC_LOW, 0x1000);
    FakeDriver::w(&mut t, reg::QUEUE_DRIVER_LOW, 0x2000);
    FakeDriver::w(&mut t, reg::QUEUE_DEVICE_LOW, 0x3000);
    FakeDriver::w(&mut t, reg::QUEUE_READY, 1);
    assert_eq!(FakeDriver::r(&mut t, reg::QUEUE_READY), 0);
    assert_ne!(t.status() & DEVICE_NEEDS_RESET, 0);

    let (mut t, mut d, _) = new();
    d.bring_up(&mut t, 0x7e, WANT, 1, 8);
    FakeDriver::w(&mut t, reg::QUEUE_DESC_LOW, 0x9000);
    assert_ne!(
        t.status() & DEVICE_NEEDS_RESET,
        0,
        "rings move only while the queue is not ready"
    );
}

#[test]
fn a_bad_chain_needs_reset_and_raises_a_config_interrupt() {
    let (mut t, mut d, irq) = new();
    d.bring_up(&mut t, 0x7e, WANT, 1, 8);
    let mem = d.mem.clone();
    d.queues[0].add(&*mem, &[(0x3f_fff0, 0x100, false)]);
    d.notify(&mut t, 0);
    assert_ne!(t.status() & DEVICE_NEEDS_RESET, 0);
    assert!(irq.level());
    assert_eq!(d.interrupt(&mut t), INT_CONFIG);
    // A stopped device ignores further kicks.
    request(&mut t, &mut d, b"ignored");
    assert_eq!(d.interrupt(&mut t), 0);
    // Linux's own driver write-back of the status keeps NEEDS_RESET set and is no new error.
    d.add_status(&mut t, 0);
    assert_eq!(t.violations(), 1);
    d.remove(&mut t);
    assert_eq!(t.device().resets, 2, "one reset at probe, one at removal");
    d.bring_up(&mut t, 0x7e, WANT, 1, 8);
    request(&mut t, &mut d, b"ok");
    assert!(d.vring_interrupt(&mut t));
}

#[test]
fn config_space_generation_and_shared_memory() {
    let (mut t, mut d, irq) = new();
    assert_eq!(d.config(&mut t, 4, 7), [4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(t.read(reg::CONFIG + 3, 1), 3);
    assert_eq!(t.read(reg::SHM_LEN_LOW, 4), 0xffff_ffff);
    let g = t.read(reg::CONFIG_GENERATION, 4);
    d.bring_up(&mut t, 0x7e, WANT, 1, 8);
    t.config_changed();
    assert_eq!(t.read(reg::CONFIG_GENERATION, 4), g + 1);
    assert!(irq.level());
    assert_eq!(d.interrupt(&mut t), INT_CONFIG);
    assert!(t.read(reg::CONFIG + 2, 2) != 0 && t.violations() == 0);
    t.read(reg::CONFIG + 1, 2);
    assert_eq!(t.violations(), 1, "misaligned 16-bit config read");
}

#[test]
fn queue_registers_of_a_missing_queue() {
    let (mut t, mut d, _) = new();
    assert!(d.probe(&mut t, 0x7e, WANT));
    FakeDriver::w(&mut t, reg::QUEUE_SEL, 5);
    assert_eq!(FakeDriver::r(&mut t, reg::QUEUE_NUM_MAX), 0);
    assert_eq!(FakeDriver::r(&mut t, reg::QUEUE_READY), 0);
    FakeDriver::w(&mut t, reg::QUEUE_NUM, 8);
    assert_ne!(t.status() & DEVICE_NEEDS_RESET, 0);
}

#[test]
fn announcement_strings() {
    assert_eq!(
        cmdline_announcement(0x1000, 0xd000_0000, 5).unwrap(),
        "virtio_mmio.device=4K@0xd0000000:5"
    );
    assert_eq!(
        cmdline_announcement(0x200, 0xd000_1000, 1).unwrap(),
        "virtio_mmio.device=512@0xd0001000:1"
    );
    assert_eq!(cmdline_announcement(0x1000, 0xd000_0000, 0), None);
}
