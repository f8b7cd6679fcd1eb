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
    read_rtc();
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

/// Seconds since the Unix epoch at the moment the clocks were measured (from the CMOS RTC).
static EPOCH_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Reads the CMOS real-time clock (MC146818: registers 0-9, status A bit 7 = update in
/// progress, status B bit 2 = binary, bit 1 = 24-hour) once at boot.
pub fn read_rtc() {
    use x86_64::instructions::port::Port;
    let read = |reg: u8| -> u8 {
        // SAFETY: Ports 0x70/0x71 are the CMOS index and data registers; selecting a register
        // and reading it has no other effect (NMI stays enabled: bit 7 of the index is 0).
        unsafe {
            Port::<u8>::new(0x70).write(reg);
            Port::<u8>::new(0x71).read()
        }
    };
    let mut spins = 0;
    while read(0x0a) & 0x80 != 0 && spins < 100_000 {
        spins += 1;
    }
    let status_b = read(0x0b);
    let bcd = |v: u8| {
        if status_b & 4 != 0 {
            v
        } else {
            (v & 0x0f) + (v >> 4) * 10
        }
    };
    let sec = u64::from(bcd(read(0x00)));
    let min = u64::from(bcd(read(0x02)));
    let raw_hour = read(0x04);
    let mut hour = u64::from(bcd(raw_hour & 0x7f));
    if status_b & 2 == 0 && raw_hour & 0x80 != 0 {
        hour = (hour % 12) + 12;
    }
    let day = i64::from(bcd(read(0x07)));
    let month = i64::from(bcd(read(0x08)));
    let year = 2000 + i64::from(bcd(read(0x09)));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = (days.max(0) as u64) * 86_400 + hour * 3600 + min * 60 + sec;
    EPOCH_AT_BOOT.store(secs, Ordering::Relaxed);
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos() -> u64 {
    EPOCH_AT_BOOT.load(Ordering::Relaxed) * 1_000_000_000 + uptime_ns()
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    unix_nanos() / 1_000_000_000
}
