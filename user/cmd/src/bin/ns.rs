//! ns: prints a namespace (this one, or process `pid`'s) as the bind and mount commands
//! that would rebuild it (`/proc/PID/ns`).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{Output, complain, finish};
use rt::{fs, process};

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("ns [pid]", "", "");
    let pid = match a.rest.as_slice() {
        [] => process::getpid(),
        [p] => match p.parse() {
            Ok(p) => p,
            Err(_) => args::usage("ns [pid]"),
        },
        _ => args::usage("ns [pid]"),
    };
    match fs::read_file(&rt::format!("/proc/{pid}/ns")) {
        Ok(text) => {
            let mut out = Output::stdout();
            out.write(&text);
            out.flush();
            finish(None)
        }
        Err(e) => finish(Some(complain(e.0))),
    }
}
