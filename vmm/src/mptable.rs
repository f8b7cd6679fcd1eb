//! The Intel MP table (MultiProcessor Specification 1.4, chapter 4), from which the guest learns
//! its local APICs, its IOAPIC and how interrupts are routed.
//!
//! Why an MP table and not ACPI: the guest kernel (guest/kernel/fsvm.config, DESIGN.md section 5)
//! is built with CONFIG_ACPI=n and CONFIG_X86_MPPARSE=y. Without ACPI, Linux finds the IOAPIC
//! only through the MP table (`arch/x86/kernel/mpparse.c`), which it scans for in the first KiB
//! of memory, the last KiB of base memory and the BIOS area; we put it in the last KiB
//! ([`crate::layout::MP_TABLE`], reserved in the memory map). The same guest booted under
//! QEMU's `pc` machine relies on SeaBIOS's MP table in the same way (reference/emu.md row C).
//!
//! Contents (§4.1 floating pointer, §4.2 configuration table header, §4.3 base entries):
//! one processor entry per vCPU (APIC IDs 0.., the first the bootstrap processor), one ISA
//! bus, one IOAPIC (ID = number of vCPUs, so it collides with no local APIC), an I/O interrupt
//! entry routing ISA IRQ n to IOAPIC pin n for every pin (the virtio-mmio devices' IRQs among
//! them; ISA interrupts are edge-triggered, active high, see [`crate::irq`]), and the usual
//! local interrupt entries (ExtINT on LINT0, NMI on LINT1). Feature byte 2 bit 7 (IMCR) is
//! clear: virtual wire mode, no PIC/IMCR switch.

use alloc::vec::Vec;
use core::fmt;

use crate::layout::{IOAPIC_BASE, IOAPIC_PINS, LAPIC_BASE, MP_TABLE};
use crate::memory::{GuestMemory, MemoryError};
use crate::wire::{put, put_u16, put_u32};

/// Floating pointer signature.
pub const MPF_SIGNATURE: &[u8; 4] = b"_MP_";
/// Configuration table signature.
pub const MPC_SIGNATURE: &[u8; 4] = b"PCMP";
/// Specification revision 1.4.
pub const SPEC_REV: u8 = 4;
/// Entry type: processor.
pub const MP_PROCESSOR: u8 = 0;
/// Entry type: bus.
pub const MP_BUS: u8 = 1;
/// Entry type: I/O APIC.
pub const MP_IOAPIC: u8 = 2;
/// Entry type: I/O interrupt assignment.
pub const MP_INTSRC: u8 = 3;
/// Entry type: local interrupt assignment.
pub const MP_LINTSRC: u8 = 4;
/// Interrupt type: vectored interrupt (through the IOAPIC redirection entry).
pub const MP_INT: u8 = 0;
/// Interrupt type: NMI.
pub const MP_NMI: u8 = 1;
/// Interrupt type: external interrupt from an 8259-compatible PIC.
pub const MP_EXTINT: u8 = 3;
/// Local APIC version we report (integrated APIC, as modern CPUs).
pub const LAPIC_VERSION: u8 = 0x14;
/// IOAPIC version we report (82093AA-compatible, 24 pins).
pub const IOAPIC_VERSION: u8 = 0x11;
/// The floating pointer structure's size.
pub const MPF_SIZE: usize = 16;
/// The configuration table header's size.
pub const MPC_HEADER_SIZE: usize = 44;
/// Room the table may use: the last KiB of base memory.
pub const MAX_SIZE: usize = 1024;
/// The most vCPUs the table describes in that room.
pub const MAX_CPUS: u32 =
    ((MAX_SIZE - MPF_SIZE - MPC_HEADER_SIZE - 8 - 8 - 8 * IOAPIC_PINS as usize - 16) / 20) as u32;

/// Too many vCPUs for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyCpus(pub u32);

impl fmt::Display for TooManyCpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vCPUs: the MP table describes at most {MAX_CPUS}",
            self.0
        )
    }
}

/// The IOAPIC ID for a guest with `cpus` vCPUs.
pub fn ioapic_id(cpus: u32) -> u8 {
    cpus as u8
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// Builds the floating pointer and configuration table as they go at `MP_TABLE`.
pub fn build(cpus: u32) -> Result<Vec<u8>, TooManyCpus> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(TooManyCpus(cpus));
    }
    let ioapic = ioapic_id(cpus);
    let mut entries: Vec<[u8; 20]> = Vec::new();
    let mut small: Vec<[u8; 8]> = Vec::new();
    for id in 0..cpus {
        let mut e = [0u8; 20];
        e[0] = MP_PROCESSOR;
        e[1] = id as u8;
        e[2] = LAPIC_VERSION;
        e[3] = 1 | if id == 0 { 2 } else { 0 }; // EN, BP
        put_u32(&mut e, 4, 0x600); // CPU signature: family 6
        put_u32(&mut e, 8, 0x201); // features: FPU, APIC
        entries.push(e);
    }
    let mut bus = [0u8; 8];
    bus[0] = MP_BUS;
    bus[1] = 0;
    put(&mut bus, 2, b"ISA   ");
    small.push(bus);
    let mut io = [0u8; 8];
    io[0] = MP_IOAPIC;
    io[1] = ioapic;
    io[2] = IOAPIC_VERSION;
    io[3] = 1; // EN
    put_u32(&mut io, 4, IOAPIC_BASE as u32);
    small.push(io);
    for pin in 0..IOAPIC_PINS {
        // type, interrupt type, flags (0: conforms to the bus), source bus, source IRQ,
        // destination IOAPIC, destination pin.
        small.push([MP_INTSRC, MP_INT, 0, 0, 0, pin, ioapic, pin]);
    }
    for (kind, lint) in [(MP_EXTINT, 0), (MP_NMI, 1)] {
        small.push([MP_LINTSRC, kind, 0, 0, 0, 0, 0xff, lint]);
    }

    let table_len = MPC_HEADER_SIZE + 20 * entries.len() + 8 * small.len();
    let mut t = alloc::vec![0u8; MPF_SIZE + table_len];
    let mpc = MP_TABLE + MPF_SIZE as u64;
    // §4.1 floating pointer.
    put(&mut t, 0, MPF_SIGNATURE);
    put_u32(&mut t, 4, mpc as u32);
    t[8] = 1; // length in 16-byte units
    t[9] = SPEC_REV;
    // t[11] = 0: a configuration table is present; t[12] bit 7 clear: virtual wire mode.
    t[10] = checksum(&t[..MPF_SIZE]);
    // §4.2 header.
    let h = MPF_SIZE;
    put(&mut t, h, MPC_SIGNATURE);
    put_u16(&mut t, h + 4, table_len as u16);
    t[h + 6] = SPEC_REV;
    put(&mut t, h + 8, b"TERN    ");
    put(&mut t, h + 16, b"VMM         ");
    put_u16(&mut t, h + 34, (entries.len() + small.len()) as u16);
    put_u32(&mut t, h + 36, LAPIC_BASE as u32);
    let mut at = h + MPC_HEADER_SIZE;
    for e in &entries {
        put(&mut t, at, e);
        at += 20;
    }
    for e in &small {
        put(&mut t, at, e);
        at += 8;
    }
    t[h + 7] = checksum(&t[h..]);
    Ok(t)
}

/// Writes the MP table for `cpus` vCPUs into guest memory at [`MP_TABLE`].
pub fn write(mem: &impl GuestMemory, cpus: u32) -> Result<(), MpTableError> {
    let t = build(cpus).map_err(MpTableError::TooManyCpus)?;
    mem.write(MP_TABLE, &t).map_err(MpTableError::Memory)
}

/// Why the MP table could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpTableError {
    /// See [`TooManyCpus`].
    TooManyCpus(TooManyCpus),
    /// The table's place is not guest RAM.
    Memory(MemoryError),
}

impl fmt::Display for MpTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MpTableError::TooManyCpus(e) => write!(f, "{e}"),
            MpTableError::Memory(e) => write!(f, "MP table: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::FakeGuestMemory;
    use crate::wire::{u16_at, u32_at};

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    /// Parses the table the way Linux's mpparse.c checks it: floating pointer signature,
    /// length and checksum, then the table's signature, length, checksum and entries.
    /// (vCPUs, IOAPICs as (id, version), routes as (source IRQ, IOAPIC, pin)).
    type Parsed = (u32, Vec<(u8, u8)>, Vec<(u8, u8, u8)>);

    fn parse(mem: &FakeGuestMemory) -> Parsed {
        let mut f = [0u8; 16];
        mem.read(MP_TABLE, &mut f).unwrap();
        assert_eq!(&f[..4], MPF_SIGNATURE);
        assert_eq!((f[8], f[9], sum(&f)), (1, 4, 0));
        let mpc = u64::from(u32_at(&f, 4).unwrap());
        let mut hdr = [0u8; 44];
        mem.read(mpc, &mut hdr).unwrap();
        assert_eq!(&hdr[..4], MPC_SIGNATURE);
        let len = usize::from(u16_at(&hdr, 4).unwrap());
        let mut t = alloc::vec![0u8; len];
        mem.read(mpc, &mut t).unwrap();
        assert_eq!(sum(&t), 0, "table checksum");
        assert_eq!(u32_at(&t, 36), Some(0xfee0_0000));
        let count = u16_at(&t, 34).unwrap();
        let (mut cpus, mut ioapics, mut routes) = (0, Vec::new(), Vec::new());
        let mut at = 44;
        for _ in 0..count {
            match t[at] {
                MP_PROCESSOR => {
                    assert_eq!(t[at + 1], cpus as u8);
                    assert_eq!(t[at + 3] & 2 != 0, cpus == 0, "BP flag only on CPU 0");
                    cpus += 1;
                    at += 20;
                }
                MP_IOAPIC => {
                    assert_eq!(u32_at(&t, at + 4), Some(0xfec0_0000));
                    ioapics.push((t[at + 1], t[at + 2]));
                    at += 8;
                }
                MP_INTSRC => {
                    routes.push((t[at + 5], t[at + 6], t[at + 7]));
                    at += 8;
                }
                MP_BUS => {
                    assert_eq!(&t[at + 2..at + 8], b"ISA   ");
                    at += 8;
                }
                MP_LINTSRC => at += 8,
                other => panic!("unknown entry type {other}"),
            }
        }
        assert_eq!(at, len);
        (cpus, ioapics, routes)
    }

    #[test]
    fn table_parses_like_linux_does() {
        let mem = FakeGuestMemory::with_size(0x10_0000);
        write(&mem, 1).unwrap();
        let (cpus, ioapics, routes) = parse(&mem);
        assert_eq!(cpus, 1);
        assert_eq!(ioapics, [(1, IOAPIC_VERSION)]);
        assert_eq!(routes.len(), 24);
        assert!(
            routes
                .iter()
                .all(|&(irq, apic, pin)| irq == pin && apic == 1)
        );
    }

    #[test]
    fn cpu_count_limits() {
        let mem = FakeGuestMemory::with_size(0x10_0000);
        write(&mem, MAX_CPUS).unwrap();
        assert_eq!(parse(&mem).0, MAX_CPUS);
        assert!(build(MAX_CPUS).unwrap().len() <= MAX_SIZE);
        assert_eq!(build(MAX_CPUS + 1), Err(TooManyCpus(MAX_CPUS + 1)));
        assert_eq!(build(0), Err(TooManyCpus(0)));
    }
}
