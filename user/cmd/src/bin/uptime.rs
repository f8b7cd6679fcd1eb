//! uptime: how long the machine has been up.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("uptime", "", "");
    if !a.rest.is_empty() {
        args::usage("uptime");
    }
    let secs = rt::sys::nsec() / 1_000_000_000;
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match days {
        0 => rt::println!("up {h}:{m:02}:{s:02}"),
        1 => rt::println!("up 1 day, {h}:{m:02}:{s:02}"),
        d => rt::println!("up {d} days, {h}:{m:02}:{s:02}"),
    }
    Ok(())
}
