//! The in-kernel IOAPIC of a VM (Intel 82093AA datasheet, §3): the index and data registers at
//! [`abi::vm::IOAPIC_BASE`], its ID, version and arbitration registers, and
//! [`abi::vm::IOAPIC_PINS`] redirection entries. The VMM drives its inputs (`ctl` `irq LINE
//! LEVEL`, the level meaning "asserted"); an edge-triggered pin interrupts on each rising edge,
//! a level-triggered one while asserted, once per EOI (remote IRR).
//!
//! Pure state: what it delivers comes back as [`Message`]s for the VM to route to LAPICs.

use abi::vm::IOAPIC_PINS;

const PINS: usize = IOAPIC_PINS as usize;
/// Version 0x11, maximum redirection entry PINS - 1.
const VERSION: u32 = 0x11 | ((IOAPIC_PINS - 1) << 16);

// Redirection entry bits (datasheet §3.2.4).
const DEST_LOGICAL: u64 = 1 << 11;
const REMOTE_IRR: u64 = 1 << 14;
const LEVEL_TRIGGERED: u64 = 1 << 15;
const MASKED: u64 = 1 << 16;

/// An interrupt message for the LAPICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// The vector.
    pub vector: u8,
    /// Delivery mode (0 fixed, 1 lowest priority, 4 NMI, 5 INIT, 7 ExtINT).
    pub mode: u8,
    /// Logical (true) or physical destination.
    pub logical: bool,
    /// The destination field (bits 63:56).
    pub dest: u8,
    /// Level-triggered.
    pub level: bool,
}

/// The IOAPIC.
pub struct Ioapic {
    id: u32,
    index: u32,
    redir: [u64; PINS],
    asserted: [bool; PINS],
}

impl Default for Ioapic {
    fn default() -> Self {
        Self::new()
    }
}

impl Ioapic {
    /// After reset: every entry masked.
    pub fn new() -> Ioapic {
        Ioapic {
            id: 0,
            index: 0,
            redir: [MASKED; PINS],
            asserted: [false; PINS],
        }
    }

    fn message(&self, pin: usize) -> Message {
        let e = self.redir[pin];
        Message {
            vector: e as u8,
            mode: ((e >> 8) & 7) as u8,
            logical: e & DEST_LOGICAL != 0,
            dest: (e >> 56) as u8,
            level: e & LEVEL_TRIGGERED != 0,
        }
    }

    /// Delivers a level-triggered pin if it is asserted, unmasked and not awaiting EOI.
    fn service_level(&mut self, pin: usize, out: &mut impl FnMut(Message)) {
        let e = self.redir[pin];
        if self.asserted[pin] && e & (LEVEL_TRIGGERED | MASKED | REMOTE_IRR) == LEVEL_TRIGGERED {
            self.redir[pin] |= REMOTE_IRR;
            out(self.message(pin));
        }
    }

    /// Drives input `pin` to `asserted`; calls `out` for each interrupt that results.
    pub fn set_irq(&mut self, pin: u32, asserted: bool, out: &mut impl FnMut(Message)) {
        let pin = pin as usize;
        if pin >= PINS {
            return;
        }
        let was = core::mem::replace(&mut self.asserted[pin], asserted);
        let e = self.redir[pin];
        if e & LEVEL_TRIGGERED != 0 {
            self.service_level(pin, out);
        } else if asserted && !was && e & MASKED == 0 {
            out(self.message(pin));
        }
    }

    /// A LAPIC's EOI for a level-triggered `vector`: clears the remote IRR of the pins that
    /// use it and delivers again those still asserted.
    pub fn eoi(&mut self, vector: u8, out: &mut impl FnMut(Message)) {
        for pin in 0..PINS {
            let e = self.redir[pin];
            if e as u8 == vector && e & REMOTE_IRR != 0 {
                self.redir[pin] &= !REMOTE_IRR;
                self.service_level(pin, out);
            }
        }
    }

    /// Reads a 32-bit register at `offset` into the MMIO page.
    pub fn mmio_read(&self, offset: u64) -> u32 {
        match offset {
            0x00 => self.index,
            0x10 => self.read_reg(self.index),
            _ => 0,
        }
    }

    /// Writes a 32-bit register at `offset`; calls `out` for interrupts that result.
    pub fn mmio_write(&mut self, offset: u64, value: u32, out: &mut impl FnMut(Message)) {
        match offset {
            0x00 => self.index = value & 0xff,
            0x10 => self.write_reg(self.index, value, out),
            // The EOI register of IOAPIC versions 0x20 and later; harmless to accept.
            0x40 => self.eoi(value as u8, out),
            _ => {}
        }
    }

    fn read_reg(&self, index: u32) -> u32 {
        match index {
            0 | 2 => self.id << 24,
            1 => VERSION,
            i if (0x10..0x10 + 2 * IOAPIC_PINS).contains(&i) => {
                let e = self.redir[((i - 0x10) / 2) as usize];
                if i % 2 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_reg(&mut self, index: u32, value: u32, out: &mut impl FnMut(Message)) {
        match index {
            0 => self.id = (value >> 24) & 0xf,
            i if (0x10..0x10 + 2 * IOAPIC_PINS).contains(&i) => {
                let pin = ((i - 0x10) / 2) as usize;
                let e = self.redir[pin];
                self.redir[pin] = if i % 2 == 0 {
                    // Delivery status and remote IRR are read-only.
                    e & (0xffff_ffff_0000_0000 | REMOTE_IRR | 1 << 12)
                        | u64::from(value) & !(REMOTE_IRR | 1 << 12)
                } else {
                    e & 0xffff_ffff | u64::from(value) << 32
                };
                if self.redir[pin] & LEVEL_TRIGGERED == 0 {
                    self.redir[pin] &= !REMOTE_IRR;
                }
                self.service_level(pin, out);
            }
            _ => {}
        }
    }
}
