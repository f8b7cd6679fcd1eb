//! kill: posts a signal's note to processes (default TERM, the note `term`; KILL cannot be
//! caught). `kill -l` lists the signals. The table of signals and notes is
//! `shell::signal`.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use cmd::args::usage;
use cmd::output::{complain, finish};
use rt::process;
use shell::signal;

rt::entry!(main);

const USAGE: &str = "kill [-s signal | -signal] pid... | kill -l";

fn main() -> rt::Result<()> {
    let argv = &rt::env::args()[1..];
    let mut sig = signal::TERM;
    let mut rest = argv;
    match rest.first().map(|s| s.as_str()) {
        Some("-l") => {
            let names: Vec<&str> = signal::SIGNALS.iter().map(|s| s.name).collect();
            rt::println!("{}", names.join(" "));
            return Ok(());
        }
        Some("-s") => {
            let Some(s) = rest.get(1).and_then(|n| signal::parse(n)) else {
                usage(USAGE)
            };
            sig = s;
            rest = &rest[2..];
        }
        Some("--") => rest = &rest[1..],
        Some(a) if a.starts_with('-') => match signal::parse(&a[1..]) {
            Some(s) => {
                sig = s;
                rest = &rest[1..];
            }
            None => {
                rt::eprintln!("kill: {a}: unknown signal");
                usage(USAGE)
            }
        },
        _ => {}
    }
    if rest.is_empty() {
        usage(USAGE);
    }
    let mut failure = None;
    for a in rest {
        let Ok(pid) = a.parse::<u64>() else {
            failure = Some(complain(rt::format!("{a}: not a process id")));
            continue;
        };
        if let Err(e) = process::postnote(pid, sig.note) {
            let why = e.msg().rsplit(": ").next().unwrap_or(e.msg());
            failure = Some(complain(rt::format!("{pid}: {why}")));
        }
    }
    finish(failure)
}
