//! The legacy PC ports a Linux guest without ACPI or a device tree still touches, each reduced to
//! what that guest needs (everything else is unclaimed, reads as all ones and ignores writes,
//! which Linux takes as "no such device"):
//!
//! - COM1 (8250 registers at 0x3f8): bytes written to the transmit register are kept (the last
//!   [`SERIAL_KEEP`] bytes, shown when a guest fails before its virtio console is up); the line
//!   status says the transmitter is always empty, so output never waits.
//! - The CMOS real-time clock (index 0x70, data 0x71): the host's wall clock in BCD, 24-hour
//!   mode, never in an update cycle. All ones here made Linux 6.1's `mc146818_get_time` wait
//!   forever for the update-in-progress bit to clear, polling twice a millisecond.
//! - PIT channel 2 (0x42): reads as 0. Linux's fast TSC calibration waits for its counter's high
//!   byte to leave 0xff; all ones made it spin 50,000 times (100,000 exits) before giving up.
//!   With 0 it gives up at once and takes the frequency from `tsc_early_khz=` instead.

use alloc::collections::VecDeque;
use alloc::string::String;

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// Bytes of COM1 output kept.
pub const SERIAL_KEEP: usize = 16 * 1024;
const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;
const PIT_CHANNEL2: u16 = 0x42;
/// COM1's line status: transmitter holding and shift registers empty.
const LSR_EMPTY: u32 = 0x60;

/// The legacy ports of one VM.
#[derive(Default)]
pub struct LegacyPorts {
    serial: VecDeque<u8>,
    cmos_index: u8,
}

impl LegacyPorts {
    /// Ports with nothing written yet.
    pub fn new() -> LegacyPorts {
        LegacyPorts::default()
    }

    /// A read of `size` bytes from `port`, with the wall clock at `now` (seconds since 1970);
    /// `None` for a port nobody claims (the caller returns all ones).
    pub fn read(&mut self, port: u16, now: i64) -> Option<u32> {
        match port {
            p if p == COM1 + 5 => Some(LSR_EMPTY),
            p if (COM1..COM1 + 8).contains(&p) => Some(0),
            CMOS_DATA => Some(u32::from(cmos_register(self.cmos_index, now))),
            CMOS_INDEX => Some(u32::from(self.cmos_index)),
            PIT_CHANNEL2 => Some(0),
            _ => None,
        }
    }

    /// A write of `bytes` (one element, or a string instruction's data) to `port`.
    pub fn write(&mut self, port: u16, bytes: &[u8]) {
        match port {
            COM1 => {
                self.serial.extend(bytes);
                let excess = self.serial.len().saturating_sub(SERIAL_KEEP);
                self.serial.drain(..excess);
            }
            // Bit 7 of the index disables NMIs on a PC; there are none to disable here.
            CMOS_INDEX => {
                if let Some(&b) = bytes.last() {
                    self.cmos_index = b & 0x7f;
                }
            }
            _ => {}
        }
    }

    /// COM1 output kept so far.
    pub fn serial_tail(&self) -> String {
        let (a, b) = self.serial.as_slices();
        let mut s = String::from_utf8_lossy(a).into_owned();
        s.push_str(&String::from_utf8_lossy(b));
        s
    }
}

/// CMOS register `index` at wall-clock time `now`.
fn cmos_register(index: u8, now: i64) -> u8 {
    let days = now.div_euclid(86_400);
    let secs = now.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let bcd = |v: i64| {
        let v = v.rem_euclid(100) as u8;
        ((v / 10) << 4) | (v % 10)
    };
    match index {
        0x00 => bcd(secs % 60),
        0x02 => bcd(secs / 60 % 60),
        0x04 => bcd(secs / 3600),
        // Day of the week, 1 = Sunday; 1970-01-01 was a Thursday.
        0x06 => bcd((days + 4).rem_euclid(7) + 1),
        0x07 => bcd(day),
        0x08 => bcd(month),
        0x09 => bcd(year % 100),
        0x32 => bcd(year / 100),
        // Status A: no update in progress, the usual 32.768 kHz divider and 1024 Hz rate.
        0x0a => 0x26,
        // Status B: 24-hour mode, BCD, no interrupts enabled.
        0x0b => 0x02,
        // Status C: no interrupt flags.
        0x0c => 0,
        // Status D: the battery is good.
        0x0d => 0x80,
        _ => 0,
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Howard Hinnant's algorithm: eras of 400 years starting on 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmos(ports: &mut LegacyPorts, index: u8, now: i64) -> u32 {
        ports.write(CMOS_INDEX, &[index | 0x80]);
        ports.read(CMOS_DATA, now).unwrap()
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 2026-11-24.
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }

    #[test]
    fn the_rtc_reads_the_wall_clock_in_bcd() {
        let mut p = LegacyPorts::new();
        // 2026-11-24 22:34:56 UTC, a Tuesday.
        let now = 20_781 * 86_400 + 22 * 3600 + 34 * 60 + 56;
        let read: Vec<u32> = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32]
            .iter()
            .map(|&i| cmos(&mut p, i, now))
            .collect();
        assert_eq!(read, [0x56, 0x34, 0x22, 0x03, 0x24, 0x11, 0x26, 0x20]);
        assert_eq!(cmos(&mut p, 0x0a, now) & 0x80, 0, "update in progress");
        assert_eq!(cmos(&mut p, 0x0b, now), 0x02, "24-hour BCD");
        assert_eq!(cmos(&mut p, 0x0d, now), 0x80, "battery");
        // The index reads back without the NMI bit.
        assert_eq!(p.read(CMOS_INDEX, now), Some(0x0d));
        // Registers the guest has no business reading are 0, not all ones.
        assert_eq!(cmos(&mut p, 0x7f, now), 0);
    }

    #[test]
    fn serial_output_is_kept_and_the_transmitter_is_always_empty() {
        let mut p = LegacyPorts::new();
        p.write(COM1, b"Linux version");
        p.write(COM1, b"!");
        assert_eq!(p.read(COM1 + 5, 0), Some(LSR_EMPTY));
        assert_eq!(p.serial_tail(), "Linux version!");
        let flood = vec![b'x'; SERIAL_KEEP + 10];
        p.write(COM1, &flood);
        p.write(COM1, b"end");
        let tail = p.serial_tail();
        assert_eq!(tail.len(), SERIAL_KEEP);
        assert!(tail.ends_with("xxend"));
    }

    #[test]
    fn pit_channel_2_reads_zero_and_other_ports_are_unclaimed() {
        let mut p = LegacyPorts::new();
        assert_eq!(p.read(PIT_CHANNEL2, 0), Some(0));
        for port in [0x2f8, 0x60, 0x61, 0x80, 0xcf8, 0xffff] {
            assert_eq!(p.read(port, 0), None, "port {port:#x}");
            p.write(port, &[1, 2, 3]);
        }
        assert_eq!(p.serial_tail(), "");
    }
}
