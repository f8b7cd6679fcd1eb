//! Device and timer interrupts: a table of handlers by vector, filled by drivers, and the
//! end-of-interrupt signalled to the LAPIC after each handler.
//!
//! Vectors: 0x20 the LAPIC timer; 0x30 + GSI for IOAPIC inputs; 0xe0..0xef the masked legacy
//! PIC (spurious only); 0xff the LAPIC spurious vector.

use super::{apic, ioapic};
use crate::sync::IrqLock;

/// Vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// First vector used for IOAPIC inputs (vector = base + GSI).
pub const GSI_VECTOR_BASE: u8 = 0x30;
/// Vectors the legacy PICs are moved to before being masked.
pub const PIC_VECTOR_BASE: u8 = 0xe0;
/// The LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// An interrupt handler: runs with interrupts off, before the EOI.
pub type Handler = fn();

static HANDLERS: IrqLock<[Option<Handler>; 256]> = IrqLock::new([None; 256]);

/// Installs `handler` for `vector`.
pub fn register(vector: u8, handler: fn()) {
    HANDLERS.lock()[vector as usize] = Some(handler);
}

/// Routes ISA IRQ `irq` through the IOAPIC to this CPU and installs `handler` for it.
pub fn register_isa(irq: u8, handler: fn()) {
    let gsi = ioapic::route_isa(irq);
    match gsi {
        Some(gsi) => register(GSI_VECTOR_BASE + gsi as u8, handler),
        None => log::warn!("ISA IRQ {irq}: no IOAPIC input, interrupts from it are lost"),
    }
}

/// Runs the handler for `vector` and acknowledges the interrupt.
pub fn dispatch(vector: u8) {
    if vector == SPURIOUS_VECTOR || (PIC_VECTOR_BASE..PIC_VECTOR_BASE + 16).contains(&vector) {
        return; // spurious: no EOI (SDM Vol. 3A §11.9)
    }
    let handler = HANDLERS.lock()[vector as usize];
    match handler {
        Some(h) => h(),
        None => log::warn!("unexpected interrupt on vector {vector:#x}"),
    }
    apic::eoi();
}
