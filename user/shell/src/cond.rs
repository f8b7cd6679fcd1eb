//! The expression language of `test` and `[` (XCU `test`): string, integer and file
//! primaries, `!`, `-a`, `-o` and parentheses, with POSIX's rules for one to four arguments
//! and a recursive-descent parser beyond. Files are looked at through [`Files`].

use alloc::format;
use alloc::string::String;

/// What a file test needs to know.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileInfo {
    /// A directory.
    pub dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`rwxrwxrwx`).
    pub perm: u32,
    /// Modification time, seconds.
    pub mtime: u64,
}

/// Access to files for the `-e`, `-f`, `-d`... primaries.
pub trait Files {
    /// What `path` is, or `None` if it does not exist.
    fn stat(&mut self, path: &str) -> Option<FileInfo>;
    /// Whether `fd` is a terminal (`-t`).
    fn is_terminal(&mut self, _fd: u32) -> bool {
        false
    }
}

const UNARY: &[&str] = &[
    "-e", "-f", "-d", "-s", "-r", "-w", "-x", "-n", "-z", "-t", "-L", "-h", "-b", "-c", "-p", "-S",
];
const BINARY: &[&str] = &[
    "=", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "<", ">",
];

fn integer(s: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s}: integer expression expected"))
}

fn unary(op: &str, arg: &str, files: &mut dyn Files) -> Result<bool, String> {
    Ok(match op {
        "-n" => !arg.is_empty(),
        "-z" => arg.is_empty(),
        "-t" => files.is_terminal(integer(arg)? as u32),
        "-L" | "-h" | "-b" | "-c" | "-p" | "-S" => false,
        _ => {
            let Some(info) = files.stat(arg) else {
                return Ok(false);
            };
            match op {
                "-e" => true,
                "-f" => !info.dir,
                "-d" => info.dir,
                "-s" => info.size > 0,
                "-r" => info.perm & 0o444 != 0,
                "-w" => info.perm & 0o222 != 0,
                "-x" => info.perm & 0o111 != 0,
                _ => unreachable!("listed in UNARY"),
            }
        }
    })
}

fn binary(a: &str, op: &str, b: &str, files: &mut dyn Files) -> Result<bool, String> {
    Ok(match op {
        "=" | "==" => a == b,
        "!=" => a != b,
        "<" => a < b,
        ">" => a > b,
        "-nt" | "-ot" => {
            let (x, y) = (files.stat(a), files.stat(b));
            match (x, y) {
                (Some(x), Some(y)) if op == "-nt" => x.mtime > y.mtime,
                (Some(x), Some(y)) => x.mtime < y.mtime,
                (Some(_), None) => op == "-nt",
                (None, Some(_)) => op == "-ot",
                (None, None) => false,
            }
        }
        _ => {
            let (x, y) = (integer(a)?, integer(b)?);
            match op {
                "-eq" => x == y,
                "-ne" => x != y,
                "-lt" => x < y,
                "-le" => x <= y,
                "-gt" => x > y,
                "-ge" => x >= y,
                _ => unreachable!("listed in BINARY"),
            }
        }
    })
}

struct Parser<'a> {
    args: &'a [String],
    pos: usize,
    files: &'a mut dyn Files,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.args.get(self.pos).map(String::as_str)
    }

    fn or(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while self.peek() == Some("-o") {
            self.pos += 1;
            let r = self.and()?;
            v = v || r;
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.not()?;
        while self.peek() == Some("-a") {
            self.pos += 1;
            let r = self.not()?;
            v = v && r;
        }
        Ok(v)
    }

    fn not(&mut self) -> Result<bool, String> {
        if self.peek() == Some("!") && self.args.len() > self.pos + 1 {
            self.pos += 1;
            return Ok(!self.not()?);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<bool, String> {
        let Some(a) = self.peek() else {
            return Err("argument expected".into());
        };
        let a = String::from(a);
        if a == "(" {
            self.pos += 1;
            let v = self.or()?;
            if self.peek() != Some(")") {
                return Err("missing \")\"".into());
            }
            self.pos += 1;
            return Ok(v);
        }
        if let Some(op) = self.args.get(self.pos + 1).map(String::as_str)
            && BINARY.contains(&op)
            && self.args.len() > self.pos + 2
        {
            let b = self.args[self.pos + 2].clone();
            let op = String::from(op);
            self.pos += 3;
            return binary(&a, &op, &b, self.files);
        }
        if UNARY.contains(&a.as_str()) && self.args.len() > self.pos + 1 {
            let arg = self.args[self.pos + 1].clone();
            self.pos += 2;
            return unary(&a, &arg, self.files);
        }
        self.pos += 1;
        Ok(!a.is_empty())
    }
}

/// Evaluates `test`'s arguments (without the closing `]` of `[`).
pub fn eval(args: &[String], files: &mut dyn Files) -> Result<bool, String> {
    let a: alloc::vec::Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        [] => return Ok(false),
        [x] => return Ok(!x.is_empty()),
        ["!", x] => return Ok(x.is_empty()),
        [op, x] if UNARY.contains(op) => return unary(op, x, files),
        [x, op, y] if BINARY.contains(op) => return binary(x, op, y, files),
        [x, "-a", y] => return Ok(!x.is_empty() && !y.is_empty()),
        [x, "-o", y] => return Ok(!x.is_empty() || !y.is_empty()),
        ["!", ..] if a.len() == 3 || a.len() == 4 => {
            return eval(&args[1..], files).map(|v| !v);
        }
        ["(", x, ")"] => return Ok(!x.is_empty()),
        ["(", .., ")"] if a.len() == 4 => return eval(&args[1..3], files),
        [_, _] => return Err(format!("{}: unary operator expected", a[0])),
        _ => {}
    }
    let mut p = Parser {
        args,
        pos: 0,
        files,
    };
    let v = p.or()?;
    if p.pos < args.len() {
        return Err(format!("{}: unexpected argument", args[p.pos]));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fs;

    impl Files for Fs {
        fn stat(&mut self, path: &str) -> Option<FileInfo> {
            match path {
                "/bin" => Some(FileInfo {
                    dir: true,
                    size: 0,
                    perm: 0o555,
                    mtime: 10,
                }),
                "/bin/sh" => Some(FileInfo {
                    dir: false,
                    size: 100,
                    perm: 0o555,
                    mtime: 20,
                }),
                "/empty" => Some(FileInfo {
                    dir: false,
                    size: 0,
                    perm: 0o644,
                    mtime: 5,
                }),
                _ => None,
            }
        }
    }

    fn t(args: &[&str]) -> Result<bool, String> {
        let v: Vec<String> = args.iter().map(|s| String::from(*s)).collect();
        eval(&v, &mut Fs)
    }

    #[test]
    fn strings() {
        assert_eq!(t(&[]), Ok(false));
        assert_eq!(t(&["x"]), Ok(true));
        assert_eq!(t(&[""]), Ok(false));
        assert_eq!(t(&["-n", "x"]), Ok(true));
        assert_eq!(t(&["-z", ""]), Ok(true));
        assert_eq!(t(&["a", "=", "a"]), Ok(true));
        assert_eq!(t(&["a", "!=", "a"]), Ok(false));
        assert_eq!(t(&["!", "a", "=", "b"]), Ok(true));
        assert_eq!(t(&["-n"]), Ok(true), "one argument: non-empty string");
        assert_eq!(t(&["=", "=", "="]), Ok(true));
        assert_eq!(t(&["(", "x", ")"]), Ok(true));
    }

    #[test]
    fn integers() {
        assert_eq!(t(&["3", "-lt", "10"]), Ok(true));
        assert_eq!(t(&["3", "-ge", "10"]), Ok(false));
        assert_eq!(t(&[" 7", "-eq", "7"]), Ok(true));
        assert!(
            t(&["x", "-eq", "1"])
                .unwrap_err()
                .contains("integer expression expected")
        );
    }

    #[test]
    fn files() {
        assert_eq!(t(&["-d", "/bin"]), Ok(true));
        assert_eq!(t(&["-f", "/bin"]), Ok(false));
        assert_eq!(t(&["-f", "/bin/sh"]), Ok(true));
        assert_eq!(t(&["-x", "/bin/sh"]), Ok(true));
        assert_eq!(t(&["-x", "/empty"]), Ok(false));
        assert_eq!(t(&["-s", "/empty"]), Ok(false));
        assert_eq!(t(&["-e", "/nope"]), Ok(false));
        assert_eq!(t(&["/bin/sh", "-nt", "/empty"]), Ok(true));
    }

    #[test]
    fn connectives() {
        assert_eq!(t(&["-d", "/bin", "-a", "-f", "/bin/sh"]), Ok(true));
        assert_eq!(t(&["-d", "/nope", "-o", "-f", "/bin/sh"]), Ok(true));
        assert_eq!(t(&["!", "-d", "/nope", "-a", "x", "=", "x"]), Ok(true));
        assert_eq!(
            t(&[
                "(", "a", "=", "b", "-o", "c", "=", "c", ")", "-a", "-n", "z"
            ]),
            Ok(true)
        );
        assert!(t(&["-d", "/bin", "extra", "x", "y"]).is_err());
        assert!(t(&["(", "a", "=", "a", "-a", "b"]).is_err());
    }
}
