//! cp: copies a file to a file, or files into a directory; `-r` copies directories with
//! everything in them.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::files::{copy_file, copy_tree, is_dir, targets};
use cmd::output::{complain, finish};

rt::entry!(main);

const USAGE: &str = "cp [-r] src dst | cp [-r] src... dir";

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "r", "");
    if a.rest.len() < 2 {
        args::usage(USAGE);
    }
    let pairs = match targets(&a.rest) {
        Ok(p) => p,
        Err(e) => return finish(Some(complain(e))),
    };
    let mut failure = None;
    for (src, target) in pairs {
        let r = if a.has('r') {
            copy_tree(src, &target)
        } else if is_dir(src) {
            Err(rt::Error(rt::format!("{src}: is a directory (use -r)")))
        } else {
            copy_file(src, &target)
        };
        if let Err(e) = r {
            failure = Some(complain(e.0));
        }
    }
    finish(failure)
}
