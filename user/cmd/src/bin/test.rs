//! test: evaluates a condition (the language of `shell::cond`, the same as the shell's
//! builtin `test` and `[`): exits successfully if it holds, with `false` if not, and with a
//! message on a malformed expression.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::files::CondFiles;
use cmd::output::{complain, finish};
use shell::cond;

rt::entry!(main);

fn main() -> rt::Result<()> {
    match cond::eval(&rt::env::args()[1..], &mut CondFiles) {
        Ok(true) => Ok(()),
        Ok(false) => finish(Some(alloc::string::String::from("false"))),
        Err(e) => {
            complain(e);
            rt::process::exits("usage")
        }
    }
}
