//! Redirections (XCU §2.7): opening files onto fds, duplicating and closing fds, and
//! here-documents (a pipe holding the body). In the shell itself the fds they replace are
//! saved and put back afterwards; in a child that is about to exec nothing is saved.

use super::Shell;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use rt::process::{self, RFFDG, RFNOWAIT, RFPROC};
use rt::{fs, io};
use shell::ast::{RedirOp, Redirect};
use shell::expand;

/// Fds replaced by redirections: (fd, where its old channel was saved, if it was open).
#[derive(Debug, Default)]
pub struct Saved(Vec<(u64, Option<u64>)>);

/// Here-documents up to this size are written into the pipe directly; longer ones by a child
/// (a pipe buffers 256 KiB).
const HEREDOC_INLINE: usize = 128 * 1024;

/// Writes all of `bytes` to `fd`, carrying on after a note interrupts; false on failure.
pub fn write_all(fd: u64, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match io::write(fd, bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.msg() == rt::notes::INTERRUPTED => {}
            Err(_) => return false,
        }
    }
    true
}

fn open_for(path: &str, op: RedirOp) -> Result<u64, String> {
    let missing = |e: &rt::Error| e.msg().ends_with(abi::errors::ENOTEXIST);
    let r = match op {
        RedirOp::Read => fs::open(path, fs::OREAD),
        RedirOp::Write => match fs::open(path, fs::OWRITE | fs::OTRUNC) {
            Err(e) if missing(&e) => fs::create(path, fs::OWRITE, 0o664),
            r => r,
        },
        RedirOp::Append => match fs::open(path, fs::OWRITE) {
            Ok(fd) => {
                // Devices and pipes cannot seek; they have no end to go to anyway.
                let _ = fs::seek(fd, 0, 2);
                Ok(fd)
            }
            Err(e) if missing(&e) => fs::create(path, fs::OWRITE, 0o664),
            Err(e) => Err(e),
        },
        RedirOp::ReadWrite => match fs::open(path, fs::ORDWR) {
            Err(e) if missing(&e) => fs::create(path, fs::ORDWR, 0o664),
            r => r,
        },
        RedirOp::Dup | RedirOp::HereDoc { .. } => unreachable!("not a file"),
    };
    r.map_err(|e| String::from(e.msg()))
}

impl Shell {
    /// Applies redirections; with `save`, what they replace is kept for [`Shell::restore`].
    pub fn redirect(&mut self, rs: &[Redirect], save: bool) -> Result<Saved, String> {
        let mut saved = Saved::default();
        for r in rs {
            if let Err(e) = self.redirect_one(r, save, &mut saved) {
                self.restore(saved);
                return Err(e);
            }
        }
        Ok(saved)
    }

    fn redirect_one(&mut self, r: &Redirect, save: bool, saved: &mut Saved) -> Result<(), String> {
        let fd = u64::from(r.fd);
        // What goes onto `fd`: an fd to move there (and close), or `None` to close `fd`.
        let source: Option<(u64, bool)> = match r.op {
            RedirOp::HereDoc { expand: exp } => {
                let body = if exp {
                    expand::expand_string(self, &r.target)?
                } else {
                    r.target.as_plain().unwrap_or_default()
                };
                Some((self.heredoc_pipe(&body)?, true))
            }
            RedirOp::Dup => {
                let target = expand::expand_string(self, &r.target)?;
                if target == "-" {
                    None
                } else {
                    let n: u64 = target
                        .parse()
                        .map_err(|_| format!("{target}: bad file descriptor number"))?;
                    Some((n, false))
                }
            }
            op => {
                let path = expand::expand_string(self, &r.target)?;
                Some((open_for(&path, op)?, true))
            }
        };
        if let Some((from, _)) = source
            && from == fd
        {
            return Ok(());
        }
        if save {
            // Keep what was on `fd` (if anything) somewhere the shell alone knows about.
            let old = io::dup(fd, None).ok();
            if let Some(o) = old {
                self.internal_fds.push(o);
            }
            saved.0.push((fd, old));
        }
        match source {
            Some((from, owned)) => {
                let moved = io::dup(from, Some(fd));
                if owned {
                    let _ = io::close(from);
                }
                moved.map_err(|e| format!("{}: {e}", from))?;
            }
            None => {
                let _ = io::close(fd);
            }
        }
        Ok(())
    }

    /// Puts back what [`Shell::redirect`] replaced.
    pub fn restore(&mut self, saved: Saved) {
        for (fd, old) in saved.0.into_iter().rev() {
            match old {
                Some(o) => {
                    let _ = io::dup(o, Some(fd));
                    let _ = io::close(o);
                    self.internal_fds.retain(|&f| f != o);
                }
                None => {
                    let _ = io::close(fd);
                }
            }
        }
    }

    /// A pipe whose read end gives `body`.
    fn heredoc_pipe(&mut self, body: &str) -> Result<u64, String> {
        let (w, r) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
        if body.len() <= HEREDOC_INLINE {
            write_all(w, body.as_bytes());
            let _ = io::close(w);
            return Ok(r);
        }
        // The writer is nobody's to wait for.
        match process::rfork(RFPROC | RFFDG | RFNOWAIT) {
            Ok(0) => {
                let _ = io::close(r);
                write_all(w, body.as_bytes());
                process::exits("")
            }
            Ok(_) => {
                let _ = io::close(w);
                Ok(r)
            }
            Err(e) => {
                let _ = io::close(w);
                let _ = io::close(r);
                Err(format!("fork: {e}"))
            }
        }
    }
}
