//! Builtin commands. Special builtins (XCU §2.14) keep variable assignments made before
//! them; the others are like programs that happen to run inside the shell.

use super::traps::{self, Key};
use super::{Flow, Origin, Run, Shell, Status, redir};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rt::{fs, io, process};
use shell::cond;
use shell::signal;

const SPECIAL: &[&str] = &[
    ":", ".", "break", "continue", "eval", "exec", "exit", "export", "return", "set", "shift",
    "trap", "unset", "local",
];
const REGULAR: &[&str] = &[
    "cd", "pwd", "wait", "kill", "read", "echo", "printf", "test", "[", "true", "false", "jobs",
];

/// Whether `name` is a special builtin.
pub fn is_special(name: &str) -> bool {
    SPECIAL.contains(&name)
}

/// Whether `name` is a regular builtin.
pub fn is_builtin(name: &str) -> bool {
    REGULAR.contains(&name)
}

fn out(text: &str) -> Status {
    if redir::write_all(io::STDOUT, text.as_bytes()) {
        Status::ok()
    } else {
        Status::fail("write error")
    }
}

/// Single-quotes `s` for the shell to read back.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:,=+@%".contains(c))
    {
        return String::from(s);
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The logical path after `cd target` from `cwd`.
fn join_path(cwd: &str, target: &str) -> String {
    let full = if target.starts_with('/') || target.starts_with('#') {
        String::from(target)
    } else {
        format!("{cwd}/{target}")
    };
    let absolute = full.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in full.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                // A device root (`#tmpfs`) stays; `/..` is `/`.
                if parts.last().is_some_and(|p| !p.starts_with('#')) {
                    parts.pop();
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        String::from("/")
    } else {
        joined
    }
}

impl Shell {
    /// Runs builtin `words[0]`.
    pub fn builtin(&mut self, words: &[String]) -> Run {
        let args = &words[1..];
        let name = words[0].as_str();
        let st = match name {
            ":" | "true" => Status::ok(),
            "false" => Status::code(1),
            "echo" => echo(args),
            "printf" => self.printf(args),
            "test" => self.test(name, args),
            "[" => {
                if args.last().map(String::as_str) != Some("]") {
                    self.fail_usage("[: missing \"]\"")
                } else {
                    self.test(name, &args[..args.len() - 1])
                }
            }
            "cd" => self.cd(args),
            "pwd" => out(&format!("{}\n", self.cwd)),
            "wait" => self.wait(args),
            "kill" => self.kill(args),
            "read" => self.read(args),
            "jobs" => {
                let mut text = String::new();
                for j in &self.jobs {
                    text.push_str(&format!("{}\n", j.text));
                }
                out(&text)
            }
            "export" => self.export(args),
            "unset" => self.unset(args),
            "local" => self.local(args),
            "set" => self.set(args),
            "shift" => self.shift(args),
            "trap" => self.trap(args),
            "eval" => return self.run_nested(&args.join(" "), None),
            "." => return self.dot(args),
            "exec" => return self.exec(args),
            "exit" => {
                let st = match args.first() {
                    None => self.last.clone(),
                    Some(n) => match n.parse::<i32>() {
                        Ok(n) => Status::code(n & 0xff),
                        Err(_) => {
                            self.error(&format!("exit: {n}: numeric argument required"));
                            Status::code(2)
                        }
                    },
                };
                return Err(Flow::Exit(st));
            }
            "return" => {
                let st = match args.first().map(|n| n.parse::<i32>()) {
                    None => self.last.clone(),
                    Some(Ok(n)) => Status::code(n & 0xff),
                    Some(Err(_)) => {
                        return Ok(self.fail_usage("return: numeric argument required"));
                    }
                };
                if self.func_depth == 0 {
                    return Ok(self.fail_usage("return: not in a function or a . script"));
                }
                return Err(Flow::Return(st));
            }
            "break" | "continue" => {
                let n = match args.first().map(|n| n.parse::<usize>()) {
                    None => 1,
                    Some(Ok(n)) if n > 0 => n,
                    _ => return Ok(self.fail_usage(&format!("{name}: bad loop count"))),
                };
                if self.loop_depth == 0 {
                    return Ok(self.fail_usage(&format!("{name}: not in a loop")));
                }
                let n = n.min(self.loop_depth);
                return Err(if name == "break" {
                    Flow::Break(n)
                } else {
                    Flow::Continue(n)
                });
            }
            _ => Status::fail(format!("{name}: not a builtin")),
        };
        Ok(st)
    }

    /// A usage error: message and status 2.
    fn fail_usage(&self, msg: &str) -> Status {
        self.error(msg);
        Status {
            code: 2,
            msg: String::from(msg),
        }
    }

    /// A failure: message and status 1.
    fn fail(&self, msg: String) -> Status {
        self.error(&msg);
        Status::fail(msg)
    }

    fn printf(&self, args: &[String]) -> Status {
        let Some(fmt) = args.first() else {
            return self.fail_usage("usage: printf format [arg...]");
        };
        let (text, errors) = shell::printf::format(fmt, &args[1..]);
        let st = out(&text);
        if let Some(e) = errors.first() {
            return self.fail(format!("printf: {e}"));
        }
        st
    }

    fn test(&self, name: &str, args: &[String]) -> Status {
        match cond::eval(args, &mut cmd::files::CondFiles) {
            Ok(true) => Status::ok(),
            Ok(false) => Status::code(1),
            Err(e) => self.fail_usage(&format!("{name}: {e}")),
        }
    }

    fn cd(&mut self, args: &[String]) -> Status {
        let (target, print) = match args.first().map(String::as_str) {
            None => (self.var("HOME").unwrap_or_else(|| "/".into()), false),
            Some("-") => match self.var("OLDPWD") {
                Some(old) => (old, true),
                None => return self.fail("cd: OLDPWD not set".into()),
            },
            Some(dir) => (String::from(dir), false),
        };
        if args.len() > 1 {
            return self.fail_usage("usage: cd [dir]");
        }
        if let Err(e) = fs::chdir(&target) {
            return self.fail(format!("cd: {e}"));
        }
        let new = join_path(&self.cwd, &target);
        let old = core::mem::replace(&mut self.cwd, new);
        self.set_var("OLDPWD", &old);
        let cwd = self.cwd.clone();
        self.set_var("PWD", &cwd);
        if print {
            return out(&format!("{cwd}\n"));
        }
        Status::ok()
    }

    /// `wait [pid...]`: a note with a trap ends the wait (status 128 + signal) and runs the
    /// trap.
    fn wait(&mut self, args: &[String]) -> Status {
        let mut pids = Vec::new();
        for a in args {
            match a.parse::<u64>() {
                Ok(p) => pids.push(p),
                Err(_) => return self.fail_usage(&format!("wait: {a}: not a process id")),
            }
        }
        let all = pids.is_empty();
        let mut st = Status::ok();
        let mut queue = pids.into_iter();
        let mut current = queue.next();
        loop {
            if let Some(pid) = current {
                if let Some(msg) = self.reaped.remove(&pid) {
                    st = Status::from_exit(&msg);
                    current = queue.next();
                    continue;
                }
                if !self.jobs.iter().any(|j| j.pid == pid) {
                    st = Status::code(127);
                    self.error(&format!("wait: {pid}: not a child of this shell"));
                    current = queue.next();
                    continue;
                }
            } else if !all || self.jobs.is_empty() {
                if all {
                    self.reaped.clear();
                }
                return st;
            }
            // A note that arrived before we block would not interrupt the wait. (Inside a
            // trap, notes wait for the trap to finish.)
            if let Some(sig) = traps::pending_signal().filter(|_| !self.in_trap) {
                if let Err(Flow::Exit(st)) = self.run_traps() {
                    self.exit(st);
                }
                return Status::code(128 + sig as i32);
            }
            match process::await_child() {
                Ok(e) => {
                    if current == Some(e.pid) {
                        self.jobs.retain(|j| j.pid != e.pid);
                        st = Status::from_exit(&e.msg);
                        current = queue.next();
                    } else {
                        self.note_exit(e.pid, e.msg);
                    }
                }
                Err(e) if e.msg() == rt::notes::INTERRUPTED => {
                    if self.in_trap {
                        continue;
                    }
                    let sig = traps::pending_signal().unwrap_or(2);
                    if let Err(Flow::Exit(st)) = self.run_traps() {
                        self.exit(st);
                    }
                    return Status::code(128 + sig as i32);
                }
                Err(e) => {
                    // No children left: the jobs we thought we had are gone.
                    if all {
                        self.jobs.clear();
                        return st;
                    }
                    return self.fail(format!("wait: {e}"));
                }
            }
        }
    }

    fn kill(&mut self, args: &[String]) -> Status {
        let usage = "usage: kill [-s signal | -signal] pid... | kill -l";
        let mut sig = signal::TERM;
        let mut rest = args;
        match rest.first().map(String::as_str) {
            Some("-l") => {
                let names: Vec<&str> = signal::SIGNALS.iter().map(|s| s.name).collect();
                return out(&format!("{}\n", names.join(" ")));
            }
            Some("-s") => {
                let Some(s) = rest.get(1).and_then(|n| signal::parse(n)) else {
                    return self.fail_usage(usage);
                };
                sig = s;
                rest = &rest[2..];
            }
            Some(a) if a.starts_with('-') && a != "--" => match signal::parse(&a[1..]) {
                Some(s) => {
                    sig = s;
                    rest = &rest[1..];
                }
                None => return self.fail_usage(&format!("kill: {a}: unknown signal\n{usage}")),
            },
            Some("--") => rest = &rest[1..],
            _ => {}
        }
        if rest.is_empty() {
            return self.fail_usage(usage);
        }
        let mut st = Status::ok();
        for a in rest {
            let Ok(pid) = a.parse::<u64>() else {
                st = self.fail(format!("kill: {a}: not a process id"));
                continue;
            };
            if let Err(e) = process::postnote(pid, sig.note) {
                let why = e.msg().rsplit(": ").next().unwrap_or(e.msg());
                st = self.fail(format!("kill: {pid}: {why}"));
            }
        }
        st
    }

    /// `read [-r] var...`: one line of standard input, split by `IFS`.
    fn read(&mut self, args: &[String]) -> Status {
        let mut raw = false;
        let mut names: Vec<&str> = Vec::new();
        for a in args {
            match a.as_str() {
                "-r" if names.is_empty() => raw = true,
                n if shell::parse::is_name(n) => names.push(n),
                n => return self.fail_usage(&format!("read: {n}: not a variable name")),
            }
        }
        if names.is_empty() {
            names.push("REPLY");
        }
        let mut line: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut b = [0u8; 1];
        loop {
            match io::read(io::STDIN, &mut b) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {
                    if b[0] == b'\n' {
                        if !raw && line.last() == Some(&b'\\') {
                            line.pop();
                            continue;
                        }
                        break;
                    }
                    line.push(b[0]);
                }
                Err(e) if e.msg() == rt::notes::INTERRUPTED => {
                    let sig = traps::pending_signal().unwrap_or(2);
                    if let Err(Flow::Exit(st)) = self.run_traps() {
                        self.exit(st);
                    }
                    return Status::code(128 + sig as i32);
                }
                Err(e) => return self.fail(format!("read: {e}")),
            }
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let text = if raw {
            text
        } else {
            let mut s = String::new();
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                } else {
                    s.push(c);
                }
            }
            s
        };
        let ifs = self.var("IFS").unwrap_or_else(|| " \t\n".into());
        let is_sep = |c: char| ifs.contains(c);
        let mut rest = text.trim_matches(|c: char| is_sep(c) && c.is_whitespace());
        for (i, name) in names.iter().enumerate() {
            if i + 1 == names.len() {
                let value = rest.trim_end_matches(|c: char| is_sep(c) && c.is_whitespace());
                self.set_var(name, value);
                break;
            }
            let end = rest.find(is_sep).unwrap_or(rest.len());
            let (field, after) = rest.split_at(end);
            self.set_var(name, field);
            let mut after = after.trim_start_matches(|c: char| is_sep(c) && c.is_whitespace());
            if let Some(c) = after.chars().next()
                && is_sep(c)
            {
                after = after[c.len_utf8()..]
                    .trim_start_matches(|c: char| is_sep(c) && c.is_whitespace());
            }
            rest = after;
        }
        if eof && line.is_empty() {
            Status::code(1)
        } else {
            Status::ok()
        }
    }

    fn export(&mut self, args: &[String]) -> Status {
        if args.is_empty() || args[0] == "-p" {
            let mut text = String::new();
            for (k, v) in self.vars.iter().filter(|(_, v)| v.exported) {
                text.push_str(&format!("export {k}={}\n", quote(&v.value)));
            }
            return out(&text);
        }
        let mut st = Status::ok();
        for a in args {
            let (name, value) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            if !shell::parse::is_name(name) {
                st = self.fail(format!("export: {name}: bad variable name"));
                continue;
            }
            if let Some(v) = value {
                self.set_var(name, v);
            }
            match self.vars.get_mut(name) {
                Some(var) => var.exported = true,
                None => {
                    self.vars.insert(
                        String::from(name),
                        super::Var {
                            value: String::new(),
                            exported: true,
                        },
                    );
                }
            }
        }
        st
    }

    fn unset(&mut self, args: &[String]) -> Status {
        let (funcs, names) = match args.first().map(String::as_str) {
            Some("-f") => (true, &args[1..]),
            Some("-v") => (false, &args[1..]),
            _ => (false, args),
        };
        for n in names {
            if funcs {
                self.funcs.remove(n);
            } else {
                self.vars.remove(n);
            }
        }
        Status::ok()
    }

    fn local(&mut self, args: &[String]) -> Status {
        if self.locals.is_empty() {
            return self.fail_usage("local: not in a function");
        }
        for a in args {
            let (name, value) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            if !shell::parse::is_name(name) {
                return self.fail(format!("local: {name}: bad variable name"));
            }
            let old = self.vars.get(name).cloned();
            let frame = self.locals.last_mut().expect("checked");
            if !frame.iter().any(|(k, _)| k == name) {
                frame.push((String::from(name), old));
            }
            self.set_var(name, value.unwrap_or(""));
        }
        Status::ok()
    }

    fn set(&mut self, args: &[String]) -> Status {
        if args.is_empty() {
            let mut text = String::new();
            for (k, v) in &self.vars {
                text.push_str(&format!("{k}={}\n", quote(&v.value)));
            }
            return out(&text);
        }
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if a == "--" {
                i += 1;
                self.positional = args[i..].to_vec();
                return Status::ok();
            }
            if a == "-o" || a == "+o" {
                let on = a == "-o";
                match args.get(i + 1).map(String::as_str) {
                    Some("errexit") => self.errexit = on,
                    Some("xtrace") => self.xtrace = on,
                    Some("noglob") => self.noglob = on,
                    _ => return self.fail_usage("usage: set -o errexit|xtrace|noglob"),
                }
                i += 2;
                continue;
            }
            if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
                let on = a.starts_with('-');
                for c in a[1..].chars() {
                    match c {
                        'e' => self.errexit = on,
                        'x' => self.xtrace = on,
                        'f' => self.noglob = on,
                        _ => return self.fail_usage(&format!("set: -{c}: unknown option")),
                    }
                }
                i += 1;
                continue;
            }
            self.positional = args[i..].to_vec();
            return Status::ok();
        }
        Status::ok()
    }

    fn shift(&mut self, args: &[String]) -> Status {
        let n = match args.first().map(|a| a.parse::<usize>()) {
            None => 1,
            Some(Ok(n)) => n,
            Some(Err(_)) => return self.fail_usage("shift: numeric argument required"),
        };
        if n > self.positional.len() {
            return self.fail(format!("shift: can't shift {n}"));
        }
        self.positional.drain(..n);
        Status::ok()
    }

    /// `trap [action sig...]`, `trap - sig...`, `trap -l`.
    fn trap(&mut self, args: &[String]) -> Status {
        if args.is_empty() {
            let mut text = String::new();
            for (k, action) in &self.traps {
                text.push_str(&format!(
                    "trap -- {} {}\n",
                    quote(action),
                    traps::key_name(*k)
                ));
            }
            return out(&text);
        }
        if args[0] == "-l" {
            let names: Vec<&str> = signal::SIGNALS.iter().map(|s| s.name).collect();
            return out(&format!("EXIT {}\n", names.join(" ")));
        }
        let (action, sigs) = if args[0] == "-" {
            (None, &args[1..])
        } else if args.len() == 1 || args[0].parse::<u32>().is_ok() {
            // `trap SIG...` with a number first resets them (XCU trap).
            (None, args)
        } else {
            let rest = if args[1] == "--" {
                &args[2..]
            } else {
                &args[1..]
            };
            (Some(args[0].clone()), rest)
        };
        let mut st = Status::ok();
        for s in sigs {
            let Some(key) = traps::parse_key(s) else {
                st = self.fail_usage(&format!("trap: {s}: unknown signal"));
                continue;
            };
            if key == Key::Signal(9) {
                st = self.fail("trap: KILL cannot be caught".into());
                continue;
            }
            match &action {
                Some(a) => {
                    self.traps.insert(key, a.clone());
                }
                None => {
                    self.traps.remove(&key);
                }
            }
        }
        traps::update_catch(self);
        st
    }

    /// `. file [arg...]`.
    fn dot(&mut self, args: &[String]) -> Run {
        let Some(file) = args.first() else {
            return Ok(self.fail_usage("usage: . file [arg...]"));
        };
        let path = if file.contains('/') || file.starts_with('#') {
            file.clone()
        } else {
            match self.find_file(file, false) {
                Ok(p) => p,
                Err(_) => file.clone(),
            }
        };
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                let st = self.fail(format!(".: {e}"));
                return if self.interactive {
                    Ok(st)
                } else {
                    Err(Flow::Exit(st))
                };
            }
        };
        let saved_args =
            (args.len() > 1).then(|| core::mem::replace(&mut self.positional, args[1..].to_vec()));
        self.func_depth += 1;
        let saved = core::mem::replace(
            &mut self.origin,
            Origin {
                name: Some(path),
                line: 1,
            },
        );
        let r = self.run_nested(&text, None);
        self.origin = saved;
        self.func_depth -= 1;
        if let Some(a) = saved_args {
            self.positional = a;
        }
        match r {
            Err(Flow::Return(st)) => Ok(st),
            other => other,
        }
    }

    /// `exec [cmd arg...]`: with no command, the redirections (already applied by the
    /// caller, unsaved) stay; otherwise the program replaces the shell.
    fn exec(&mut self, args: &[String]) -> Run {
        let Some(name) = args.first() else {
            return Ok(Status::ok());
        };
        let path = match self.find_program(name) {
            Ok(p) => p,
            Err(msg) => {
                self.error(&msg);
                let code = super::exec::not_found_status(&msg);
                return Err(Flow::Exit(Status { code, msg }));
            }
        };
        for fd in core::mem::take(&mut self.internal_fds) {
            let _ = io::close(fd);
        }
        self.exec_program(&path, args, &[], &[])
    }
}

fn echo(args: &[String]) -> Status {
    let (newline, words) = match args.first() {
        Some(a) if a == "-n" => (false, &args[1..]),
        _ => (true, args),
    };
    let mut text = words.join(" ");
    if newline {
        text.push('\n');
    }
    out(&text)
}
