//! Command-line flags in the usual style: `-l -d`, `-ld`, `-n 5`, `-n5`, `--` ends them, `-`
//! alone is an operand.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Parsed flags and operands.
#[derive(Debug, Default)]
pub struct Args {
    flags: Vec<char>,
    values: BTreeMap<char, String>,
    /// The operands, in order.
    pub rest: Vec<String>,
}

impl Args {
    /// Whether flag `c` was given.
    pub fn has(&self, c: char) -> bool {
        self.flags.contains(&c)
    }

    /// The value of option `c` (one that takes a value).
    pub fn value(&self, c: char) -> Option<&str> {
        self.values.get(&c).map(String::as_str)
    }
}

/// Prints `usage: TEXT` and exits with `usage`.
pub fn usage(text: &str) -> ! {
    rt::eprintln!("usage: {text}");
    rt::process::exits("usage")
}

/// Parses the program's arguments: `flags` are the letters allowed alone, `valued` those that
/// take a value. Anything else prints `usage` and exits.
pub fn parse(usage_text: &str, flags: &str, valued: &str) -> Args {
    parse_from(&rt::env::args()[1..], usage_text, flags, valued)
}

/// The arguments of `head` and `tail`: `-n N` or `-N` lines (10 if neither), then the files.
pub fn line_count(usage_text: &str) -> (usize, Vec<String>) {
    let argv: Vec<String> = rt::env::args()[1..]
        .iter()
        .map(|a| match a.strip_prefix('-') {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                rt::format!("-n{n}")
            }
            _ => a.clone(),
        })
        .collect();
    let a = parse_from(&argv, usage_text, "", "n");
    let lines = match a.value('n').map(str::parse) {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => usage(usage_text),
    };
    (lines, a.rest)
}

/// [`parse`] over given arguments.
pub fn parse_from(argv: &[String], usage_text: &str, flags: &str, valued: &str) -> Args {
    let mut a = Args::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg.len() == 1 {
            break;
        }
        for (at, c) in arg[1..].char_indices() {
            if valued.contains(c) {
                let inline = &arg[1 + at + c.len_utf8()..];
                let value = if !inline.is_empty() {
                    String::from(inline)
                } else if let Some(v) = argv.get(i + 1) {
                    i += 1;
                    v.clone()
                } else {
                    usage(usage_text)
                };
                a.values.insert(c, value);
                break;
            } else if flags.contains(c) {
                a.flags.push(c);
            } else {
                rt::eprintln!("{}: unknown option -{c}", rt::env::program());
                usage(usage_text)
            }
        }
        i += 1;
    }
    a.rest = argv[i.min(argv.len())..].to_vec();
    a
}
