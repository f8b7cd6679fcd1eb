//! The MMIO bus: decoded guest accesses dispatched to device models by address.
//!
//! The kernel's `#vm` device decodes the faulting instruction (DESIGN.md section 4), so what
//! arrives here is an [`MmioAccess`]: address, size and, for a store, the value. Device models
//! implement [`MmioDevice`] and see register reads and writes at offsets into their own range.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

/// One decoded guest access to unbacked guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Guest-physical address.
    pub addr: u64,
    /// Width in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// The value stored, or `None` for a load.
    pub write: Option<u64>,
}

/// A device model on the bus.
pub trait MmioDevice {
    /// A load of `size` bytes at `offset` into the device's range.
    fn read(&mut self, offset: u64, size: u8) -> u64;
    /// A store of `size` bytes at `offset`.
    fn write(&mut self, offset: u64, size: u8, value: u64);
    /// Work that does not come from a register access (input arriving from a backend).
    fn poll(&mut self) {}
}

/// Why an access or a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// No device claims the address; a load should read as all ones.
    Unclaimed {
        /// The address.
        addr: u64,
    },
    /// Not 1, 2, 4 or 8 bytes.
    BadSize {
        /// The size.
        size: u8,
    },
    /// The access starts in a device and runs past its end.
    Straddles {
        /// The address.
        addr: u64,
    },
    /// A new device's range overlaps one already on the bus, or is empty or wraps.
    Overlap {
        /// Base of the new range.
        base: u64,
    },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Unclaimed { addr } => write!(f, "no device at guest address {addr:#x}"),
            BusError::BadSize { size } => write!(f, "MMIO access of {size} bytes"),
            BusError::Straddles { addr } => write!(
                f,
                "MMIO access at {addr:#x} runs past the end of its device"
            ),
            BusError::Overlap { base } => {
                write!(f, "device range at {base:#x} overlaps another or is empty")
            }
        }
    }
}

struct Entry {
    base: u64,
    len: u64,
    device: Box<dyn MmioDevice + Send>,
}

/// Address ranges and the devices that own them.
#[derive(Default)]
pub struct Bus {
    entries: Vec<Entry>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Bus {
        Bus::default()
    }

    /// Puts `device` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: Box<dyn MmioDevice + Send>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::Overlap { base })?;
        if self
            .entries
            .iter()
            .any(|e| base < e.base + e.len && e.base < end)
        {
            return Err(BusError::Overlap { base });
        }
        self.entries.push(Entry { base, len, device });
        Ok(())
    }

    fn find(&mut self, addr: u64, size: u8) -> Result<(&mut Entry, u64), BusError> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(BusError::BadSize { size });
        }
        let e = self
            .entries
            .iter_mut()
            .find(|e| addr >= e.base && addr - e.base < e.len)
            .ok_or(BusError::Unclaimed { addr })?;
        let off = addr - e.base;
        if off + u64::from(size) > e.len {
            return Err(BusError::Straddles { addr });
        }
        Ok((e, off))
    }

    /// Performs one access; a load returns its value.
    pub fn dispatch(&mut self, access: MmioAccess) -> Result<Option<u64>, BusError> {
        let (e, off) = self.find(access.addr, access.size)?;
        let mask = if access.size == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * access.size)) - 1
        };
        match access.write {
            Some(v) => {
                e.device.write(off, access.size, v & mask);
                Ok(None)
            }
            None => Ok(Some(e.device.read(off, access.size) & mask)),
        }
    }

    /// Lets every device do its backend work.
    pub fn poll(&mut self) {
        for e in &mut self.entries {
            e.device.poll();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<(u64, u8, Option<u64>)>>>;

    struct Recorder(Log);

    impl MmioDevice for Recorder {
        fn read(&mut self, offset: u64, size: u8) -> u64 {
            self.0.lock().unwrap().push((offset, size, None));
            u64::MAX
        }
        fn write(&mut self, offset: u64, size: u8, value: u64) {
            self.0.lock().unwrap().push((offset, size, Some(value)));
        }
    }

    #[test]
    fn dispatches_by_range_with_offsets_and_masks() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut bus = Bus::new();
        bus.insert(0x1000, 0x100, Box::new(Recorder(log.clone())))
            .unwrap();
        assert_eq!(
            bus.dispatch(MmioAccess {
                addr: 0x1010,
                size: 2,
                write: None
            }),
            Ok(Some(0xffff))
        );
        bus.dispatch(MmioAccess {
            addr: 0x10fc,
            size: 4,
            write: Some(u64::MAX),
        })
        .unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [(0x10, 2, None), (0xfc, 4, Some(0xffff_ffff))]
        );
    }

    #[test]
    fn bad_accesses_are_errors_not_panics() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut bus = Bus::new();
        bus.insert(0x1000, 0x100, Box::new(Recorder(log.clone())))
            .unwrap();
        assert_eq!(
            bus.insert(0x10ff, 1, Box::new(Recorder(log.clone()))),
            Err(BusError::Overlap { base: 0x10ff })
        );
        assert!(
            bus.insert(u64::MAX, 2, Box::new(Recorder(log.clone())))
                .is_err()
        );
        assert!(
            bus.insert(0x5000, 0, Box::new(Recorder(log.clone())))
                .is_err()
        );
        assert_eq!(
            bus.dispatch(MmioAccess {
                addr: 0x2000,
                size: 4,
                write: None
            }),
            Err(BusError::Unclaimed { addr: 0x2000 })
        );
        assert_eq!(
            bus.dispatch(MmioAccess {
                addr: 0x1000,
                size: 3,
                write: None
            }),
            Err(BusError::BadSize { size: 3 })
        );
        assert_eq!(
            bus.dispatch(MmioAccess {
                addr: 0x10fe,
                size: 4,
                write: None
            }),
            Err(BusError::Straddles { addr: 0x10fe })
        );
        assert!(log.lock().unwrap().is_empty());
    }
}
