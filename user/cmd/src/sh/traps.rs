//! Notes and traps. The note handler runs on whatever the shell was doing, so it only records
//! the note (a bit per signal) and lets the process continue; a system call it interrupted
//! fails with "interrupted". The shell then runs the trap actions at a safe point: after each
//! command, or as soon as a blocking wait (`wait`, a foreground child, `read`) is interrupted.
//!
//! A note is caught only if something wants it: a trap (or `trap ''`) for its signal, an
//! `EXIT` trap (so that it runs when TERM, INT or HUP would end the shell), or an interactive
//! shell (which survives ^C and `kill`). Any other note ends the shell, as it would any program.

use super::{Flow, Shell, Status};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use rt::notes::{self, Action};
use shell::signal::{self, Signal};

/// What a trap is set for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// The shell exits.
    Exit,
    /// A signal, by number.
    Signal(u32),
}

/// Signals that arrived and have not been acted on, one bit per signal number.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Signals the handler catches.
static CATCH: AtomicU32 = AtomicU32::new(0);
/// The handler is registered with the kernel (not inherited by children).
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn bit(sig: u32) -> u32 {
    1 << (sig & 31)
}

fn on_note(note: &str) -> Action {
    if let Some(sig) = signal::from_note(note)
        && CATCH.load(Ordering::Acquire) & bit(sig.number) != 0
    {
        PENDING.fetch_or(bit(sig.number), Ordering::AcqRel);
        return Action::Continue;
    }
    Action::Die
}

/// Registers the note handler.
pub fn install_handler() {
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        notes::set_handler(on_note);
    }
}

/// An interactive shell survives ^C and `kill` (INT, TERM, QUIT).
pub fn set_catch_interactive(on: bool) {
    let mask = bit(2) | bit(15) | bit(3);
    if on {
        CATCH.fetch_or(mask, Ordering::AcqRel);
    } else {
        CATCH.fetch_and(!mask, Ordering::AcqRel);
    }
}

/// Forgets a pending ^C (the line editor already acted on it).
pub fn take_pending_interrupt() {
    PENDING.fetch_and(!bit(2), Ordering::AcqRel);
}

/// The lowest pending signal, if any.
pub fn pending_signal() -> Option<u32> {
    let p = PENDING.load(Ordering::Acquire);
    (p != 0).then(|| p.trailing_zeros())
}

/// Recomputes which notes the handler catches from the traps that are set.
pub fn update_catch(sh: &Shell) {
    let mut mask = 0;
    for (key, _) in sh.traps.iter() {
        match key {
            Key::Signal(n) => mask |= bit(*n),
            Key::Exit => mask |= bit(1) | bit(2) | bit(15),
        }
    }
    if sh.interactive {
        mask |= bit(2) | bit(15) | bit(3);
    }
    CATCH.store(mask, Ordering::Release);
    if mask != 0 {
        install_handler();
    }
}

/// In a forked child: traps are reset except ignored ones (XCU §2.12); the kernel gave the
/// child no handler, so register one again if anything is still caught.
pub fn reset_in_child(sh: &mut Shell) {
    sh.traps
        .retain(|k, action| *k != Key::Exit && action.is_empty());
    PENDING.store(0, Ordering::Release);
    INSTALLED.store(false, Ordering::Release);
    update_catch(sh);
}

/// The signal a trap operand names (`EXIT`/`0` is [`Key::Exit`]).
pub fn parse_key(s: &str) -> Option<Key> {
    if s == "0" || s.eq_ignore_ascii_case("EXIT") || s.eq_ignore_ascii_case("SIGEXIT") {
        return Some(Key::Exit);
    }
    signal::parse(s).map(|sig: Signal| Key::Signal(sig.number))
}

/// The name of a trap key.
pub fn key_name(k: Key) -> &'static str {
    match k {
        Key::Exit => "EXIT",
        Key::Signal(n) => signal::SIGNALS
            .iter()
            .find(|s| s.number == n)
            .map_or("?", |s| s.name),
    }
}

impl Shell {
    /// Acts on the notes that have arrived: runs their traps. `Err(Flow::Exit)` if a trap
    /// exits or a note should end the shell (after its EXIT trap).
    pub fn run_traps(&mut self) -> Result<(), Flow> {
        if self.in_trap {
            return Ok(());
        }
        loop {
            let pending = PENDING.swap(0, Ordering::AcqRel);
            if pending == 0 {
                return Ok(());
            }
            for n in 0..32 {
                if pending & (1 << n) == 0 {
                    continue;
                }
                match self.traps.get(&Key::Signal(n)).cloned() {
                    Some(action) if !action.is_empty() => {
                        let saved = self.last.clone();
                        self.in_trap = true;
                        let r = self.run_nested(&action, None);
                        self.in_trap = false;
                        self.last = saved;
                        if let Err(Flow::Exit(st)) = r {
                            return Err(Flow::Exit(st));
                        }
                    }
                    Some(_) => {} // ignored
                    None if self.interactive => {
                        // ^C stops what the shell itself is running (a loop, say).
                        if n == 2 {
                            self.interrupted = true;
                        }
                    }
                    None => {
                        // Caught only for the EXIT trap: end the shell as the note would have.
                        let note = signal::SIGNALS
                            .iter()
                            .find(|s| s.number == n)
                            .map_or("interrupt", |s| s.note);
                        return Err(Flow::Exit(Status::from_exit(note)));
                    }
                }
            }
        }
    }
}
