//! unmount: undoes a bind or mount: `unmount new old` removes `new` from `old`, `unmount old`
//! removes everything mounted there.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::fs;

rt::entry!(main);

const USAGE: &str = "unmount [new] old";

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "", "");
    let r = match a.rest.as_slice() {
        [old] => fs::unmount(None, old),
        [new, old] => fs::unmount(Some(new), old),
        _ => args::usage(USAGE),
    };
    finish(r.err().map(|e| complain(e.0)))
}
