//! rm: removes files; `-r` removes directories with everything in them, `-f` says nothing
//! about files that do not exist.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::files::remove_tree;
use cmd::output::{complain, finish};
use rt::fs;

rt::entry!(main);

const USAGE: &str = "rm [-rf] file...";

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "rf", "");
    if a.rest.is_empty() && !a.has('f') {
        args::usage(USAGE);
    }
    let mut failure = None;
    for path in &a.rest {
        let r = if a.has('r') {
            remove_tree(path)
        } else {
            fs::remove(path)
        };
        match r {
            Err(e) if a.has('f') && e.msg().ends_with(abi::errors::ENOTEXIST) => {}
            Err(e) => failure = Some(complain(e.0)),
            Ok(()) => {}
        }
    }
    finish(failure)
}
