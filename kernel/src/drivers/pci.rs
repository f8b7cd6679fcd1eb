//! PCI: configuration space through the PC's mechanism #1 (ports 0xcf8/0xcfc, PCI Local Bus
//! Specification 3.0 §3.2.2.3.2) and enumeration of every function from bus 0 down through the
//! PCI-to-PCI bridges.

use crate::sync::IrqLock;
use alloc::vec::Vec;
use core::fmt;
use x86_64::instructions::port::Port;

/// A PCI function's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// A PCI function found at boot.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
}

static CONFIG: IrqLock<()> = IrqLock::new(());
static DEVICES: IrqLock<Vec<Device>> = IrqLock::new(Vec::new());

/// Reads a dword of configuration space (`offset` is rounded down to a multiple of 4).
pub fn read32(bdf: Bdf, offset: u8) -> u32 {
    let _guard = CONFIG.lock();
    // SAFETY: CONFIG_ADDRESS/CONFIG_DATA are owned by this module, and the lock keeps the
    // address/data pair from interleaving with another access.
    unsafe {
        Port::<u32>::new(0xcf8).write(config_address(bdf, offset));
        Port::<u32>::new(0xcfc).read()
    }
}

/// Writes a dword of configuration space.
pub fn write32(bdf: Bdf, offset: u8, value: u32) {
    let _guard = CONFIG.lock();
    // SAFETY: As in `read32`; callers write registers of devices they drive.
    unsafe {
        Port::<u32>::new(0xcf8).write(config_address(bdf, offset));
        Port::<u32>::new(0xcfc).write(value);
    }
}

fn config_address(bdf: Bdf, offset: u8) -> u32 {
    0x8000_0000
        | u32::from(bdf.bus) << 16
        | u32::from(bdf.dev) << 11
        | u32::from(bdf.func) << 8
        | u32::from(offset & 0xfc)
}

fn probe(bdf: Bdf) -> Option<Device> {
    let id = read32(bdf, 0);
    if id & 0xffff == 0xffff {
        return None;
    }
    let class = read32(bdf, 8);
    Some(Device {
        bdf,
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: (class >> 24) as u8,
        subclass: (class >> 16) as u8,
    })
}

fn scan_bus(bus: u8, found: &mut Vec<Device>, depth: u32) {
    for dev in 0..32 {
        let Some(first) = probe(Bdf { bus, dev, func: 0 }) else {
            continue;
        };
        let multifunction = (read32(first.bdf, 0x0c) >> 16) & 0x80 != 0;
        let funcs = if multifunction { 8 } else { 1 };
        for func in 0..funcs {
            let Some(d) = probe(Bdf { bus, dev, func }) else {
                continue;
            };
            found.push(d);
            // A PCI-to-PCI bridge: its secondary bus number is byte 1 of dword 0x18.
            if d.class == 0x06 && d.subclass == 0x04 && depth < 8 {
                let secondary = (read32(d.bdf, 0x18) >> 8) as u8;
                if secondary > bus {
                    scan_bus(secondary, found, depth + 1);
                }
            }
        }
    }
}

/// Enumerates all PCI functions and logs them.
pub fn init() {
    let mut found = Vec::new();
    scan_bus(0, &mut found, 0);
    for d in &found {
        log::debug!(
            "pci {} {:04x}:{:04x} class {:02x}.{:02x}",
            d.bdf,
            d.vendor,
            d.device,
            d.class,
            d.subclass
        );
    }
    *DEVICES.lock() = found;
}

/// The functions found at boot.
pub fn devices() -> Vec<Device> {
    DEVICES.lock().clone()
}

/// The PCI functions as the `pci` command (and `#arch/pci`) shows them.
pub fn report() -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::new();
    for d in devices() {
        let name = device_name(d.vendor, d.device).unwrap_or("");
        let class = class_name(d.class, d.subclass);
        let _ = writeln!(
            out,
            "{} {:04x}:{:04x} {class:<24} {name}",
            d.bdf, d.vendor, d.device
        );
    }
    out
}

/// A name for a class/subclass pair (PCI Code and ID Assignment Specification).
pub fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x01, 0x01) => "IDE controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x08) => "NVMe controller",
        (0x01, 0x00) => "SCSI controller",
        (0x01, _) => "storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, _) => "network controller",
        (0x03, 0x00) => "VGA controller",
        (0x03, _) => "display controller",
        (0x04, _) => "multimedia controller",
        (0x05, _) => "memory controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, 0x80) => "bridge",
        (0x06, _) => "bridge",
        (0x07, _) => "communication controller",
        (0x08, _) => "system peripheral",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus controller",
        (0x0c, _) => "serial bus controller",
        (0xff, _) => "unassigned class",
        _ => "device",
    }
}

/// A name for well-known vendor/device pairs seen under QEMU and Bochs.
pub fn device_name(vendor: u16, device: u16) -> Option<&'static str> {
    Some(match (vendor, device) {
        (0x8086, 0x1237) => "Intel 440FX",
        (0x8086, 0x7000) => "Intel PIIX3 ISA",
        (0x8086, 0x7010) => "Intel PIIX3 IDE",
        (0x8086, 0x7020) => "Intel PIIX3 USB",
        (0x8086, 0x7113) => "Intel PIIX4 ACPI",
        (0x8086, 0x29c0) => "Intel Q35 host bridge",
        (0x8086, 0x2918) => "Intel ICH9 LPC",
        (0x8086, 0x2922) => "Intel ICH9 AHCI",
        (0x8086, 0x2930) => "Intel ICH9 SMBus",
        (0x8086, 0x100e) => "Intel 82540EM (e1000)",
        (0x8086, 0x10d3) => "Intel 82574L (e1000e)",
        (0x1234, 0x1111) => "QEMU/Bochs VGA",
        (0x1af4, 0x1000) => "virtio-net (legacy)",
        (0x1af4, 0x1001) => "virtio-blk (legacy)",
        (0x1af4, 0x1003) => "virtio-console (legacy)",
        (0x1af4, 0x1041) => "virtio-net",
        (0x1af4, 0x1042) => "virtio-blk",
        (0x1af4, 0x1043) => "virtio-console",
        (0x1b36, 0x0008) => "QEMU PCIe host bridge",
        _ => return None,
    })
}
