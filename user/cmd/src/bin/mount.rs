//! mount: mounts the 9P server on a file (a `/srv` entry, a pipe, a connection) at `old`,
//! replacing it or in a union before (`-b`) or after (`-a`); `-c` allows creation; `spec`
//! names the tree to attach. Instead of a file, a dial string (`tcp!127.0.0.1!5640`) names a
//! server to connect to.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::{fs, io};

rt::entry!(main);

const USAGE: &str = "mount [-a | -b] [-c] file old [spec]";

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "abc", "");
    let (file, old, spec) = match a.rest.as_slice() {
        [f, o] => (f, o, ""),
        [f, o, s] => (f, o, s.as_str()),
        _ => args::usage(USAGE),
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
    // A dial string: connect; anything else is a file to open.
    let opened = if file.contains('!') && fs::stat(file).is_err() {
        rt::net::dial(file)
    } else {
        fs::open(file, fs::ORDWR)
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(e) => return finish(Some(complain(e.0))),
    };
    let r = fs::mount(fd, old, flags, spec);
    let _ = io::close(fd);
    finish(r.err().map(|e| complain(e.0)))
}
