//! The parser: source text to [`Program`]s, one complete command (up to a newline) at a time,
//! so that a script runs as it is read and an interactive shell can tell an incomplete command
//! (read another line) from a syntax error.
//!
//! Tokens are recognized as POSIX describes (XCU §2.3, §2.10): operators, words with their
//! quoting kept, IO numbers; reserved words are words recognized only where a command may
//! start. Command substitutions are parsed recursively from the same text, and here-document
//! bodies are read when the newline after their operator is reached.

use crate::ast::*;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Why parsing stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line where the problem was found.
    pub line: usize,
    /// What it is.
    pub kind: ErrorKind,
}

/// Incomplete input or a real error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text ended inside a construct (named): more input could complete it.
    Incomplete(&'static str),
    /// A syntax error.
    Syntax(String),
}

impl ParseError {
    /// Whether more input could make the text parse.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.kind, ErrorKind::Incomplete(_))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Incomplete(what) => {
                write!(
                    f,
                    "syntax error: unexpected end of file (unterminated {what})"
                )
            }
            ErrorKind::Syntax(msg) => write!(f, "syntax error: {msg}"),
        }
    }
}

type Result<T> = core::result::Result<T, ParseError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    AndIf,
    OrIf,
    DSemi,
    Semi,
    Amp,
    Pipe,
    LParen,
    RParen,
    Less,
    Great,
    DGreat,
    DLess,
    DLessDash,
    LessAnd,
    GreatAnd,
    LessGreat,
    Clobber,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::AndIf => "&&",
            Op::OrIf => "||",
            Op::DSemi => ";;",
            Op::Semi => ";",
            Op::Amp => "&",
            Op::Pipe => "|",
            Op::LParen => "(",
            Op::RParen => ")",
            Op::Less => "<",
            Op::Great => ">",
            Op::DGreat => ">>",
            Op::DLess => "<<",
            Op::DLessDash => "<<-",
            Op::LessAnd => "<&",
            Op::GreatAnd => ">&",
            Op::LessGreat => "<>",
            Op::Clobber => ">|",
        }
    }

    fn is_redirect(self) -> bool {
        matches!(
            self,
            Op::Less
                | Op::Great
                | Op::DGreat
                | Op::DLess
                | Op::DLessDash
                | Op::LessAnd
                | Op::GreatAnd
                | Op::LessGreat
                | Op::Clobber
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(Word),
    IoNumber(u32),
    Op(Op),
    Newline,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("\"{}\"", w.as_plain().unwrap_or_else(|| "word".into())),
            Tok::IoNumber(n) => format!("\"{n}\""),
            Tok::Op(op) => format!("\"{}\"", op.text()),
            Tok::Newline => "newline".into(),
            Tok::Eof => "end of file".into(),
        }
    }

    fn keyword(&self) -> Option<&str> {
        match self {
            Tok::Word(w) => w.as_unquoted().filter(|s| RESERVED.contains(s)),
            _ => None,
        }
    }
}

const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "{",
    "}", "!", "in",
];

/// Reserved words that end a list rather than start a command.
const CLOSERS: &[&str] = &["then", "else", "elif", "fi", "do", "done", "esac", "}"];

struct PendingHereDoc {
    id: usize,
    delimiter: String,
    strip_tabs: bool,
    expand: bool,
}

/// Whether `s` is a valid variable name.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_meta(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')'
    )
}

/// The parser over one text.
pub struct Parser {
    src: Vec<char>,
    pos: usize,
    line: usize,
    peeked: Option<(Tok, usize)>,
    pending: Vec<PendingHereDoc>,
    bodies: BTreeMap<usize, Word>,
    next_heredoc: usize,
}

/// Parses a whole text (a `-c` string, a command substitution in backquotes, `eval`'s words).
pub fn parse_all(src: &str, first_line: usize) -> Result<Program> {
    let mut p = Parser::new(src, first_line);
    let mut all = Program::default();
    while let Some(prog) = p.next_command()? {
        all.items.extend(prog.items);
    }
    Ok(all)
}

impl Parser {
    /// A parser for `src`, whose first line is `first_line`.
    pub fn new(src: &str, first_line: usize) -> Parser {
        Parser {
            src: src.chars().collect(),
            pos: 0,
            line: first_line,
            peeked: None,
            pending: Vec::new(),
            bodies: BTreeMap::new(),
            next_heredoc: 0,
        }
    }

    /// The line the parser has reached.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next complete command (the and-or lists up to a newline or the end); `None` at the
    /// end of the text.
    pub fn next_command(&mut self) -> Result<Option<Program>> {
        self.skip_newlines()?;
        if self.peek()? == &Tok::Eof {
            return Ok(None);
        }
        let mut prog = Program::default();
        loop {
            if !self.starts_command()? {
                let (tok, line) = self.take()?;
                return Err(self.unexpected(&tok, line));
            }
            let line = self.peek_line()?;
            let and_or = self.parse_and_or()?;
            let mut item = Item {
                and_or,
                background: false,
                line,
            };
            match self.peek()? {
                Tok::Op(Op::Amp) | Tok::Op(Op::Semi) => {
                    item.background = self.peek()? == &Tok::Op(Op::Amp);
                    self.take()?;
                    prog.items.push(item);
                    match self.peek()? {
                        Tok::Newline => {
                            self.take()?;
                            break;
                        }
                        Tok::Eof => break,
                        _ => {}
                    }
                }
                Tok::Newline => {
                    self.take()?;
                    prog.items.push(item);
                    break;
                }
                Tok::Eof => {
                    prog.items.push(item);
                    break;
                }
                _ => {
                    let (tok, line) = self.take()?;
                    return Err(self.unexpected(&tok, line));
                }
            }
        }
        if !self.pending.is_empty() {
            return Err(self.incomplete("here-document"));
        }
        self.fill_program(&mut prog);
        Ok(Some(prog))
    }

    // ---- tokens ----

    fn peek(&mut self) -> Result<&Tok> {
        if self.peeked.is_none() {
            let t = self.next_token()?;
            self.peeked = Some(t);
        }
        Ok(&self.peeked.as_ref().expect("just set").0)
    }

    fn peek_line(&mut self) -> Result<usize> {
        self.peek()?;
        Ok(self.peeked.as_ref().expect("just set").1)
    }

    fn take(&mut self) -> Result<(Tok, usize)> {
        self.peek()?;
        Ok(self.peeked.take().expect("just set"))
    }

    fn unexpected(&self, tok: &Tok, line: usize) -> ParseError {
        if *tok == Tok::Eof {
            return ParseError {
                line,
                kind: ErrorKind::Incomplete("command"),
            };
        }
        ParseError {
            line,
            kind: ErrorKind::Syntax(format!("unexpected {}", tok.describe())),
        }
    }

    fn incomplete(&self, what: &'static str) -> ParseError {
        ParseError {
            line: self.line,
            kind: ErrorKind::Incomplete(what),
        }
    }

    fn cur(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn at(&self, off: usize) -> Option<char> {
        self.src.get(self.pos + off).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.cur()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn next_token(&mut self) -> Result<(Tok, usize)> {
        loop {
            match self.cur() {
                Some(' ' | '\t' | '\r') => {
                    self.pos += 1;
                }
                Some('\\') if self.at(1) == Some('\n') => {
                    self.bump();
                    self.bump();
                    if self.cur().is_none() {
                        return Err(self.incomplete("line"));
                    }
                }
                Some('#') => {
                    while !matches!(self.cur(), None | Some('\n')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let Some(c) = self.cur() else {
            return Ok((Tok::Eof, line));
        };
        if c == '\n' {
            self.bump();
            self.read_heredocs()?;
            return Ok((Tok::Newline, line));
        }
        if let Some(op) = self.operator() {
            return Ok((Tok::Op(op), line));
        }
        if c.is_ascii_digit() {
            let mut n = 0;
            while self.at(n).is_some_and(|c| c.is_ascii_digit()) {
                n += 1;
            }
            if matches!(self.at(n), Some('<' | '>')) {
                let digits: String = self.src[self.pos..self.pos + n].iter().collect();
                if let Ok(fd) = digits.parse() {
                    self.pos += n;
                    return Ok((Tok::IoNumber(fd), line));
                }
            }
        }
        let word = self.read_word()?;
        Ok((Tok::Word(word), line))
    }

    fn operator(&mut self) -> Option<Op> {
        let c = self.cur()?;
        let n = self.at(1);
        let (op, len) = match (c, n) {
            ('&', Some('&')) => (Op::AndIf, 2),
            ('&', _) => (Op::Amp, 1),
            ('|', Some('|')) => (Op::OrIf, 2),
            ('|', _) => (Op::Pipe, 1),
            (';', Some(';')) => (Op::DSemi, 2),
            (';', _) => (Op::Semi, 1),
            ('(', _) => (Op::LParen, 1),
            (')', _) => (Op::RParen, 1),
            ('<', Some('<')) if self.at(2) == Some('-') => (Op::DLessDash, 3),
            ('<', Some('<')) => (Op::DLess, 2),
            ('<', Some('&')) => (Op::LessAnd, 2),
            ('<', Some('>')) => (Op::LessGreat, 2),
            ('<', _) => (Op::Less, 1),
            ('>', Some('>')) => (Op::DGreat, 2),
            ('>', Some('&')) => (Op::GreatAnd, 2),
            ('>', Some('|')) => (Op::Clobber, 2),
            ('>', _) => (Op::Great, 1),
            _ => return None,
        };
        self.pos += len;
        Some(op)
    }

    // ---- words ----

    fn read_word(&mut self) -> Result<Word> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let start = self.pos;
        while let Some(c) = self.cur() {
            if is_meta(c) {
                break;
            }
            match c {
                '~' if self.pos == start && self.at(1).is_none_or(|n| n == '/' || is_meta(n)) => {
                    self.pos += 1;
                    parts.push(WordPart::Tilde);
                }
                '\\' => {
                    self.pos += 1;
                    match self.bump() {
                        Some('\n') if self.cur().is_none() => {
                            return Err(self.incomplete("line"));
                        }
                        Some('\n') => {}
                        Some(e) => {
                            flush(&mut parts, &mut lit);
                            parts.push(WordPart::Quoted(e.to_string()));
                        }
                        None => lit.push('\\'),
                    }
                }
                '\'' => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(WordPart::Quoted(self.read_single()?));
                }
                '"' => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(WordPart::Double(self.read_double()?));
                }
                '$' => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(self.read_dollar(false)?);
                }
                '`' => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(self.read_backquote()?);
                }
                _ => {
                    self.bump();
                    lit.push(c);
                }
            }
        }
        flush(&mut parts, &mut lit);
        Ok(Word { parts })
    }

    fn read_single(&mut self) -> Result<String> {
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.incomplete("'...' quote")),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn read_double(&mut self) -> Result<Vec<WordPart>> {
        let mut parts = Vec::new();
        let mut text = String::new();
        loop {
            match self.cur() {
                None => return Err(self.incomplete("\"...\" quote")),
                Some('"') => {
                    self.pos += 1;
                    flush_quoted(&mut parts, &mut text);
                    return Ok(parts);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.bump() {
                        Some('\n') => {}
                        Some(c @ ('$' | '`' | '"' | '\\')) => text.push(c),
                        Some(c) => {
                            text.push('\\');
                            text.push(c);
                        }
                        None => return Err(self.incomplete("\"...\" quote")),
                    }
                }
                Some('$') => {
                    self.pos += 1;
                    flush_quoted(&mut parts, &mut text);
                    parts.push(self.read_dollar(true)?);
                }
                Some('`') => {
                    self.pos += 1;
                    flush_quoted(&mut parts, &mut text);
                    parts.push(self.read_backquote()?);
                }
                Some(_) => text.push(self.bump().expect("checked")),
            }
        }
    }

    /// After a `$`.
    fn read_dollar(&mut self, quoted: bool) -> Result<WordPart> {
        let plain = |quoted: bool| {
            if quoted {
                WordPart::Quoted("$".into())
            } else {
                WordPart::Literal("$".into())
            }
        };
        let Some(c) = self.cur() else {
            return Ok(plain(quoted));
        };
        let name = match c {
            '{' => {
                self.pos += 1;
                return self.read_braced();
            }
            '(' if self.at(1) == Some('(') => {
                self.pos += 2;
                return self.read_arith();
            }
            '(' => {
                self.pos += 1;
                let prog = self.parse_compound_list()?;
                match self.take()? {
                    (Tok::Op(Op::RParen), _) => return Ok(WordPart::Command(prog)),
                    (Tok::Eof, _) => return Err(self.incomplete("$(...)")),
                    (t, line) => return Err(self.unexpected(&t, line)),
                }
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(c) = self
                    .cur()
                    .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
                {
                    name.push(c);
                    self.pos += 1;
                }
                ParamName::Var(name)
            }
            '0' => {
                self.pos += 1;
                ParamName::Special('0')
            }
            c if c.is_ascii_digit() => {
                self.pos += 1;
                ParamName::Positional(c as usize - '0' as usize)
            }
            '@' | '*' | '#' | '?' | '-' | '$' | '!' => {
                self.pos += 1;
                ParamName::Special(c)
            }
            _ => return Ok(plain(quoted)),
        };
        Ok(WordPart::Param(Param {
            name,
            op: ParamOp::Value,
        }))
    }

    /// After `${`.
    fn read_braced(&mut self) -> Result<WordPart> {
        let mut length = false;
        if self.cur() == Some('#') && self.at(1).is_some_and(|c| c != '}') {
            let n = self.at(1).expect("checked");
            if n == '_' || n.is_ascii_alphanumeric() || "@*#?-$!".contains(n) {
                length = true;
                self.pos += 1;
            }
        }
        let name = match self.cur() {
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let mut name = String::new();
                while let Some(c) = self
                    .cur()
                    .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
                {
                    name.push(c);
                    self.pos += 1;
                }
                ParamName::Var(name)
            }
            Some(c) if c.is_ascii_digit() => {
                let mut n = 0usize;
                while let Some(d) = self.cur().and_then(|c| c.to_digit(10)) {
                    n = n.saturating_mul(10).saturating_add(d as usize);
                    self.pos += 1;
                }
                if n == 0 {
                    ParamName::Special('0')
                } else {
                    ParamName::Positional(n)
                }
            }
            Some(c) if "@*#?-$!".contains(c) => {
                self.pos += 1;
                ParamName::Special(c)
            }
            None => return Err(self.incomplete("${...}")),
            Some(c) => {
                return Err(ParseError {
                    line: self.line,
                    kind: ErrorKind::Syntax(format!("bad substitution: ${{{c}")),
                });
            }
        };
        if length {
            return match self.bump() {
                Some('}') => Ok(WordPart::Param(Param {
                    name,
                    op: ParamOp::Length,
                })),
                None => Err(self.incomplete("${...}")),
                Some(_) => Err(ParseError {
                    line: self.line,
                    kind: ErrorKind::Syntax("bad substitution: ${#...}".into()),
                }),
            };
        }
        let colon = self.cur() == Some(':');
        if colon {
            self.pos += 1;
        }
        let Some(c) = self.bump() else {
            return Err(self.incomplete("${...}"));
        };
        let op = match c {
            '}' if !colon => {
                return Ok(WordPart::Param(Param {
                    name,
                    op: ParamOp::Value,
                }));
            }
            '-' => ParamOp::Default(colon, self.read_brace_word()?),
            '=' => ParamOp::Assign(colon, self.read_brace_word()?),
            '?' => ParamOp::Error(colon, self.read_brace_word()?),
            '+' => ParamOp::Alternative(colon, self.read_brace_word()?),
            '%' if !colon => {
                let longest = self.cur() == Some('%');
                if longest {
                    self.pos += 1;
                }
                ParamOp::RemoveSuffix(longest, self.read_brace_word()?)
            }
            '#' if !colon => {
                let longest = self.cur() == Some('#');
                if longest {
                    self.pos += 1;
                }
                ParamOp::RemovePrefix(longest, self.read_brace_word()?)
            }
            c => {
                return Err(ParseError {
                    line: self.line,
                    kind: ErrorKind::Syntax(format!("bad substitution: unexpected \"{c}\"")),
                });
            }
        };
        Ok(WordPart::Param(Param { name, op }))
    }

    /// The word of `${name-word}`, up to the closing brace.
    fn read_brace_word(&mut self) -> Result<Word> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            match self.cur() {
                None => return Err(self.incomplete("${...}")),
                Some('}') => {
                    self.pos += 1;
                    flush(&mut parts, &mut lit);
                    return Ok(Word { parts });
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.bump() {
                        Some('\n') => {}
                        Some(e) => {
                            flush(&mut parts, &mut lit);
                            parts.push(WordPart::Quoted(e.to_string()));
                        }
                        None => return Err(self.incomplete("${...}")),
                    }
                }
                Some('\'') => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(WordPart::Quoted(self.read_single()?));
                }
                Some('"') => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(WordPart::Double(self.read_double()?));
                }
                Some('$') => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(self.read_dollar(false)?);
                }
                Some('`') => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(self.read_backquote()?);
                }
                Some(_) => lit.push(self.bump().expect("checked")),
            }
        }
    }

    /// After `$((`: the expression up to the matching `))`.
    fn read_arith(&mut self) -> Result<WordPart> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut depth = 0usize;
        loop {
            match self.cur() {
                None => return Err(self.incomplete("$((...))")),
                Some('(') => {
                    depth += 1;
                    lit.push('(');
                    self.pos += 1;
                }
                Some(')') if depth == 0 => {
                    if self.at(1) != Some(')') {
                        return Err(ParseError {
                            line: self.line,
                            kind: ErrorKind::Syntax("missing \"))\"".into()),
                        });
                    }
                    self.pos += 2;
                    flush(&mut parts, &mut lit);
                    return Ok(WordPart::Arith(parts));
                }
                Some(')') => {
                    depth -= 1;
                    lit.push(')');
                    self.pos += 1;
                }
                Some('$') => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(self.read_dollar(true)?);
                }
                Some('`') => {
                    flush(&mut parts, &mut lit);
                    self.pos += 1;
                    parts.push(self.read_backquote()?);
                }
                Some('"') => {
                    self.pos += 1;
                    flush(&mut parts, &mut lit);
                    parts.push(WordPart::Double(self.read_double()?));
                }
                Some(_) => lit.push(self.bump().expect("checked")),
            }
        }
    }

    /// After a backquote: the text up to the closing one, parsed as a program.
    fn read_backquote(&mut self) -> Result<WordPart> {
        let first_line = self.line;
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return Err(self.incomplete("`...`")),
                Some('`') => break,
                Some('\\') => match self.bump() {
                    Some(c @ ('$' | '`' | '\\')) => text.push(c),
                    Some(c) => {
                        text.push('\\');
                        text.push(c);
                    }
                    None => return Err(self.incomplete("`...`")),
                },
                Some(c) => text.push(c),
            }
        }
        let prog = parse_all(&text, first_line).map_err(|e| match e.kind {
            ErrorKind::Incomplete(what) => ParseError {
                line: e.line,
                kind: ErrorKind::Syntax(format!("unterminated {what} inside `...`")),
            },
            ErrorKind::Syntax(_) => e,
        })?;
        Ok(WordPart::Command(prog))
    }

    // ---- here-documents ----

    fn read_heredocs(&mut self) -> Result<()> {
        for h in core::mem::take(&mut self.pending) {
            let first_line = self.line;
            let mut body = String::new();
            loop {
                if self.cur().is_none() {
                    return Err(ParseError {
                        line: first_line,
                        kind: ErrorKind::Incomplete("here-document"),
                    });
                }
                let mut line = String::new();
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                    line.push(c);
                }
                let text = if h.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if text == h.delimiter {
                    break;
                }
                body.push_str(text);
                body.push('\n');
            }
            let word = if h.expand {
                heredoc_word(&body, first_line)?
            } else {
                Word {
                    parts: vec![WordPart::Quoted(body)],
                }
            };
            self.bodies.insert(h.id, word);
        }
        Ok(())
    }

    fn fill_program(&mut self, p: &mut Program) {
        for item in &mut p.items {
            let ao = &mut item.and_or;
            self.fill_pipeline(&mut ao.first);
            for (_, pl) in &mut ao.rest {
                self.fill_pipeline(pl);
            }
        }
    }

    fn fill_pipeline(&mut self, pl: &mut Pipeline) {
        for c in &mut pl.commands {
            match c {
                Command::Simple(s) => {
                    self.fill_redirects(&mut s.redirects);
                    for a in &mut s.assigns {
                        self.fill_word(&mut a.value);
                    }
                    for w in &mut s.words {
                        self.fill_word(w);
                    }
                }
                Command::Compound(body, redirects) => {
                    self.fill_compound(body);
                    self.fill_redirects(redirects);
                }
                Command::FunctionDef(f) => {
                    // The definition was just parsed: nothing else holds it yet.
                    if let Some(f) = Rc::get_mut(f) {
                        self.fill_compound(&mut f.body);
                        self.fill_redirects(&mut f.redirects);
                    }
                }
            }
        }
    }

    fn fill_compound(&mut self, c: &mut Compound) {
        match c {
            Compound::Brace(p) | Compound::Subshell(p) => self.fill_program(p),
            Compound::If { arms, otherwise } => {
                for (c, b) in arms {
                    self.fill_program(c);
                    self.fill_program(b);
                }
                if let Some(o) = otherwise {
                    self.fill_program(o);
                }
            }
            Compound::Loop { cond, body, .. } => {
                self.fill_program(cond);
                self.fill_program(body);
            }
            Compound::For { words, body, .. } => {
                for w in words.iter_mut().flatten() {
                    self.fill_word(w);
                }
                self.fill_program(body);
            }
            Compound::Case { word, arms } => {
                self.fill_word(word);
                for a in arms {
                    for p in &mut a.patterns {
                        self.fill_word(p);
                    }
                    self.fill_program(&mut a.body);
                }
            }
        }
    }

    fn fill_redirects(&mut self, rs: &mut [Redirect]) {
        for r in rs {
            if let RedirOp::HereDoc { .. } = r.op {
                let id = r.target.as_unquoted().and_then(|s| s.parse::<usize>().ok());
                if let Some(body) = id.and_then(|id| self.bodies.remove(&id)) {
                    r.target = body;
                }
            } else {
                self.fill_word(&mut r.target);
            }
        }
    }

    fn fill_word(&mut self, w: &mut Word) {
        for p in &mut w.parts {
            self.fill_part(p);
        }
    }

    fn fill_part(&mut self, p: &mut WordPart) {
        match p {
            WordPart::Command(prog) => self.fill_program(prog),
            WordPart::Double(parts) | WordPart::Arith(parts) => {
                for q in parts {
                    self.fill_part(q);
                }
            }
            WordPart::Param(param) => match &mut param.op {
                ParamOp::Default(_, w)
                | ParamOp::Assign(_, w)
                | ParamOp::Error(_, w)
                | ParamOp::Alternative(_, w)
                | ParamOp::RemoveSuffix(_, w)
                | ParamOp::RemovePrefix(_, w) => self.fill_word(w),
                ParamOp::Value | ParamOp::Length => {}
            },
            _ => {}
        }
    }

    // ---- grammar ----

    fn skip_newlines(&mut self) -> Result<()> {
        while self.peek()? == &Tok::Newline {
            self.take()?;
        }
        Ok(())
    }

    fn starts_command(&mut self) -> Result<bool> {
        let tok = self.peek()?;
        Ok(match tok {
            Tok::Word(_) => tok.keyword().is_none_or(|k| !CLOSERS.contains(&k)),
            Tok::IoNumber(_) => true,
            Tok::Op(op) => *op == Op::LParen || op.is_redirect(),
            Tok::Newline | Tok::Eof => false,
        })
    }

    fn is_keyword(&mut self, kw: &str) -> Result<bool> {
        Ok(self.peek()?.keyword() == Some(kw))
    }

    fn expect_keyword(&mut self, kw: &'static str) -> Result<()> {
        let (tok, line) = self.take()?;
        if tok.keyword() == Some(kw) {
            return Ok(());
        }
        if tok == Tok::Eof {
            return Err(ParseError {
                line,
                kind: ErrorKind::Incomplete(kw_construct(kw)),
            });
        }
        Err(ParseError {
            line,
            kind: ErrorKind::Syntax(format!("unexpected {} (expected \"{kw}\")", tok.describe())),
        })
    }

    fn expect_op(&mut self, op: Op, construct: &'static str) -> Result<()> {
        let (tok, line) = self.take()?;
        if tok == Tok::Op(op) {
            return Ok(());
        }
        if tok == Tok::Eof {
            return Err(ParseError {
                line,
                kind: ErrorKind::Incomplete(construct),
            });
        }
        Err(ParseError {
            line,
            kind: ErrorKind::Syntax(format!(
                "unexpected {} (expected \"{}\")",
                tok.describe(),
                op.text()
            )),
        })
    }

    /// A list inside a compound command: ends before a token that cannot start a command.
    fn parse_compound_list(&mut self) -> Result<Program> {
        let mut prog = Program::default();
        self.skip_newlines()?;
        while self.starts_command()? {
            let line = self.peek_line()?;
            let and_or = self.parse_and_or()?;
            let mut item = Item {
                and_or,
                background: false,
                line,
            };
            match self.peek()? {
                Tok::Op(Op::Amp) => {
                    item.background = true;
                    self.take()?;
                }
                Tok::Op(Op::Semi) | Tok::Newline => {
                    self.take()?;
                }
                _ => {
                    prog.items.push(item);
                    break;
                }
            }
            prog.items.push(item);
            self.skip_newlines()?;
        }
        Ok(prog)
    }

    /// A list that must have at least one command (the bodies of `if`, loops, groups).
    fn parse_nonempty_list(&mut self) -> Result<Program> {
        let prog = self.parse_compound_list()?;
        if prog.items.is_empty() {
            let (tok, line) = self.take()?;
            return Err(self.unexpected(&tok, line));
        }
        Ok(prog)
    }

    fn parse_and_or(&mut self) -> Result<AndOr> {
        let first = self.parse_pipeline()?;
        let mut rest = Vec::new();
        loop {
            let conn = match self.peek()? {
                Tok::Op(Op::AndIf) => Connector::And,
                Tok::Op(Op::OrIf) => Connector::Or,
                _ => break,
            };
            self.take()?;
            self.skip_newlines()?;
            rest.push((conn, self.parse_pipeline()?));
        }
        Ok(AndOr { first, rest })
    }

    fn parse_pipeline(&mut self) -> Result<Pipeline> {
        let bang = self.is_keyword("!")?;
        if bang {
            self.take()?;
        }
        let mut commands = vec![self.parse_command()?];
        while self.peek()? == &Tok::Op(Op::Pipe) {
            self.take()?;
            self.skip_newlines()?;
            commands.push(self.parse_command()?);
        }
        Ok(Pipeline { bang, commands })
    }

    fn parse_command(&mut self) -> Result<Command> {
        let line = self.peek_line()?;
        let compound = match self.peek()? {
            Tok::Op(Op::LParen) => {
                self.take()?;
                let body = self.parse_nonempty_list()?;
                self.expect_op(Op::RParen, "( ... )")?;
                Compound::Subshell(body)
            }
            tok => match tok.keyword() {
                Some("{") => {
                    self.take()?;
                    let body = self.parse_nonempty_list()?;
                    self.expect_keyword("}")?;
                    Compound::Brace(body)
                }
                Some("if") => self.parse_if()?,
                Some(kw @ ("while" | "until")) => {
                    let until = kw == "until";
                    self.take()?;
                    let cond = self.parse_nonempty_list()?;
                    self.expect_keyword("do")?;
                    let body = self.parse_nonempty_list()?;
                    self.expect_keyword("done")?;
                    Compound::Loop { until, cond, body }
                }
                Some("for") => self.parse_for()?,
                Some("case") => self.parse_case()?,
                Some(_) | None => return self.parse_simple(line),
            },
        };
        let redirects = self.parse_redirects()?;
        Ok(Command::Compound(Box::new(compound), redirects))
    }

    fn parse_redirects(&mut self) -> Result<Vec<Redirect>> {
        let mut rs = Vec::new();
        loop {
            match self.peek()? {
                Tok::IoNumber(_) => {}
                Tok::Op(op) if op.is_redirect() => {}
                _ => return Ok(rs),
            }
            rs.push(self.parse_redirect()?);
        }
    }

    fn parse_redirect(&mut self) -> Result<Redirect> {
        let (mut tok, _) = self.take()?;
        let mut fd = None;
        if let Tok::IoNumber(n) = tok {
            fd = Some(n);
            tok = self.take()?.0;
        }
        let Tok::Op(op) = tok else {
            unreachable!("called at a redirection")
        };
        let (default_fd, rop) = match op {
            Op::Less => (0, RedirOp::Read),
            Op::Great | Op::Clobber => (1, RedirOp::Write),
            Op::DGreat => (1, RedirOp::Append),
            Op::LessGreat => (0, RedirOp::ReadWrite),
            Op::LessAnd => (0, RedirOp::Dup),
            Op::GreatAnd => (1, RedirOp::Dup),
            Op::DLess | Op::DLessDash => (0, RedirOp::HereDoc { expand: true }),
            _ => unreachable!("not a redirection"),
        };
        let (target, line) = self.take()?;
        let target = match target {
            Tok::Word(w) => w,
            Tok::Eof => {
                return Err(ParseError {
                    line,
                    kind: ErrorKind::Incomplete("redirection"),
                });
            }
            t => {
                return Err(ParseError {
                    line,
                    kind: ErrorKind::Syntax(format!(
                        "unexpected {} after \"{}\"",
                        t.describe(),
                        op.text()
                    )),
                });
            }
        };
        let fd = fd.unwrap_or(default_fd);
        if let RedirOp::HereDoc { .. } = rop {
            let expand = target
                .parts
                .iter()
                .all(|p| matches!(p, WordPart::Literal(_)));
            let delimiter = heredoc_delimiter(&target);
            let id = self.next_heredoc;
            self.next_heredoc += 1;
            self.pending.push(PendingHereDoc {
                id,
                delimiter,
                strip_tabs: op == Op::DLessDash,
                expand,
            });
            return Ok(Redirect {
                fd,
                op: RedirOp::HereDoc { expand },
                target: Word::literal(&id.to_string()),
            });
        }
        Ok(Redirect {
            fd,
            op: rop,
            target,
        })
    }

    fn parse_if(&mut self) -> Result<Compound> {
        self.take()?;
        let mut arms = Vec::new();
        let cond = self.parse_nonempty_list()?;
        self.expect_keyword("then")?;
        let body = self.parse_nonempty_list()?;
        arms.push((cond, body));
        loop {
            let (tok, line) = self.take()?;
            match tok.keyword() {
                Some("elif") => {
                    let cond = self.parse_nonempty_list()?;
                    self.expect_keyword("then")?;
                    let body = self.parse_nonempty_list()?;
                    arms.push((cond, body));
                }
                Some("else") => {
                    let otherwise = self.parse_nonempty_list()?;
                    self.expect_keyword("fi")?;
                    return Ok(Compound::If {
                        arms,
                        otherwise: Some(otherwise),
                    });
                }
                Some("fi") => {
                    return Ok(Compound::If {
                        arms,
                        otherwise: None,
                    });
                }
                _ if tok == Tok::Eof => {
                    return Err(ParseError {
                        line,
                        kind: ErrorKind::Incomplete("if"),
                    });
                }
                _ => {
                    return Err(ParseError {
                        line,
                        kind: ErrorKind::Syntax(format!(
                            "unexpected {} (expected \"fi\")",
                            tok.describe()
                        )),
                    });
                }
            }
        }
    }

    fn parse_for(&mut self) -> Result<Compound> {
        self.take()?;
        let (tok, line) = self.take()?;
        let var = match &tok {
            Tok::Word(w) => w.as_unquoted().filter(|s| is_name(s)).map(String::from),
            _ => None,
        };
        let Some(var) = var else {
            if tok == Tok::Eof {
                return Err(ParseError {
                    line,
                    kind: ErrorKind::Incomplete("for"),
                });
            }
            return Err(ParseError {
                line,
                kind: ErrorKind::Syntax(format!("bad for loop variable {}", tok.describe())),
            });
        };
        self.skip_newlines()?;
        let mut words = None;
        if self.is_keyword("in")? {
            self.take()?;
            let mut list = Vec::new();
            loop {
                match self.take()? {
                    (Tok::Word(w), _) => list.push(w),
                    (Tok::Op(Op::Semi) | Tok::Newline, _) => break,
                    (Tok::Eof, line) => {
                        return Err(ParseError {
                            line,
                            kind: ErrorKind::Incomplete("for"),
                        });
                    }
                    (t, line) => return Err(self.unexpected(&t, line)),
                }
            }
            words = Some(list);
        } else if self.peek()? == &Tok::Op(Op::Semi) {
            self.take()?;
        }
        self.skip_newlines()?;
        self.expect_keyword("do")?;
        let body = self.parse_nonempty_list()?;
        self.expect_keyword("done")?;
        Ok(Compound::For { var, words, body })
    }

    fn parse_case(&mut self) -> Result<Compound> {
        self.take()?;
        let word = match self.take()? {
            (Tok::Word(w), _) => w,
            (Tok::Eof, line) => {
                return Err(ParseError {
                    line,
                    kind: ErrorKind::Incomplete("case"),
                });
            }
            (t, line) => return Err(self.unexpected(&t, line)),
        };
        self.skip_newlines()?;
        self.expect_keyword("in")?;
        self.skip_newlines()?;
        let mut arms = Vec::new();
        loop {
            if self.is_keyword("esac")? {
                self.take()?;
                break;
            }
            if self.peek()? == &Tok::Op(Op::LParen) {
                self.take()?;
            }
            let mut patterns = Vec::new();
            loop {
                match self.take()? {
                    (Tok::Word(w), _) => patterns.push(w),
                    (Tok::Eof, line) => {
                        return Err(ParseError {
                            line,
                            kind: ErrorKind::Incomplete("case"),
                        });
                    }
                    (t, line) => return Err(self.unexpected(&t, line)),
                }
                match self.take()? {
                    (Tok::Op(Op::Pipe), _) => {}
                    (Tok::Op(Op::RParen), _) => break,
                    (Tok::Eof, line) => {
                        return Err(ParseError {
                            line,
                            kind: ErrorKind::Incomplete("case"),
                        });
                    }
                    (t, line) => return Err(self.unexpected(&t, line)),
                }
            }
            let body = self.parse_compound_list()?;
            arms.push(CaseArm { patterns, body });
            match self.take()? {
                (Tok::Op(Op::DSemi), _) => self.skip_newlines()?,
                (t, _) if t.keyword() == Some("esac") => break,
                (Tok::Eof, line) => {
                    return Err(ParseError {
                        line,
                        kind: ErrorKind::Incomplete("case"),
                    });
                }
                (t, line) => return Err(self.unexpected(&t, line)),
            }
        }
        Ok(Compound::Case { word, arms })
    }

    fn parse_simple(&mut self, line: usize) -> Result<Command> {
        let mut cmd = SimpleCommand {
            line,
            ..SimpleCommand::default()
        };
        loop {
            match self.peek()? {
                Tok::IoNumber(_) => {
                    let r = self.parse_redirect()?;
                    cmd.redirects.push(r);
                }
                Tok::Op(op) if op.is_redirect() => {
                    let r = self.parse_redirect()?;
                    cmd.redirects.push(r);
                }
                Tok::Word(_) => {
                    let Tok::Word(w) = self.take()?.0 else {
                        unreachable!("peeked a word")
                    };
                    if cmd.words.is_empty() {
                        if let Some(a) = assignment(&w) {
                            cmd.assigns.push(a);
                            continue;
                        }
                        if cmd.assigns.is_empty()
                            && cmd.redirects.is_empty()
                            && self.peek()? == &Tok::Op(Op::LParen)
                        {
                            return self.parse_function(w, line);
                        }
                    }
                    cmd.words.push(w);
                }
                _ => break,
            }
        }
        if cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirects.is_empty() {
            let (tok, line) = self.take()?;
            return Err(self.unexpected(&tok, line));
        }
        Ok(Command::Simple(cmd))
    }

    fn parse_function(&mut self, name: Word, line: usize) -> Result<Command> {
        let Some(name) = name.as_unquoted().filter(|s| is_function_name(s)) else {
            return Err(ParseError {
                line,
                kind: ErrorKind::Syntax("bad function name".into()),
            });
        };
        let name = String::from(name);
        self.take()?;
        self.expect_op(Op::RParen, "function definition")?;
        self.skip_newlines()?;
        let body = match self.parse_command()? {
            Command::Compound(body, redirects) => (body, redirects),
            _ => {
                return Err(ParseError {
                    line,
                    kind: ErrorKind::Syntax(format!(
                        "the body of function {name} must be a compound command"
                    )),
                });
            }
        };
        let (body, redirects) = body;
        Ok(Command::FunctionDef(Rc::new(Function {
            name,
            body: *body,
            redirects,
            line,
        })))
    }
}

fn is_function_name(s: &str) -> bool {
    !s.is_empty()
        && !RESERVED.contains(&s)
        && s.chars()
            .all(|c| c == '_' || c == '-' || c == '.' || c.is_ascii_alphanumeric())
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn kw_construct(kw: &'static str) -> &'static str {
    match kw {
        "then" | "fi" => "if",
        "do" | "done" => "loop",
        "}" => "{ ... }",
        "in" | "esac" => "case",
        _ => "command",
    }
}

fn flush(parts: &mut Vec<WordPart>, lit: &mut String) {
    if !lit.is_empty() {
        parts.push(WordPart::Literal(core::mem::take(lit)));
    }
}

fn flush_quoted(parts: &mut Vec<WordPart>, text: &mut String) {
    if !text.is_empty() {
        parts.push(WordPart::Quoted(core::mem::take(text)));
    }
}

/// `NAME=value` as an assignment.
fn assignment(w: &Word) -> Option<Assign> {
    let WordPart::Literal(first) = w.parts.first()? else {
        return None;
    };
    let (name, rest) = first.split_once('=')?;
    if !is_name(name) {
        return None;
    }
    let mut parts = Vec::new();
    if !rest.is_empty() {
        parts.push(WordPart::Literal(String::from(rest)));
    }
    parts.extend(w.parts[1..].iter().cloned());
    Some(Assign {
        name: String::from(name),
        value: Word { parts },
    })
}

/// The delimiter of a here-document: the word with quotes removed.
fn heredoc_delimiter(w: &Word) -> String {
    fn text(parts: &[WordPart], out: &mut String) {
        for p in parts {
            match p {
                WordPart::Literal(t) | WordPart::Quoted(t) => out.push_str(t),
                WordPart::Double(inner) => text(inner, out),
                WordPart::Tilde => out.push('~'),
                WordPart::Param(p) => match &p.name {
                    ParamName::Var(n) => {
                        out.push('$');
                        out.push_str(n);
                    }
                    ParamName::Positional(n) => out.push_str(&format!("${n}")),
                    ParamName::Special(c) => {
                        out.push('$');
                        out.push(*c);
                    }
                },
                WordPart::Command(_) | WordPart::Arith(_) => {}
            }
        }
    }
    let mut s = String::new();
    text(&w.parts, &mut s);
    s
}

/// The body of an expanding here-document: `$`, `` ` `` and `\` work; quotes are literal.
fn heredoc_word(body: &str, first_line: usize) -> Result<Word> {
    let mut p = Parser::new(body, first_line);
    let mut parts = Vec::new();
    let mut text = String::new();
    while let Some(c) = p.cur() {
        match c {
            '\\' => {
                p.pos += 1;
                match p.bump() {
                    Some('\n') => {}
                    Some(c @ ('$' | '`' | '\\')) => text.push(c),
                    Some(c) => {
                        text.push('\\');
                        text.push(c);
                    }
                    None => text.push('\\'),
                }
            }
            '$' => {
                p.pos += 1;
                flush_quoted(&mut parts, &mut text);
                parts.push(p.read_dollar(true)?);
            }
            '`' => {
                p.pos += 1;
                flush_quoted(&mut parts, &mut text);
                parts.push(p.read_backquote()?);
            }
            _ => text.push(p.bump().expect("checked")),
        }
    }
    flush_quoted(&mut parts, &mut text);
    Ok(Word {
        parts: vec![WordPart::Double(parts)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Program {
        parse_all(src, 1).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    fn simple(p: &Program, item: usize) -> &SimpleCommand {
        match &p.items[item].and_or.first.commands[0] {
            Command::Simple(s) => s,
            c => panic!("not a simple command: {c:?}"),
        }
    }

    fn words(s: &SimpleCommand) -> Vec<String> {
        s.words
            .iter()
            .map(|w| w.as_plain().unwrap_or_else(|| "<exp>".into()))
            .collect()
    }

    fn err(src: &str) -> ParseError {
        match parse_all(src, 1) {
            Err(e) => e,
            Ok(p) => panic!("{src:?} parsed: {p:?}"),
        }
    }

    #[test]
    fn lists_and_separators() {
        let p = one("a 1; b 2 & c\nd && e || ! f | g");
        assert_eq!(p.items.len(), 4);
        assert_eq!(words(simple(&p, 0)), ["a", "1"]);
        assert!(p.items[1].background);
        assert!(!p.items[2].background);
        assert_eq!(p.items[3].line, 2);
        let ao = &p.items[3].and_or;
        assert_eq!(ao.rest.len(), 2);
        assert_eq!(ao.rest[0].0, Connector::And);
        assert_eq!(ao.rest[1].0, Connector::Or);
        assert!(ao.rest[1].1.bang);
        assert_eq!(ao.rest[1].1.commands.len(), 2);
    }

    #[test]
    fn one_command_at_a_time() {
        let mut p = Parser::new("echo a; echo b\n\n# comment\necho c\n", 1);
        assert_eq!(p.next_command().unwrap().unwrap().items.len(), 2);
        let third = p.next_command().unwrap().unwrap();
        assert_eq!(third.items[0].line, 4);
        assert_eq!(p.next_command().unwrap(), None);
    }

    #[test]
    fn assignments_and_redirections() {
        let p = one("A=1 B=x$y cmd arg C=3 2>&1 >out <in 3<>rw >>log 2>err");
        let s = simple(&p, 0);
        assert_eq!(s.assigns.len(), 2);
        assert_eq!(s.assigns[0].name, "A");
        assert_eq!(words(s), ["cmd", "arg", "C=3"]);
        let ops: Vec<(u32, RedirOp)> = s.redirects.iter().map(|r| (r.fd, r.op)).collect();
        assert_eq!(
            ops,
            [
                (2, RedirOp::Dup),
                (1, RedirOp::Write),
                (0, RedirOp::Read),
                (3, RedirOp::ReadWrite),
                (1, RedirOp::Append),
                (2, RedirOp::Write),
            ]
        );
        assert_eq!(s.redirects[0].target.as_plain().unwrap(), "1");
        let p = one("x=1");
        assert_eq!(simple(&p, 0).assigns.len(), 1);
        assert!(simple(&p, 0).words.is_empty());
    }

    #[test]
    fn here_documents() {
        let p =
            one("cat <<EOF; cat <<-'END'\nhello $x\n\tEOF\nEOF\n\t\tliteral $y\n\tEND\necho after");
        let s = simple(&p, 0);
        assert_eq!(s.redirects[0].op, RedirOp::HereDoc { expand: true });
        let WordPart::Double(parts) = &s.redirects[0].target.parts[0] else {
            panic!("{:?}", s.redirects[0].target)
        };
        assert_eq!(parts[0], WordPart::Quoted("hello ".into()));
        assert!(matches!(parts[1], WordPart::Param(_)));
        assert_eq!(parts[2], WordPart::Quoted("\n\tEOF\n".into()));
        let s = simple(&p, 1);
        assert_eq!(s.redirects[0].op, RedirOp::HereDoc { expand: false });
        assert_eq!(
            s.redirects[0].target.parts,
            [WordPart::Quoted("literal $y\n".into())]
        );
        assert_eq!(words(simple(&p, 2)), ["echo", "after"]);
        assert_eq!(p.items[2].line, 7);
    }

    #[test]
    fn here_document_in_a_function_and_a_loop() {
        let p = one("f() {\ncat <<E\nin f\nE\n}\nwhile false; do cat <<A; done <<B\na\nA\nb\nB\n");
        let Command::FunctionDef(f) = &p.items[0].and_or.first.commands[0] else {
            panic!()
        };
        let Compound::Brace(body) = &f.body else {
            panic!()
        };
        assert_eq!(
            simple(body, 0).redirects[0].target.parts,
            [WordPart::Double(vec![WordPart::Quoted("in f\n".into())])]
        );
        let Command::Compound(c, redirects) = &p.items[1].and_or.first.commands[0] else {
            panic!()
        };
        let Compound::Loop { body, .. } = &**c else {
            panic!()
        };
        assert_eq!(
            simple(body, 0).redirects[0].target.parts,
            [WordPart::Double(vec![WordPart::Quoted("a\n".into())])]
        );
        assert_eq!(
            redirects[0].target.parts,
            [WordPart::Double(vec![WordPart::Quoted("b\n".into())])]
        );
    }

    #[test]
    fn compound_commands() {
        let p = one(
            "if a; then b; elif c\nthen d; else e; fi\nwhile x; do y; done\nuntil x; do y; done\n\
             for i in 1 2 3; do echo $i; done\nfor j; do :; done\n\
             case $x in a|b) one;; (c) two ;; *) three\nesac\n{ a; b; } >f\n(cd /; ls)\n",
        );
        assert_eq!(p.items.len(), 8);
        let compound = |i: usize| match &p.items[i].and_or.first.commands[0] {
            Command::Compound(c, r) => (&**c, r),
            c => panic!("{c:?}"),
        };
        let (Compound::If { arms, otherwise }, _) = compound(0) else {
            panic!()
        };
        assert_eq!(arms.len(), 2);
        assert!(otherwise.is_some());
        assert!(matches!(compound(1).0, Compound::Loop { until: false, .. }));
        assert!(matches!(compound(2).0, Compound::Loop { until: true, .. }));
        let (Compound::For { var, words, .. }, _) = compound(3) else {
            panic!()
        };
        assert_eq!(var, "i");
        assert_eq!(words.as_ref().unwrap().len(), 3);
        assert!(matches!(compound(4).0, Compound::For { words: None, .. }));
        let (Compound::Case { arms, .. }, _) = compound(5) else {
            panic!()
        };
        assert_eq!(arms.len(), 3);
        assert_eq!(arms[0].patterns.len(), 2);
        let (Compound::Brace(b), r) = compound(6) else {
            panic!()
        };
        assert_eq!(b.items.len(), 2);
        assert_eq!(r.len(), 1);
        assert!(matches!(compound(7).0, Compound::Subshell(_)));
    }

    #[test]
    fn reserved_words_only_where_a_command_starts() {
        let p = one("echo if then fi done");
        assert_eq!(words(simple(&p, 0)), ["echo", "if", "then", "fi", "done"]);
        let p = one("'if' x");
        assert_eq!(words(simple(&p, 0)), ["if", "x"]);
    }

    #[test]
    fn functions() {
        let p = one("greet() { echo hi $1; }\ngreet-2 ()\n(echo sub)\n");
        let Command::FunctionDef(f) = &p.items[0].and_or.first.commands[0] else {
            panic!()
        };
        assert_eq!(f.name, "greet");
        assert!(matches!(f.body, Compound::Brace(_)));
        let Command::FunctionDef(f) = &p.items[1].and_or.first.commands[0] else {
            panic!()
        };
        assert_eq!(f.name, "greet-2");
        assert!(matches!(f.body, Compound::Subshell(_)));
        assert!(!err("f() echo x").is_incomplete());
    }

    #[test]
    fn substitutions_nest() {
        let p =
            one("echo $(echo $(echo a) `echo b`) \"$(case x in x) echo y;; esac)\" $((1+(2*3)))");
        let s = simple(&p, 0);
        assert_eq!(s.words.len(), 4);
        assert!(matches!(s.words[1].parts[0], WordPart::Command(_)));
        let WordPart::Double(inner) = &s.words[2].parts[0] else {
            panic!()
        };
        assert!(matches!(inner[0], WordPart::Command(_)));
        assert_eq!(
            s.words[3].parts,
            [WordPart::Arith(vec![WordPart::Literal("1+(2*3)".into())])]
        );
    }

    #[test]
    fn parameters() {
        let p = one("echo ${x:-a b} ${#y} ${z%%.*} ${10} $10 ${#}");
        let s = simple(&p, 0);
        let param = |i: usize| match &s.words[i].parts[0] {
            WordPart::Param(p) => p.clone(),
            w => panic!("{w:?}"),
        };
        assert!(matches!(param(1).op, ParamOp::Default(true, _)));
        assert_eq!(param(2).op, ParamOp::Length);
        assert!(matches!(param(3).op, ParamOp::RemoveSuffix(true, _)));
        assert_eq!(param(4).name, ParamName::Positional(10));
        assert_eq!(param(5).name, ParamName::Positional(1));
        assert_eq!(s.words[5].parts[1], WordPart::Literal("0".into()));
        assert_eq!(param(6).name, ParamName::Special('#'));
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        for src in [
            "echo 'abc",
            "echo \"abc",
            "if true; then",
            "if true; then echo; else",
            "while true",
            "for i in a b",
            "case x in",
            "case x in a) echo",
            "{ echo",
            "( echo",
            "echo a &&",
            "echo a |",
            "echo $(echo",
            "echo ${x",
            "echo `date",
            "cat <<EOF\nline",
            "f() {",
            "echo \\\n",
            "echo $((1 +",
            "if true; then echo; fi; echo \\\n",
        ] {
            let e = err(src);
            assert!(e.is_incomplete(), "{src:?}: {e}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("echo ok\nfi\n");
        assert_eq!(e.line, 2);
        assert_eq!(e.to_string(), "syntax error: unexpected \"fi\"");
        let e = err("echo a\necho b ; ; echo c");
        assert_eq!(e.line, 2);
        assert!(!e.is_incomplete());
        for src in [
            ")",
            "a | | b",
            "if then fi",
            "for 1x in a; do :; done",
            "echo ${x!}",
            "a && || b",
            "case x in a) b;; ) c;; esac",
        ] {
            let e = err(src);
            assert!(!e.is_incomplete(), "{src:?}: {e}");
        }
        // An unterminated construct at the end of a script is reported (by the caller) with
        // the line where the text ended.
        let e = err("echo a\nif true; then\n  echo b\n");
        assert!(e.is_incomplete());
        assert_eq!(e.line, 4);
    }

    #[test]
    fn case_arms_across_lines() {
        let p = one(
            "case $x in\n  a)\n    echo a\n    ;;\n  b|c) echo b ;;\n  *)\n    echo other\nesac\n",
        );
        let Command::Compound(c, _) = &p.items[0].and_or.first.commands[0] else {
            panic!()
        };
        let Compound::Case { arms, .. } = &**c else {
            panic!()
        };
        assert_eq!(arms.len(), 3);
        assert_eq!(arms[1].patterns.len(), 2);
        assert_eq!(arms[2].body.items[0].line, 7);
    }

    /// Every prefix of real scripts, and random mutations of them, parse to a program or an
    /// error: no panic, no endless loop.
    #[test]
    fn any_text_parses_or_fails_cleanly() {
        let corpus = [
            "cd '#tmpfs'\nmkdir p; bind '#pipe' p\necho \"console=hvc0 ${part:-1}\" > cmdline\n\
             vmrunkernel -k cmdline < p/data1 &\nvm=$!\ntrap 'sync; unmount /mnt; \
             echo SHUTDOWN > p/data; wait $vm; exit' TERM INT\n\
             while ! test -e /srv/fsvm; do sleep 0.1; done\nmount /srv/fsvm $3\nwait\n",
            "f() { local x=$1; case $x in (a|b) return 1;; *) echo \"${x%%.*}\";; esac; }\n\
             for i in $(seq 3) `echo 4`; do f $i || break; done <<-EOF\n\tbody $((1+2))\n\tEOF\n",
            "if [ -n \"$a\" ]; then { echo a; } 2>&1 | cat >> log; elif ! x; then :; else (y); fi",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let specials = [
            '\'', '"', '`', '$', '(', ')', '{', '}', '\\', '\n', '<', '|', '&', ';', '#',
        ];
        for text in corpus {
            let chars: Vec<char> = text.chars().collect();
            for end in 0..=chars.len() {
                let prefix: String = chars[..end].iter().collect();
                let _ = parse_all(&prefix, 1);
            }
            for _ in 0..2000 {
                let mut c = chars.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % c.len();
                    match next() % 3 {
                        0 => {
                            c.remove(at);
                        }
                        1 => c.insert(at, specials[(next() as usize) % specials.len()]),
                        _ => c[at] = specials[(next() as usize) % specials.len()],
                    }
                }
                let mutated: String = c.iter().collect();
                let _ = parse_all(&mutated, 1);
            }
        }
    }

    #[test]
    fn line_continuations_and_comments() {
        let p = one("echo a \\\n  b # c d\necho e#f");
        assert_eq!(words(simple(&p, 0)), ["echo", "a", "b"]);
        assert_eq!(words(simple(&p, 1)), ["echo", "e#f"]);
        assert_eq!(p.items[1].line, 3);
    }
}
