//! The ACPI tables the kernel needs (ACPI 6.5 chapter 5): the RSDP and RSDT/XSDT to find the
//! others, the MADT for CPUs and IOAPICs, the FADT for power control, and the `\_S5` object of
//! the DSDT for the sleep type that powers off.
//!
//! Every table's length and checksum are checked before use; a bad table is reported and
//! skipped, never trusted.

use crate::bootinfo::RSDP_LEN;
use crate::mm::{PhysAddr, phys_read};
use alloc::vec::Vec;

static PLATFORM: spin::Once<Platform> = spin::Once::new();

/// Remembers the platform description for later readers.
pub fn set_platform(p: Platform) -> &'static Platform {
    PLATFORM.call_once(|| p)
}

/// The platform description found at boot.
pub fn platform() -> &'static Platform {
    PLATFORM.get().expect("the platform is discovered at boot")
}

/// An IOAPIC from the MADT.
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    pub addr: u64,
    pub gsi_base: u32,
}

/// An interrupt source override from the MADT: ISA `irq` is wired to `gsi`.
#[derive(Clone, Copy, Debug)]
pub struct Override {
    pub irq: u8,
    pub gsi: u32,
    /// MPS INTI flags (polarity, trigger mode).
    pub flags: u16,
}

/// A generic address structure (ACPI §5.2.3.2), reduced to what reset needs.
#[derive(Clone, Copy, Debug)]
pub struct ResetRegister {
    /// 0 = system memory, 1 = system I/O.
    pub space: u8,
    pub addr: u64,
    pub value: u8,
}

/// The fixed hardware the FADT describes, as far as power control needs it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PowerControl {
    pub pm1a_cnt: u16,
    pub pm1b_cnt: u16,
    pub smi_cmd: u16,
    pub acpi_enable: u8,
    pub reset: Option<ResetRegister>,
    /// SLP_TYPa and SLP_TYPb for S5 (soft off), from `\_S5`.
    pub s5: Option<(u8, u8)>,
}

/// What the firmware told us about the machine.
#[derive(Debug, Default)]
pub struct Platform {
    /// APIC IDs of the enabled CPUs.
    pub cpus: Vec<u32>,
    pub ioapics: Vec<IoApic>,
    pub overrides: Vec<Override>,
    pub power: Option<PowerControl>,
    /// Physical address of the local APIC page.
    pub lapic_addr: u64,
}

/// A table header, checked (ACPI §5.2.6).
struct Sdt {
    addr: u64,
    len: u32,
    signature: [u8; 4],
}

impl Sdt {
    fn at(addr: u64) -> Option<Sdt> {
        let signature: [u8; 4] = phys_read(PhysAddr(addr));
        let len: u32 = phys_read(PhysAddr(addr + 4));
        if !(36..=16 << 20).contains(&len) {
            log::warn!("ACPI table at {addr:#x}: bad length {len}");
            return None;
        }
        if checksum(addr, len as u64) != 0 {
            log::warn!(
                "ACPI table {} at {addr:#x}: bad checksum",
                sig_str(&signature)
            );
            return None;
        }
        Some(Sdt {
            addr,
            len,
            signature,
        })
    }

    fn u8(&self, off: u32) -> u8 {
        if off < self.len {
            phys_read(PhysAddr(self.addr + u64::from(off)))
        } else {
            0
        }
    }

    fn u16(&self, off: u32) -> u16 {
        if off + 2 <= self.len {
            phys_read(PhysAddr(self.addr + u64::from(off)))
        } else {
            0
        }
    }

    fn u32(&self, off: u32) -> u32 {
        if off + 4 <= self.len {
            phys_read(PhysAddr(self.addr + u64::from(off)))
        } else {
            0
        }
    }

    fn u64(&self, off: u32) -> u64 {
        if off + 8 <= self.len {
            phys_read(PhysAddr(self.addr + u64::from(off)))
        } else {
            0
        }
    }
}

fn checksum(addr: u64, len: u64) -> u8 {
    (0..len).fold(0u8, |sum, i| {
        sum.wrapping_add(phys_read(PhysAddr(addr + i)))
    })
}

fn sig_str(sig: &[u8; 4]) -> &str {
    core::str::from_utf8(sig).unwrap_or("????")
}

/// Looks for the RSDP in the BIOS areas (ACPI §5.2.5.1): the first KiB of the EBDA and
/// 0xe0000..0x100000, on 16-byte boundaries.
fn find_rsdp() -> Option<[u8; RSDP_LEN]> {
    let ebda = u64::from(phys_read::<u16>(PhysAddr(0x40e))) << 4;
    let ranges = [(ebda, ebda + 1024), (0xe0000, 0x100000)];
    for (start, end) in ranges {
        let mut at = start;
        while start != 0 && at + 20 <= end {
            if &phys_read::<[u8; 8]>(PhysAddr(at)) == b"RSD PTR " && checksum(at, 20) == 0 {
                return Some(phys_read(PhysAddr(at)));
            }
            at += 16;
        }
    }
    None
}

impl Platform {
    /// Reads the ACPI tables. Without them (or with broken ones), assumes a PC with one CPU and
    /// an IOAPIC at its usual address, and says so.
    pub fn discover(rsdp: Option<[u8; RSDP_LEN]>) -> Platform {
        let rsdp = rsdp.filter(|r| &r[..8] == b"RSD PTR ").or_else(find_rsdp);
        match rsdp.and_then(|r| Platform::from_rsdp(&r)) {
            Some(p) => p,
            None => {
                log::warn!("no usable ACPI tables: assuming one CPU and an IOAPIC at 0xfec00000");
                Platform {
                    cpus: alloc::vec![0],
                    ioapics: alloc::vec![IoApic {
                        addr: 0xfec0_0000,
                        gsi_base: 0
                    }],
                    overrides: alloc::vec![Override {
                        irq: 0,
                        gsi: 2,
                        flags: 0
                    }],
                    lapic_addr: 0xfee0_0000,
                    ..Platform::default()
                }
            }
        }
    }

    fn from_rsdp(rsdp: &[u8; RSDP_LEN]) -> Option<Platform> {
        if rsdp[..20].iter().fold(0u8, |s, b| s.wrapping_add(*b)) != 0 {
            log::warn!("ACPI RSDP: bad checksum");
            return None;
        }
        let revision = rsdp[15];
        let rsdt = u32::from_le_bytes(rsdp[16..20].try_into().ok()?);
        let xsdt = u64::from_le_bytes(rsdp[24..32].try_into().ok()?);
        let (root, entry_size) = if revision >= 2 && xsdt != 0 {
            (Sdt::at(xsdt)?, 8)
        } else {
            (Sdt::at(u64::from(rsdt))?, 4)
        };
        let mut platform = Platform::default();
        let count = (root.len - 36) / entry_size;
        for i in 0..count {
            let off = 36 + i * entry_size;
            let addr = if entry_size == 8 {
                root.u64(off)
            } else {
                u64::from(root.u32(off))
            };
            let Some(table) = Sdt::at(addr) else { continue };
            match &table.signature {
                b"APIC" => platform.read_madt(&table),
                b"FACP" => platform.power = Some(read_fadt(&table)),
                _ => {}
            }
        }
        if platform.cpus.is_empty() {
            platform.cpus.push(0);
        }
        Some(platform)
    }

    /// MADT (ACPI §5.2.12).
    fn read_madt(&mut self, madt: &Sdt) {
        self.lapic_addr = u64::from(madt.u32(36));
        let mut off = 44;
        while off + 2 <= madt.len {
            let (kind, len) = (madt.u8(off), u32::from(madt.u8(off + 1)));
            if len < 2 || off + len > madt.len {
                log::warn!("MADT: bad entry length {len} at offset {off}");
                break;
            }
            match kind {
                0 if madt.u32(off + 4) & 1 != 0 => self.cpus.push(u32::from(madt.u8(off + 3))),
                1 => self.ioapics.push(IoApic {
                    addr: u64::from(madt.u32(off + 4)),
                    gsi_base: madt.u32(off + 8),
                }),
                2 => self.overrides.push(Override {
                    irq: madt.u8(off + 3),
                    gsi: madt.u32(off + 4),
                    flags: madt.u16(off + 8),
                }),
                5 => self.lapic_addr = madt.u64(off + 4),
                9 if madt.u32(off + 8) & 1 != 0 => self.cpus.push(madt.u32(off + 4)),
                _ => {}
            }
            off += len;
        }
    }
}

/// FADT (ACPI §5.2.9), and `\_S5` from its DSDT.
fn read_fadt(fadt: &Sdt) -> PowerControl {
    let flags = fadt.u32(112);
    let reset = (fadt.len >= 129 && flags & (1 << 10) != 0).then(|| ResetRegister {
        space: fadt.u8(116),
        addr: fadt.u64(120),
        value: fadt.u8(128),
    });
    let x_dsdt = if fadt.len >= 148 { fadt.u64(140) } else { 0 };
    let dsdt = if x_dsdt != 0 {
        x_dsdt
    } else {
        u64::from(fadt.u32(40))
    };
    PowerControl {
        pm1a_cnt: fadt.u32(64) as u16,
        pm1b_cnt: fadt.u32(68) as u16,
        smi_cmd: fadt.u32(48) as u16,
        acpi_enable: fadt.u8(52),
        reset,
        s5: Sdt::at(dsdt).and_then(|d| find_s5(&d)),
    }
}

/// Finds `Name(_S5, Package(){SLP_TYPa, SLP_TYPb, ...})` in the DSDT's AML by its byte pattern
/// (ACPI §7.4.2 for the object, §20.2.3 for the encoding), without an AML interpreter.
fn find_s5(dsdt: &Sdt) -> Option<(u8, u8)> {
    let mut off = 36;
    while off + 4 < dsdt.len {
        let is_s5 = [
            dsdt.u8(off),
            dsdt.u8(off + 1),
            dsdt.u8(off + 2),
            dsdt.u8(off + 3),
        ] == *b"_S5_";
        let named =
            off >= 1 && (dsdt.u8(off - 1) == 0x08 || (off >= 2 && dsdt.u8(off - 2) == 0x08));
        if is_s5 && named && dsdt.u8(off + 4) == 0x12 {
            // PackageOp, PkgLength (1 + bits 6-7 of its lead byte), NumElements, then elements.
            let mut p = off + 5;
            p += 1 + u32::from(dsdt.u8(p) >> 6);
            p += 1;
            let mut element = || {
                let b = dsdt.u8(p);
                if b == 0x0a {
                    p += 2;
                    dsdt.u8(p - 1)
                } else {
                    p += 1;
                    b // ZeroOp (0) and OneOp (1) are their own value
                }
            };
            let a = element();
            let b = element();
            return Some((a, b));
        }
        off += 1;
    }
    None
}
