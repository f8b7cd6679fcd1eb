//! The syntax tree: a [`Program`] is a list of and-or lists, each a chain of pipelines, each
//! a sequence of commands; words keep their quoting until expansion.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

/// A list of commands (a script, the body of a compound command, a command substitution).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    /// The and-or lists, in order.
    pub items: Vec<Item>,
}

/// One and-or list, run in the background when it ended with `&`.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The pipelines and their connectors.
    pub and_or: AndOr,
    /// Ended with `&`.
    pub background: bool,
    /// The line the list starts on.
    pub line: usize,
}

/// `p1 && p2 || p3 ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct AndOr {
    /// The first pipeline.
    pub first: Pipeline,
    /// The following pipelines with the connector before each.
    pub rest: Vec<(Connector, Pipeline)>,
}

/// `&&` or `||`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connector {
    /// `&&`: run the next pipeline if this one succeeded.
    And,
    /// `||`: run the next pipeline if this one failed.
    Or,
}

/// `[!] c1 | c2 | ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// Started with `!`: the status is inverted.
    pub bang: bool,
    /// The commands, connected by pipes.
    pub commands: Vec<Command>,
}

/// One command of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Assignments, words and redirections.
    Simple(SimpleCommand),
    /// A compound command and the redirections after it.
    Compound(Box<Compound>, Vec<Redirect>),
    /// `name() compound-command`.
    FunctionDef(Rc<Function>),
}

/// A function's definition.
#[derive(Debug, PartialEq)]
pub struct Function {
    /// The name.
    pub name: String,
    /// The body.
    pub body: Compound,
    /// Redirections applied each time the function runs.
    pub redirects: Vec<Redirect>,
    /// The line of the definition.
    pub line: usize,
}

/// `NAME=value... word... redirections...` (in any order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimpleCommand {
    /// `NAME=value` words before the command name.
    pub assigns: Vec<Assign>,
    /// The command name and its arguments.
    pub words: Vec<Word>,
    /// Redirections.
    pub redirects: Vec<Redirect>,
    /// The line the command starts on.
    pub line: usize,
}

/// `NAME=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Assign {
    /// The variable.
    pub name: String,
    /// The value (expanded without field splitting or globbing).
    pub value: Word,
}

/// Compound commands.
#[derive(Clone, Debug, PartialEq)]
pub enum Compound {
    /// `{ list; }`.
    Brace(Program),
    /// `( list )`: run in a child process.
    Subshell(Program),
    /// `if c; then b; elif c; then b; else b; fi`.
    If {
        /// (condition, body) for `if` and each `elif`.
        arms: Vec<(Program, Program)>,
        /// The `else` body.
        otherwise: Option<Program>,
    },
    /// `while c; do b; done` (or `until`).
    Loop {
        /// `until`: loop while the condition fails.
        until: bool,
        /// The condition.
        cond: Program,
        /// The body.
        body: Program,
    },
    /// `for name [in words]; do b; done`.
    For {
        /// The loop variable.
        var: String,
        /// The words; `None` means `"$@"`.
        words: Option<Vec<Word>>,
        /// The body.
        body: Program,
    },
    /// `case word in pattern) list ;; ... esac`.
    Case {
        /// The word matched.
        word: Word,
        /// The arms, in order.
        arms: Vec<CaseArm>,
    },
}

/// `pat | pat ) list ;;`.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseArm {
    /// The patterns.
    pub patterns: Vec<Word>,
    /// The list run when one matches.
    pub body: Program,
}

/// A redirection: `[fd]op target`.
#[derive(Clone, Debug, PartialEq)]
pub struct Redirect {
    /// The file descriptor redirected (default: 0 for input, 1 for output).
    pub fd: u32,
    /// What is done.
    pub op: RedirOp,
    /// The file name, the fd to duplicate, or a here-document's body.
    pub target: Word,
}

/// Redirection operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirOp {
    /// `<`.
    Read,
    /// `>` (and `>|`).
    Write,
    /// `>>`.
    Append,
    /// `<>`.
    ReadWrite,
    /// `<&` and `>&`: duplicate the fd named by the target (`-` closes).
    Dup,
    /// `<<` and `<<-`: the target is the body; `expand` says whether `$`, `` ` `` and `\`
    /// work in it (the delimiter was not quoted).
    HereDoc {
        /// Expand the body.
        expand: bool,
    },
}

/// A word: literal text, quoted text and expansions, concatenated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Word {
    /// The parts, in order.
    pub parts: Vec<WordPart>,
}

/// A piece of a word.
#[derive(Clone, Debug, PartialEq)]
pub enum WordPart {
    /// Unquoted text (glob characters in it are special).
    Literal(String),
    /// Quoted text (`'...'`, `\c`, the literal parts of `"..."`): taken as is.
    Quoted(String),
    /// `"..."`: the expansions inside are not split or globbed.
    Double(Vec<WordPart>),
    /// `$name`, `${name...}`.
    Param(Param),
    /// `$(...)` or `` `...` ``.
    Command(Program),
    /// `$((...))`: the parts make up the expression text.
    Arith(Vec<WordPart>),
    /// `~` at the start of a word: `$HOME`.
    Tilde,
}

/// A parameter expansion.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Which parameter.
    pub name: ParamName,
    /// What is done with it.
    pub op: ParamOp,
}

/// A parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamName {
    /// A variable.
    Var(String),
    /// `$1`... (`$0` is [`ParamName::Special`]).
    Positional(usize),
    /// `$@ $* $# $? $- $$ $! $0`.
    Special(char),
}

/// `${name OP word}`.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamOp {
    /// Just the value.
    Value,
    /// `${#name}`: the length.
    Length,
    /// `${name:-word}` (`colon`: also when set but empty).
    Default(bool, Word),
    /// `${name:=word}`.
    Assign(bool, Word),
    /// `${name:?word}`.
    Error(bool, Word),
    /// `${name:+word}`.
    Alternative(bool, Word),
    /// `${name%pat}` / `${name%%pat}` (`true`: longest).
    RemoveSuffix(bool, Word),
    /// `${name#pat}` / `${name##pat}` (`true`: longest).
    RemovePrefix(bool, Word),
}

impl Word {
    /// A word of one literal part.
    pub fn literal(s: &str) -> Word {
        Word {
            parts: alloc::vec![WordPart::Literal(String::from(s))],
        }
    }

    /// The text as written with quotes removed, if the word has no expansions.
    pub fn as_plain(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                WordPart::Literal(t) | WordPart::Quoted(t) => s.push_str(t),
                WordPart::Double(inner) => {
                    for q in inner {
                        match q {
                            WordPart::Quoted(t) | WordPart::Literal(t) => s.push_str(t),
                            _ => return None,
                        }
                    }
                }
                _ => return None,
            }
        }
        Some(s)
    }

    /// The unquoted literal text, if the word is only that (for reserved words and names).
    pub fn as_unquoted(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [WordPart::Literal(t)] => Some(t),
            _ => None,
        }
    }
}
