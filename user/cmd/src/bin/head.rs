//! head: prints the first lines of files (10, or `-n N` / `-N`).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};

rt::entry!(main);

const USAGE: &str = "head [-n lines] [file...]";

/// `-N` is `-n N`.
fn normalize(argv: &[String]) -> Vec<String> {
    argv.iter()
        .map(|a| match a.strip_prefix('-') {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                rt::format!("-n{n}")
            }
            _ => a.clone(),
        })
        .collect()
}

fn main() -> rt::Result<()> {
    let argv = normalize(&rt::env::args()[1..]);
    let a = args::parse_from(&argv, USAGE, "", "n");
    let lines: usize = match a.value('n').map(str::parse) {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => args::usage(USAGE),
    };
    let files = operands_or_stdin(&a.rest);
    let mut out = Output::stdout();
    let mut failure = None;
    for (i, name) in files.iter().enumerate() {
        if files.len() > 1 {
            out.str(&rt::format!(
                "{}==> {name} <==\n",
                if i > 0 { "\n" } else { "" }
            ));
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
