//! ps: lists processes, one line each, `pid name state ppid` (from `/proc/*/status`), by pid.
//! ps leaves itself out.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use cmd::args;
use cmd::output::{Output, complain, finish};
use rt::{fs, process};

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("ps", "", "");
    if !a.rest.is_empty() {
        args::usage("ps");
    }
    let entries = match fs::read_dir("/proc") {
        Ok(e) => e,
        Err(e) => return finish(Some(complain(e.0))),
    };
    let me = process::getpid();
    let mut procs: Vec<(u64, String)> = Vec::new();
    for e in entries {
        let Ok(pid) = e.name.parse::<u64>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process may exit between the listing and the read: then it is simply gone.
        if let Ok(status) = fs::read_to_string(&rt::format!("/proc/{pid}/status")) {
            let fields: Vec<&str> = status.split_whitespace().collect();
            if !fields.is_empty() {
                procs.push((pid, fields.join(" ")));
            }
        }
    }
    procs.sort();
    let mut out = Output::stdout();
    for (_, line) in procs {
        out.str(&line);
        out.str("\n");
    }
    out.flush();
    finish(None)
}
