//! test: evaluates a condition (the language of `shell::cond`, the same as the shell's
//! builtin `test` and `[`): exits successfully if it holds, with `false` if not, and with a
//! message on a malformed expression.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::output::{complain, finish};
use rt::fs;
use shell::cond::{self, FileInfo, Files};

rt::entry!(main);

struct RtFiles;

impl Files for RtFiles {
    fn stat(&mut self, path: &str) -> Option<FileInfo> {
        fs::stat(path).ok().map(|d| FileInfo {
            dir: d.mode & fs::DMDIR != 0,
            size: d.length,
            perm: d.mode & 0o777,
            mtime: u64::from(d.mtime),
        })
    }
}

fn main() -> rt::Result<()> {
    match cond::eval(&rt::env::args()[1..], &mut RtFiles) {
        Ok(true) => Ok(()),
        Ok(false) => finish(Some(alloc::string::String::from("false"))),
        Err(e) => {
            complain(e);
            rt::process::exits("usage")
        }
    }
}
