//! sync: makes sure written data has reached the file servers. Our file systems have nothing
//! to flush: tmpfs is memory, and a write to a 9P mount returns only after the server has
//! answered it (the server does its own syncing, as the fsvm guest does on `SHUTDOWN`). So
//! sync checks that the files named exist and succeeds.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::fs;

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("sync [file...]", "", "");
    let mut failure = None;
    for f in &a.rest {
        if let Err(e) = fs::stat(f) {
            failure = Some(complain(e.0));
        }
    }
    finish(failure)
}
