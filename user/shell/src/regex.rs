//! A small regular-expression matcher for `grep`, in the extended syntax (`grep -E`):
//! `.`, `[...]` (with ranges, `^` negation and `[:alpha:]`-style classes), `^`, `$`, `*`,
//! `+`, `?`, `{m,n}`, `(...)`, `|`, and `\` to quote the next character. Matching backtracks;
//! patterns are meant to be short.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

#[derive(Clone, Debug)]
enum ClassItem {
    Char(char),
    Range(char, char),
    Named(&'static str),
}

#[derive(Clone, Debug)]
enum Node {
    Char(char),
    Any,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
    Start,
    End,
    Group(Box<Alt>),
    Repeat(Box<Node>, usize, Option<usize>),
}

#[derive(Clone, Debug)]
struct Alt(Vec<Vec<Node>>);

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Regex {
    root: Alt,
    ignore_case: bool,
}

struct Parser {
    p: Vec<char>,
    i: usize,
}

const NAMED: &[&str] = &[
    "alpha", "digit", "alnum", "upper", "lower", "space", "punct", "xdigit",
];

fn named_matches(name: &str, c: char) -> bool {
    match name {
        "alpha" => c.is_alphabetic(),
        "digit" => c.is_ascii_digit(),
        "alnum" => c.is_alphanumeric(),
        "upper" => c.is_uppercase(),
        "lower" => c.is_lowercase(),
        "space" => c.is_whitespace(),
        "punct" => c.is_ascii_punctuation(),
        "xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

impl Parser {
    fn alt(&mut self, depth: usize) -> Result<Alt, String> {
        let mut branches = alloc::vec![self.seq(depth)?];
        while self.p.get(self.i) == Some(&'|') {
            self.i += 1;
            branches.push(self.seq(depth)?);
        }
        Ok(Alt(branches))
    }

    fn seq(&mut self, depth: usize) -> Result<Vec<Node>, String> {
        let mut nodes: Vec<Node> = Vec::new();
        while let Some(&c) = self.p.get(self.i) {
            let node = match c {
                '|' => break,
                ')' if depth > 0 => break,
                '(' => {
                    self.i += 1;
                    let inner = self.alt(depth + 1)?;
                    if self.p.get(self.i) != Some(&')') {
                        return Err("missing \")\"".into());
                    }
                    self.i += 1;
                    Node::Group(Box::new(inner))
                }
                '*' | '+' | '?' | '{' => {
                    let Some(last) = nodes.pop() else {
                        // A repetition with nothing before it is literal.
                        self.i += 1;
                        nodes.push(Node::Char(c));
                        continue;
                    };
                    let (min, max) = self.repetition()?;
                    nodes.push(Node::Repeat(Box::new(last), min, max));
                    continue;
                }
                '.' => {
                    self.i += 1;
                    Node::Any
                }
                '^' => {
                    self.i += 1;
                    Node::Start
                }
                '$' => {
                    self.i += 1;
                    Node::End
                }
                '[' => self.class()?,
                '\\' => {
                    self.i += 1;
                    let Some(&e) = self.p.get(self.i) else {
                        return Err("trailing backslash".into());
                    };
                    self.i += 1;
                    Node::Char(e)
                }
                _ => {
                    self.i += 1;
                    Node::Char(c)
                }
            };
            nodes.push(node);
        }
        Ok(nodes)
    }

    fn repetition(&mut self) -> Result<(usize, Option<usize>), String> {
        let c = self.p[self.i];
        self.i += 1;
        Ok(match c {
            '*' => (0, None),
            '+' => (1, None),
            '?' => (0, Some(1)),
            _ => {
                let close = self.p[self.i..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or("missing \"}\"")?;
                let body: String = self.p[self.i..self.i + close].iter().collect();
                self.i += close + 1;
                let bad = || format!("bad repetition {{{body}}}");
                match body.split_once(',') {
                    None => {
                        let n = body.parse().map_err(|_| bad())?;
                        (n, Some(n))
                    }
                    Some((a, "")) => (a.parse().map_err(|_| bad())?, None),
                    Some((a, b)) => {
                        let min = if a.is_empty() {
                            0
                        } else {
                            a.parse().map_err(|_| bad())?
                        };
                        (min, Some(b.parse().map_err(|_| bad())?))
                    }
                }
            }
        })
    }

    fn class(&mut self) -> Result<Node, String> {
        self.i += 1;
        let negated = self.p.get(self.i) == Some(&'^');
        if negated {
            self.i += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(&c) = self.p.get(self.i) else {
                return Err("missing \"]\"".into());
            };
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            if c == '[' && self.p.get(self.i + 1) == Some(&':') {
                let rest: String = self.p[self.i + 2..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[..end];
                    let known = NAMED
                        .iter()
                        .find(|n| **n == name)
                        .ok_or_else(|| format!("unknown class [:{name}:]"))?;
                    items.push(ClassItem::Named(known));
                    self.i += 2 + name.chars().count() + 2;
                    continue;
                }
            }
            self.i += 1;
            if self.p.get(self.i) == Some(&'-') && self.p.get(self.i + 1).is_some_and(|&n| n != ']')
            {
                let hi = self.p[self.i + 1];
                self.i += 2;
                items.push(ClassItem::Range(c, hi));
            } else {
                items.push(ClassItem::Char(c));
            }
        }
        Ok(Node::Class { negated, items })
    }
}

struct Matcher<'a> {
    text: &'a [char],
    ignore_case: bool,
}

fn fold(c: char, ignore: bool) -> char {
    if ignore { c.to_ascii_lowercase() } else { c }
}

impl Matcher<'_> {
    fn alt(&self, alt: &Alt, pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        alt.0.iter().any(|seq| self.seq(seq, pos, k))
    }

    fn seq(&self, seq: &[Node], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let Some((first, rest)) = seq.split_first() else {
            return k(pos);
        };
        if let Node::Repeat(node, min, max) = first {
            return self.repeat(node, *min, *max, 0, pos, rest, k);
        }
        self.node(first, pos, &mut |p| self.seq(rest, p, k))
    }

    #[allow(clippy::too_many_arguments)]
    fn repeat(
        &self,
        node: &Node,
        min: usize,
        max: Option<usize>,
        count: usize,
        pos: usize,
        rest: &[Node],
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        // Greedy: one more if allowed (and progress is made), else what follows.
        if max.is_none_or(|m| count < m)
            && self.node(node, pos, &mut |p| {
                p != pos && self.repeat(node, min, max, count + 1, p, rest, k)
            })
        {
            return true;
        }
        count >= min && self.seq(rest, pos, k)
    }

    fn node(&self, node: &Node, pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let here = self.text.get(pos).copied();
        match node {
            Node::Char(c) => {
                here.is_some_and(|h| fold(h, self.ignore_case) == fold(*c, self.ignore_case))
                    && k(pos + 1)
            }
            Node::Any => here.is_some() && k(pos + 1),
            Node::Class { negated, items } => {
                let Some(h) = here else { return false };
                let h = fold(h, self.ignore_case);
                let found = items.iter().any(|item| match *item {
                    ClassItem::Char(c) => fold(c, self.ignore_case) == h,
                    ClassItem::Range(lo, hi) => {
                        (lo..=hi).contains(&h)
                            || (self.ignore_case && (lo..=hi).contains(&h.to_ascii_uppercase()))
                    }
                    ClassItem::Named(n) => named_matches(n, h),
                });
                found != *negated && k(pos + 1)
            }
            Node::Start => pos == 0 && k(pos),
            Node::End => pos == self.text.len() && k(pos),
            Node::Group(alt) => self.alt(alt, pos, k),
            Node::Repeat(inner, min, max) => self.repeat(inner, *min, *max, 0, pos, &[], k),
        }
    }
}

impl Regex {
    /// Compiles `pattern`.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
        let mut p = Parser {
            p: pattern.chars().collect(),
            i: 0,
        };
        let root = p.alt(0)?;
        if p.i < p.p.len() {
            return Err("unmatched \")\"".into());
        }
        Ok(Regex { root, ignore_case })
    }

    /// Whether the pattern matches somewhere in `line`.
    pub fn is_match(&self, line: &str) -> bool {
        let text: Vec<char> = line.chars().collect();
        let m = Matcher {
            text: &text,
            ignore_case: self.ignore_case,
        };
        (0..=text.len()).any(|start| m.alt(&self.root, start, &mut |_| true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p, false).unwrap().is_match(s)
    }

    #[test]
    fn literals_and_anchors() {
        assert!(m("abc", "xxabcxx"));
        assert!(!m("abd", "xxabcxx"));
        assert!(m("^abc", "abcdef"));
        assert!(!m("^bc", "abc"));
        assert!(m("def$", "abcdef"));
        assert!(!m("de$", "abcdef"));
        assert!(m("^$", ""));
        assert!(m("", "anything"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
    }

    #[test]
    fn repetition() {
        assert!(m("ab*c", "ac"));
        assert!(m("ab*c", "abbbc"));
        assert!(m("ab+c", "abc"));
        assert!(!m("ab+c", "ac"));
        assert!(m("colou?r", "color"));
        assert!(m("colou?r", "colour"));
        assert!(m("^a.*z$", "abcz"));
        assert!(m("^x{2,3}$", "xxx"));
        assert!(!m("^x{2,3}$", "xxxx"));
        assert!(m("^x{2}$", "xx"));
        assert!(m("^x{2,}$", "xxxxx"));
        assert!(m("*a", "*a"), "a leading * is literal");
        assert!(m("^(ab)*$", "ababab"));
        assert!(!m("^(ab)*$", "ababa"));
        assert!(m("^(a*)*b", "aaab"));
    }

    #[test]
    fn classes_and_alternation() {
        assert!(m("[0-9]+", "abc123"));
        assert!(!m("^[0-9]+$", "12a"));
        assert!(m("[^a-z]", "abC"));
        assert!(m("[[:digit:]][[:alpha:]]", "1a"));
        assert!(m("[]x]", "]"));
        assert!(m("cat|dog", "hotdog"));
        assert!(m("^(cat|dog)s$", "cats"));
        assert!(!m("^(cat|dog)s$", "cows"));
        assert!(Regex::new("ABC", true).unwrap().is_match("xabcx"));
        assert!(Regex::new("[a-c]", true).unwrap().is_match("B"));
    }

    #[test]
    fn errors() {
        assert!(Regex::new("(ab", false).is_err());
        assert!(m("ab)", "ab)"), "an unmatched ) is literal");
        assert!(Regex::new("[ab", false).is_err());
        assert!(Regex::new("a{x}", false).is_err());
        assert!(Regex::new("[[:bogus:]]", false).is_err());
        assert!(Regex::new("a\\", false).is_err());
    }
}
