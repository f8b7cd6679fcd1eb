//! The local APIC of each CPU, in x2APIC mode (MSRs) when the CPU has it and xAPIC mode (MMIO)
//! otherwise (SDM Vol. 3A chapter 11), and its timer, which drives the scheduler tick.

use super::irq::{SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::mm::PhysAddr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;

/// Register offsets in the xAPIC page; the x2APIC MSR is 0x800 + offset / 16 (SDM §11.12.1.2).
#[derive(Clone, Copy)]
#[repr(u32)]
enum Reg {
    Id = 0x20,
    Tpr = 0x80,
    Eoi = 0xb0,
    Svr = 0xf0,
    LvtTimer = 0x320,
    LvtLint0 = 0x350,
    LvtLint1 = 0x360,
    LvtError = 0x370,
    TimerInitial = 0x380,
    TimerCurrent = 0x390,
    TimerDivide = 0x3e0,
}

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 16" (SDM Figure 11-10).
const DIVIDE_BY_16: u32 = 0b0011;

static X2APIC: AtomicBool = AtomicBool::new(false);
/// Virtual address of the xAPIC register page (direct map), when not in x2APIC mode.
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0);

fn read(reg: Reg) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is on, so the x2APIC MSR range is valid (SDM §11.12.1.2).
        unsafe { Msr::new(0x800 + (reg as u32 >> 4)).read() as u32 }
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + reg as u64;
        // SAFETY: The xAPIC page is mapped by the direct map and the offset is a valid,
        // 16-byte-aligned register (SDM Table 11-1).
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

fn write(reg: Reg, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: As in `read`; the registers written here are writable in x2APIC mode.
        unsafe { Msr::new(0x800 + (reg as u32 >> 4)).write(u64::from(value)) }
    } else {
        let addr = XAPIC_BASE.load(Ordering::Relaxed) + reg as u64;
        // SAFETY: As in `read`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }
}

/// Enables this CPU's LAPIC (x2APIC mode if `x2apic`), masks its local interrupts and sets the
/// spurious vector.
pub fn init(x2apic: bool) {
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; setting the enable bit (and the x2APIC
    // bit when CPUID reports x2APIC) is the documented way to turn the LAPIC on (SDM §11.4.4).
    let base = unsafe { base_msr.read() };
    let mut new = base | APIC_BASE_ENABLE;
    if x2apic {
        new |= APIC_BASE_X2APIC;
    }
    // SAFETY: See above.
    unsafe { base_msr.write(new) };
    X2APIC.store(x2apic, Ordering::Relaxed);
    XAPIC_BASE.store(
        PhysAddr(base & 0xf_ffff_f000).to_virt() as u64,
        Ordering::Relaxed,
    );

    write(Reg::Tpr, 0);
    write(Reg::LvtLint0, LVT_MASKED);
    write(Reg::LvtLint1, LVT_MASKED);
    write(Reg::LvtError, LVT_MASKED);
    write(Reg::LvtTimer, LVT_MASKED);
    write(Reg::Svr, 0x100 | u32::from(SPURIOUS_VECTOR));
}

/// This CPU's APIC ID.
pub fn id() -> u32 {
    let raw = read(Reg::Id);
    if X2APIC.load(Ordering::Relaxed) {
        raw
    } else {
        raw >> 24
    }
}

/// Whether the LAPIC runs in x2APIC mode.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// Signals end of interrupt.
pub fn eoi() {
    write(Reg::Eoi, 0);
}

/// Starts the timer counting down from its maximum, for calibration.
pub fn timer_start_free_running() {
    write(Reg::TimerDivide, DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_MASKED);
    write(Reg::TimerInitial, u32::MAX);
}

/// Ticks elapsed since `timer_start_free_running`.
pub fn timer_elapsed() -> u32 {
    u32::MAX - read(Reg::TimerCurrent)
}

/// Makes the timer interrupt `hz` times a second, given its measured rate.
pub fn timer_start_periodic(timer_hz: u64, hz: u64) {
    write(Reg::TimerDivide, DIVIDE_BY_16);
    write(Reg::LvtTimer, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(Reg::TimerInitial, (timer_hz / hz).max(1) as u32);
}
