//! `#pipe`: each attach makes a new pipe, a directory holding `data` and `data1`. Bytes written
//! to one are read from the other, in order. Reads block until there are bytes; once every fd
//! of one side has been closed, readers of the other side get end of file (after what was
//! written) and writers to it get an error. Opening a side again reopens it. Opens never
//! block. The `pipe` system call makes one and opens both sides.

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, DirTable, TableEntry, check_io, new_devno};
use crate::proc::wait::WaitQueue;
use crate::sync::IrqLock;
use abi::errors::EHUNGUP;
use abi::sys::mode::ORDWR;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use ninep::Dir;

/// Bytes a direction buffers before writers wait.
const CAPACITY: usize = 256 * 1024;

const QDATA: u64 = 1;
const QDATA1: u64 = 2;

const TABLE: DirTable = DirTable {
    entries: &[
        TableEntry {
            name: "data",
            path: QDATA,
            perm: 0o660,
        },
        TableEntry {
            name: "data1",
            path: QDATA1,
            perm: 0o660,
        },
    ],
};

/// Bytes travelling one way, with the state of the side that writes them.
#[derive(Default)]
struct Direction {
    bytes: VecDeque<u8>,
    /// Open channels of the writing side.
    writers: usize,
    /// Open channels of the reading side.
    readers: usize,
    /// The writing side was open and has been closed by all: readers see end of file.
    writer_gone: bool,
    /// The reading side was open and has been closed by all: writes fail.
    reader_gone: bool,
}

/// One pipe: `to1` carries bytes written to `data` towards readers of `data1`.
pub struct Pipe {
    to1: IrqLock<Direction>,
    to0: IrqLock<Direction>,
    readable: WaitQueue,
    writable: WaitQueue,
}

impl Pipe {
    /// (the direction a side reads from, the direction it writes to)
    fn ends(&self, side: u64) -> (&IrqLock<Direction>, &IrqLock<Direction>) {
        if side == QDATA {
            (&self.to0, &self.to1)
        } else {
            (&self.to1, &self.to0)
        }
    }
}

/// The `#pipe` device.
pub struct PipeDev;

/// The one instance.
pub static PIPE: PipeDev = PipeDev;

/// A new pipe with both sides open (for the `pipe` system call).
pub fn new_pipe() -> KResult<(Arc<Chan>, Arc<Chan>)> {
    let root = PIPE.attach("")?;
    let data = PIPE.walk(&root, "data")?;
    let data1 = PIPE.walk(&root, "data1")?;
    Ok((PIPE.open(&data, ORDWR)?, PIPE.open(&data1, ORDWR)?))
}

fn pipe_of(c: &Chan) -> Arc<Pipe> {
    c.aux::<Pipe>().expect("#pipe channels carry their pipe")
}

impl Dev for PipeDev {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        let pipe = Arc::new(Pipe {
            to1: IrqLock::new(Direction::default()),
            to0: IrqLock::new(Direction::default()),
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        });
        Ok(Chan::new(
            self,
            new_devno(),
            TABLE.qid(0),
            String::from("#pipe"),
            Some(pipe),
        ))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        TABLE.walk(c, name)
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        let pipe = pipe_of(c);
        let len = match c.qid.path {
            QDATA => pipe.to0.lock().bytes.len(),
            QDATA1 => pipe.to1.lock().bytes.len(),
            _ => 0,
        };
        Ok(TABLE.stat("pipe", c.qid.path, len as u64))
    }

    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        let d = self.stat(c)?;
        crate::ns::chan::check_open(&d, mode)?;
        if c.qid.path != 0 {
            let pipe = pipe_of(c);
            let (from, to) = pipe.ends(c.qid.path);
            let mut f = from.lock();
            f.readers += 1;
            f.reader_gone = false;
            drop(f);
            let mut t = to.lock();
            t.writers += 1;
            t.writer_gone = false;
        }
        Ok(Arc::new(c.opened(mode)))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        if c.qid.path == 0 {
            return TABLE.read_dir(buf, offset, |_| 0);
        }
        check_io(c, false)?;
        let pipe = pipe_of(c);
        let (from, _) = pipe.ends(c.qid.path);
        let mut n = 0;
        pipe.readable.wait_until(|| {
            let mut d = from.lock();
            if d.bytes.is_empty() {
                return d.writer_gone || buf.is_empty();
            }
            n = buf.len().min(d.bytes.len());
            let (front, back) = d.bytes.as_slices();
            let first = n.min(front.len());
            buf[..first].copy_from_slice(&front[..first]);
            buf[first..n].copy_from_slice(&back[..n - first]);
            d.bytes.drain(..n);
            true
        })?;
        pipe.writable.wake_all();
        Ok(n)
    }

    fn write(&self, c: &Chan, buf: &[u8], _offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        let pipe = pipe_of(c);
        let (_, to) = pipe.ends(c.qid.path);
        let mut done = 0;
        while done < buf.len() {
            let mut hungup = false;
            let waited = pipe.writable.wait_until(|| {
                let mut d = to.lock();
                if d.reader_gone {
                    hungup = true;
                    return true;
                }
                let room = CAPACITY.saturating_sub(d.bytes.len());
                if room == 0 {
                    return false;
                }
                let n = room.min(buf.len() - done);
                d.bytes.extend(buf[done..done + n].iter().copied());
                done += n;
                true
            });
            if done > 0 {
                pipe.readable.wake_all();
            }
            // Bytes already in the pipe were written: a note ends the write with their count.
            if let Err(e) = waited {
                return if done > 0 { Ok(done) } else { Err(e.into()) };
            }
            if hungup {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(EHUNGUP.into())
                };
            }
        }
        Ok(done)
    }

    fn close(&self, c: &Chan) {
        if c.qid.path == 0 {
            return;
        }
        let pipe = pipe_of(c);
        let (from, to) = pipe.ends(c.qid.path);
        {
            let mut f = from.lock();
            f.readers = f.readers.saturating_sub(1);
            if f.readers == 0 {
                f.reader_gone = true;
            }
        }
        {
            let mut t = to.lock();
            t.writers = t.writers.saturating_sub(1);
            if t.writers == 0 {
                t.writer_gone = true;
            }
        }
        pipe.readable.wake_all();
        pipe.writable.wake_all();
    }
}
