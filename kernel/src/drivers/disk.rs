//! Disks: what a block driver provides, and the list of disks found at boot with their Plan 9
//! names (`sdE0`, ...).
//!
//! Naming: each driver that finds disks gets a controller letter, from `E` in the order the
//! drivers probe (virtio-blk first, then ATA), and its disks are numbered from 0. So the first
//! disk is `sdE0` under QEMU (virtio-blk-pci) and under Bochs (the ATA primary master) alike,
//! and scripts such as fsvm name it the same way everywhere. (Plan 9 fixes a letter per driver
//! instead: `sdC0` for the first IDE disk, `sdF0` for virtio.)

use crate::error::KResult;
use crate::sync::IrqLock;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Bytes per sector of every disk we drive.
pub const SECTOR: usize = 512;

/// A block device.
pub trait Disk: Send {
    /// Number of sectors.
    fn sectors(&self) -> u64;
    /// A description (model, driver).
    fn model(&self) -> String;
    /// Reads whole sectors starting at `lba` into `buf` (a multiple of `SECTOR` long).
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> KResult<()>;
    /// Writes whole sectors starting at `lba`.
    fn write(&mut self, lba: u64, buf: &[u8]) -> KResult<()>;
    /// Makes written data durable.
    fn flush(&mut self) -> KResult<()>;
}

/// A disk with its name.
pub struct Named {
    pub name: String,
    pub disk: spin::Mutex<Box<dyn Disk>>,
}

static DISKS: IrqLock<Vec<Arc<Named>>> = IrqLock::new(Vec::new());

/// Registers the disks one driver found, under the next controller letter.
pub fn register(disks: Vec<Box<dyn Disk>>) {
    if disks.is_empty() {
        return;
    }
    let mut all = DISKS.lock();
    let controllers = all
        .iter()
        .map(|d| d.name.as_bytes()[2])
        .collect::<alloc::collections::BTreeSet<_>>()
        .len();
    let letter = (b'E' + controllers as u8) as char;
    for (unit, disk) in disks.into_iter().enumerate() {
        let name = alloc::format!("sd{letter}{unit}");
        log::info!(
            "{name}: {} ({} MiB)",
            disk.model(),
            (disk.sectors() * SECTOR as u64) >> 20
        );
        all.push(Arc::new(Named {
            name,
            disk: spin::Mutex::new(disk),
        }));
    }
}

/// Every disk, in name order.
pub fn all() -> Vec<Arc<Named>> {
    DISKS.lock().clone()
}
