//! `#cons`: the console and small kernel files.
//!
//! - `cons`: reads give typed lines through the line discipline (echo, backspace, ^U erases the
//!   line, ^D ends input, ^C posts `interrupt` to the console's note group); writes print.
//! - `consctl`: `rawon`/`rawoff` (bytes pass through unedited and unechoed), `notegroup` (^C
//!   goes to the writer's note group).
//! - `null`, `zero`, `random`, `time` (`seconds nanoseconds ticks hz`), `pid`, `sysname`,
//!   `kmesg` (the kernel log), `memory` (`total`, `free`, `heap`, `heap-used`, the kernel's page
//!   tables as `kernel-tables`, all in bytes, and the live heap allocations as `heap-objects` and
//!   `heap-bytes`), `reboot` (write `reboot` or `poweroff`).

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, DirTable, TableEntry, check_io, read_slice};
use crate::proc::wait::WaitQueue;
use crate::sync::IrqLock;
use abi::errors::EBADCTL;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use ninep::Dir;

const QCONS: u64 = 1;
const QCONSCTL: u64 = 2;
const QNULL: u64 = 3;
const QZERO: u64 = 4;
const QRANDOM: u64 = 5;
const QTIME: u64 = 6;
const QPID: u64 = 7;
const QSYSNAME: u64 = 8;
const QKMESG: u64 = 9;
const QMEMORY: u64 = 10;
const QREBOOT: u64 = 11;

const TABLE: DirTable = DirTable {
    entries: &[
        TableEntry {
            name: "cons",
            path: QCONS,
            perm: 0o660,
        },
        TableEntry {
            name: "consctl",
            path: QCONSCTL,
            perm: 0o220,
        },
        TableEntry {
            name: "null",
            path: QNULL,
            perm: 0o666,
        },
        TableEntry {
            name: "zero",
            path: QZERO,
            perm: 0o444,
        },
        TableEntry {
            name: "random",
            path: QRANDOM,
            perm: 0o444,
        },
        TableEntry {
            name: "time",
            path: QTIME,
            perm: 0o444,
        },
        TableEntry {
            name: "pid",
            path: QPID,
            perm: 0o444,
        },
        TableEntry {
            name: "sysname",
            path: QSYSNAME,
            perm: 0o444,
        },
        TableEntry {
            name: "kmesg",
            path: QKMESG,
            perm: 0o444,
        },
        TableEntry {
            name: "memory",
            path: QMEMORY,
            perm: 0o444,
        },
        TableEntry {
            name: "reboot",
            path: QREBOOT,
            perm: 0o220,
        },
    ],
};

/// The machine's name.
pub const SYSNAME: &str = "tern";

/// The `#cons` device.
pub struct Cons;

/// The one instance.
pub static CONS: Cons = Cons;

/// Typed input, edited.
struct LineDiscipline {
    /// The line being typed.
    line: Vec<u8>,
    /// Bytes ready for readers.
    ready: VecDeque<u8>,
    /// Pending ends of input (^D on an empty line).
    eofs: usize,
    raw: bool,
}

static LD: IrqLock<LineDiscipline> = IrqLock::new(LineDiscipline {
    line: Vec::new(),
    ready: VecDeque::new(),
    eofs: 0,
    raw: false,
});
static READERS: WaitQueue = WaitQueue::new();
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The note group ^C interrupts (0: none).
static NOTEGROUP: AtomicU64 = AtomicU64::new(0);
static RANDOM_STATE: IrqLock<u64> = IrqLock::new(0);

/// Sends console input through the line discipline from now on (when user space starts).
pub fn start_line_discipline() {
    ACTIVE.store(true, Ordering::Release);
}

/// Whether input goes through the line discipline.
pub fn line_discipline_active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// One typed byte, from the UART interrupt.
pub fn input(b: u8) {
    let mut echo: Vec<u8> = Vec::new();
    let mut interrupt = false;
    {
        let mut ld = LD.lock();
        if ld.raw {
            ld.ready.push_back(b);
        } else {
            match b {
                b'\r' | b'\n' => {
                    ld.line.push(b'\n');
                    let line = core::mem::take(&mut ld.line);
                    ld.ready.extend(line);
                    echo.extend_from_slice(b"\n");
                }
                0x08 | 0x7f => {
                    if ld.line.pop().is_some() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x15 => {
                    for _ in 0..ld.line.len() {
                        echo.extend_from_slice(b"\x08 \x08");
                    }
                    ld.line.clear();
                }
                0x03 => {
                    ld.line.clear();
                    echo.extend_from_slice(b"^C\n");
                    interrupt = true;
                }
                0x04 => {
                    if ld.line.is_empty() {
                        ld.eofs += 1;
                    } else {
                        let line = core::mem::take(&mut ld.line);
                        ld.ready.extend(line);
                    }
                }
                _ => {
                    ld.line.push(b);
                    echo.push(b);
                }
            }
        }
    }
    crate::console::write_bytes(&echo);
    if interrupt {
        let group = NOTEGROUP.load(Ordering::Acquire);
        if group != 0 {
            crate::proc::post_note_group(group, abi::sys::notes::INTERRUPT);
        }
    }
    READERS.wake_all();
}

/// Reads typed input: at most one line, or what raw mode has; 0 at end of input.
fn read_cons(buf: &mut [u8]) -> KResult<usize> {
    let mut n = 0;
    READERS.wait_until(|| {
        let mut ld = LD.lock();
        if !ld.ready.is_empty() {
            while n < buf.len() {
                let Some(b) = ld.ready.pop_front() else { break };
                buf[n] = b;
                n += 1;
                if b == b'\n' && !ld.raw {
                    break;
                }
            }
            return true;
        }
        if ld.eofs > 0 {
            ld.eofs -= 1;
            return true;
        }
        false
    })?;
    Ok(n)
}

fn random_bytes(buf: &mut [u8]) {
    let mut s = RANDOM_STATE.lock();
    if *s == 0 {
        *s = crate::arch::x86_64::rdtsc() | 1;
    }
    for b in buf.iter_mut() {
        // xorshift64* (Vigna): fine for a non-cryptographic source.
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        *b = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
    }
}

fn text(c: &Chan) -> String {
    match c.qid.path {
        QTIME => {
            let ns = crate::time::unix_nanos();
            alloc::format!(
                "{} {} {} {}\n",
                ns / 1_000_000_000,
                ns,
                crate::time::ticks(),
                crate::time::HZ
            )
        }
        QPID => alloc::format!(
            "{}\n",
            crate::proc::sched::current_process().map_or(0, |p| p.pid)
        ),
        QSYSNAME => alloc::format!("{SYSNAME}\n"),
        QMEMORY => {
            let (mapped, used) = crate::mm::heap::usage();
            let (bytes, objects) = crate::mm::heap::live();
            alloc::format!(
                "total {}\nfree {}\nheap {}\nheap-used {}\nheap-objects {objects}\nheap-bytes {bytes}\nkernel-tables {}\n",
                crate::mm::frame::total_bytes(),
                crate::mm::frame::free_bytes(),
                mapped,
                used,
                crate::mm::paging::kernel_table_bytes()
            )
        }
        _ => String::new(),
    }
}

impl Dev for Cons {
    fn name(&self) -> &'static str {
        "cons"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(
            self,
            0,
            TABLE.qid(0),
            String::from("#cons"),
            None,
        ))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        TABLE.walk(c, name)
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        Ok(TABLE.stat("cons", c.qid.path, 0))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        if c.qid.path == 0 {
            return TABLE.read_dir(buf, offset, |_| 0);
        }
        check_io(c, false)?;
        match c.qid.path {
            QCONS => read_cons(buf),
            QNULL => Ok(0),
            QZERO => {
                buf.fill(0);
                Ok(buf.len())
            }
            QRANDOM => {
                random_bytes(buf);
                Ok(buf.len())
            }
            QKMESG => Ok(read_slice(&crate::klog::kmesg(), buf, offset)),
            _ => Ok(read_slice(text(c).as_bytes(), buf, offset)),
        }
    }

    fn write(&self, c: &Chan, buf: &[u8], _offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        match c.qid.path {
            QCONS => {
                crate::console::write_bytes(buf);
                Ok(buf.len())
            }
            QNULL => Ok(buf.len()),
            QREBOOT => match core::str::from_utf8(buf).map(str::trim) {
                Ok("reboot") => crate::power::reboot(),
                Ok("poweroff") => crate::power::poweroff(),
                _ => Err(EBADCTL.into()),
            },
            QCONSCTL => {
                let cmd = core::str::from_utf8(buf).map_err(|_| EBADCTL)?.trim();
                match cmd {
                    "rawon" => LD.lock().raw = true,
                    "rawoff" => LD.lock().raw = false,
                    "notegroup" => {
                        let group =
                            crate::proc::sched::current_process().map_or(0, |p| p.notegroup());
                        NOTEGROUP.store(group, Ordering::Release);
                    }
                    _ => return Err(EBADCTL.into()),
                }
                Ok(buf.len())
            }
            _ => Err(abi::errors::EPERM.into()),
        }
    }
}
