//! cat: copies files (`-` or none: standard input) to standard output.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("cat [file...]", "", "");
    let mut out = Output::stdout();
    let mut failure = None;
    for name in operands_or_stdin(&a.rest) {
        let r = Input::open(&name).and_then(|mut input| {
            input.for_each_chunk(|chunk| {
                out.write(chunk);
            })
        });
        if let Err(e) = r {
            out.flush();
            failure = Some(complain(e.0));
        }
        if !out.flush() {
            return finish(Some(complain(alloc::string::String::from("write error"))));
        }
    }
    finish(failure)
}
