//! poweroff: switches the machine off (writes `poweroff` to `/dev/reboot`).

#![no_std]
#![no_main]

use rt::{fs, io};

rt::entry!(main);

fn main() -> rt::Result<()> {
    if rt::env::args().len() > 1 {
        cmd::args::usage("poweroff");
    }
    let fd = fs::open("/dev/reboot", fs::OWRITE)?;
    io::write(fd, b"poweroff").map_err(|e| e.context("/dev/reboot"))?;
    Ok(())
}
