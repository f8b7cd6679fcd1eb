//! ls: lists directories (their entries, sorted by name) and files; `-l` adds mode, owner,
//! size and modification time; `-d` lists directories themselves, not their contents.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use cmd::args;
use cmd::output::{Output, complain, finish};
use ninep::Dir;
use rt::fs;

rt::entry!(main);

const USAGE: &str = "ls [-ld] [file...]";

fn mode_string(d: &Dir<'_>) -> String {
    let mut s = String::from(if d.mode & fs::DMDIR != 0 { "d" } else { "-" });
    for shift in [6, 3, 0] {
        let bits = (d.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn line(out: &mut Output, long: bool, name: &str, d: &Dir<'_>) {
    if long {
        let owner = if d.uid.is_empty() { "-" } else { &d.uid };
        out.str(&rt::format!(
            "{} {:<8} {:>10} {} {name}\n",
            mode_string(d),
            owner,
            d.length,
            shell::date::short(i64::from(d.mtime)),
        ));
    } else {
        out.str(name);
        out.str("\n");
    }
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "ld", "");
    let (long, dirs_themselves) = (a.has('l'), a.has('d'));
    let operands = if a.rest.is_empty() {
        alloc::vec![String::from(".")]
    } else {
        a.rest.clone()
    };
    let mut out = Output::stdout();
    let mut failure = None;
    let mut files: Vec<(String, Dir<'static>)> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    for op in operands {
        match fs::stat(&op) {
            Ok(d) if d.mode & fs::DMDIR != 0 && !dirs_themselves => dirs.push(op),
            Ok(d) => files.push((op, d)),
            Err(e) => failure = Some(complain(e.0)),
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort();
    for (name, d) in &files {
        line(&mut out, long, name, d);
    }
    let headers = dirs.len() + files.len() > 1;
    for (i, dir) in dirs.iter().enumerate() {
        if headers {
            if i > 0 || !files.is_empty() {
                out.str("\n");
            }
            out.str(&rt::format!("{dir}:\n"));
        }
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                for d in &entries {
                    line(&mut out, long, &d.name, d);
                }
            }
            Err(e) => {
                out.flush();
                failure = Some(complain(e.0));
            }
        }
    }
    if !out.flush() {
        failure = Some(complain(String::from("write error")));
    }
    finish(failure)
}
