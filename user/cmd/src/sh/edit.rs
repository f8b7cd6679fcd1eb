//! The interactive line editor. On the console it reads raw bytes (`rawon` in `consctl`) and
//! does its own echo, so that it can offer history (up/down), cursor movement (left/right,
//! home/end, ^A/^E), backspace, delete, ^U, ^W, ^K; ^C abandons the line and ^D on an empty
//! line ends input. Raw mode is only on while a line is being typed: programs the shell runs
//! get the console's own line discipline (where ^C posts `interrupt`). Anywhere else (input
//! that is not the console) lines are read as they come.
//!
//! Redrawing uses only backspace, spaces and reprinting, which every terminal understands.

use super::redir::write_all;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use rt::{fs, io};

/// What reading a line gave.
pub enum Line {
    /// A line (without its newline).
    Text(String),
    /// ^C, or a note, interrupted it: start again.
    Interrupted,
    /// End of input.
    Eof,
    /// Reading failed.
    Failed(String),
}

/// Most lines kept in the history.
const HISTORY: usize = 500;

/// Whether standard input is the console.
pub fn stdin_is_console() -> bool {
    fs::fd2path(io::STDIN).is_ok_and(|p| p.ends_with("/cons") || p == "#cons/cons")
}

fn open_consctl() -> Option<u64> {
    fs::open("/dev/consctl", fs::OWRITE)
        .or_else(|_| fs::open("#cons/consctl", fs::OWRITE))
        .ok()
}

/// Makes ^C on the console post `interrupt` to this shell's note group.
pub fn take_console_notes() {
    if let Some(fd) = open_consctl() {
        let _ = io::write(fd, b"notegroup");
        let _ = io::close(fd);
    }
}

/// The editor and its history.
pub struct Editor {
    consctl: Option<u64>,
    history: Vec<String>,
    /// Bytes read but not yet used (typed ahead).
    input: VecDeque<u8>,
    /// The last line ended with `\r`: a `\n` right after it is part of the same Enter.
    after_cr: bool,
    /// The console is in raw mode.
    raw_on: bool,
}

/// The line being edited.
struct Edit {
    line: Vec<char>,
    cur: usize,
    echo: String,
}

impl Edit {
    fn tail(&self) -> String {
        self.line[self.cur..].iter().collect()
    }

    fn back(&mut self, n: usize) {
        for _ in 0..n {
            self.echo.push('\x08');
        }
    }

    fn insert(&mut self, c: char) {
        self.line.insert(self.cur, c);
        self.cur += 1;
        self.echo.push(c);
        let tail = self.tail();
        self.echo.push_str(&tail);
        self.back(tail.chars().count());
    }

    /// Removes the character at the cursor and redraws the rest.
    fn delete_here(&mut self) {
        if self.cur >= self.line.len() {
            return;
        }
        self.line.remove(self.cur);
        let tail = self.tail();
        self.echo.push_str(&tail);
        self.echo.push(' ');
        self.back(tail.chars().count() + 1);
    }

    fn backspace(&mut self) {
        if self.cur == 0 {
            return;
        }
        self.cur -= 1;
        self.echo.push('\x08');
        self.delete_here();
    }

    fn left(&mut self) {
        if self.cur > 0 {
            self.cur -= 1;
            self.echo.push('\x08');
        }
    }

    fn right(&mut self) {
        if self.cur < self.line.len() {
            self.echo.push(self.line[self.cur]);
            self.cur += 1;
        }
    }

    fn home(&mut self) {
        self.back(self.cur);
        self.cur = 0;
    }

    fn end(&mut self) {
        let tail = self.tail();
        self.echo.push_str(&tail);
        self.cur = self.line.len();
    }

    fn kill_to_end(&mut self) {
        let n = self.line.len() - self.cur;
        for _ in 0..n {
            self.echo.push(' ');
        }
        self.back(n);
        self.line.truncate(self.cur);
    }

    fn clear(&mut self) {
        self.home();
        self.kill_to_end();
    }

    fn replace(&mut self, text: &str) {
        self.clear();
        self.line = text.chars().collect();
        self.cur = self.line.len();
        self.echo.push_str(text);
    }

    fn delete_word(&mut self) {
        while self.cur > 0 && self.line[self.cur - 1] == ' ' {
            self.backspace();
        }
        while self.cur > 0 && self.line[self.cur - 1] != ' ' {
            self.backspace();
        }
    }
}

impl Editor {
    /// An editor; on the console it uses raw mode.
    pub fn new(console: bool) -> Editor {
        Editor {
            consctl: if console { open_consctl() } else { None },
            history: Vec::new(),
            input: VecDeque::new(),
            after_cr: false,
            raw_on: false,
        }
    }

    /// The console control fd the editor keeps open.
    pub fn consctl_fd(&self) -> Option<u64> {
        self.consctl
    }

    /// Adds a line to the history.
    pub fn remember(&mut self, line: &str) {
        if line.is_empty() || self.history.last().is_some_and(|l| l == line) {
            return;
        }
        if self.history.len() == HISTORY {
            self.history.remove(0);
        }
        self.history.push(String::from(line));
    }

    fn raw(&mut self, on: bool) -> bool {
        if self.raw_on == on {
            return true;
        }
        let ok = match self.consctl {
            Some(fd) => io::write(fd, if on { b"rawon" } else { b"rawoff" }).is_ok(),
            None => false,
        };
        if ok {
            self.raw_on = on;
        }
        ok
    }

    /// Gives the console back to its line discipline (before running commands). Raw mode
    /// stays on from one line to the next while a command is incomplete, so that nothing
    /// typed ahead passes through the line discipline in between.
    pub fn cooked(&mut self) {
        self.raw(false);
    }

    /// Prints `prompt` and reads a line. Raw mode goes on before the prompt appears: what
    /// is typed after seeing it is ours.
    pub fn read_line(&mut self, prompt: &str) -> Line {
        let raw = self.consctl.is_some() && self.raw(true);
        write_all(io::STDERR, prompt.as_bytes());
        if raw { self.read_raw() } else { read_cooked() }
    }

    fn next_byte(&mut self) -> Result<Option<u8>, Line> {
        if let Some(b) = self.input.pop_front() {
            return Ok(Some(b));
        }
        let mut buf = [0u8; 64];
        match io::read(io::STDIN, &mut buf) {
            Ok(0) => Ok(None),
            Ok(n) => {
                self.input.extend(&buf[..n]);
                Ok(self.input.pop_front())
            }
            Err(e) if e.msg() == rt::notes::INTERRUPTED => Err(Line::Interrupted),
            Err(e) => Err(Line::Failed(String::from(e.msg()))),
        }
    }

    fn read_raw(&mut self) -> Line {
        let mut e = Edit {
            line: Vec::new(),
            cur: 0,
            echo: String::new(),
        };
        // Where in the history up/down have got to (history.len(): the line being typed).
        let mut at = self.history.len();
        let mut typed = String::new();
        let mut utf8: Vec<u8> = Vec::new();
        loop {
            if !e.echo.is_empty() {
                write_all(io::STDERR, e.echo.as_bytes());
                e.echo.clear();
            }
            let b = match self.next_byte() {
                Ok(Some(b)) => b,
                Ok(None) => return Line::Eof,
                Err(Line::Interrupted) => {
                    write_all(io::STDERR, b"\n");
                    return Line::Interrupted;
                }
                Err(other) => return other,
            };
            let after_cr = core::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    write_all(io::STDERR, b"\n");
                    return Line::Text(e.line.iter().collect());
                }
                0x03 => {
                    write_all(io::STDERR, b"^C\n");
                    return Line::Interrupted;
                }
                0x04 => {
                    if e.line.is_empty() {
                        write_all(io::STDERR, b"\n");
                        return Line::Eof;
                    }
                    e.delete_here();
                }
                0x08 | 0x7f => e.backspace(),
                0x15 => e.clear(),
                0x17 => e.delete_word(),
                0x0b => e.kill_to_end(),
                0x01 => e.home(),
                0x05 => e.end(),
                0x1b => {
                    let (Ok(Some(b1)), Ok(Some(b2))) = (self.next_byte(), self.next_byte()) else {
                        continue;
                    };
                    if b1 != b'[' && b1 != b'O' {
                        continue;
                    }
                    match b2 {
                        b'A' | b'B' => {
                            if at == self.history.len() {
                                typed = e.line.iter().collect();
                            }
                            if b2 == b'A' && at > 0 {
                                at -= 1;
                            } else if b2 == b'B' && at < self.history.len() {
                                at += 1;
                            } else {
                                continue;
                            }
                            let text = self.history.get(at).cloned().unwrap_or(typed.clone());
                            e.replace(&text);
                        }
                        b'C' => e.right(),
                        b'D' => e.left(),
                        b'H' => e.home(),
                        b'F' => e.end(),
                        b'1'..=b'9' => {
                            // ESC [ n ~ : 1/7 home, 4/8 end, 3 delete.
                            let mut n = b2;
                            while let Ok(Some(x)) = self.next_byte() {
                                if x == b'~' {
                                    break;
                                }
                                n = x;
                            }
                            match n {
                                b'1' | b'7' => e.home(),
                                b'4' | b'8' => e.end(),
                                b'3' => e.delete_here(),
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
                b'\t' => e.insert('\t'),
                b if b < 0x20 => {}
                b if b < 0x80 => e.insert(b as char),
                b => {
                    utf8.push(b);
                    match core::str::from_utf8(&utf8) {
                        Ok(s) => {
                            let c = s.chars().next().unwrap_or('?');
                            utf8.clear();
                            e.insert(c);
                        }
                        Err(err) if err.error_len().is_some() || utf8.len() >= 4 => utf8.clear(),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// Reads a line as the console's line discipline (or a file) delivers it.
fn read_cooked() -> Line {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match io::read(io::STDIN, &mut b) {
            Ok(0) if line.is_empty() => return Line::Eof,
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => line.push(b[0]),
            Err(e) if e.msg() == rt::notes::INTERRUPTED => return Line::Interrupted,
            Err(e) => return Line::Failed(String::from(e.msg())),
        }
    }
    Line::Text(String::from_utf8_lossy(&line).into_owned())
}
