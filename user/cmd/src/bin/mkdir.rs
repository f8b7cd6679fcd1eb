//! mkdir: makes directories; `-p` makes missing parents too and accepts existing ones.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use cmd::args;
use cmd::files::is_dir;
use cmd::output::{complain, finish};
use rt::{fs, io};

rt::entry!(main);

const USAGE: &str = "mkdir [-p] dir...";

fn make(path: &str) -> rt::Result<()> {
    let fd = fs::create(path, fs::OREAD, fs::DMDIR | 0o775)?;
    let _ = io::close(fd);
    Ok(())
}

fn make_parents(path: &str) -> rt::Result<()> {
    let mut prefix = String::new();
    for (i, comp) in path.split('/').enumerate() {
        if i > 0 {
            prefix.push('/');
        }
        prefix.push_str(comp);
        if comp.is_empty() || comp == "." || comp == ".." || (i == 0 && comp.starts_with('#')) {
            continue;
        }
        if !is_dir(&prefix) {
            make(&prefix)?;
        }
    }
    Ok(())
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "p", "");
    if a.rest.is_empty() {
        args::usage(USAGE);
    }
    let mut failure = None;
    for dir in &a.rest {
        let r = if a.has('p') {
            make_parents(dir)
        } else {
            make(dir)
        };
        if let Err(e) = r {
            failure = Some(complain(e.0));
        }
    }
    finish(failure)
}
