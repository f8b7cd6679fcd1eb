//! What virtio-console talks to: a byte source and sink (the VMM's stdin and stdout), and an
//! in-memory fake.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The outcome of asking the backend for input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleInput {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// Nothing now; maybe later.
    Empty,
    /// End of input: there will never be more.
    Closed,
}

/// A console's host side.
pub trait ConsoleBackend {
    /// Reads available input into `buf` without blocking.
    fn read_input(&mut self, buf: &mut [u8]) -> ConsoleInput;
    /// Writes the guest's output.
    fn write_output(&mut self, data: &[u8]);
}

/// Scripted input and captured output, for tests.
#[derive(Debug, Default)]
pub struct FakeConsole {
    /// Bytes the guest will read.
    pub input: VecDeque<u8>,
    /// Whether input ends once `input` is drained.
    pub closed: bool,
    /// Everything the guest wrote.
    pub output: Vec<u8>,
    /// How many times the device asked for input after being told it was closed.
    pub reads_after_close: u32,
    told_closed: bool,
}

impl ConsoleBackend for FakeConsole {
    fn read_input(&mut self, buf: &mut [u8]) -> ConsoleInput {
        if self.told_closed {
            self.reads_after_close += 1;
        }
        if self.input.is_empty() {
            if self.closed {
                self.told_closed = true;
                return ConsoleInput::Closed;
            }
            return ConsoleInput::Empty;
        }
        let n = buf.len().min(self.input.len());
        for (d, s) in buf.iter_mut().zip(self.input.drain(..n)) {
            *d = s;
        }
        ConsoleInput::Data(n)
    }

    fn write_output(&mut self, data: &[u8]) {
        self.output.extend_from_slice(data);
    }
}
