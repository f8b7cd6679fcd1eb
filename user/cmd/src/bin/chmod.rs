//! chmod: changes permission bits: octal (`755`) or symbolic (`+x`, `go-w`, `a=r`; `u`, `g`,
//! `o`, `a` with `+`, `-` or `=` and `r`, `w`, `x`).

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use ninep::Dir;
use rt::fs;

rt::entry!(main);

const USAGE: &str = "chmod mode file...";

/// The new permission bits for `old` under `mode`, or `None` if `mode` is malformed.
fn apply(mode: &str, old: u32) -> Option<u32> {
    if mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o777);
    }
    let mut perm = old & 0o777;
    for clause in mode.split(',') {
        let op_at = clause.find(['+', '-', '='])?;
        let (who, rest) = clause.split_at(op_at);
        let op = rest.as_bytes()[0];
        let mut mask = 0;
        for w in who.chars() {
            mask |= match w {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => return None,
            };
        }
        if who.is_empty() {
            mask = 0o777;
        }
        let mut bits = 0;
        for p in rest[1..].chars() {
            bits |= match p {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                _ => return None,
            };
        }
        let bits = bits & mask;
        perm = match op {
            b'+' => perm | bits,
            b'-' => perm & !bits,
            _ => (perm & !mask) | bits,
        };
    }
    Some(perm)
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "", "");
    let [mode, files @ ..] = a.rest.as_slice() else {
        args::usage(USAGE)
    };
    if files.is_empty() || apply(mode, 0).is_none() {
        args::usage(USAGE);
    }
    let mut failure = None;
    for f in files {
        let r = fs::stat(f).and_then(|d| {
            let perm = apply(mode, d.mode).unwrap_or(d.mode & 0o777);
            let mut w = Dir::dont_touch();
            w.mode = (d.mode & !0o777) | perm;
            fs::wstat(f, &w)
        });
        if let Err(e) = r {
            failure = Some(complain(e.0));
        }
    }
    finish(failure)
}
