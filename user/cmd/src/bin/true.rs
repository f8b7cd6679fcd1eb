//! true: succeeds.

#![no_std]
#![no_main]

rt::entry!(main);

fn main() -> rt::Result<()> {
    Ok(())
}
