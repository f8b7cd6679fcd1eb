//! bind: makes `new` visible at `old` in this namespace: replacing it, or in a union before
//! (`-b`) or after (`-a`) what is there; `-c` lets files be created in it.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::fs;

rt::entry!(main);

const USAGE: &str = "bind [-a | -b] [-c] new old";

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "abc", "");
    let [new, old] = a.rest.as_slice() else {
        args::usage(USAGE)
    };
    if a.has('a') && a.has('b') {
        args::usage(USAGE);
    }
    let mut flags = if a.has('a') {
        fs::MAFTER
    } else if a.has('b') {
        fs::MBEFORE
    } else {
        fs::MREPL
    };
    if a.has('c') {
        flags |= fs::MCREATE;
    }
    finish(fs::bind(new, old, flags).err().map(|e| complain(e.0)))
}
