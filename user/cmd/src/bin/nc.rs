//! nc: talks TCP on standard input and output.
//!
//! - `nc DIAL` connects (`nc tcp!10.0.2.2!8080`);
//! - `nc -l DIAL` listens (`nc -l tcp!*!8080`), takes one call and says who called on standard
//!   error.
//!
//! What arrives is copied to standard output, standard input to the connection. At the end of
//! standard input nc waits for the other side to close, or, with `-c`, closes at once. It ends
//! when the other side closes.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};
use rt::net;
use rt::notes::{self, Action};
use rt::process::{self, RFFDG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{eprintln, format, io};

rt::entry!(main);

const USAGE: &str = "usage: nc [-c] DIAL | nc [-c] -l DIAL (DIAL: tcp!ADDR!PORT)";
/// The note the copier sends when the connection has ended.
const PEER_DONE: &str = "nc: connection closed";

static PEER_CLOSED: AtomicBool = AtomicBool::new(false);

fn on_note(note: &str) -> Action {
    if note == PEER_DONE {
        PEER_CLOSED.store(true, Ordering::SeqCst);
        Action::Continue
    } else {
        Action::Die
    }
}

/// Copies the connection to standard output until it ends, then tells `parent`.
fn copy_out(conn: u64, parent: u64) -> ! {
    let mut buf = rt::vec![0u8; 64 * 1024];
    let why = loop {
        match io::read(conn, &mut buf) {
            Ok(0) => break String::new(),
            Ok(n) => {
                if let Err(e) = net::write_all(io::STDOUT, &buf[..n]) {
                    break e.0;
                }
            }
            Err(e) => break e.0,
        }
    };
    let _ = process::postnote(parent, PEER_DONE);
    if !why.is_empty() {
        eprintln!("nc: {why}");
    }
    process::exits(&why)
}

fn main() -> rt::Result<()> {
    let args: Vec<String> = rt::env::args()[1..].to_vec();
    let mut listen = false;
    let mut close_at_eof = false;
    let mut dial = None;
    for a in &args {
        match a.as_str() {
            "-l" => listen = true,
            "-c" => close_at_eof = true,
            s if s.starts_with('-') || dial.is_some() => return Err(USAGE.into()),
            s => dial = Some(s),
        }
    }
    let dial = dial.ok_or(rt::Error::from(USAGE))?;
    let conn = if listen {
        let l = net::announce(dial)?;
        let (fd, from) = l.accept()?;
        eprintln!("nc: call from {from}");
        fd
    } else {
        net::dial(dial)?
    };
    notes::set_handler(on_note);
    let me = process::getpid();
    let copier = match process::rfork(RFPROC | RFFDG)? {
        0 => copy_out(conn, me),
        pid => pid,
    };
    let mut buf = rt::vec![0u8; 64 * 1024];
    let mut result = Ok(());
    while !PEER_CLOSED.load(Ordering::SeqCst) {
        match io::read(io::STDIN, &mut buf) {
            Ok(0) => {
                if !close_at_eof {
                    // Wait for the other side to finish.
                    let _ = process::wait_for(copier);
                    return Ok(());
                }
                break;
            }
            Ok(n) => {
                if let Err(e) = net::write_all(conn, &buf[..n]) {
                    result = Err(e.context(format!("write to {dial}")));
                    break;
                }
            }
            Err(_) if PEER_CLOSED.load(Ordering::SeqCst) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = io::close(conn);
    if !PEER_CLOSED.load(Ordering::SeqCst) {
        let _ = process::postnote(copier, notes::KILL);
    }
    let _ = process::wait_for(copier);
    result
}
