//! mv: renames a file, or moves files into a directory. Within one directory it is a rename
//! (wstat of the name); across directories the file is copied and the original removed.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::borrow::Cow;
use cmd::args;
use cmd::files::{basename, copy_tree, dirname, remove_tree, targets};
use cmd::output::{complain, finish};
use ninep::Dir;
use rt::fs;

rt::entry!(main);

const USAGE: &str = "mv src dst | mv src... dir";

fn move_one(src: &str, target: &str) -> rt::Result<()> {
    fs::stat(src)?;
    if src == target {
        return Ok(());
    }
    if dirname(src) == dirname(target) {
        // Replace an existing file, as POSIX mv does.
        if fs::stat(target).is_ok_and(|d| d.mode & fs::DMDIR == 0) {
            fs::remove(target)?;
        }
        let mut d = Dir::dont_touch();
        d.name = Cow::Owned(alloc::string::String::from(basename(target)));
        return fs::wstat(src, &d);
    }
    copy_tree(src, target)?;
    remove_tree(src)
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "", "");
    if a.rest.len() < 2 {
        args::usage(USAGE);
    }
    let pairs = match targets(&a.rest) {
        Ok(p) => p,
        Err(e) => return finish(Some(complain(e))),
    };
    let mut failure = None;
    for (src, target) in pairs {
        if let Err(e) = move_one(src, &target) {
            failure = Some(complain(e.0));
        }
    }
    finish(failure)
}
