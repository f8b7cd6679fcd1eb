//! The format language of `printf` (XCU `printf`): `%s %b %c %d %i %u %o %x %X %%` with
//! flags (`-+ 0#`), width and precision (numbers or `*`), backslash escapes in the format;
//! the format is reused while arguments remain. A bad number is reported and taken as 0.

use crate::arith::parse_number;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Expands backslash escapes (`\n \t \\ \a \b \f \r \v \NNN`); with `b_style` (`%b`) octal is
/// `\0NNN` and `\c` ends all output. Returns the text and whether `\c` was seen.
pub fn escapes(s: &str, b_style: bool) -> (String, bool) {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] != '\\' || i + 1 == c.len() {
            out.push(c[i]);
            i += 1;
            continue;
        }
        i += 1;
        let e = c[i];
        i += 1;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '\\' => out.push('\\'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'r' => out.push('\r'),
            'v' => out.push('\x0b'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'c' if b_style => return (out, true),
            '0'..='7' => {
                // %b: \0NNN (up to three digits after the 0); format: \NNN.
                let mut digits = String::new();
                if !(b_style && e == '0') {
                    digits.push(e);
                }
                while digits.len() < 3 && i < c.len() && ('0'..='7').contains(&c[i]) {
                    digits.push(c[i]);
                    i += 1;
                }
                let v = u32::from_str_radix(if digits.is_empty() { "0" } else { &digits }, 8)
                    .unwrap_or(0);
                out.push(char::from_u32(v & 0xff).unwrap_or('?'));
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    (out, false)
}

struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alt: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn pad(s: &str, spec: &Spec, numeric: bool) -> String {
    let len = s.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        return String::from(s);
    };
    let fill = width - len;
    if spec.left {
        let mut out = String::from(s);
        out.extend(core::iter::repeat_n(' ', fill));
        out
    } else if spec.zero && numeric && spec.precision.is_none() {
        // Zeros go after the sign or the 0x.
        let split = if s.starts_with(['-', '+', ' ']) {
            1
        } else if s.starts_with("0x") || s.starts_with("0X") {
            2
        } else {
            0
        };
        let mut out = String::from(&s[..split]);
        out.extend(core::iter::repeat_n('0', fill));
        out.push_str(&s[split..]);
        out
    } else {
        let mut out: String = core::iter::repeat_n(' ', fill).collect();
        out.push_str(s);
        out
    }
}

fn number_arg(arg: Option<&String>, errors: &mut Vec<String>) -> i64 {
    let Some(a) = arg else { return 0 };
    if let Some(c) = a.strip_prefix(['\'', '"']) {
        return c.chars().next().map_or(0, |c| c as i64);
    }
    if a.trim().is_empty() {
        return 0;
    }
    parse_number(a).unwrap_or_else(|_| {
        errors.push(format!("{a}: invalid number"));
        0
    })
}

/// Formats `args` by `fmt`. Returns the output and the errors (bad numbers) met.
pub fn format(fmt: &str, args: &[String]) -> (String, Vec<String>) {
    let f: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut next = 0;
    loop {
        let start_next = next;
        let mut i = 0;
        while i < f.len() {
            if f[i] == '\\' {
                // Copy the escape through `escapes` one sequence at a time.
                let mut j = i + 1;
                if j < f.len() && ('0'..='7').contains(&f[j]) {
                    let mut n = 0;
                    while j < f.len() && n < 3 && ('0'..='7').contains(&f[j]) {
                        j += 1;
                        n += 1;
                    }
                } else {
                    j = (j + 1).min(f.len());
                }
                let seq: String = f[i..j].iter().collect();
                out.push_str(&escapes(&seq, false).0);
                i = j;
                continue;
            }
            if f[i] != '%' {
                out.push(f[i]);
                i += 1;
                continue;
            }
            i += 1;
            if i < f.len() && f[i] == '%' {
                out.push('%');
                i += 1;
                continue;
            }
            let mut spec = Spec {
                left: false,
                plus: false,
                space: false,
                zero: false,
                alt: false,
                width: None,
                precision: None,
            };
            while i < f.len() {
                match f[i] {
                    '-' => spec.left = true,
                    '+' => spec.plus = true,
                    ' ' => spec.space = true,
                    '0' => spec.zero = true,
                    '#' => spec.alt = true,
                    _ => break,
                }
                i += 1;
            }
            if i < f.len() && f[i] == '*' {
                let w = number_arg(args.get(next), &mut errors);
                next += 1;
                if w < 0 {
                    spec.left = true;
                }
                spec.width = Some(w.unsigned_abs() as usize);
                i += 1;
            } else {
                let mut w = String::new();
                while i < f.len() && f[i].is_ascii_digit() {
                    w.push(f[i]);
                    i += 1;
                }
                spec.width = w.parse().ok();
            }
            if i < f.len() && f[i] == '.' {
                i += 1;
                if i < f.len() && f[i] == '*' {
                    let p = number_arg(args.get(next), &mut errors);
                    next += 1;
                    spec.precision = Some(p.max(0) as usize);
                    i += 1;
                } else {
                    let mut p = String::new();
                    while i < f.len() && f[i].is_ascii_digit() {
                        p.push(f[i]);
                        i += 1;
                    }
                    spec.precision = Some(p.parse().unwrap_or(0));
                }
            }
            let Some(&conv) = f.get(i) else {
                errors.push("missing conversion character".into());
                break;
            };
            i += 1;
            let arg = args.get(next);
            match conv {
                's' | 'b' => {
                    next += 1;
                    let text = arg.cloned().unwrap_or_default();
                    let (mut text, stop) = if conv == 'b' {
                        escapes(&text, true)
                    } else {
                        (text, false)
                    };
                    if let Some(p) = spec.precision {
                        text = text.chars().take(p).collect();
                    }
                    out.push_str(&pad(&text, &spec, false));
                    if stop {
                        return (out, errors);
                    }
                }
                'c' => {
                    next += 1;
                    let text: String = arg.and_then(|a| a.chars().next()).into_iter().collect();
                    out.push_str(&pad(&text, &spec, false));
                }
                'd' | 'i' | 'u' | 'o' | 'x' | 'X' => {
                    next += 1;
                    let v = number_arg(arg, &mut errors);
                    let mut digits = match conv {
                        'd' | 'i' => v.unsigned_abs().to_string(),
                        'u' => (v as u64).to_string(),
                        'o' => format!("{:o}", v as u64),
                        'x' => format!("{:x}", v as u64),
                        _ => format!("{:X}", v as u64),
                    };
                    if let Some(p) = spec.precision
                        && digits.len() < p
                    {
                        let zeros: String = core::iter::repeat_n('0', p - digits.len()).collect();
                        digits = zeros + &digits;
                    }
                    if spec.alt && v != 0 {
                        match conv {
                            'o' if !digits.starts_with('0') => digits.insert(0, '0'),
                            'x' => digits.insert_str(0, "0x"),
                            'X' => digits.insert_str(0, "0X"),
                            _ => {}
                        }
                    }
                    if matches!(conv, 'd' | 'i') {
                        if v < 0 {
                            digits.insert(0, '-');
                        } else if spec.plus {
                            digits.insert(0, '+');
                        } else if spec.space {
                            digits.insert(0, ' ');
                        }
                    }
                    out.push_str(&pad(&digits, &spec, true));
                }
                other => {
                    errors.push(format!("%{other}: unknown conversion"));
                    return (out, errors);
                }
            }
        }
        // Reuse the format while arguments remain (and it consumed some).
        if next >= args.len() || next == start_next {
            break;
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fmt: &str, args: &[&str]) -> String {
        let v: Vec<String> = args.iter().map(|s| String::from(*s)).collect();
        let (out, errors) = format(fmt, &v);
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    #[test]
    fn conversions() {
        assert_eq!(p("%s-%s\\n", &["a", "b"]), "a-b\n");
        assert_eq!(p("%d %i %u", &["-5", "0x10", "7"]), "-5 16 7");
        assert_eq!(
            p("%x %X %o %#x %#o", &["255", "255", "8", "255", "8"]),
            "ff FF 10 0xff 010"
        );
        assert_eq!(p("%c%c", &["hello", "w"]), "hw");
        assert_eq!(p("100%%", &[]), "100%");
        assert_eq!(p("%d", &["'A"]), "65");
        assert_eq!(p("[%s]", &[]), "[]");
        assert_eq!(p("%d", &[]), "0");
    }

    #[test]
    fn widths_and_precision() {
        assert_eq!(p("[%5s][%-5s]", &["ab", "cd"]), "[   ab][cd   ]");
        assert_eq!(p("[%05d][%+d][% d]", &["-42", "3", "3"]), "[-0042][+3][ 3]");
        assert_eq!(p("[%.2s][%.3d]", &["abcdef", "7"]), "[ab][007]");
        assert_eq!(p("[%*d][%-*d]", &["4", "1", "3", "2"]), "[   1][2  ]");
    }

    #[test]
    fn reuse_and_escapes() {
        assert_eq!(p("%s=%s\\n", &["a", "1", "b", "2"]), "a=1\nb=2\n");
        assert_eq!(p("%s\\n", &["x", "y", "z"]), "x\ny\nz\n");
        assert_eq!(p("\\t\\101\\\\", &[]), "\tA\\");
        assert_eq!(p("%b|", &["a\\nb\\0101"]), "a\nbA|");
        assert_eq!(p("%b%s", &["stop\\chere", "never"]), "stop");
    }

    #[test]
    fn bad_numbers_are_reported() {
        let (out, errors) = format("%d", &[String::from("x1")]);
        assert_eq!(out, "0");
        assert_eq!(errors, ["x1: invalid number"]);
        let (_, errors) = format("%y", &[]);
        assert_eq!(errors.len(), 1);
    }
}
