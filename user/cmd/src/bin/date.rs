//! date: prints the date and time (UTC), from `/dev/time`; `-n` prints seconds since the
//! epoch.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::fs;

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("date [-n]", "n", "");
    if !a.rest.is_empty() {
        args::usage("date [-n]");
    }
    let text = match fs::read_to_string("/dev/time") {
        Ok(t) => t,
        Err(e) => return finish(Some(complain(e.0))),
    };
    let Some(secs) = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<i64>().ok())
    else {
        return finish(Some(complain(rt::format!(
            "/dev/time: unexpected {text:?}"
        ))));
    };
    if a.has('n') {
        rt::println!("{secs}");
    } else {
        rt::println!("{}", shell::date::long(secs));
    }
    Ok(())
}
