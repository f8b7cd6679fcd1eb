//! pci: prints the PCI functions (`#arch/pci`).

#![no_std]
#![no_main]

use rt::{fs, io};

rt::entry!(main);

fn main() -> rt::Result<()> {
    if rt::env::args().len() > 1 {
        cmd::args::usage("pci");
    }
    let text = fs::read_file("#arch/pci")?;
    io::write(io::STDOUT, &text).map_err(|e| e.context("write"))?;
    Ok(())
}
