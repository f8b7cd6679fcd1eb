//! The virtio-mmio version 2 transport, device side (virtio 1.2 §4.2).
//!
//! Owns the register file (§4.2.2), feature negotiation (§2.2, §3.1.1), the device status
//! machine with reset (§2.1, §2.4), queue setup (§4.2.3.2), notifications, and interrupt status
//! and acknowledgement (§4.2.3.4). Control registers (offsets below 0x100) take only aligned
//! 32-bit accesses; the configuration space from 0x100 takes 8-, 16- and aligned 32-bit ones
//! (§4.2.2.2). Anything else the driver gets wrong sets DEVICE_NEEDS_RESET, is logged, and stops
//! the device until the driver resets it (§2.1.2); once DRIVER_OK is set the device also sends
//! a configuration change notification so the driver notices.
//!
//! Linux finds these devices on its command line, not in a device tree or ACPI:
//! [`cmdline_announcement`] builds the `virtio_mmio.device=SIZE@ADDR:IRQ` word
//! (Linux `drivers/virtio/virtio_mmio.c`, `vm_cmdline_set`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::features::VIRTIO_F_VERSION_1;
use super::queue::Queue;
use super::status::*;
use super::{DeviceError, Queues, VirtioDevice, features};
use crate::bus::MmioDevice;
use crate::irq::IrqLine;
use crate::memory::GuestMemory;

/// Register offsets (§4.2.2, table "MMIO Device Register Layout").
pub mod reg {
    /// 0x74726976, "virt".
    pub const MAGIC_VALUE: u64 = 0x000;
    /// 2 for the modern interface.
    pub const VERSION: u64 = 0x004;
    /// The virtio device ID.
    pub const DEVICE_ID: u64 = 0x008;
    /// Vendor ID.
    pub const VENDOR_ID: u64 = 0x00c;
    /// 32 feature bits selected by DeviceFeaturesSel.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// Selects the word of DeviceFeatures.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// 32 accepted feature bits selected by DriverFeaturesSel.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// Selects the word of DriverFeatures.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// Selects the queue the queue registers refer to.
    pub const QUEUE_SEL: u64 = 0x030;
    /// Largest queue size the device accepts (0: no such queue).
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// Queue size the driver chose.
    pub const QUEUE_NUM: u64 = 0x038;
    /// The queue is live.
    pub const QUEUE_READY: u64 = 0x044;
    /// Queue index the driver has new buffers on.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// Bit 0: used buffer notification; bit 1: configuration change.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// Clears the InterruptStatus bits written.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Device status (§2.1); writing 0 resets.
    pub const STATUS: u64 = 0x070;
    /// Descriptor table address, low half.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// Descriptor table address, high half.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// Driver area (available ring), low half.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// Driver area, high half.
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// Device area (used ring), low half.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// Device area, high half.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// Selects a shared memory region.
    pub const SHM_SEL: u64 = 0x0ac;
    /// Shared memory region length, low half (all ones: no such region).
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// Shared memory region length, high half.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// Shared memory region base, low half.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// Shared memory region base, high half.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// Per-queue reset (VIRTIO_F_RING_RESET, not offered).
    pub const QUEUE_RESET: u64 = 0x0c0;
    /// Changes whenever the configuration space may have changed.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The modern (non-legacy) virtio-mmio interface.
pub const MMIO_VERSION: u32 = 2;
/// Our vendor ID, "Tern" (any value is allowed; Linux only prints it).
pub const VENDOR: u32 = u32::from_le_bytes(*b"Tern");
/// InterruptStatus: a used buffer notification.
pub const INT_VRING: u32 = 1;
/// InterruptStatus: a configuration change notification.
pub const INT_CONFIG: u32 = 2;

/// The `virtio_mmio.device=` word that makes Linux probe a device at `base` with `irq`.
///
/// IRQ 0 is refused: Linux 5.16 and later reject it for virtio-mmio (akaros.md §2.10).
pub fn cmdline_announcement(size: u64, base: u64, irq: u32) -> Option<String> {
    if irq == 0 || size == 0 {
        return None;
    }
    let size = if size.is_multiple_of(1024) {
        format!("{}K", size / 1024)
    } else {
        format!("{size}")
    };
    Some(format!("virtio_mmio.device={size}@{base:#x}:{irq}"))
}

/// One virtio device behind the virtio-mmio register file.
pub struct MmioTransport<D, M, I> {
    device: D,
    mem: M,
    irq: I,
    queues: Vec<Queue>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    shm_sel: u32,
    interrupt_status: u32,
    status: u8,
    config_generation: u32,
    line: bool,
    violations: u64,
}

impl<D: VirtioDevice, M: GuestMemory, I: IrqLine> MmioTransport<D, M, I> {
    /// Puts `device` behind a fresh register file; it reaches guest memory through `mem` and
    /// interrupts through `irq`.
    pub fn new(device: D, mem: M, irq: I) -> MmioTransport<D, M, I> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&n| Queue::new(n))
            .collect();
        MmioTransport {
            device,
            mem,
            irq,
            queues,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            shm_sel: 0,
            interrupt_status: 0,
            status: 0,
            config_generation: 0,
            line: false,
            violations: 0,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device model, for the VMM to reconfigure it.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device status register.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// How many protocol violations the driver committed.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// The features both sides agreed on (valid once FEATURES_OK is set).
    pub fn negotiated_features(&self) -> u64 {
        self.driver_features
    }

    /// The device's configuration changed: bump ConfigGeneration and tell the driver (§2.5.1).
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & DRIVER_OK != 0 {
            self.raise(INT_CONFIG);
        }
    }

    fn set_line(&mut self) {
        let level = self.interrupt_status != 0;
        if level != self.line {
            self.line = level;
            self.irq.set_level(level);
        }
    }

    fn raise(&mut self, bits: u32) {
        self.interrupt_status |= bits;
        self.set_line();
    }

    /// Records a driver error: DEVICE_NEEDS_RESET, a log line, and a configuration change
    /// notification if the driver is live (§2.1.2).
    fn violation(&mut self, what: &dyn core::fmt::Display) {
        self.violations += 1;
        log::warn!(
            "virtio-mmio device {}: driver error: {what}; device needs reset",
            self.device.device_id()
        );
        if self.status & DEVICE_NEEDS_RESET == 0 {
            self.status |= DEVICE_NEEDS_RESET;
            if self.status & DRIVER_OK != 0 {
                self.raise(INT_CONFIG);
            }
        }
    }

    fn live(&self) -> bool {
        self.status & (DRIVER_OK | DEVICE_NEEDS_RESET | FAILED) == DRIVER_OK
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.shm_sel = 0;
        self.interrupt_status = 0;
        self.status = 0;
        self.set_line();
    }

    /// Runs the device over its queues and interrupts for the ones the driver wants to hear about.
    fn run(&mut self, kick: Option<usize>) {
        if !self.live() {
            return;
        }
        let mut qs = Queues::new(&mut self.queues, &self.mem);
        let result = match kick {
            Some(i) => self.device.process_queue(i, &mut qs),
            None => self.device.poll(&mut qs),
        };
        let used = qs.used_mask();
        let mut notify = false;
        let mut error = result.err();
        for (i, q) in self.queues.iter_mut().enumerate() {
            if used & (1 << i.min(63)) != 0 && q.ready {
                match q.needs_interrupt(&self.mem) {
                    Ok(n) => notify |= n,
                    Err(e) => error = Some(DeviceError::Queue(e)),
                }
            }
        }
        if notify {
            self.raise(INT_VRING);
        }
        if let Some(e) = error {
            self.violation(&e);
        }
    }

    /// Backend work: input that arrived for the guest. The VMM calls this when a backend has
    /// something (or simply after each exit); it is cheap when there is nothing to do.
    pub fn poll(&mut self) {
        self.run(None);
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.device_features() as u32,
                1 => (self.device.device_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => q.map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_READY => q.map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => u32::from(self.status),
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::QUEUE_RESET => 0,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => {
                self.violation(&format_args!(
                    "read of write-only or unknown register {offset:#x}"
                ));
                0
            }
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => {
                if self.status & DRIVER == 0 || self.status & FEATURES_OK != 0 {
                    return self.violation(&"driver features written outside negotiation");
                }
                let v = u64::from(value);
                match self.driver_features_sel {
                    0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v,
                    1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v << 32),
                    _ if value == 0 => {}
                    _ => self.violation(&"feature bits beyond 64 accepted"),
                }
            }
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM => self.queue_write(|q| q.size = value as u16, value <= 0xffff),
            reg::QUEUE_DESC_LOW => self.queue_write(|q| set_low(&mut q.desc_table, value), true),
            reg::QUEUE_DESC_HIGH => self.queue_write(|q| set_high(&mut q.desc_table, value), true),
            reg::QUEUE_DRIVER_LOW => self.queue_write(|q| set_low(&mut q.avail_ring, value), true),
            reg::QUEUE_DRIVER_HIGH => {
                self.queue_write(|q| set_high(&mut q.avail_ring, value), true)
            }
            reg::QUEUE_DEVICE_LOW => self.queue_write(|q| set_low(&mut q.used_ring, value), true),
            reg::QUEUE_DEVICE_HIGH => self.queue_write(|q| set_high(&mut q.used_ring, value), true),
            reg::QUEUE_READY => self.queue_ready(value),
            reg::QUEUE_NOTIFY => self.queue_notify(value),
            reg::INTERRUPT_ACK => {
                self.interrupt_status &= !value;
                self.set_line();
            }
            reg::STATUS => self.write_status(value),
            reg::SHM_SEL => self.shm_sel = value,
            _ => self.violation(&format_args!(
                "write of read-only or unknown register {offset:#x}"
            )),
        }
    }

    /// A write to a register of the selected queue, allowed only while the queue is not live
    /// and `valid` holds (§4.2.3.2).
    fn queue_write(&mut self, set: impl FnOnce(&mut Queue), valid: bool) {
        let sel = self.queue_sel;
        match self.selected_queue() {
            None => self.violation(&format_args!(
                "queue register written for nonexistent queue {sel}"
            )),
            Some(q) if q.ready => {
                self.violation(&format_args!("queue {sel} reconfigured while ready"))
            }
            Some(_) if !valid => self.violation(&format_args!("bad queue size for queue {sel}")),
            Some(q) => set(q),
        }
    }

    fn queue_ready(&mut self, value: u32) {
        let sel = self.queue_sel;
        let event_idx = self.driver_features & features::VIRTIO_F_EVENT_IDX != 0;
        let features_ok = self.status & FEATURES_OK != 0;
        let mem = &self.mem;
        let Some(q) = self.queues.get_mut(sel as usize) else {
            return self.violation(&format_args!("QueueReady for nonexistent queue {sel}"));
        };
        match value {
            0 => {
                // The driver stops using the queue (Linux does so when it deletes its queues).
                let max = q.max_size;
                let (size, d, a, u) = (q.size, q.desc_table, q.avail_ring, q.used_ring);
                *q = Queue::new(max);
                (q.size, q.desc_table, q.avail_ring, q.used_ring) = (size, d, a, u);
            }
            1 if q.ready => {}
            1 if !features_ok => {
                self.violation(&format_args!("queue {sel} enabled before FEATURES_OK"))
            }
            1 => {
                if let Err(e) = q.activate(mem, event_idx) {
                    self.violation(&format_args!("queue {sel}: {e}"));
                } else if self.status & DRIVER_OK != 0 {
                    self.run(Some(sel as usize));
                }
            }
            _ => self.violation(&format_args!("QueueReady written with {value}")),
        }
    }

    fn queue_notify(&mut self, value: u32) {
        // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
        let index = value as usize;
        if index >= self.queues.len() {
            return self.violation(&format_args!("notify for nonexistent queue {value}"));
        }
        // Buffers made available before DRIVER_OK are picked up when it is set (§3.1.1: the
        // device must not consume them earlier).
        self.run(Some(index));
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            return self.reset();
        }
        let Ok(new) = u8::try_from(value) else {
            return self.violation(&format_args!("status written with {value:#x}"));
        };
        // Linux writes back what it read, so DEVICE_NEEDS_RESET may come back to us; it is ours.
        let new = new & !DEVICE_NEEDS_RESET;
        let old = self.status & !DEVICE_NEEDS_RESET;
        if old & !new != 0 {
            return self.violation(&format_args!("status bits cleared: {old:#x} -> {new:#x}"));
        }
        let added = new & !old;
        let mut accepted = new;
        if added & (DRIVER | FEATURES_OK | DRIVER_OK) != 0 && new & ACKNOWLEDGE == 0 {
            return self.violation(&format_args!("status {new:#x} without ACKNOWLEDGE"));
        }
        if added & FEATURES_OK != 0 {
            let offered = self.device.device_features();
            if new & DRIVER == 0 {
                return self.violation(&"FEATURES_OK without DRIVER");
            }
            if self.driver_features & !offered != 0
                || self.driver_features & VIRTIO_F_VERSION_1 == 0
            {
                // Not an error: the device just does not accept, and the driver sees FEATURES_OK
                // clear when it reads the status back (§3.1.1 step 6).
                log::info!(
                    "virtio-mmio device {}: refused features {:#x} (offered {offered:#x})",
                    self.device.device_id(),
                    self.driver_features
                );
                accepted &= !FEATURES_OK;
            }
        }
        if added & DRIVER_OK != 0 && accepted & FEATURES_OK == 0 {
            return self.violation(&"DRIVER_OK without FEATURES_OK");
        }
        self.status = accepted | (self.status & DEVICE_NEEDS_RESET);
        if added & DRIVER_OK != 0 && self.live() {
            self.device.activate(self.driver_features);
            for i in 0..self.queues.len() {
                self.run(Some(i));
            }
        }
    }

    fn config_access(&mut self, offset: u64, size: u8) -> bool {
        let ok = matches!(size, 1 | 2 | 4) && offset.is_multiple_of(u64::from(size));
        if !ok {
            self.violation(&format_args!(
                "config access of {size} bytes at {offset:#x}"
            ));
        }
        ok
    }
}

fn set_low(addr: &mut u64, value: u32) {
    *addr = (*addr & !0xffff_ffff) | u64::from(value);
}

fn set_high(addr: &mut u64, value: u32) {
    *addr = (*addr & 0xffff_ffff) | (u64::from(value) << 32);
}

impl<D: VirtioDevice, M: GuestMemory, I: IrqLine> MmioDevice for MmioTransport<D, M, I> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if offset >= reg::CONFIG {
            if !self.config_access(offset, size) {
                return 0;
            }
            let mut b = [0u8; 4];
            self.device
                .read_config(offset - reg::CONFIG, &mut b[..usize::from(size)]);
            return u64::from(u32::from_le_bytes(b));
        }
        if size != 4 || !offset.is_multiple_of(4) {
            self.violation(&format_args!(
                "register read of {size} bytes at {offset:#x}"
            ));
            return 0;
        }
        u64::from(self.read_register(offset))
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if offset >= reg::CONFIG {
            if self.config_access(offset, size) {
                let b = value.to_le_bytes();
                self.device
                    .write_config(offset - reg::CONFIG, &b[..usize::from(size)]);
            }
            return;
        }
        if size != 4 || !offset.is_multiple_of(4) {
            return self.violation(&format_args!(
                "register write of {size} bytes at {offset:#x}"
            ));
        }
        self.write_register(offset, value as u32);
    }

    fn poll(&mut self) {
        MmioTransport::poll(self);
    }
}

#[cfg(test)]
mod tests;
