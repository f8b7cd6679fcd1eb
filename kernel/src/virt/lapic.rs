//! The in-kernel local APIC of a vCPU (SDM Vol. 3A chapter 11): xAPIC registers by MMIO and
//! x2APIC registers by MSR (§11.12), the interrupt request, in-service and trigger-mode
//! registers with TPR/PPR priority (§11.8), EOI, the timer in one-shot, periodic and
//! TSC-deadline modes (§11.5.4) and the ICR, whose IPIs the VM routes to its vCPUs.
//!
//! This is pure state: the caller passes the time (a TSC value) and routes what comes out.
//! The timer's input clock is [`abi::vm::APIC_BUS_HZ`], divided as the divide register says.

use abi::vm::{APIC_BUS_HZ, LAPIC_BASE};

/// IA32_APIC_BASE.BSP: this is the bootstrap processor (§11.4.4).
pub const BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE.EXTD: x2APIC mode.
pub const BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE.EN: the LAPIC is enabled.
pub const BASE_ENABLE: u64 = 1 << 11;

/// Register offsets in the xAPIC page (Table 11-1); the x2APIC MSR is 0x800 + offset / 16.
mod reg {
    pub const ID: u32 = 0x20;
    pub const VERSION: u32 = 0x30;
    pub const TPR: u32 = 0x80;
    pub const APR: u32 = 0x90;
    pub const PPR: u32 = 0xa0;
    pub const EOI: u32 = 0xb0;
    pub const RRD: u32 = 0xc0;
    pub const LDR: u32 = 0xd0;
    pub const DFR: u32 = 0xe0;
    pub const SVR: u32 = 0xf0;
    pub const ISR: u32 = 0x100;
    pub const TMR: u32 = 0x180;
    pub const IRR: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const LVT_CMCI: u32 = 0x2f0;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3e0;
    pub const SELF_IPI: u32 = 0x3f0;
}

/// Version register: version 0x14, six LVT entries (max LVT index 5).
const VERSION: u32 = 0x0005_0014;
const LVT_MASKED: u32 = 1 << 16;
const SVR_ENABLE: u32 = 1 << 8;

/// How the ICR addresses an IPI (§11.6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The sender only.
    SelfOnly,
    /// Every APIC, the sender included.
    All,
    /// Every APIC but the sender.
    AllButSelf,
    /// A physical APIC ID (0xff, or 0xffff_ffff in x2APIC mode, is a broadcast).
    Physical(u32),
    /// A logical destination (flat model: a bitmask; x2APIC: cluster and mask).
    Logical(u32),
}

/// What an IPI delivers (§11.6.1, delivery mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A fixed (or lowest-priority) interrupt with this vector.
    Fixed(u8),
    /// An NMI.
    Nmi,
    /// INIT.
    Init,
    /// Start-up, with the vector (the page number of the entry point).
    Startup(u8),
}

/// An IPI from an ICR write, for the VM to route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    /// What it delivers.
    pub delivery: Delivery,
    /// To whom.
    pub destination: Destination,
    /// Level-triggered (only meaningful for fixed interrupts).
    pub level: bool,
}

/// Why an x2APIC MSR access must fault (#GP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAccess;

/// One vCPU's LAPIC.
pub struct Lapic {
    id: u32,
    base: u64,
    tpr: u32,
    svr: u32,
    ldr: u32,
    dfr: u32,
    esr: u32,
    irr: [u32; 8],
    isr: [u32; 8],
    tmr: [u32; 8],
    /// CMCI, timer, thermal, performance, LINT0, LINT1, error (0x2f0, 0x320..0x370).
    lvt: [u32; 7],
    icr: u64,
    timer_initial: u32,
    timer_divide: u32,
    /// TSC at the start of the current count (one-shot and periodic modes).
    timer_start: u64,
    /// TSC at which the timer fires next, if armed.
    timer_deadline: Option<u64>,
    /// IA32_TSC_DEADLINE.
    tsc_deadline: u64,
    tsc_hz: u64,
}

fn lvt_index(offset: u32) -> Option<usize> {
    match offset {
        reg::LVT_CMCI => Some(0),
        reg::LVT_TIMER..=reg::LVT_ERROR if offset.is_multiple_of(16) => {
            Some(1 + ((offset - reg::LVT_TIMER) / 16) as usize)
        }
        _ => None,
    }
}

fn highest(bits: &[u32; 8]) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| bits[i] != 0)
        .map(|i| (i * 32 + 31 - bits[i].leading_zeros() as usize) as u8)
}

fn set_bit(bits: &mut [u32; 8], v: u8, on: bool) {
    let (w, b) = (usize::from(v) / 32, u32::from(v) % 32);
    if on {
        bits[w] |= 1 << b;
    } else {
        bits[w] &= !(1 << b);
    }
}

fn test_bit(bits: &[u32; 8], v: u8) -> bool {
    bits[usize::from(v) / 32] & (1 << (u32::from(v) % 32)) != 0
}

impl Lapic {
    /// The LAPIC of vCPU `id` after reset (§11.4.7.1); vCPU 0 is the bootstrap processor.
    pub fn new(id: u32, tsc_hz: u64) -> Lapic {
        Lapic {
            id,
            base: LAPIC_BASE | BASE_ENABLE | if id == 0 { BASE_BSP } else { 0 },
            tpr: 0,
            svr: 0xff,
            ldr: 0,
            dfr: u32::MAX,
            esr: 0,
            irr: [0; 8],
            isr: [0; 8],
            tmr: [0; 8],
            lvt: [LVT_MASKED; 7],
            icr: 0,
            timer_initial: 0,
            timer_divide: 0,
            timer_start: 0,
            timer_deadline: None,
            tsc_deadline: 0,
            tsc_hz: tsc_hz.max(1),
        }
    }

    /// Its APIC ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// IA32_APIC_BASE.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Guest-physical address of the xAPIC page, when the xAPIC is enabled in xAPIC mode.
    pub fn mmio_base(&self) -> Option<u64> {
        (self.base & (BASE_ENABLE | BASE_EXTD) == BASE_ENABLE).then_some(self.base & !0xfff)
    }

    /// Whether x2APIC mode is on.
    pub fn x2apic(&self) -> bool {
        self.base & (BASE_ENABLE | BASE_EXTD) == BASE_ENABLE | BASE_EXTD
    }

    /// WRMSR IA32_APIC_BASE (§11.4.4, §11.12.5: the x2APIC mode transitions allowed).
    pub fn set_base(&mut self, value: u64) -> Result<(), BadAccess> {
        let reserved = !(0x000f_ffff_ffff_f000 | BASE_BSP | BASE_EXTD | BASE_ENABLE);
        let (old_mode, new_mode) = (
            self.base & (BASE_EXTD | BASE_ENABLE),
            value & (BASE_EXTD | BASE_ENABLE),
        );
        let invalid = value & reserved != 0
            || new_mode == BASE_EXTD
            || old_mode == BASE_EXTD | BASE_ENABLE && new_mode == BASE_ENABLE
            || old_mode == 0 && new_mode == BASE_EXTD | BASE_ENABLE;
        if invalid {
            return Err(BadAccess);
        }
        self.base = value & !BASE_BSP | self.base & BASE_BSP;
        Ok(())
    }

    /// The task-priority register.
    pub fn tpr(&self) -> u8 {
        self.tpr as u8
    }

    /// Sets the TPR (MOV to CR8 writes bits 7:4).
    pub fn set_tpr(&mut self, tpr: u8) {
        self.tpr = u32::from(tpr);
    }

    fn ppr(&self) -> u32 {
        let isrv = u32::from(highest(&self.isr).unwrap_or(0));
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xf0
        }
    }

    /// Accepts an interrupt: sets its IRR bit (and TMR for level-triggered ones). Vectors
    /// below 16 are illegal and only set the error status (§11.5.3).
    pub fn accept_irq(&mut self, vector: u8, level: bool) {
        if vector < 16 {
            self.esr |= 1 << 6;
            return;
        }
        set_bit(&mut self.irr, vector, true);
        set_bit(&mut self.tmr, vector, level);
    }

    /// The interrupt the LAPIC would deliver now: the highest requested vector whose priority
    /// class is above the PPR's (§11.8.3.1).
    pub fn pending(&self) -> Option<u8> {
        let v = highest(&self.irr)?;
        (u32::from(v) >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// The interrupt was delivered to the guest: IRR to ISR.
    pub fn delivered(&mut self, vector: u8) {
        set_bit(&mut self.irr, vector, false);
        set_bit(&mut self.isr, vector, true);
    }

    /// EOI: ends the highest in-service interrupt; returns its vector if it was
    /// level-triggered (the IOAPIC then clears its remote IRR, §11.8.5).
    pub fn eoi(&mut self) -> Option<u8> {
        let v = highest(&self.isr)?;
        set_bit(&mut self.isr, v, false);
        test_bit(&self.tmr, v).then_some(v)
    }

    fn timer_mode(&self) -> u32 {
        (self.lvt[1] >> 17) & 3
    }

    fn divisor(&self) -> u64 {
        // Divide configuration: bits 3, 1:0 (Figure 11-10); 0b111 is divide by 1.
        let code = (self.timer_divide & 3) | (self.timer_divide >> 1) & 4;
        if code == 7 { 1 } else { 2 << code }
    }

    /// TSC ticks per timer count.
    fn tsc_per_count(&self) -> u128 {
        u128::from(self.tsc_hz) * u128::from(self.divisor())
    }

    fn arm(&mut self, now: u64) {
        self.timer_start = now;
        self.timer_deadline = match self.timer_mode() {
            0 | 1 if self.timer_initial != 0 => {
                let ticks =
                    u128::from(self.timer_initial) * self.tsc_per_count() / u128::from(APIC_BUS_HZ);
                Some(now.saturating_add(ticks.max(1).min(u128::from(u64::MAX)) as u64))
            }
            2 if self.tsc_deadline != 0 => Some(self.tsc_deadline),
            _ => None,
        };
    }

    /// When the timer fires next (a TSC value).
    pub fn deadline(&self) -> Option<u64> {
        self.timer_deadline
    }

    /// Fires the timer if its deadline has passed at TSC `now`; periodic mode re-arms from
    /// now (missed periods are dropped, not piled up).
    pub fn poll_timer(&mut self, now: u64) {
        let Some(d) = self.timer_deadline else { return };
        if now < d {
            return;
        }
        let lvt = self.lvt[1];
        if lvt & LVT_MASKED == 0 {
            self.accept_irq(lvt as u8, false);
        }
        match self.timer_mode() {
            1 => self.arm(now),
            2 => {
                self.tsc_deadline = 0;
                self.timer_deadline = None;
            }
            _ => self.timer_deadline = None,
        }
    }

    fn current_count(&self, now: u64) -> u32 {
        if self.timer_mode() == 2 || self.timer_initial == 0 {
            return 0;
        }
        let counts = u128::from(now.saturating_sub(self.timer_start)) * u128::from(APIC_BUS_HZ)
            / self.tsc_per_count();
        let initial = u128::from(self.timer_initial);
        match self.timer_mode() {
            1 => (initial - counts % initial) as u32,
            _ => initial.saturating_sub(counts) as u32,
        }
    }

    /// IA32_TSC_DEADLINE.
    pub fn tsc_deadline(&self) -> u64 {
        if self.timer_mode() == 2 {
            self.tsc_deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE: ignored unless the timer is in TSC-deadline mode (§11.5.4.1).
    pub fn set_tsc_deadline(&mut self, value: u64, now: u64) {
        if self.timer_mode() == 2 {
            self.tsc_deadline = value;
            self.arm(now);
        }
    }

    /// Reads the register at `offset` (xAPIC layout).
    pub fn read(&self, offset: u32, now: u64) -> u32 {
        match offset {
            reg::ID => {
                if self.x2apic() {
                    self.id
                } else {
                    self.id << 24
                }
            }
            reg::VERSION => VERSION,
            reg::TPR => self.tpr,
            reg::APR | reg::RRD | reg::EOI => 0,
            reg::PPR => self.ppr(),
            reg::LDR => {
                if self.x2apic() {
                    (self.id >> 4) << 16 | 1 << (self.id & 0xf)
                } else {
                    self.ldr
                }
            }
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            o @ reg::ISR..=0x170 => self.isr[((o - reg::ISR) / 16) as usize],
            o @ reg::TMR..=0x1f0 => self.tmr[((o - reg::TMR) / 16) as usize],
            o @ reg::IRR..=0x270 => self.irr[((o - reg::IRR) / 16) as usize],
            reg::ESR => self.esr,
            reg::ICR_LOW => self.icr as u32,
            reg::ICR_HIGH => (self.icr >> 32) as u32,
            reg::TIMER_INITIAL => self.timer_initial,
            reg::TIMER_CURRENT => self.current_count(now),
            reg::TIMER_DIVIDE => self.timer_divide,
            o => lvt_index(o).map_or(0, |i| self.lvt[i]),
        }
    }

    /// Writes the register at `offset` (xAPIC layout). Returns an IPI the ICR write sends,
    /// and the vector of a level-triggered interrupt an EOI ended.
    pub fn write(&mut self, offset: u32, value: u32, now: u64) -> (Option<Ipi>, Option<u8>) {
        match offset {
            reg::TPR => self.tpr = value & 0xff,
            reg::EOI => return (None, self.eoi()),
            reg::LDR if !self.x2apic() => self.ldr = value & 0xff00_0000,
            reg::DFR if !self.x2apic() => self.dfr = value | 0x0fff_ffff,
            reg::SVR => {
                self.svr = value & 0x1ff;
                if value & SVR_ENABLE == 0 {
                    for l in &mut self.lvt {
                        *l |= LVT_MASKED;
                    }
                }
            }
            reg::ESR => self.esr = 0,
            reg::ICR_LOW => {
                self.icr = self.icr & !0xffff_ffff | u64::from(value & !(1 << 12));
                return (Some(self.ipi()), None);
            }
            reg::ICR_HIGH if !self.x2apic() => {
                self.icr = self.icr & 0xffff_ffff | u64::from(value) << 32;
            }
            reg::TIMER_INITIAL => {
                self.timer_initial = value;
                if self.timer_mode() != 2 {
                    self.arm(now);
                }
            }
            reg::TIMER_DIVIDE => self.timer_divide = value & 0xb,
            reg::SELF_IPI if self.x2apic() => self.accept_irq(value as u8, false),
            o => {
                if let Some(i) = lvt_index(o) {
                    let old_mode = self.timer_mode();
                    let mut v = value & 0x0007_a7ff;
                    if self.svr & SVR_ENABLE == 0 {
                        v |= LVT_MASKED;
                    }
                    self.lvt[i] = v;
                    if i == 1 && self.timer_mode() != old_mode {
                        // Changing modes stops the timer (§11.5.4.1).
                        self.timer_deadline = None;
                        self.tsc_deadline = 0;
                    }
                }
            }
        }
        (None, None)
    }

    /// The IPI the ICR describes (§11.6.1, Figure 11-12; §11.12.9 for x2APIC).
    fn ipi(&self) -> Ipi {
        let low = self.icr as u32;
        let dest = if self.x2apic() {
            (self.icr >> 32) as u32
        } else {
            (self.icr >> 56) as u32
        };
        let delivery = match (low >> 8) & 7 {
            4 => Delivery::Nmi,
            5 => Delivery::Init,
            6 => Delivery::Startup(low as u8),
            _ => Delivery::Fixed(low as u8),
        };
        let destination = match (low >> 18) & 3 {
            1 => Destination::SelfOnly,
            2 => Destination::All,
            3 => Destination::AllButSelf,
            _ if low & (1 << 11) != 0 => Destination::Logical(dest),
            _ => Destination::Physical(dest),
        };
        Ipi {
            delivery,
            destination,
            level: low & (1 << 15) != 0,
        }
    }

    /// Whether an IPI to `d` reaches this LAPIC (the sender is `sender`).
    pub fn matches(&self, d: Destination, sender: u32) -> bool {
        match d {
            Destination::SelfOnly => self.id == sender,
            Destination::All => true,
            Destination::AllButSelf => self.id != sender,
            Destination::Physical(id) => {
                id == self.id || (!self.x2apic() && id == 0xff) || id == u32::MAX
            }
            Destination::Logical(mask) => {
                if self.x2apic() {
                    let ldr = self.read(reg::LDR, 0);
                    mask >> 16 == ldr >> 16 && mask & ldr & 0xffff != 0
                } else if self.dfr >> 28 == 0xf {
                    (mask & 0xff) & (self.ldr >> 24) != 0
                } else {
                    // Cluster model: high nibble cluster, low nibble members.
                    let (c, m) = (self.ldr >> 28, (self.ldr >> 24) & 0xf);
                    mask >> 4 & 0xf == c && mask & 0xf & m != 0
                }
            }
        }
    }

    /// RDMSR of an x2APIC register (§11.12.1.2, Table 11-6).
    pub fn read_msr(&self, msr: u32, now: u64) -> Result<u64, BadAccess> {
        if !self.x2apic() {
            return Err(BadAccess);
        }
        let offset = (msr - 0x800) << 4;
        match offset {
            reg::ICR_LOW => Ok(self.icr),
            reg::EOI | reg::SELF_IPI | reg::ICR_HIGH | reg::DFR | reg::APR | reg::RRD => {
                Err(BadAccess)
            }
            o if o <= reg::TIMER_DIVIDE && self.known(o) => Ok(u64::from(self.read(o, now))),
            _ => Err(BadAccess),
        }
    }

    /// WRMSR of an x2APIC register.
    pub fn write_msr(
        &mut self,
        msr: u32,
        value: u64,
        now: u64,
    ) -> Result<(Option<Ipi>, Option<u8>), BadAccess> {
        if !self.x2apic() {
            return Err(BadAccess);
        }
        let offset = (msr - 0x800) << 4;
        match offset {
            reg::ICR_LOW => {
                self.icr = value & !(1 << 12);
                Ok((Some(self.ipi()), None))
            }
            reg::EOI if value != 0 => Err(BadAccess),
            reg::TPR
            | reg::EOI
            | reg::SVR
            | reg::ESR
            | reg::TIMER_INITIAL
            | reg::TIMER_DIVIDE
            | reg::SELF_IPI
                if value >> 32 == 0 =>
            {
                Ok(self.write(offset, value as u32, now))
            }
            o if lvt_index(o).is_some() && value >> 32 == 0 => Ok(self.write(o, value as u32, now)),
            _ => Err(BadAccess),
        }
    }

    fn known(&self, o: u32) -> bool {
        matches!(
            o,
            reg::ID
                | reg::VERSION
                | reg::TPR
                | reg::PPR
                | reg::LDR
                | reg::SVR
                | reg::ESR
                | reg::TIMER_INITIAL
                | reg::TIMER_CURRENT
                | reg::TIMER_DIVIDE
        ) || (reg::ISR..=reg::IRR + 0x70).contains(&o) && o.is_multiple_of(16)
            || lvt_index(o).is_some()
    }

    /// INIT (§11.4.7.3): the LAPIC returns to its state after reset, keeping its ID and base.
    pub fn init(&mut self) {
        let (id, base, tsc_hz) = (self.id, self.base, self.tsc_hz);
        *self = Lapic::new(id, tsc_hz);
        self.base = base;
    }
}
