//! head: prints the first lines of files (10, or `-n N` / `-N`).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};

rt::entry!(main);

const USAGE: &str = "head [-n lines] [file...]";

fn main() -> rt::Result<()> {
    let (lines, operands) = args::line_count(USAGE);
    let files = operands_or_stdin(&operands);
    let mut out = Output::stdout();
    let mut failure = None;
    for (i, name) in files.iter().enumerate() {
        if files.len() > 1 {
            out.file_header(i, name);
        }
        let mut input = match Input::open(name) {
            Ok(i) => i,
            Err(e) => {
                out.flush();
                failure = Some(complain(e.0));
                continue;
            }
        };
        // Stop reading as soon as enough lines are out (the input may be endless).
        let mut left = lines;
        let mut buf = alloc::vec![0u8; 8192];
        while left > 0 {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    out.flush();
                    failure = Some(complain(e.0));
                    break;
                }
            };
            let mut end = n;
            for (j, &b) in buf[..n].iter().enumerate() {
                if b == b'\n' {
                    left -= 1;
                    if left == 0 {
                        end = j + 1;
                        break;
                    }
                }
            }
            out.write(&buf[..end]);
        }
    }
    out.flush();
    finish(failure)
}
