//! The pieces put together the way `vmrunkernel` will: configuration, layout, kernel, MP table,
//! and devices on the bus, driven by decoded MMIO accesses.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::bus::{Bus, MmioAccess, MmioDevice};
use crate::config::{DeviceKind, FileSource, parse_args};
use crate::irq::FakeIrqLine;
use crate::layout::{MP_TABLE, VIRTIO_MMIO_SIZE};
use crate::linux::test_images::{initramfs, vmlinux};
use crate::memory::{FakeGuestMemory, GuestMemory};
use crate::virtio::blk::{Block, backend::MemStore};
use crate::virtio::console::{Console, backend::FakeConsole};
use crate::virtio::fake_driver::FakeDriver;
use crate::virtio::mmio::MmioTransport;
use crate::virtio::net::{Net, backend::FakeNet};

struct NoFiles;

impl FileSource for NoFiles {
    fn read_file(&mut self, _: &str) -> Result<Vec<u8>, alloc::string::String> {
        Ok(b"dhcp\nport:tcp:5640:564\n".to_vec())
    }
}

/// The fake driver's view of one device: its window on the bus, reached by decoded accesses.
struct Window<'a> {
    bus: &'a mut Bus,
    base: u64,
}

impl MmioDevice for Window<'_> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        self.bus
            .dispatch(MmioAccess {
                addr: self.base + offset,
                size,
                write: None,
            })
            .unwrap()
            .unwrap()
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        self.bus
            .dispatch(MmioAccess {
                addr: self.base + offset,
                size,
                write: Some(value),
            })
            .unwrap();
    }
}

#[test]
fn a_vm_assembled_from_its_configuration() {
    let c = parse_args(
        &[
            "-m",
            "64M",
            "-f",
            "disk",
            "-n",
            "net",
            "-c",
            "console=hvc0",
            "vmlinux",
        ],
        &mut NoFiles,
    )
    .unwrap();
    let layout = c.layout().unwrap();
    let mem = Arc::new(FakeGuestMemory::new(&layout.ram_regions()));
    let k = crate::linux::load(
        &*mem,
        &layout,
        &vmlinux(&[0x90; 0x100], 0),
        Some(&initramfs()),
        &c.kernel_cmdline(),
    )
    .unwrap();
    crate::mptable::write(&*mem, c.cpus).unwrap();
    let mut sig = [0u8; 4];
    mem.read(MP_TABLE, &mut sig).unwrap();
    assert_eq!(&sig, b"_MP_");
    assert!(k.cpu.rip > 0);

    let mut bus = Bus::new();
    let mut irqs = Vec::new();
    for d in &c.devices {
        let irq = Arc::new(FakeIrqLine::default());
        irqs.push(irq.clone());
        let dev: Box<dyn MmioDevice + Send> = match &d.kind {
            DeviceKind::Console => Box::new(MmioTransport::new(
                Console::new(FakeConsole::default()),
                mem.clone(),
                irq,
            )),
            DeviceKind::Block { .. } => Box::new(MmioTransport::new(
                Block::new(MemStore::new(1 << 20), "disk"),
                mem.clone(),
                irq,
            )),
            DeviceKind::Net { mac, mergeable } => Box::new(MmioTransport::new(
                Net::new(FakeNet::default(), *mac, *mergeable),
                mem.clone(),
                irq,
            )),
        };
        bus.insert(d.base, VIRTIO_MMIO_SIZE, dev).unwrap();
    }
    // Probe every device the way Linux does, through decoded accesses on the bus. The guest's
    // kernel sits at 16 MiB and the initrd at the top, so the driver's arena at 1 MiB is free.
    let ids = [3, 2, 1];
    for (d, id) in c.devices.iter().zip(ids) {
        let mut drv = FakeDriver::new(mem.clone());
        drv.next_free += 0x10_0000 * u64::from(id);
        let mut w = Window {
            bus: &mut bus,
            base: d.base,
        };
        drv.bring_up(&mut w, id, u64::MAX, if id == 2 { 1 } else { 2 }, 16);
    }
    // An access to the MMIO hole outside any device is reported, not fatal.
    assert!(
        bus.dispatch(MmioAccess {
            addr: 0xd010_0000,
            size: 4,
            write: None
        })
        .is_err()
    );
    bus.poll();
    assert!(irqs.iter().all(|i| !i.level()));
}
