//! The IOAPICs (82093AA datasheet): route ISA IRQs, after the ACPI interrupt source overrides,
//! to vectors on the boot CPU.

use super::acpi::{IoApic, Platform};
use super::irq::GSI_VECTOR_BASE;
use crate::mm::PhysAddr;
use crate::sync::IrqLock;
use alloc::vec::Vec;

/// An ISA IRQ's mapping to a GSI, with its polarity and trigger mode.
#[derive(Clone, Copy, Debug)]
pub struct IsaRoute {
    pub gsi: u32,
    pub active_low: bool,
    pub level: bool,
}

struct State {
    ioapics: Vec<IoApic>,
    isa: [IsaRoute; 16],
    dest_apic_id: u32,
}

static STATE: IrqLock<Option<State>> = IrqLock::new(None);

fn read(base: u64, reg: u32) -> u32 {
    let virt = PhysAddr(base).to_virt();
    // SAFETY: IOREGSEL (offset 0) and IOWIN (offset 0x10) of an IOAPIC reported by the MADT,
    // reached through the direct map; callers hold STATE's lock, so the select/access pair is
    // not interleaved.
    unsafe {
        core::ptr::write_volatile(virt.cast::<u32>(), reg);
        core::ptr::read_volatile(virt.add(0x10).cast::<u32>())
    }
}

fn write(base: u64, reg: u32, value: u32) {
    let virt = PhysAddr(base).to_virt();
    // SAFETY: As in `read`.
    unsafe {
        core::ptr::write_volatile(virt.cast::<u32>(), reg);
        core::ptr::write_volatile(virt.add(0x10).cast::<u32>(), value);
    }
}

/// Number of redirection entries of the IOAPIC at `base` (IOAPICVER bits 16-23, plus one).
fn entries(base: u64) -> u32 {
    ((read(base, 1) >> 16) & 0xff) + 1
}

/// Masks every input of every IOAPIC and remembers the ISA routing.
pub fn init(platform: &Platform, dest_apic_id: u32) {
    let mut isa = core::array::from_fn(|irq| IsaRoute {
        gsi: irq as u32,
        active_low: false,
        level: false,
    });
    for o in &platform.overrides {
        if let Some(route) = isa.get_mut(usize::from(o.irq)) {
            // MPS INTI flags: polarity bits 0-1 (3 = active low), trigger bits 2-3 (3 = level).
            *route = IsaRoute {
                gsi: o.gsi,
                active_low: o.flags & 3 == 3,
                level: (o.flags >> 2) & 3 == 3,
            };
        }
    }
    for io in &platform.ioapics {
        for n in 0..entries(io.addr) {
            write(io.addr, 0x10 + 2 * n, 1 << 16);
        }
    }
    *STATE.lock() = Some(State {
        ioapics: platform.ioapics.clone(),
        isa,
        dest_apic_id,
    });
}

/// Unmasks ISA IRQ `irq` on vector `GSI_VECTOR_BASE + gsi`; returns the GSI.
pub fn route_isa(irq: u8) -> Option<u32> {
    let guard = STATE.lock();
    let state = guard.as_ref()?;
    let route = *state.isa.get(usize::from(irq))?;
    let io = state
        .ioapics
        .iter()
        .find(|io| route.gsi >= io.gsi_base && route.gsi < io.gsi_base + entries(io.addr))?;
    let pin = route.gsi - io.gsi_base;
    let vector = u32::from(GSI_VECTOR_BASE) + route.gsi;
    if vector > 0xdf {
        return None;
    }
    // Redirection entry: vector, fixed delivery, physical destination (82093AA §3.2.4).
    let low = vector | (u32::from(route.active_low) << 13) | (u32::from(route.level) << 15);
    write(io.addr, 0x10 + 2 * pin + 1, state.dest_apic_id << 24);
    write(io.addr, 0x10 + 2 * pin, low);
    Some(route.gsi)
}
