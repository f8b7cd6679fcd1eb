//! grep: prints the lines that match a regular expression (extended syntax: `.` `[...]` `^`
//! `$` `*` `+` `?` `{m,n}` `(...)` `|`), or a fixed string with `-F`. `-i` ignores case, `-v`
//! selects lines that do not match, `-c` counts, `-n` numbers lines, `-l` lists files with a
//! match, `-q` prints nothing, `-h`/`-H` leave out/add file names. Exits with `no match` if
//! nothing matched.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use cmd::args;
use cmd::input::{Input, operands_or_stdin};
use cmd::output::{Output, complain, finish};
use shell::regex::Regex;

rt::entry!(main);

const USAGE: &str = "grep [-EFivcnlqhH] [-e pattern | pattern] [file...]";

enum Matcher {
    Fixed(String, bool),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, line: &str) -> bool {
        match self {
            Matcher::Fixed(s, false) => line.contains(s.as_str()),
            Matcher::Fixed(s, true) => line.to_ascii_lowercase().contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(line),
        }
    }
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "EFivcnlqhH", "e");
    let mut rest = a.rest.clone();
    let pattern = match a.value('e') {
        Some(p) => String::from(p),
        None if !rest.is_empty() => rest.remove(0),
        None => args::usage(USAGE),
    };
    let ignore = a.has('i');
    let matcher = if a.has('F') {
        Matcher::Fixed(
            if ignore {
                pattern.to_ascii_lowercase()
            } else {
                pattern
            },
            ignore,
        )
    } else {
        match Regex::new(&pattern, ignore) {
            Ok(r) => Matcher::Regex(r),
            Err(e) => return finish(Some(complain(rt::format!("{pattern}: {e}")))),
        }
    };
    let files = operands_or_stdin(&rest);
    let names = (files.len() > 1 || a.has('H')) && !a.has('h');
    let mut out = Output::stdout();
    let mut failure = None;
    let mut any = false;
    for file in &files {
        let data = match Input::open(file).and_then(|mut i| i.read_all()) {
            Ok(d) => d,
            Err(e) => {
                out.flush();
                failure = Some(complain(e.0));
                continue;
            }
        };
        let label = if file == "-" {
            "(standard input)"
        } else {
            file
        };
        let text = String::from_utf8_lossy(&data);
        let mut count = 0u64;
        let body = text.strip_suffix('\n').unwrap_or(&text);
        for (n, line) in body.split('\n').enumerate() {
            if data.is_empty() {
                break;
            }
            if matcher.is_match(line) == a.has('v') {
                continue;
            }
            count += 1;
            any = true;
            if a.has('q') {
                return finish(None);
            }
            if a.has('l') {
                out.str(label);
                out.str("\n");
                break;
            }
            if a.has('c') {
                continue;
            }
            if names {
                out.str(label);
                out.str(":");
            }
            if a.has('n') {
                out.str(&rt::format!("{}:", n + 1));
            }
            out.str(line);
            out.str("\n");
        }
        if a.has('c') {
            if names {
                out.str(label);
                out.str(":");
            }
            out.str(&rt::format!("{count}\n"));
        }
    }
    out.flush();
    if failure.is_some() {
        return finish(failure);
    }
    finish((!any).then(|| String::from("no match")))
}
