//! sync: makes written data durable. Every disk (`/dev/sdXN`) is flushed (its write cache
//! emptied, through `ctl`); each file named is committed by its file server (a wstat that
//! changes nothing, which stat(5) defines as "commit to stable storage": a 9P server such as the
//! fsvm guest's syncs the file). tmpfs is memory and has nothing to flush.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::{fs, io};

rt::entry!(main);

/// Flushes every disk; returns the first failure.
fn flush_disks() -> Option<alloc::string::String> {
    let disks = fs::read_dir("/dev").ok()?;
    let mut failure = None;
    for d in disks
        .iter()
        .filter(|d| d.name.starts_with("sd") && d.qid.is_dir())
    {
        let ctl = rt::format!("/dev/{}/ctl", d.name);
        let r = fs::open(&ctl, fs::OWRITE).and_then(|fd| {
            let w = io::write(fd, b"sync").map_err(|e| e.context(&ctl));
            let _ = io::close(fd);
            w
        });
        if let Err(e) = r {
            failure = Some(complain(e.0));
        }
    }
    failure
}

fn main() -> rt::Result<()> {
    let a = args::parse("sync [file...]", "", "");
    let mut failure = flush_disks();
    for f in &a.rest {
        if let Err(e) = fs::wstat(f, &ninep::Dir::dont_touch()) {
            failure = Some(complain(e.0));
        }
    }
    finish(failure)
}
