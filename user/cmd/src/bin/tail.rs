//! tail: prints the last lines of files (10, or `-n N` / `-N`).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};

rt::entry!(main);

const USAGE: &str = "tail [-n lines] [file...]";

/// Where the last `lines` lines of `data` start.
fn last_lines(data: &[u8], lines: usize) -> usize {
    if lines == 0 {
        return data.len();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == lines {
                return i + 1;
            }
        }
    }
    0
}

fn main() -> rt::Result<()> {
    let (lines, operands) = args::line_count(USAGE);
    let files = operands_or_stdin(&operands);
    let mut out = Output::stdout();
    let mut failure = None;
    for (i, name) in files.iter().enumerate() {
        if files.len() > 1 {
            out.file_header(i, name);
        }
        match Input::open(name).and_then(|mut i| i.read_all()) {
            Ok(data) => out.write(&data[last_lines(&data, lines)..]),
            Err(e) => {
                out.flush();
                failure = Some(complain(e.0));
            }
        }
    }
    out.flush();
    finish(failure)
}
