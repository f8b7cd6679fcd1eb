//! Running the syntax tree: lists, and-or lists, pipelines, simple and compound commands,
//! functions; forking children and waiting for them; finding programs.

use super::{Flow, Job, Run, Shell, Status, builtins, redir, traps};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use rt::process::{self, RFFDG, RFNOTEG, RFPROC};
use rt::{fs, io};
use shell::ast::*;
use shell::expand::{self, Context};
use shell::glob;

/// How a command is run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In this shell; programs are run in a child that is waited for.
    Wait,
    /// This process is a child that ends with the command: programs replace it.
    Replace,
}

impl Shell {
    /// Runs a list.
    pub fn run_program(&mut self, prog: &Program) -> Run {
        let mut st = Status::ok();
        for item in &prog.items {
            self.origin.line = item.line;
            st = if item.background {
                self.run_background(item)
            } else {
                self.run_and_or(&item.and_or, Mode::Wait)?
            };
            self.last = st.clone();
            self.run_traps()?;
            if core::mem::take(&mut self.interrupted) {
                return Err(Flow::Abort(Status::code(130)));
            }
        }
        Ok(st)
    }

    fn run_and_or(&mut self, ao: &AndOr, mode: Mode) -> Run {
        let single = ao.rest.is_empty();
        if !single {
            self.cond_depth += 1;
        }
        let first = self.run_pipeline(&ao.first, if single { mode } else { Mode::Wait });
        if !single {
            self.cond_depth -= 1;
        }
        let mut st = first?;
        let mut last_bang = ao.first.bang;
        let mut ran_last = single;
        for (i, (conn, pl)) in ao.rest.iter().enumerate() {
            self.last = st.clone();
            let run = match conn {
                Connector::And => st.success(),
                Connector::Or => !st.success(),
            };
            let is_last = i + 1 == ao.rest.len();
            if run {
                if !is_last {
                    self.cond_depth += 1;
                }
                let r = self.run_pipeline(pl, Mode::Wait);
                if !is_last {
                    self.cond_depth -= 1;
                }
                st = r?;
                last_bang = pl.bang;
                ran_last = is_last;
            }
        }
        self.last = st.clone();
        if self.errexit && !st.success() && self.cond_depth == 0 && ran_last && !last_bang {
            return Err(Flow::Exit(st));
        }
        Ok(st)
    }

    fn run_pipeline(&mut self, pl: &Pipeline, mode: Mode) -> Run {
        if pl.bang {
            self.cond_depth += 1;
        }
        let r = if pl.commands.len() == 1 {
            self.run_command(&pl.commands[0], if pl.bang { Mode::Wait } else { mode })
        } else {
            Ok(self.run_pipe(&pl.commands))
        };
        if pl.bang {
            self.cond_depth -= 1;
        }
        let st = r?;
        Ok(if pl.bang {
            if st.success() {
                Status::code(1)
            } else {
                Status::ok()
            }
        } else {
            st
        })
    }

    /// `c1 | c2 | ...`: every command in a child, connected by pipes.
    fn run_pipe(&mut self, commands: &[Command]) -> Status {
        let mut pids = Vec::new();
        let mut prev_read: Option<u64> = None;
        let mut failed = None;
        for (i, cmd) in commands.iter().enumerate() {
            let next = if i + 1 < commands.len() {
                match io::pipe() {
                    Ok(p) => Some(p),
                    Err(e) => {
                        failed = Some(Status::fail(format!("pipe: {e}")));
                        break;
                    }
                }
            } else {
                None
            };
            match process::rfork(RFPROC | RFFDG) {
                Ok(0) => {
                    self.become_child();
                    if let Some(r) = prev_read {
                        let _ = io::dup(r, Some(0));
                        let _ = io::close(r);
                    }
                    if let Some((w, r)) = next {
                        let _ = io::dup(w, Some(1));
                        let _ = io::close(w);
                        let _ = io::close(r);
                    }
                    let r = self.run_command(cmd, Mode::Replace);
                    self.end_child(r)
                }
                Ok(pid) => pids.push(pid),
                Err(e) => {
                    failed = Some(Status::fail(format!("fork: {e}")));
                }
            }
            if let Some(r) = prev_read.take() {
                let _ = io::close(r);
            }
            if let Some((w, r)) = next {
                let _ = io::close(w);
                prev_read = Some(r);
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(r) = prev_read {
            let _ = io::close(r);
        }
        let mut st = Status::ok();
        for pid in pids {
            st = self.wait_pid(pid);
        }
        if let Some(f) = failed {
            self.error(&f.msg);
            return f;
        }
        st
    }

    /// Runs one command of a pipeline.
    pub fn run_command(&mut self, cmd: &Command, mode: Mode) -> Run {
        match cmd {
            Command::Simple(s) => self.run_simple(s, mode),
            Command::Compound(c, redirects) => {
                let saved = match self.redirect(redirects, mode == Mode::Wait) {
                    Ok(s) => s,
                    Err(msg) => {
                        self.error(&msg);
                        return Ok(Status::fail(msg));
                    }
                };
                let r = self.run_compound(c, mode);
                self.restore(saved);
                r
            }
            Command::FunctionDef(f) => {
                self.funcs.insert(f.name.clone(), Rc::clone(f));
                Ok(Status::ok())
            }
        }
    }

    fn run_compound(&mut self, c: &Compound, mode: Mode) -> Run {
        match c {
            Compound::Brace(p) => self.run_program(p),
            Compound::Subshell(p) => {
                if mode == Mode::Replace {
                    return self.run_program(p);
                }
                self.in_child(|sh| sh.run_program(p))
            }
            Compound::If { arms, otherwise } => {
                for (cond, body) in arms {
                    self.cond_depth += 1;
                    let c = self.run_program(cond);
                    self.cond_depth -= 1;
                    if c?.success() {
                        return self.run_program(body);
                    }
                }
                match otherwise {
                    Some(body) => self.run_program(body),
                    None => Ok(Status::ok()),
                }
            }
            Compound::Loop { until, cond, body } => {
                let mut st = Status::ok();
                self.loop_depth += 1;
                let r = loop {
                    self.cond_depth += 1;
                    let c = self.run_program(cond);
                    self.cond_depth -= 1;
                    let c = match c {
                        Ok(c) => c,
                        Err(f) => break Err(f),
                    };
                    if c.success() == *until {
                        break Ok(st);
                    }
                    match self.run_program(body) {
                        Ok(s) => st = s,
                        Err(Flow::Break(n)) if n > 1 => break Err(Flow::Break(n - 1)),
                        Err(Flow::Break(_)) => break Ok(self.last.clone()),
                        Err(Flow::Continue(n)) if n > 1 => break Err(Flow::Continue(n - 1)),
                        Err(Flow::Continue(_)) => {}
                        Err(f) => break Err(f),
                    }
                };
                self.loop_depth -= 1;
                r
            }
            Compound::For { var, words, body } => {
                let items = match words {
                    Some(words) => match expand::expand_words(self, words) {
                        Ok(w) => w,
                        Err(e) => return self.expansion_failed(&e),
                    },
                    None => self.positional.clone(),
                };
                let mut st = Status::ok();
                self.loop_depth += 1;
                let mut r = Ok(Status::ok());
                for item in items {
                    self.set_var(var, &item);
                    match self.run_program(body) {
                        Ok(s) => st = s,
                        Err(Flow::Break(n)) if n > 1 => {
                            r = Err(Flow::Break(n - 1));
                            break;
                        }
                        Err(Flow::Break(_)) => break,
                        Err(Flow::Continue(n)) if n > 1 => {
                            r = Err(Flow::Continue(n - 1));
                            break;
                        }
                        Err(Flow::Continue(_)) => {}
                        Err(f) => {
                            r = Err(f);
                            break;
                        }
                    }
                }
                self.loop_depth -= 1;
                r.map(|_| st)
            }
            Compound::Case { word, arms } => {
                let subject = match expand::expand_string(self, word) {
                    Ok(s) => s,
                    Err(e) => return self.expansion_failed(&e),
                };
                for arm in arms {
                    for pat in &arm.patterns {
                        let pattern = match expand::expand_pattern(self, pat) {
                            Ok(p) => p,
                            Err(e) => return self.expansion_failed(&e),
                        };
                        if glob::matches(&pattern, &subject) {
                            return self.run_program(&arm.body);
                        }
                    }
                }
                Ok(Status::ok())
            }
        }
    }

    /// An expansion failed: an error; a script ends (XCU §2.8.1).
    fn expansion_failed(&mut self, e: &str) -> Run {
        self.error(e);
        let st = Status::fail(format!("{}{e}", self.prefix()));
        if self.interactive {
            Ok(st)
        } else {
            Err(Flow::Exit(st))
        }
    }

    fn run_simple(&mut self, s: &SimpleCommand, mode: Mode) -> Run {
        self.origin.line = s.line;
        self.subst_status = None;
        let words = match expand::expand_words(self, &s.words) {
            Ok(w) => w,
            Err(e) => return self.expansion_failed(&e),
        };
        let mut assigns = Vec::new();
        for a in &s.assigns {
            match expand::expand_string(self, &a.value) {
                Ok(v) => assigns.push((a.name.clone(), v)),
                Err(e) => return self.expansion_failed(&e),
            }
        }
        if self.xtrace {
            let mut line = String::from("+");
            for (k, v) in &assigns {
                line.push_str(&format!(" {k}={v}"));
            }
            for w in &words {
                line.push(' ');
                line.push_str(w);
            }
            line.push('\n');
            redir::write_all(io::STDERR, line.as_bytes());
        }
        let Some(name) = words.first().cloned() else {
            // Only assignments and redirections.
            for (k, v) in &assigns {
                self.set_var(k, v);
            }
            let saved = match self.redirect(&s.redirects, true) {
                Ok(saved) => saved,
                Err(msg) => {
                    self.error(&msg);
                    return Ok(Status::fail(msg));
                }
            };
            self.restore(saved);
            return Ok(self.subst_status.take().unwrap_or_default());
        };
        if name == "exec" {
            // Its redirections stay.
            if let Err(msg) = self.redirect(&s.redirects, false) {
                self.error(&msg);
                let st = Status::fail(msg);
                return if self.interactive {
                    Ok(st)
                } else {
                    Err(Flow::Exit(st))
                };
            }
            return self.builtin(&words);
        }
        if builtins::is_special(&name) {
            for (k, v) in &assigns {
                self.set_var(k, v);
            }
            return self.with_redirects(&s.redirects, mode, |sh| sh.builtin(&words));
        }
        if let Some(f) = self.funcs.get(&name).cloned() {
            return self.with_assigns(&assigns, |sh| {
                sh.with_redirects(&s.redirects, mode, |sh| sh.call_function(&f, &words))
            });
        }
        if builtins::is_builtin(&name) {
            return self.with_assigns(&assigns, |sh| {
                sh.with_redirects(&s.redirects, mode, |sh| sh.builtin(&words))
            });
        }
        let path = match self.find_program(&name) {
            Ok(p) => p,
            Err(msg) => {
                self.error(&msg);
                let st = Status {
                    code: not_found_status(&msg),
                    msg: format!("{}{msg}", self.prefix()),
                };
                return Ok(st);
            }
        };
        if mode == Mode::Replace {
            self.exec_program(&path, &words, &assigns, &s.redirects);
        }
        let pid = match process::rfork(RFPROC | RFFDG) {
            Ok(0) => {
                self.become_child();
                self.exec_program(&path, &words, &assigns, &s.redirects)
            }
            Ok(pid) => pid,
            Err(e) => {
                let msg = format!("fork: {e}");
                self.error(&msg);
                return Ok(Status::fail(msg));
            }
        };
        Ok(self.wait_pid(pid))
    }

    /// Runs `f` with temporary variable assignments (`A=1 builtin`).
    fn with_assigns(
        &mut self,
        assigns: &[(String, String)],
        f: impl FnOnce(&mut Shell) -> Run,
    ) -> Run {
        let saved: Vec<(String, Option<super::Var>)> = assigns
            .iter()
            .map(|(k, _)| (k.clone(), self.vars.get(k).cloned()))
            .collect();
        for (k, v) in assigns {
            self.set_var(k, v);
        }
        let r = f(self);
        for (k, old) in saved.into_iter().rev() {
            match old {
                Some(v) => {
                    self.vars.insert(k, v);
                }
                None => {
                    self.vars.remove(&k);
                }
            }
        }
        r
    }

    /// Runs `f` with redirections applied, undoing them afterwards (unless this process ends
    /// with the command).
    fn with_redirects(
        &mut self,
        rs: &[Redirect],
        mode: Mode,
        f: impl FnOnce(&mut Shell) -> Run,
    ) -> Run {
        let saved = match self.redirect(rs, mode == Mode::Wait) {
            Ok(s) => s,
            Err(msg) => {
                self.error(&msg);
                return Ok(Status::fail(msg));
            }
        };
        let r = f(self);
        self.restore(saved);
        r
    }

    fn call_function(&mut self, f: &Function, words: &[String]) -> Run {
        if self.func_depth >= 200 {
            let msg = format!("{}: functions nested too deeply", f.name);
            self.error(&msg);
            let st = Status::fail(msg);
            return Err(if self.interactive {
                Flow::Abort(st)
            } else {
                Flow::Exit(st)
            });
        }
        let saved_args = core::mem::replace(&mut self.positional, words[1..].to_vec());
        self.func_depth += 1;
        self.locals.push(Vec::new());
        let saved_loops = core::mem::replace(&mut self.loop_depth, 0);
        let r = match self.redirect(&f.redirects, true) {
            Ok(saved) => {
                let r = self.run_compound(&f.body, Mode::Wait);
                self.restore(saved);
                r
            }
            Err(msg) => {
                self.error(&msg);
                Ok(Status::fail(msg))
            }
        };
        self.loop_depth = saved_loops;
        if let Some(frame) = self.locals.pop() {
            for (k, old) in frame.into_iter().rev() {
                match old {
                    Some(v) => {
                        self.vars.insert(k, v);
                    }
                    None => {
                        self.vars.remove(&k);
                    }
                }
            }
        }
        self.func_depth -= 1;
        self.positional = saved_args;
        match r {
            Err(Flow::Return(st)) => Ok(st),
            Err(Flow::Break(_) | Flow::Continue(_)) => Ok(self.last.clone()),
            other => other,
        }
    }

    /// Where the program `name` is: a path as given, or the first executable match in
    /// `$PATH`.
    pub fn find_program(&self, name: &str) -> Result<String, String> {
        self.find_file(name, true)
    }

    /// A path as given, or the first match in `$PATH` (executable ones only if `exec`).
    pub fn find_file(&self, name: &str, exec: bool) -> Result<String, String> {
        if name.contains('/') || name.starts_with('#') {
            return match fs::stat(name) {
                Ok(d) if d.mode & fs::DMDIR != 0 => Err(format!("{name}: file is a directory")),
                Ok(d) if exec && d.mode & 0o100 == 0 => {
                    Err(format!("{name}: {}", abi::errors::EPERM))
                }
                Ok(_) => Ok(String::from(name)),
                Err(e) => Err(e.msg().to_string()),
            };
        }
        let path = self.var("PATH").unwrap_or_else(|| "/bin".into());
        for dir in path.split(':') {
            let candidate = match dir {
                "" | "." => String::from(name),
                d if d.ends_with('/') => format!("{d}{name}"),
                d => format!("{d}/{name}"),
            };
            if let Ok(d) = fs::stat(&candidate)
                && d.mode & fs::DMDIR == 0
                && (!exec || d.mode & 0o100 != 0)
            {
                return Ok(candidate);
            }
        }
        Err(format!("{name}: file does not exist"))
    }

    /// In a child: applies the redirections and replaces the process with the program.
    pub fn exec_program(
        &mut self,
        path: &str,
        words: &[String],
        assigns: &[(String, String)],
        redirects: &[Redirect],
    ) -> ! {
        if let Err(msg) = self.redirect(redirects, false) {
            self.error(&msg);
            process::exits(&msg);
        }
        let env = self.environment(assigns);
        let e = process::exec_env(path, words, &env);
        if e.msg().ends_with(abi::errors::EBADEXEC) {
            // A script: `#!interpreter [arg]`, or no `#!` at all (then it is ours).
            let (interp, arg) = script_interpreter(path);
            let mut argv = alloc::vec![words[0].clone()];
            argv.extend(arg);
            argv.push(String::from(path));
            argv.extend(words[1..].iter().cloned());
            let e = process::exec_env(&interp, &argv, &env);
            let msg = format!("{}: {e}", words[0]);
            self.error(&msg);
            process::exits(&msg);
        }
        let msg = format!(
            "{}: {}",
            words[0],
            e.msg().rsplit(": ").next().unwrap_or(e.msg())
        );
        self.error(&msg);
        process::exits(&msg)
    }

    /// `list &`: in a child of its own note group (^C does not reach it), input from
    /// `/dev/null`.
    fn run_background(&mut self, item: &Item) -> Status {
        match process::rfork(RFPROC | RFFDG | RFNOTEG) {
            Ok(0) => {
                self.become_child();
                if let Ok(fd) = fs::open("/dev/null", fs::OREAD)
                    && fd != 0
                {
                    let _ = io::dup(fd, Some(0));
                    let _ = io::close(fd);
                }
                let simple = item.and_or.rest.is_empty() && !item.and_or.first.bang;
                let r = self.run_and_or(
                    &item.and_or,
                    if simple { Mode::Replace } else { Mode::Wait },
                );
                self.end_child(r)
            }
            Ok(pid) => {
                self.last_bg = Some(pid);
                self.jobs.push(Job {
                    pid,
                    text: format!("{}", pid),
                });
                Status::ok()
            }
            Err(e) => {
                let msg = format!("fork: {e}");
                self.error(&msg);
                Status::fail(msg)
            }
        }
    }

    /// Runs `f` in a child process and waits for it (subshells).
    pub fn in_child(&mut self, f: impl FnOnce(&mut Shell) -> Run) -> Run {
        match process::rfork(RFPROC | RFFDG) {
            Ok(0) => {
                self.become_child();
                let r = f(self);
                self.end_child(r)
            }
            Ok(pid) => Ok(self.wait_pid(pid)),
            Err(e) => {
                let msg = format!("fork: {e}");
                self.error(&msg);
                Ok(Status::fail(msg))
            }
        }
    }

    /// What a forked child does first: it owns no jobs, its traps are reset (ignored notes
    /// stay ignored), and the shell's private fds are closed.
    pub fn become_child(&mut self) {
        self.subshell = true;
        self.interactive = false;
        self.interrupted = false;
        self.jobs.clear();
        self.reaped.clear();
        for fd in core::mem::take(&mut self.internal_fds) {
            let _ = io::close(fd);
        }
        traps::reset_in_child(self);
    }

    /// Ends a child with the status of what it ran.
    pub fn end_child(&mut self, r: Run) -> ! {
        let st = match r {
            Ok(st) | Err(Flow::Exit(st) | Flow::Return(st) | Flow::Abort(st)) => st,
            Err(Flow::Break(_) | Flow::Continue(_)) => self.last.clone(),
        };
        self.exit(st)
    }

    /// Waits for child `pid`; notes that arrive meanwhile run their traps.
    pub fn wait_pid(&mut self, pid: u64) -> Status {
        loop {
            if let Some(msg) = self.reaped.remove(&pid) {
                return Status::from_exit(&msg);
            }
            if traps::pending_signal().is_some()
                && let Err(Flow::Exit(st)) = self.run_traps()
            {
                self.exit(st);
            }
            match process::await_child() {
                Ok(e) if e.pid == pid => return Status::from_exit(&e.msg),
                Ok(e) => self.note_exit(e.pid, e.msg),
                Err(e) if e.msg() == rt::notes::INTERRUPTED => {
                    // Traps run now, even while a foreground program runs (it may be the
                    // very thing the trap stops).
                    if let Err(Flow::Exit(st)) = self.run_traps() {
                        self.exit(st);
                    }
                }
                Err(e) => return Status::fail(format!("await: {e}")),
            }
        }
    }

    /// Records the exit of a child nobody was waiting for at that moment.
    pub fn note_exit(&mut self, pid: u64, msg: String) {
        self.jobs.retain(|j| j.pid != pid);
        if self.reaped.len() >= 1024 {
            let first = *self.reaped.keys().next().expect("not empty");
            self.reaped.remove(&first);
        }
        self.reaped.insert(pid, msg);
    }

    /// Runs a command substitution in a child and returns what it printed.
    fn substitute(&mut self, prog: &Program) -> Result<String, String> {
        let (w, r) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
        match process::rfork(RFPROC | RFFDG) {
            Ok(0) => {
                self.become_child();
                let _ = io::close(r);
                let _ = io::dup(w, Some(1));
                let _ = io::close(w);
                let result = self.run_program(prog);
                self.end_child(result)
            }
            Ok(pid) => {
                let _ = io::close(w);
                let mut out = Vec::new();
                let mut buf = alloc::vec![0u8; 4096];
                loop {
                    match io::read(r, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                        Err(e) if e.msg() == rt::notes::INTERRUPTED => {}
                        Err(_) => break,
                    }
                }
                let _ = io::close(r);
                let st = self.wait_pid(pid);
                self.last = st.clone();
                self.subst_status = Some(st);
                Ok(String::from_utf8_lossy(&out).into_owned())
            }
            Err(e) => {
                let _ = io::close(w);
                let _ = io::close(r);
                Err(format!("fork: {e}"))
            }
        }
    }
}

/// `$?` for a command that could not be run: 127 if it was not found, 126 if it was but
/// cannot be run (XCU §2.8.2).
pub fn not_found_status(msg: &str) -> i32 {
    if msg.ends_with(abi::errors::ENOTEXIST) {
        127
    } else {
        126
    }
}

/// The interpreter of a script file: its `#!` line, or this shell.
fn script_interpreter(path: &str) -> (String, Option<String>) {
    let head = fs::open(path, fs::OREAD).ok().and_then(|fd| {
        let mut buf = [0u8; 256];
        let n = io::read(fd, &mut buf).unwrap_or(0);
        let _ = io::close(fd);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let first = text.lines().next()?.strip_prefix("#!")?.trim().to_string();
        Some(first)
    });
    if let Some(line) = head {
        let mut parts = line.splitn(2, char::is_whitespace);
        if let Some(interp) = parts.next().filter(|s| !s.is_empty()) {
            let arg = parts.next().map(str::trim).filter(|s| !s.is_empty());
            return (String::from(interp), arg.map(String::from));
        }
    }
    (String::from("/bin/sh"), None)
}

impl Context for Shell {
    fn var(&self, name: &str) -> Option<String> {
        Shell::var(self, name)
    }

    fn set_var(&mut self, name: &str, value: &str) -> Result<(), String> {
        Shell::set_var(self, name, value);
        Ok(())
    }

    fn positional(&self) -> &[String] {
        &self.positional
    }

    fn special(&self, c: char) -> String {
        match c {
            '?' => self.last.code.to_string(),
            '$' => process::getpid().to_string(),
            '!' => self.last_bg.map(|p| p.to_string()).unwrap_or_default(),
            '0' => self.arg0.clone(),
            '-' => {
                let mut s = String::new();
                if self.errexit {
                    s.push('e');
                }
                if self.noglob {
                    s.push('f');
                }
                if self.interactive {
                    s.push('i');
                }
                if self.xtrace {
                    s.push('x');
                }
                s
            }
            _ => String::new(),
        }
    }

    fn command_output(&mut self, prog: &Program) -> Result<String, String> {
        self.substitute(prog)
    }

    fn read_dir(&mut self, dir: &str) -> Option<Vec<String>> {
        let d = if dir.is_empty() { "." } else { dir };
        fs::read_dir(d)
            .ok()
            .map(|entries| entries.into_iter().map(|e| e.name.into_owned()).collect())
    }

    fn noglob(&self) -> bool {
        self.noglob
    }
}
