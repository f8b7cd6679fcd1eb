//! sha256sum: prints the SHA-256 digest of each file (`-` or none: standard input).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};
use shell::sha256::{Sha256, to_hex};

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("sha256sum [file...]", "", "");
    let mut out = Output::stdout();
    let mut failure = None;
    for name in operands_or_stdin(&a.rest) {
        let mut h = Sha256::new();
        match Input::open(&name).and_then(|mut i| i.for_each_chunk(|c| h.update(c))) {
            Ok(()) => out.str(&rt::format!("{}  {name}\n", to_hex(&h.finish()))),
            Err(e) => {
                out.flush();
                failure = Some(complain(e.0));
            }
        }
    }
    out.flush();
    finish(failure)
}
