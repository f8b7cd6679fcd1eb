//! Calendar dates from seconds since the Unix epoch (UTC), for `date` and `ls -l`: the
//! proleptic Gregorian calendar by whole-day arithmetic over 400-year eras.

use alloc::format;
use alloc::string::String;

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// The year.
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Breaks `secs` since 1970-01-01 00:00:00 UTC down.
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 0000-03-01, so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// `Thu Jan  1 00:00:00 UTC 1970`.
pub fn long(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} UTC {}",
        DAYS[c.weekday as usize],
        MONTHS[(c.month - 1) as usize],
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

/// `Jan  1 00:00 1970` (the short form `ls -l` prints).
pub fn short(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{} {:2} {:02}:{:02} {}",
        MONTHS[(c.month - 1) as usize],
        c.day,
        c.hour,
        c.minute,
        c.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(long(0), "Thu Jan  1 00:00:00 UTC 1970");
        assert_eq!(long(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(long(1_700_000_000), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(long(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(short(4_102_444_800), "Jan  1 00:00 2100");
        let c = civil(1_709_208_000); // 2024-02-29 12:00:00
        assert_eq!((c.year, c.month, c.day, c.hour), (2024, 2, 29, 12));
    }
}
