//! cpu: prints the CPU model and its virtualization features (`#arch/cpu`).

#![no_std]
#![no_main]

use rt::{fs, io};

rt::entry!(main);

fn main() -> rt::Result<()> {
    if rt::env::args().len() > 1 {
        cmd::args::usage("cpu");
    }
    let text = fs::read_file("#arch/cpu")?;
    io::write(io::STDOUT, &text).map_err(|e| e.context("write"))?;
    Ok(())
}
