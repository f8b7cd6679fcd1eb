//! dmesg: prints the kernel's log (`/dev/kmesg`).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{Output, complain, finish};
use rt::fs;

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("dmesg", "", "");
    if !a.rest.is_empty() {
        args::usage("dmesg");
    }
    match fs::read_file("/dev/kmesg") {
        Ok(text) => {
            let mut out = Output::stdout();
            out.write(&text);
            out.flush();
            finish(None)
        }
        Err(e) => finish(Some(complain(e.0))),
    }
}
