//! Patterns (XCU §2.13): `*` any string, `?` any character, `[...]` a class (`[!...]` or
//! `[^...]` negated, `a-z` ranges), `\c` the character itself. [`matches`] tests a name;
//! [`expand`] finds the paths a pattern names, reading directories through the caller.

use alloc::string::String;
use alloc::vec::Vec;

/// Whether `pattern` has an unescaped `*`, `?` or a complete `[...]`.
pub fn has_magic(pattern: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => i += 1,
            '*' | '?' => return true,
            '[' if class_end(&p, i).is_some() => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Removes the backslashes of a pattern without magic.
pub fn unescape(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            } else {
                out.push('\\');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes the characters that are special in patterns.
pub fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The index of the `]` closing the class that opens at `p[start]`.
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if matches!(p.get(i), Some('!' | '^')) {
        i += 1;
    }
    if p.get(i) == Some(&']') {
        i += 1;
    }
    while i < p.len() {
        match p[i] {
            ']' => return Some(i),
            '\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Whether `c` is in the class `p[start..=end]` (`p[start]` is `[`, `p[end]` is `]`).
fn class_matches(p: &[char], start: usize, end: usize, c: char) -> bool {
    let mut i = start + 1;
    let negated = matches!(p[i], '!' | '^');
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < end {
        let mut lo = p[i];
        if lo == '\\' && i + 1 < end {
            i += 1;
            lo = p[i];
        } else if lo == ']' && !first {
            break;
        }
        first = false;
        i += 1;
        if i + 1 < end && p[i] == '-' {
            let mut hi = p[i + 1];
            i += 2;
            if hi == '\\' && i < end {
                hi = p[i];
                i += 1;
            }
            if lo <= c && c <= hi {
                found = true;
            }
        } else if lo == c {
            found = true;
        }
    }
    found != negated
}

/// Whether `name` matches `pattern` as a whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    match_at(&p, &s)
}

fn match_at(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index it covers to).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    continue;
                }
                '?' if si < s.len() => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' if si < s.len() => {
                    if let Some(end) = class_end(p, pi) {
                        if class_matches(p, pi, end, s[si]) {
                            pi = end + 1;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == '[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && si < s.len() && s[si] == p[pi + 1] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() => {}
                c if si < s.len() && c == s[si] && c != '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        } else if si == s.len() {
            return true;
        }
        // Mismatch: let the last `*` take one more character.
        match star {
            Some((after, covered)) if covered < s.len() => {
                star = Some((after, covered + 1));
                pi = after;
                si = covered + 1;
            }
            _ => return false,
        }
    }
}

/// Length of the shortest or longest prefix of `text` that `pattern` matches.
pub fn match_prefix(pattern: &str, text: &str, longest: bool) -> Option<usize> {
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let mut order: Vec<usize> = bounds.clone();
    if longest {
        order.reverse();
    }
    order
        .into_iter()
        .find(|&end| matches(pattern, &text[..end]))
}

/// Start of the shortest or longest suffix of `text` that `pattern` matches.
pub fn match_suffix(pattern: &str, text: &str, longest: bool) -> Option<usize> {
    let mut bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    if !longest {
        bounds.reverse();
    }
    bounds
        .into_iter()
        .find(|&start| matches(pattern, &text[start..]))
}

/// The paths `pattern` names, sorted; empty if none exist. `read_dir(dir)` lists the names in
/// a directory (`""` is the current one) or `None` if it cannot be read.
pub fn expand(pattern: &str, read_dir: &mut dyn FnMut(&str) -> Option<Vec<String>>) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let mut paths: Vec<String> = alloc::vec![String::from(if absolute { "/" } else { "" })];
    for (i, comp) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let mut next = Vec::new();
        for base in &paths {
            let join = |name: &str| -> String {
                if base.is_empty() {
                    String::from(name)
                } else if base.ends_with('/') {
                    alloc::format!("{base}{name}")
                } else {
                    alloc::format!("{base}/{name}")
                }
            };
            if !has_magic(comp) {
                let name = unescape(comp);
                if last {
                    let exists = read_dir(base).is_some_and(|names| names.contains(&name));
                    if !exists {
                        continue;
                    }
                }
                next.push(join(&name));
                continue;
            }
            let Some(mut names) = read_dir(base) else {
                continue;
            };
            names.sort();
            for name in names {
                if name.starts_with('.') && !comp.starts_with('.') && !comp.starts_with("\\.") {
                    continue;
                }
                if matches(comp, &name) {
                    next.push(join(&name));
                }
            }
        }
        paths = next;
        if paths.is_empty() {
            break;
        }
    }
    if components.is_empty() {
        return Vec::new();
    }
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(matches("*", ""));
        assert!(matches("*", "abc"));
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*c", "ac"));
        assert!(!matches("a*c", "acb"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*.rs", "main.rs"));
        assert!(!matches("*.rs", "main.rc"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(matches("**", "x"));
    }

    #[test]
    fn classes() {
        assert!(matches("[abc]", "b"));
        assert!(!matches("[abc]", "d"));
        assert!(matches("[a-z]x", "qx"));
        assert!(!matches("[!a-z]", "q"));
        assert!(matches("[^a-z]", "Q"));
        assert!(matches("[]]", "]"));
        assert!(matches("[!]]", "a"));
        assert!(matches("x[", "x["), "an unclosed [ is literal");
        assert!(matches("[*]", "*"));
        assert!(!matches("[*]", "a"));
    }

    #[test]
    fn escapes() {
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(matches("a\\?", "a?"));
        assert_eq!(escape("a*b[c]"), "a\\*b\\[c\\]");
        assert!(matches(&escape("a*b"), "a*b"));
        assert!(!has_magic("a\\*b"));
        assert!(has_magic("a[bc]"));
        assert!(!has_magic("a[bc"));
        assert_eq!(unescape("a\\*b"), "a*b");
    }

    #[test]
    fn prefixes_and_suffixes() {
        assert_eq!(match_prefix("*/", "a/b/c", false), Some(2));
        assert_eq!(match_prefix("*/", "a/b/c", true), Some(4));
        assert_eq!(match_suffix(".*", "f.tar.gz", false), Some(5));
        assert_eq!(match_suffix(".*", "f.tar.gz", true), Some(1));
        assert_eq!(match_suffix("x", "abc", true), None);
    }

    fn tree(dir: &str) -> Option<Vec<String>> {
        let names: &[&str] = match dir {
            "" => &["b.rs", "a.rs", "c.txt", ".hidden.rs", "src"],
            "src" => &["lib.rs", "x"],
            "/" => &["bin", "dev"],
            "/bin" => &["sh", "ls", "cat"],
            _ => return None,
        };
        Some(names.iter().map(|s| String::from(*s)).collect())
    }

    #[test]
    fn expands_over_directories() {
        assert_eq!(expand("*.rs", &mut tree), ["a.rs", "b.rs"]);
        assert_eq!(expand(".*.rs", &mut tree), [".hidden.rs"]);
        assert_eq!(expand("src/*.rs", &mut tree), ["src/lib.rs"]);
        assert_eq!(expand("*/lib.rs", &mut tree), ["src/lib.rs"]);
        assert_eq!(expand("*/nope", &mut tree), Vec::<String>::new());
        assert_eq!(expand("/bin/?s", &mut tree), ["/bin/ls"]);
        assert_eq!(expand("/*", &mut tree), ["/bin", "/dev"]);
        assert_eq!(expand("*.zip", &mut tree), Vec::<String>::new());
    }
}
