//! sleep: waits a number of seconds (fractions allowed: `sleep 0.5`).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use rt::process;

rt::entry!(main);

const USAGE: &str = "sleep seconds";

/// Milliseconds in a decimal number of seconds.
fn millis(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut f = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        f += u64::from(b - b'0') * [100, 10, 1][i];
    }
    w.checked_mul(1000)?.checked_add(f)
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "", "");
    let [secs] = a.rest.as_slice() else {
        args::usage(USAGE)
    };
    let Some(ms) = millis(secs) else {
        rt::eprintln!("sleep: {secs}: not a number of seconds");
        args::usage(USAGE)
    };
    process::sleep(ms)
}
