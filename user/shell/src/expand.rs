//! Word expansion (XCU §2.6): tilde, parameters, command substitution, arithmetic, then field
//! splitting on `IFS`, pathname expansion and quote removal. What the shell owns (variables,
//! running a command substitution, reading a directory) comes through [`Context`].

use crate::arith;
use crate::ast::{Param, ParamName, ParamOp, Program, Word, WordPart};
use crate::glob;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// What expansion needs from the shell.
pub trait Context {
    /// A variable's value (`None`: unset).
    fn var(&self, name: &str) -> Option<String>;
    /// Sets a variable (`${x:=y}`, arithmetic assignments).
    fn set_var(&mut self, name: &str, value: &str) -> Result<(), String>;
    /// The positional parameters `$1`...
    fn positional(&self) -> &[String];
    /// `$?`, `$$`, `$!`, `$-`, `$0` (the others are computed here).
    fn special(&self, c: char) -> String;
    /// Runs a command substitution and returns what it printed.
    fn command_output(&mut self, prog: &Program) -> Result<String, String>;
    /// The names in a directory (`""` is the current one), for pathname expansion.
    fn read_dir(&mut self, dir: &str) -> Option<Vec<String>>;
    /// `set -f`: no pathname expansion.
    fn noglob(&self) -> bool {
        false
    }
}

/// An expanded character and how it may be treated further.
#[derive(Clone, Copy, Debug)]
struct Ch {
    c: char,
    /// Quoted: not a pattern character, not split.
    quoted: bool,
    /// Produced by an unquoted expansion: subject to field splitting.
    split: bool,
}

#[derive(Clone, Copy, Debug)]
enum Piece {
    Ch(Ch),
    /// A field boundary that always separates (between the words of `$@`).
    Break,
    /// Makes the current field exist even if it stays empty (`""`).
    Mark,
}

struct Expander<'a> {
    ctx: &'a mut dyn Context,
    out: Vec<Piece>,
}

fn param_label(name: &ParamName) -> String {
    match name {
        ParamName::Var(n) => n.clone(),
        ParamName::Positional(n) => n.to_string(),
        ParamName::Special(c) => c.to_string(),
    }
}

impl Expander<'_> {
    fn push_str(&mut self, s: &str, quoted: bool, split: bool) {
        for c in s.chars() {
            self.out.push(Piece::Ch(Ch { c, quoted, split }));
        }
    }

    fn parts(&mut self, parts: &[WordPart], quoted: bool) -> Result<(), String> {
        for p in parts {
            self.part(p, quoted)?;
        }
        Ok(())
    }

    fn part(&mut self, part: &WordPart, quoted: bool) -> Result<(), String> {
        match part {
            WordPart::Literal(t) => self.push_str(t, quoted, false),
            WordPart::Quoted(t) => {
                self.out.push(Piece::Mark);
                self.push_str(t, true, false);
            }
            WordPart::Double(inner) => {
                let has_at = inner.iter().any(|p| {
                    matches!(
                        p,
                        WordPart::Param(Param {
                            name: ParamName::Special('@'),
                            op: ParamOp::Value
                        })
                    )
                });
                if !has_at {
                    self.out.push(Piece::Mark);
                }
                self.parts(inner, true)?;
            }
            WordPart::Tilde => {
                let home = self.ctx.var("HOME").unwrap_or_else(|| "/".into());
                self.push_str(&home, true, false);
            }
            WordPart::Param(p) => self.param(p, quoted)?,
            WordPart::Command(prog) => {
                let mut text = self.ctx.command_output(prog)?;
                while text.ends_with('\n') {
                    text.pop();
                }
                self.push_str(&text, quoted, !quoted);
            }
            WordPart::Arith(parts) => {
                let expr = self.text_of(parts)?;
                let mut vars = ArithVars(&mut *self.ctx);
                let v = arith::eval(&expr, &mut vars).map_err(|e| format!("$(({expr})): {e}"))?;
                self.push_str(&v.to_string(), quoted, !quoted);
            }
        }
        Ok(())
    }

    /// Expands parts to plain text (no splitting or globbing).
    fn text_of(&mut self, parts: &[WordPart]) -> Result<String, String> {
        let saved = core::mem::take(&mut self.out);
        let r = self.parts(parts, true);
        let pieces = core::mem::replace(&mut self.out, saved);
        r?;
        Ok(join_pieces(&pieces))
    }

    fn value(&self, name: &ParamName) -> Option<String> {
        match name {
            ParamName::Var(n) => self.ctx.var(n),
            ParamName::Positional(n) => self.ctx.positional().get(n - 1).cloned(),
            ParamName::Special('@' | '*') => {
                let pos = self.ctx.positional();
                (!pos.is_empty()).then(|| pos.join(" "))
            }
            ParamName::Special('#') => Some(self.ctx.positional().len().to_string()),
            ParamName::Special('!') => {
                let v = self.ctx.special('!');
                (!v.is_empty()).then_some(v)
            }
            ParamName::Special(c) => Some(self.ctx.special(*c)),
        }
    }

    fn param(&mut self, p: &Param, quoted: bool) -> Result<(), String> {
        if let (ParamName::Special(c @ ('@' | '*')), ParamOp::Value) = (&p.name, &p.op) {
            let params: Vec<String> = self.ctx.positional().to_vec();
            if quoted && *c == '*' {
                let sep = self
                    .ctx
                    .var("IFS")
                    .map_or(Some(' '), |ifs| ifs.chars().next());
                let mut joined = String::new();
                for (i, a) in params.iter().enumerate() {
                    if i > 0 {
                        joined.extend(sep);
                    }
                    joined.push_str(a);
                }
                self.push_str(&joined, true, false);
                return Ok(());
            }
            for (i, a) in params.iter().enumerate() {
                if i > 0 {
                    self.out.push(Piece::Break);
                }
                if quoted {
                    self.out.push(Piece::Mark);
                }
                self.push_str(a, quoted, !quoted);
            }
            return Ok(());
        }
        let value = self.value(&p.name);
        let unset_or_empty = |colon: bool, v: &Option<String>| match v {
            None => true,
            Some(s) => colon && s.is_empty(),
        };
        match &p.op {
            ParamOp::Value => {
                if let Some(v) = value {
                    self.push_str(&v, quoted, !quoted);
                }
            }
            ParamOp::Length => {
                let n = match &p.name {
                    ParamName::Special('@' | '*') => self.ctx.positional().len(),
                    _ => value.map_or(0, |v| v.chars().count()),
                };
                self.push_str(&n.to_string(), quoted, false);
            }
            ParamOp::Default(colon, w) => {
                if unset_or_empty(*colon, &value) {
                    self.parts(&w.parts, quoted)?;
                } else if let Some(v) = value {
                    self.push_str(&v, quoted, !quoted);
                }
            }
            ParamOp::Assign(colon, w) => {
                if unset_or_empty(*colon, &value) {
                    let ParamName::Var(name) = &p.name else {
                        return Err(format!("${}: cannot assign this way", param_label(&p.name)));
                    };
                    let v = self.text_of(&w.parts)?;
                    self.ctx.set_var(name, &v)?;
                    self.push_str(&v, quoted, !quoted);
                } else if let Some(v) = value {
                    self.push_str(&v, quoted, !quoted);
                }
            }
            ParamOp::Error(colon, w) => {
                if unset_or_empty(*colon, &value) {
                    let msg = self.text_of(&w.parts)?;
                    let msg = if msg.is_empty() {
                        String::from(if value.is_none() {
                            "parameter not set"
                        } else {
                            "parameter null"
                        })
                    } else {
                        msg
                    };
                    return Err(format!("{}: {msg}", param_label(&p.name)));
                } else if let Some(v) = value {
                    self.push_str(&v, quoted, !quoted);
                }
            }
            ParamOp::Alternative(colon, w) => {
                if !unset_or_empty(*colon, &value) {
                    self.parts(&w.parts, quoted)?;
                }
            }
            ParamOp::RemoveSuffix(longest, w) | ParamOp::RemovePrefix(longest, w) => {
                let v = value.unwrap_or_default();
                let pat = self.pattern(w)?;
                let rest = if matches!(p.op, ParamOp::RemoveSuffix(..)) {
                    match glob::match_suffix(&pat, &v, *longest) {
                        Some(start) => &v[..start],
                        None => &v[..],
                    }
                } else {
                    match glob::match_prefix(&pat, &v, *longest) {
                        Some(end) => &v[end..],
                        None => &v[..],
                    }
                };
                let rest = String::from(rest);
                self.push_str(&rest, quoted, !quoted);
            }
        }
        Ok(())
    }

    fn pattern(&mut self, w: &Word) -> Result<String, String> {
        let saved = core::mem::take(&mut self.out);
        let r = self.parts(&w.parts, false);
        let pieces = core::mem::replace(&mut self.out, saved);
        r?;
        Ok(pattern_of(&pieces))
    }
}

/// Arithmetic's view of the shell's variables.
struct ArithVars<'a>(&'a mut dyn Context);

impl arith::Vars for ArithVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.var(name)
    }
    fn set(&mut self, name: &str, value: i64) -> Result<(), String> {
        self.0.set_var(name, &value.to_string())
    }
}

fn join_pieces(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Ch(ch) => s.push(ch.c),
            Piece::Break => s.push(' '),
            Piece::Mark => {}
        }
    }
    s
}

/// A pattern: quoted characters are escaped.
fn pattern_of(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Ch(ch) if ch.quoted && matches!(ch.c, '*' | '?' | '[' | ']' | '\\') => {
                s.push('\\');
                s.push(ch.c);
            }
            Piece::Ch(ch) => s.push(ch.c),
            Piece::Break => s.push(' '),
            Piece::Mark => {}
        }
    }
    s
}

fn expand_pieces(ctx: &mut dyn Context, word: &Word) -> Result<Vec<Piece>, String> {
    let mut e = Expander {
        ctx,
        out: Vec::new(),
    };
    e.parts(&word.parts, false)?;
    Ok(e.out)
}

/// Splits expanded pieces into fields on the unquoted expansion characters in `ifs`.
fn split_fields(pieces: &[Piece], ifs: &str) -> Vec<Vec<Ch>> {
    let mut fields = Vec::new();
    let mut cur: Vec<Ch> = Vec::new();
    let mut exists = false;
    // A field was just ended by IFS white space (a following non-white delimiter belongs to
    // the same separator).
    let mut after_white = false;
    for p in pieces {
        match *p {
            Piece::Mark => exists = true,
            Piece::Break => {
                if exists || !cur.is_empty() {
                    fields.push(core::mem::take(&mut cur));
                }
                exists = false;
                after_white = false;
            }
            Piece::Ch(ch) if ch.split && ifs.contains(ch.c) => {
                let white = matches!(ch.c, ' ' | '\t' | '\n');
                if white {
                    if exists || !cur.is_empty() {
                        fields.push(core::mem::take(&mut cur));
                        after_white = true;
                    }
                } else if !(cur.is_empty() && !exists && after_white) {
                    fields.push(core::mem::take(&mut cur));
                    after_white = false;
                } else {
                    after_white = false;
                }
                exists = false;
            }
            Piece::Ch(ch) => {
                cur.push(ch);
                exists = true;
                after_white = false;
            }
        }
    }
    if exists || !cur.is_empty() {
        fields.push(cur);
    }
    fields
}

/// Expands a word to fields: splitting and pathname expansion included (command arguments,
/// `for` lists).
pub fn expand_word(ctx: &mut dyn Context, word: &Word) -> Result<Vec<String>, String> {
    let pieces = expand_pieces(ctx, word)?;
    let ifs = ctx.var("IFS").unwrap_or_else(|| " \t\n".into());
    let noglob = ctx.noglob();
    let mut out = Vec::new();
    for field in split_fields(&pieces, &ifs) {
        let magic = !noglob
            && field
                .iter()
                .any(|c| !c.quoted && matches!(c.c, '*' | '?' | '['));
        let text: String = field.iter().map(|c| c.c).collect();
        if magic {
            let pieces: Vec<Piece> = field.iter().map(|c| Piece::Ch(*c)).collect();
            let pat = pattern_of(&pieces);
            if glob::has_magic(&pat) {
                let found = glob::expand(&pat, &mut |dir| ctx.read_dir(dir));
                if !found.is_empty() {
                    out.extend(found);
                    continue;
                }
            }
        }
        out.push(text);
    }
    Ok(out)
}

/// Expands several words to fields.
pub fn expand_words(ctx: &mut dyn Context, words: &[Word]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for w in words {
        out.extend(expand_word(ctx, w)?);
    }
    Ok(out)
}

/// Expands a word to one string, without splitting or pathname expansion (assignments,
/// redirection targets, `case` words, here-documents).
pub fn expand_string(ctx: &mut dyn Context, word: &Word) -> Result<String, String> {
    Ok(join_pieces(&expand_pieces(ctx, word)?))
}

/// Expands a word to a pattern for [`glob::matches`] (`case` patterns): quoted characters
/// match themselves.
pub fn expand_pattern(ctx: &mut dyn Context, word: &Word) -> Result<String, String> {
    Ok(pattern_of(&expand_pieces(ctx, word)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_all;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        vars: HashMap<String, String>,
        args: Vec<String>,
        noglob: bool,
    }

    impl Context for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn set_var(&mut self, name: &str, value: &str) -> Result<(), String> {
            self.vars.insert(name.into(), value.into());
            Ok(())
        }
        fn positional(&self) -> &[String] {
            &self.args
        }
        fn special(&self, c: char) -> String {
            match c {
                '?' => "0".into(),
                '$' => "42".into(),
                '0' => "sh".into(),
                _ => String::new(),
            }
        }
        fn command_output(&mut self, prog: &Program) -> Result<String, String> {
            // A tiny stand-in: `echo WORDS` prints its expanded words.
            let cmd = &prog.items[0].and_or.first.commands[0];
            let crate::ast::Command::Simple(s) = cmd else {
                return Err("unsupported".into());
            };
            let words = expand_words(self, &s.words)?;
            if words.first().map(String::as_str) == Some("echo") {
                Ok(format!("{}\n\n", words[1..].join(" ")))
            } else {
                Err(format!("{}: not in the fake", words[0]))
            }
        }
        fn read_dir(&mut self, dir: &str) -> Option<Vec<String>> {
            match dir {
                "" => Some(vec!["a.txt".into(), "b.txt".into(), "c.rs".into()]),
                _ => None,
            }
        }
        fn noglob(&self) -> bool {
            self.noglob
        }
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.vars.insert("x".into(), "hello world".into());
        f.vars.insert("empty".into(), String::new());
        f.vars.insert("HOME".into(), "/usr/me".into());
        f.vars.insert("path".into(), "/a/b/c.tar.gz".into());
        f.vars.insert("star".into(), "*.txt".into());
        f.args = vec!["one".into(), "two words".into(), String::new()];
        f
    }

    /// The fields of the words of `echo WORDS`.
    fn fields(f: &mut Fake, src: &str) -> Result<Vec<String>, String> {
        let prog = parse_all(&format!("echo {src}"), 1).map_err(|e| e.to_string())?;
        let crate::ast::Command::Simple(s) = &prog.items[0].and_or.first.commands[0] else {
            panic!("not simple")
        };
        Ok(expand_words(f, &s.words)?[1..].to_vec())
    }

    fn ok(src: &str) -> Vec<String> {
        fields(&mut fake(), src).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    #[test]
    fn quoting() {
        assert_eq!(ok("a 'b c' \"d e\" f\\ g"), ["a", "b c", "d e", "f g"]);
        assert_eq!(ok("'' \"\""), ["", ""]);
        assert_eq!(ok("'$x' \"$x\" \\$x"), ["$x", "hello world", "$x"]);
        assert_eq!(ok("a\"b\"'c'd"), ["abcd"]);
        assert_eq!(ok("\"a\\\"b\\$c\\\\d\\e\""), ["a\"b$c\\d\\e"]);
        assert_eq!(ok("'#tmpfs' a#b"), ["#tmpfs", "a#b"]);
        assert_eq!(ok("x #comment"), ["x"]);
    }

    #[test]
    fn parameters() {
        assert_eq!(ok("$x"), ["hello", "world"]);
        assert_eq!(ok("${x}s"), ["hello", "worlds"]);
        assert_eq!(ok("$empty"), Vec::<String>::new());
        assert_eq!(ok("\"$empty\""), [""]);
        assert_eq!(ok("$unset"), Vec::<String>::new());
        assert_eq!(
            ok("${unset:-def} ${empty-def} ${empty:-def}"),
            ["def", "def"]
        );
        assert_eq!(ok("${x:+alt} ${unset:+alt}"), ["alt"]);
        assert_eq!(ok("\"${unset:-a b}\""), ["a b"]);
        assert_eq!(ok("${#x} ${#unset} ${#}"), ["11", "0", "3"]);
        assert_eq!(
            ok("$1 $2 $# $$ $0 $?"),
            ["one", "two", "words", "3", "42", "sh", "0"]
        );
        assert_eq!(ok("\"$2\""), ["two words"]);
        assert_eq!(ok("${path%.*} ${path%%.*}"), ["/a/b/c.tar", "/a/b/c"]);
        assert_eq!(ok("${path#*/} ${path##*/}"), ["a/b/c.tar.gz", "c.tar.gz"]);
        assert_eq!(ok("~ ~/bin a~"), ["/usr/me", "/usr/me/bin", "a~"]);
        let mut f = fake();
        assert_eq!(fields(&mut f, "${new:=set} $new").unwrap(), ["set", "set"]);
        let err = fields(&mut fake(), "${unset:?it is missing}").unwrap_err();
        assert_eq!(err, "unset: it is missing");
        let err = fields(&mut fake(), "${unset?}").unwrap_err();
        assert_eq!(err, "unset: parameter not set");
    }

    #[test]
    fn at_and_star() {
        assert_eq!(ok("\"$@\""), ["one", "two words", ""]);
        assert_eq!(ok("$@"), ["one", "two", "words"]);
        assert_eq!(ok("\"$*\""), ["one two words "]);
        assert_eq!(ok("$*"), ["one", "two", "words"]);
        assert_eq!(ok("\"a$@b\""), ["aone", "two words", "b"]);
        let mut f = fake();
        f.args.clear();
        assert_eq!(fields(&mut f, "\"$@\"").unwrap(), Vec::<String>::new());
        assert_eq!(fields(&mut f, "\"$*\"").unwrap(), [""]);
    }

    #[test]
    fn field_splitting_with_ifs() {
        let mut f = fake();
        f.vars.insert("IFS".into(), ":".into());
        f.vars.insert("p".into(), "a:b::c:".into());
        assert_eq!(fields(&mut f, "$p").unwrap(), ["a", "b", "", "c"]);
        f.vars.insert("IFS".into(), " :".into());
        f.vars.insert("p".into(), " a : b  c".into());
        assert_eq!(fields(&mut f, "$p").unwrap(), ["a", "b", "c"]);
        f.vars.insert("IFS".into(), String::new());
        assert_eq!(fields(&mut f, "$x").unwrap(), ["hello world"]);
    }

    #[test]
    fn command_substitution_and_arithmetic() {
        assert_eq!(ok("$(echo a b)"), ["a", "b"]);
        assert_eq!(ok("\"$(echo a  b)\""), ["a b"]);
        assert_eq!(ok("x`echo y`z"), ["xyz"]);
        assert_eq!(ok("$((1 + 2 * 3))"), ["7"]);
        assert_eq!(ok("$(( $# * 10 ))"), ["30"]);
        assert_eq!(ok("$((${#x} + 1))"), ["12"]);
        let mut f = fake();
        f.vars.insert("n".into(), "4".into());
        assert_eq!(fields(&mut f, "$((n = n + 1)) $n").unwrap(), ["5", "5"]);
        assert!(
            fields(&mut fake(), "$((1/0))")
                .unwrap_err()
                .contains("division by zero")
        );
        assert!(
            fields(&mut fake(), "$(nope)")
                .unwrap_err()
                .contains("not in the fake")
        );
    }

    #[test]
    fn pathname_expansion() {
        assert_eq!(ok("*.txt"), ["a.txt", "b.txt"]);
        assert_eq!(ok("?.rs"), ["c.rs"]);
        assert_eq!(ok("[ab].txt"), ["a.txt", "b.txt"]);
        assert_eq!(ok("*.zip"), ["*.zip"], "no match: the pattern stays");
        assert_eq!(ok("'*.txt' \"*\".txt \\*.txt"), ["*.txt", "*.txt", "*.txt"]);
        assert_eq!(
            ok("$star"),
            ["a.txt", "b.txt"],
            "unquoted expansions are globbed"
        );
        assert_eq!(ok("\"$star\""), ["*.txt"]);
        let mut f = fake();
        f.noglob = true;
        assert_eq!(fields(&mut f, "*.txt").unwrap(), ["*.txt"]);
    }

    #[test]
    fn strings_and_patterns() {
        let mut f = fake();
        let w = crate::ast::Word {
            parts: vec![
                WordPart::Literal("*".into()),
                WordPart::Quoted("*".into()),
                WordPart::Param(Param {
                    name: ParamName::Var("x".into()),
                    op: ParamOp::Value,
                }),
            ],
        };
        assert_eq!(expand_string(&mut f, &w).unwrap(), "**hello world");
        assert_eq!(expand_pattern(&mut f, &w).unwrap(), "*\\*hello world");
    }
}
