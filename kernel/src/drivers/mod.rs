//! Device drivers.

pub mod ata;
pub mod disk;
pub mod pci;
pub mod virtio;
