//! false: fails.

#![no_std]
#![no_main]

rt::entry!(main);

fn main() -> rt::Result<()> {
    rt::process::exits("false")
}
