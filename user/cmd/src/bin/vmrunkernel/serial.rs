//! The guest's first serial port (COM1, 8250 registers at 0x3f8), reduced to what early kernel
//! output needs: bytes written to the transmit register are kept (the last few KiB, shown if the
//! guest fails), the line status says the transmitter is always empty. Every other port reads as
//! all ones and ignores writes, which Linux takes as "no such device".

use abi::vm::{Complete, Exit};
use alloc::collections::VecDeque;
use alloc::string::String;

const COM1: u16 = 0x3f8;
/// Line status: transmitter holding register and shift register empty.
const LSR_EMPTY: u64 = 0x60;
/// Bytes of output kept.
const KEEP: usize = 16 * 1024;

/// COM1's output so far.
#[derive(Default)]
pub struct Serial {
    out: VecDeque<u8>,
}

impl Serial {
    /// Handles a port I/O exit; the completion for a read, if it is not all ones.
    pub fn pio(&mut self, exit: &Exit) -> Option<Complete> {
        let port = exit.port;
        if !(COM1..COM1 + 8).contains(&port) {
            return None;
        }
        if exit.write != 0 {
            if port == COM1 {
                let data = exit.data();
                let bytes: &[u8] = if data.is_empty() {
                    &[exit.value as u8]
                } else {
                    data
                };
                self.out.extend(bytes);
                let excess = self.out.len().saturating_sub(KEEP);
                self.out.drain(..excess);
            }
            return None;
        }
        Some(Complete::value(if port == COM1 + 5 {
            LSR_EMPTY
        } else {
            0
        }))
    }

    /// The output kept.
    pub fn tail(&self) -> String {
        let (a, b) = self.out.as_slices();
        let mut s = String::from_utf8_lossy(a).into_owned();
        s.push_str(&String::from_utf8_lossy(b));
        s
    }
}
