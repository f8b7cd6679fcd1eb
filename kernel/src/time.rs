//! Time: the TSC, measured against the PIT at boot, gives uptime in nanoseconds; the LAPIC
//! timer, measured the same way, ticks `HZ` times a second.

use crate::arch::x86_64::{apic, irq, pit, rdtsc};
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

/// Timer interrupts per second.
pub const HZ: u64 = 100;
/// Length of the calibration window.
const CALIBRATION_MS: u64 = 50;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Measures the TSC and LAPIC timer and starts the periodic tick.
pub fn init() {
    let mut tsc_start = 0;
    let (tsc_end, lapic_ticks) = pit::measure(
        CALIBRATION_MS,
        || {
            apic::timer_start_free_running();
            tsc_start = rdtsc();
        },
        || (rdtsc(), apic::timer_elapsed()),
    );
    let tsc_hz = (tsc_end - tsc_start) * 1000 / CALIBRATION_MS;
    let lapic_hz = u64::from(lapic_ticks) * 1000 / CALIBRATION_MS;
    TSC_HZ.store(tsc_hz.max(1), Ordering::Relaxed);
    TSC_AT_BOOT.store(tsc_start, Ordering::Relaxed);
    irq::register(irq::TIMER_VECTOR, tick);
    apic::timer_start_periodic(lapic_hz, HZ);
    log::debug!("TSC {tsc_hz} Hz, LAPIC timer {lapic_hz} Hz");
}

fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer ticks since the tick started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since the clocks were measured at boot (0 before that).
pub fn uptime_ns() -> u64 {
    let hz = tsc_hz();
    if hz <= 1 {
        return 0;
    }
    let elapsed = rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(elapsed) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Busy-waits `ns` nanoseconds on the TSC.
pub fn spin_ns(ns: u64) {
    let end = uptime_ns() + ns;
    while uptime_ns() < end {
        core::hint::spin_loop();
    }
}

/// A one-line description of the clocks for the boot banner.
pub fn describe() -> String {
    let tsc = tsc_hz();
    alloc::format!(
        "TSC {}.{:03} GHz, {} timer at {HZ} Hz",
        tsc / 1_000_000_000,
        tsc / 1_000_000 % 1000,
        if apic::is_x2apic() { "x2APIC" } else { "xAPIC" },
    )
}
