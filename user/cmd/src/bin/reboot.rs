//! reboot: resets the machine (writes `reboot` to `/dev/reboot`).

#![no_std]
#![no_main]

use rt::{fs, io};

rt::entry!(main);

fn main() -> rt::Result<()> {
    if rt::env::args().len() > 1 {
        cmd::args::usage("reboot");
    }
    let fd = fs::open("/dev/reboot", fs::OWRITE)?;
    io::write(fd, b"reboot").map_err(|e| e.context("/dev/reboot"))?;
    Ok(())
}
