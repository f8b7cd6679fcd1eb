//! wc: counts lines, words and bytes (`-l`, `-w`, `-c`; all three by default), with a total
//! when there are several files.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};

rt::entry!(main);

#[derive(Default, Clone, Copy)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

fn count(input: &mut Input) -> rt::Result<Counts> {
    let mut c = Counts::default();
    let mut in_word = false;
    input.for_each_chunk(|chunk| {
        c.bytes += chunk.len() as u64;
        for &b in chunk {
            if b == b'\n' {
                c.lines += 1;
            }
            let space = b.is_ascii_whitespace();
            if !space && !in_word {
                c.words += 1;
            }
            in_word = !space;
        }
    })?;
    Ok(c)
}

fn main() -> rt::Result<()> {
    let a = args::parse("wc [-lwc] [file...]", "lwc", "");
    let all = !(a.has('l') || a.has('w') || a.has('c'));
    let show = |c: &Counts, name: &str| {
        let mut s = String::new();
        if all || a.has('l') {
            s.push_str(&rt::format!("{:>8}", c.lines));
        }
        if all || a.has('w') {
            s.push_str(&rt::format!("{:>8}", c.words));
        }
        if all || a.has('c') {
            s.push_str(&rt::format!("{:>8}", c.bytes));
        }
        if !name.is_empty() {
            s.push(' ');
            s.push_str(name);
        }
        s.push('\n');
        s
    };
    let mut out = Output::stdout();
    let mut failure = None;
    let mut total = Counts::default();
    let names = operands_or_stdin(&a.rest);
    for name in &names {
        match Input::open(name).and_then(|mut i| count(&mut i)) {
            Ok(c) => {
                total.lines += c.lines;
                total.words += c.words;
                total.bytes += c.bytes;
                out.str(&show(&c, if name == "-" { "" } else { name }));
            }
            Err(e) => {
                out.flush();
                failure = Some(complain(e.0));
            }
        }
    }
    if names.len() > 1 {
        out.str(&show(&total, "total"));
    }
    out.flush();
    finish(failure)
}
