//! The shell's executor: the state of a running shell and how it starts. The language itself
//! (parsing, expansion) is the `shell` crate; here are processes, file descriptors, builtins,
//! traps and the interactive console.
//!
//! - [`exec`]: running the syntax tree (pipelines, compound commands, functions, forks).
//! - [`redir`]: redirections and here-documents.
//! - [`builtins`]: `cd`, `wait`, `trap`, `kill`, `set`, `read`, `printf`, `test`...
//! - [`traps`]: notes arriving, and the trap actions they run.
//! - [`edit`]: the interactive line editor (raw console, history).

mod builtins;
mod edit;
mod exec;
mod redir;
mod traps;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use rt::{fs, io, process};
use shell::ast::Function;
use shell::parse::Parser;
use shell::signal;

/// The outcome of a command: its status (`$?`) and its exit string (empty for success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `$?`.
    pub code: i32,
    /// The exit string, as a child's `exits` gave it, or our message for a builtin.
    pub msg: String,
}

impl Status {
    /// Success.
    pub fn ok() -> Status {
        Status::default()
    }

    /// A status with no text of its own.
    pub fn code(code: i32) -> Status {
        Status {
            code,
            msg: signal::exit_string(code),
        }
    }

    /// A failure (status 1) with a message.
    pub fn fail(msg: impl Into<String>) -> Status {
        Status {
            code: 1,
            msg: msg.into(),
        }
    }

    /// What a child's exit string means.
    pub fn from_exit(msg: &str) -> Status {
        Status {
            code: signal::exit_code(msg),
            msg: String::from(msg),
        }
    }

    /// Whether it succeeded.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The exit string for `exits`: our text if it says the same thing as the code.
    pub fn exit_string(&self) -> String {
        if self.code == 0 {
            String::new()
        } else if !self.msg.is_empty() && signal::exit_code(&self.msg) == self.code {
            self.msg.clone()
        } else {
            signal::exit_string(self.code)
        }
    }
}

/// Why the normal flow of commands stopped.
#[derive(Debug)]
pub enum Flow {
    /// `break n`.
    Break(usize),
    /// `continue n`.
    Continue(usize),
    /// `return`.
    Return(Status),
    /// `exit`, a fatal error, or `set -e`.
    Exit(Status),
    /// Back to the prompt of an interactive shell (^C while commands run, an error that
    /// would end a script).
    Abort(Status),
}

/// The result of running something.
pub type Run = Result<Status, Flow>;

/// A variable.
#[derive(Clone, Debug)]
pub struct Var {
    /// The value.
    pub value: String,
    /// Passed to the environment of programs.
    pub exported: bool,
}

/// A background job not yet waited for.
#[derive(Clone, Debug)]
pub struct Job {
    /// The process.
    pub pid: u64,
    /// The command, for `jobs`.
    pub text: String,
}

/// Where messages say they come from: `sh: ` at the console, `name:line: ` in a script.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The script's name (`None`: typed at the console).
    pub name: Option<String>,
    /// The line being run.
    pub line: usize,
}

/// The state of a shell.
pub struct Shell {
    vars: BTreeMap<String, Var>,
    positional: Vec<String>,
    arg0: String,
    funcs: BTreeMap<String, Rc<Function>>,
    /// `$?`.
    last: Status,
    /// The status of the last command substitution (for commands that are only assignments).
    subst_status: Option<Status>,
    /// `$!`.
    last_bg: Option<u64>,
    jobs: Vec<Job>,
    /// Exit strings of children collected while waiting for another one.
    reaped: BTreeMap<u64, String>,
    traps: BTreeMap<traps::Key, String>,
    errexit: bool,
    xtrace: bool,
    noglob: bool,
    /// Reading commands from the console.
    interactive: bool,
    origin: Origin,
    /// Inside a condition (`if`, `while`, `&&`, `!`): `set -e` does not apply.
    cond_depth: usize,
    loop_depth: usize,
    func_depth: usize,
    /// Saved values of `local` variables, one frame per function call.
    locals: Vec<Vec<(String, Option<Var>)>>,
    /// Fds the shell holds for itself (saved by redirections, the console control file);
    /// closed in every child.
    internal_fds: Vec<u64>,
    /// The current directory as the user named it, for the prompt and `$PWD`.
    cwd: String,
    in_trap: bool,
    /// An interactive shell got ^C while running commands: they stop at the next boundary.
    interrupted: bool,
    /// This process is a forked child of the shell (a subshell, a pipeline element).
    subshell: bool,
}

const USAGE: &str = "usage: sh [-ex] [-i | -c command [name [arg...]] | file [arg...]]";

/// The shell's entry point.
pub fn main() -> rt::Result<()> {
    let args = rt::env::args();
    let mut sh = Shell::new(args.first().cloned().unwrap_or_else(|| "sh".into()));
    let mut i = 1;
    let mut command = None;
    let mut force_interactive = false;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !(a.starts_with('-') || a.starts_with('+')) || a.len() < 2 {
            break;
        }
        let on = a.starts_with('-');
        for c in a[1..].chars() {
            match c {
                'c' if on => command = Some(()),
                'i' if on => force_interactive = true,
                'e' => sh.errexit = on,
                'x' => sh.xtrace = on,
                'f' => sh.noglob = on,
                _ => {
                    rt::eprintln!("sh: unknown option -{c}\n{USAGE}");
                    process::exits("usage");
                }
            }
        }
        i += 1;
    }
    let rest = &args[i.min(args.len())..];
    let status = if command.is_some() {
        let Some(text) = rest.first() else {
            rt::eprintln!("sh: -c needs a command\n{USAGE}");
            process::exits("usage");
        };
        if let Some(name) = rest.get(1) {
            sh.arg0 = name.clone();
        }
        sh.positional = rest.iter().skip(2).cloned().collect();
        sh.origin = Origin {
            name: Some(String::from(rest.get(1).map_or("sh", |s| s.as_str()))),
            line: 1,
        };
        let text = text.clone();
        sh.run_text(&text)
    } else if let Some(file) = rest.first() {
        sh.arg0 = file.clone();
        sh.positional = rest[1..].to_vec();
        sh.run_script_file(file)
    } else {
        let console = edit::stdin_is_console();
        if force_interactive || console {
            sh.interactive = true;
            sh.origin.name = None;
            sh.interactive_loop(console)
        } else {
            // Commands from standard input.
            match io::read_all(io::STDIN) {
                Ok(bytes) => {
                    sh.origin.name = Some("sh".into());
                    sh.run_text(&String::from_utf8_lossy(&bytes))
                }
                Err(e) => Err(Flow::Exit(Status::fail(format!("sh: standard input: {e}")))),
            }
        }
    };
    let st = match status {
        Ok(st) | Err(Flow::Exit(st) | Flow::Return(st) | Flow::Abort(st)) => st,
        Err(Flow::Break(_) | Flow::Continue(_)) => sh.last.clone(),
    };
    sh.exit(st)
}

impl Shell {
    fn new(arg0: String) -> Shell {
        let mut vars = BTreeMap::new();
        for kv in rt::env::vars() {
            if let Some((k, v)) = kv.split_once('=') {
                vars.insert(
                    String::from(k),
                    Var {
                        value: String::from(v),
                        exported: true,
                    },
                );
            }
        }
        let mut sh = Shell {
            vars,
            positional: Vec::new(),
            arg0,
            funcs: BTreeMap::new(),
            last: Status::ok(),
            subst_status: None,
            last_bg: None,
            jobs: Vec::new(),
            reaped: BTreeMap::new(),
            traps: BTreeMap::new(),
            errexit: false,
            xtrace: false,
            noglob: false,
            interactive: false,
            origin: Origin {
                name: Some("sh".into()),
                line: 0,
            },
            cond_depth: 0,
            loop_depth: 0,
            func_depth: 0,
            locals: Vec::new(),
            internal_fds: Vec::new(),
            cwd: String::from("/"),
            in_trap: false,
            interrupted: false,
            subshell: false,
        };
        if !sh.vars.contains_key("PATH") {
            sh.set_var("PATH", "/bin");
        }
        if !sh.vars.contains_key("IFS") {
            sh.vars.insert(
                "IFS".into(),
                Var {
                    value: " \t\n".into(),
                    exported: false,
                },
            );
        }
        if let Some(pwd) = sh
            .var("PWD")
            .filter(|p| p.starts_with('/') || p.starts_with('#'))
        {
            sh.cwd = pwd;
        }
        let cwd = sh.cwd.clone();
        sh.vars.insert(
            "PWD".into(),
            Var {
                value: cwd,
                exported: true,
            },
        );
        sh
    }

    // ---- variables ----

    /// A variable's value.
    pub fn var(&self, name: &str) -> Option<String> {
        if name == "LINENO" {
            return Some(self.origin.line.to_string());
        }
        self.vars.get(name).map(|v| v.value.clone())
    }

    /// Sets a variable (keeping its export flag).
    pub fn set_var(&mut self, name: &str, value: &str) {
        match self.vars.get_mut(name) {
            Some(v) => v.value = String::from(value),
            None => {
                self.vars.insert(
                    String::from(name),
                    Var {
                        value: String::from(value),
                        exported: false,
                    },
                );
            }
        }
    }

    /// The environment passed to programs: exported variables, then `extra`.
    fn environment(&self, extra: &[(String, String)]) -> Vec<String> {
        let mut env: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .filter(|(_, v)| v.exported)
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        for (k, v) in extra {
            env.insert(k, v);
        }
        env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    // ---- messages ----

    /// `sh: ` or `script:line: `.
    pub fn prefix(&self) -> String {
        match &self.origin.name {
            None => String::from("sh: "),
            Some(name) => {
                let short = name.rsplit('/').next().unwrap_or(name);
                format!("{short}:{}: ", self.origin.line)
            }
        }
    }

    /// Prints an error with the shell's prefix.
    pub fn error(&self, msg: &str) {
        let text = format!("{}{msg}\n", self.prefix());
        redir::write_all(io::STDERR, text.as_bytes());
    }

    // ---- running text ----

    /// Runs a script's text, a command at a time. A syntax error ends it with status 2.
    fn run_text(&mut self, src: &str) -> Run {
        let mut parser = Parser::new(src, 1);
        let mut st = Status::ok();
        loop {
            match parser.next_command() {
                Ok(Some(prog)) => {
                    st = self.run_program(&prog)?;
                    self.run_traps()?;
                }
                Ok(None) => return Ok(st),
                Err(e) => {
                    self.origin.line = e.line;
                    self.error(&e.to_string());
                    return Err(Flow::Exit(Status {
                        code: 2,
                        msg: format!("{}{e}", self.prefix()),
                    }));
                }
            }
        }
    }

    /// Runs text in the current shell under another origin (`.`, `eval`, traps): a syntax
    /// error there is status 2, not the end of the shell.
    fn run_nested(&mut self, src: &str, origin: Option<Origin>) -> Run {
        let saved = origin.map(|o| core::mem::replace(&mut self.origin, o));
        let first_line = self.origin.line.max(1);
        let r = match shell::parse::parse_all(src, first_line) {
            Ok(prog) => self.run_program(&prog),
            Err(e) => {
                self.origin.line = e.line;
                self.error(&e.to_string());
                Ok(Status::code(2))
            }
        };
        if let Some(o) = saved {
            self.origin = o;
        }
        r
    }

    fn run_script_file(&mut self, file: &str) -> Run {
        self.origin = Origin {
            name: Some(String::from(file)),
            line: 0,
        };
        match fs::read_file(file) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                self.run_text(&text)
            }
            Err(e) => {
                rt::eprintln!("sh: {e}");
                Err(Flow::Exit(Status {
                    code: 127,
                    msg: e.msg().to_string(),
                }))
            }
        }
    }

    fn interactive_loop(&mut self, console: bool) -> Run {
        if console {
            edit::take_console_notes();
        }
        traps::install_handler();
        traps::set_catch_interactive(true);
        let mut editor = edit::Editor::new(console);
        if let Some(fd) = editor.consctl_fd() {
            self.internal_fds.push(fd);
        }
        let mut pending = String::new();
        loop {
            self.run_traps()?;
            let prompt = if pending.is_empty() {
                format!("{} $ ", self.cwd)
            } else {
                String::from("> ")
            };
            let line = match editor.read_line(&prompt) {
                edit::Line::Text(l) => l,
                edit::Line::Interrupted => {
                    traps::take_pending_interrupt();
                    self.interrupted = false;
                    pending.clear();
                    continue;
                }
                edit::Line::Eof => {
                    editor.cooked();
                    if !pending.is_empty() {
                        self.error("syntax error: unexpected end of file");
                    }
                    return Ok(self.last.clone());
                }
                edit::Line::Failed(e) => {
                    editor.cooked();
                    self.error(&format!("reading commands: {e}"));
                    return Ok(Status::fail(e));
                }
            };
            pending.push_str(&line);
            pending.push('\n');
            let mut parser = Parser::new(&pending, 1);
            let mut progs = Vec::new();
            let mut incomplete = false;
            loop {
                match parser.next_command() {
                    Ok(Some(p)) => progs.push(p),
                    Ok(None) => break,
                    Err(e) if e.is_incomplete() => {
                        incomplete = true;
                        break;
                    }
                    Err(e) => {
                        self.error(&e.to_string());
                        progs.clear();
                        self.last = Status::code(2);
                        break;
                    }
                }
            }
            if incomplete {
                continue;
            }
            editor.cooked();
            editor.remember(pending.trim_end());
            pending.clear();
            self.interrupted = false;
            for prog in progs {
                match self.run_program(&prog) {
                    Ok(_) => {}
                    Err(Flow::Exit(st)) => return Ok(st),
                    Err(Flow::Return(st) | Flow::Abort(st)) => {
                        self.last = st;
                        self.interrupted = false;
                        break;
                    }
                    Err(Flow::Break(_) | Flow::Continue(_)) => {}
                }
                self.run_traps()?;
            }
        }
    }

    /// Ends the shell: the EXIT trap, then `exits` with the status's exit string.
    pub fn exit(&mut self, st: Status) -> ! {
        if let Some(action) = self.traps.remove(&traps::Key::Exit) {
            self.last = st.clone();
            let _ = self.run_nested(&action, None);
        }
        io::flush_stdout();
        process::exits(&st.exit_string())
    }
}
