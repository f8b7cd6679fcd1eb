//! The host side of the devices: the console on our standard input and output, the disk on a
//! file, interrupt lines as `#vm` ctl commands, and the NAT shared between the network card
//! and the port-forward threads.

use super::{Machine, Vm};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rt::sync::Mutex;
use rt::{Error, Result, format, fs, io, thread};
use vmm::irq::IrqLine;
use vmm::nat::{Nat, NatConfig, NatError};
use vmm::virtio::blk::backend::{BlockStore, StoreError};
use vmm::virtio::console::backend::{ConsoleBackend, ConsoleInput};
use vmm::virtio::net::backend::NetBackend;

/// Console input read by its thread, waiting for the guest to take it.
#[derive(Default)]
struct Input {
    bytes: VecDeque<u8>,
    closed: bool,
}

/// virtio-console's host side: output to our standard output, input from our standard input
/// (read by [`start_console_input`]'s thread).
pub struct StdioConsole {
    input: Arc<Mutex<Input>>,
}

static CONSOLE_INPUT: spin::Once<Arc<Mutex<Input>>> = spin::Once::new();

impl StdioConsole {
    /// The console (one per VM).
    pub fn new() -> StdioConsole {
        StdioConsole {
            input: CONSOLE_INPUT
                .call_once(|| Arc::new(Mutex::new(Input::default())))
                .clone(),
        }
    }
}

impl ConsoleBackend for StdioConsole {
    fn read_input(&mut self, buf: &mut [u8]) -> ConsoleInput {
        let mut input = self.input.lock();
        if input.bytes.is_empty() {
            return if input.closed {
                ConsoleInput::Closed
            } else {
                ConsoleInput::Empty
            };
        }
        let n = buf.len().min(input.bytes.len());
        for (d, s) in buf.iter_mut().zip(input.bytes.drain(..n)) {
            *d = s;
        }
        ConsoleInput::Data(n)
    }

    fn write_output(&mut self, data: &[u8]) {
        let _ = io::write(io::STDOUT, data);
    }
}

/// Reads our standard input in a thread of its own and hands it to the console. At its end,
/// `eof_line` (if any) is typed to the guest before the console reports end of input.
pub fn start_console_input(machine: Arc<Machine>, eof_line: Option<String>) -> Result<()> {
    let Some(input) = CONSOLE_INPUT.get().cloned() else {
        return Ok(());
    };
    thread::spawn(move || {
        let mut buf = alloc::vec![0u8; 4096];
        loop {
            let n = match io::read(io::STDIN, &mut buf) {
                Ok(n) => n,
                Err(e) if e.msg() == rt::notes::INTERRUPTED => continue,
                Err(_) => 0,
            };
            {
                let mut i = input.lock();
                if n > 0 {
                    i.bytes.extend(&buf[..n]);
                } else {
                    if let Some(line) = &eof_line {
                        i.bytes.push_back(b'\n');
                        i.bytes.extend(line.as_bytes());
                        i.bytes.push_back(b'\n');
                    }
                    i.closed = true;
                }
            }
            machine.poll_devices();
            if n == 0 {
                return;
            }
        }
    })?;
    Ok(())
}

/// virtio-blk's store: a file (a whole disk such as `/dev/sdE0/data`, or an image file).
pub struct FileStore {
    fd: u64,
    len: u64,
    read_only: bool,
    /// The disk's ctl file, flushed on FLUSH, when the file is a disk's `data`.
    ctl: Option<String>,
}

impl FileStore {
    /// Opens `path` for the guest.
    pub fn open(path: &str, read_only: bool) -> Result<FileStore> {
        let mode = if read_only { fs::OREAD } else { fs::ORDWR };
        let fd = fs::open(path, mode).map_err(|e| Error::new(format!("disk {e}")))?;
        let len = fs::fstat(fd)?.length;
        let ctl = path.strip_suffix("/data").map(|dir| format!("{dir}/ctl"));
        Ok(FileStore {
            fd,
            len,
            read_only,
            ctl,
        })
    }
}

impl BlockStore for FileStore {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> core::result::Result<(), StoreError> {
        let mut done = 0;
        while done < buf.len() {
            match io::pread(self.fd, &mut buf[done..], offset + done as u64) {
                Ok(0) | Err(_) => return Err(StoreError::Io),
                Ok(n) => done += n,
            }
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> core::result::Result<(), StoreError> {
        let mut done = 0;
        while done < data.len() {
            match io::pwrite(self.fd, &data[done..], offset + done as u64) {
                Ok(0) | Err(_) => return Err(StoreError::Io),
                Ok(n) => done += n,
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> core::result::Result<(), StoreError> {
        let Some(ctl) = &self.ctl else { return Ok(()) };
        let fd = fs::open(ctl, fs::OWRITE).map_err(|_| StoreError::Io)?;
        let r = io::write(fd, b"sync");
        let _ = io::close(fd);
        r.map(|_| ()).map_err(|_| StoreError::Io)
    }
}

/// An interrupt line: an IOAPIC pin of the VM, driven through its ctl file.
pub struct IrqPin {
    ctl: u64,
    pin: u32,
}

impl IrqPin {
    /// Pin `pin` of `vm`.
    pub fn new(vm: &Vm, pin: u32) -> Result<IrqPin> {
        Ok(IrqPin {
            ctl: io::dup(vm.ctl, None)?,
            pin,
        })
    }
}

impl IrqLine for IrqPin {
    fn set_level(&self, asserted: bool) {
        let cmd = format!("irq {} {}", self.pin, u8::from(asserted));
        if let Err(e) = io::write(self.ctl, cmd.as_bytes()) {
            rt::eprintln!("vmrunkernel: {cmd}: {e}");
        }
    }
}

/// The NAT, shared by the network card (as its backend) and the port-forward threads.
#[derive(Clone)]
pub struct SharedNat(pub Arc<Mutex<Nat>>);

impl SharedNat {
    /// A NAT with `config`.
    pub fn new(config: NatConfig) -> core::result::Result<SharedNat, NatError> {
        Ok(SharedNat(Arc::new(Mutex::new(Nat::new(config)?))))
    }
}

impl NetBackend for SharedNat {
    fn send(&mut self, frame: Vec<u8>) {
        let mut nat = self.0.lock();
        nat.take_frame_from_guest(frame);
        crate::forward::after_calls(&mut nat);
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        self.0.lock().frame_for_guest()
    }
}
