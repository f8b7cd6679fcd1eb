//! A running emulator and its serial console.
//!
//! QEMU's first serial port is its stdio; Bochs' COM1 connects to a TCP socket we listen on.
//! A thread copies console output into a buffer (and, if asked, to our stdout); waits scan that
//! buffer from a cursor, so each wait sees only what came after the previous one. Every wait has
//! a deadline, and a kernel panic or an emulator exit ends it at once: tests fail closed.

use crate::tools;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the kernel prints when it panics.
pub const PANIC_MARKER: &str = "KERNEL PANIC";

/// Which emulator runs the OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    Qemu,
    Bochs,
}

/// How the OS is loaded.
#[derive(Clone, Debug)]
pub enum Boot {
    /// QEMU `-kernel` (PVH) with an optional boot archive as initrd.
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// A GRUB ISO on the first CD-ROM drive.
    Iso(PathBuf),
}

/// Everything needed to start a machine.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    pub emulator: Emulator,
    pub boot: Boot,
    /// QEMU `-cpu` model or Bochs `cpu: model=`; `None` means `max` or `corei7_skylake_x`.
    pub cpu: Option<String>,
    pub smp: u32,
    pub mem_mib: u32,
    /// A raw disk image: virtio-blk-pci under QEMU, the ATA primary slave under Bochs.
    pub disk: Option<PathBuf>,
    /// Copy console output to our stdout as it arrives.
    pub echo: bool,
    /// Directory for generated configuration and emulator logs.
    pub work_dir: PathBuf,
}

impl MachineConfig {
    /// A QEMU machine booting `kernel` by PVH with defaults for the rest.
    pub fn qemu_kernel(
        kernel: &Path,
        initrd: Option<&Path>,
        cmdline: &str,
        work_dir: &Path,
    ) -> Self {
        MachineConfig {
            emulator: Emulator::Qemu,
            boot: Boot::Kernel {
                kernel: kernel.to_path_buf(),
                initrd: initrd.map(Path::to_path_buf),
                cmdline: cmdline.to_string(),
            },
            cpu: None,
            smp: 1,
            mem_mib: 512,
            disk: None,
            echo: false,
            work_dir: work_dir.to_path_buf(),
        }
    }
}

/// Why a wait on a machine failed.
#[derive(Debug)]
pub enum Error {
    /// The deadline passed before `waiting_for` appeared.
    Timeout { waiting_for: String, tail: String },
    /// The kernel panicked.
    Panicked { tail: String },
    /// The emulator exited first.
    Exited { status: String, tail: String },
    /// The emulator could not be started or talked to.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { waiting_for, tail } => {
                write!(
                    f,
                    "timed out waiting for {waiting_for:?}; console ended with:\n{tail}"
                )
            }
            Error::Panicked { tail } => write!(f, "the kernel panicked:\n{tail}"),
            Error::Exited { status, tail } => {
                write!(
                    f,
                    "the emulator exited ({status}); console ended with:\n{tail}"
                )
            }
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The error without the console tail, for callers that already showed the console.
    pub fn summary(&self) -> String {
        match self {
            Error::Timeout { waiting_for, .. } => format!("timed out waiting for {waiting_for}"),
            Error::Panicked { .. } => "the kernel panicked".into(),
            Error::Exited { status, .. } => format!("the emulator exited ({status})"),
            Error::Io(e) => e.clone(),
        }
    }
}

/// Console output so far, decoded as UTF-8 as it arrives (invalid bytes become U+FFFD) with
/// carriage returns dropped.
#[derive(Default)]
struct Console {
    text: String,
    /// The start of a UTF-8 sequence split across reads.
    pending: Vec<u8>,
    closed: bool,
}

impl Console {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend(bytes.iter().filter(|&&b| b != b'\r'));
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.text
                        .push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or(""));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        Some(bad) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

/// A handle that types at a machine's console; clones share the same input.
#[derive(Clone)]
pub struct ConsoleInput(Arc<Mutex<Box<dyn Write + Send>>>);

impl ConsoleInput {
    fn new(w: impl Write + Send + 'static) -> Self {
        ConsoleInput(Arc::new(Mutex::new(Box::new(w))))
    }
}

impl Write for ConsoleInput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// A running emulator.
pub struct Machine {
    child: Child,
    console: Arc<(Mutex<Console>, Condvar)>,
    input: ConsoleInput,
    cursor: usize,
    emulator: Emulator,
}

fn io_err(what: &str, e: impl fmt::Display) -> Error {
    Error::Io(format!("{what}: {e}"))
}

impl Machine {
    /// Starts the emulator.
    pub fn start(cfg: &MachineConfig) -> Result<Machine, Error> {
        std::fs::create_dir_all(&cfg.work_dir).map_err(|e| io_err("work dir", e))?;
        match cfg.emulator {
            Emulator::Qemu => Self::start_qemu(cfg),
            Emulator::Bochs => Self::start_bochs(cfg),
        }
    }

    fn start_qemu(cfg: &MachineConfig) -> Result<Machine, Error> {
        tools::ensure(&[tools::QEMU]).map_err(Error::Io)?;
        let mut cmd = Command::new(tools::QEMU.command);
        cmd.args([
            "-machine", "q35", "-accel", "tcg", "-display", "none", "-monitor", "none",
        ])
        .args(["-serial", "stdio", "-no-reboot"])
        .args(["-nic", "user,model=virtio-net-pci"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-cpu", cfg.cpu.as_deref().unwrap_or("max")])
        .args(["-smp", &cfg.smp.to_string(), "-m", &cfg.mem_mib.to_string()]);
        match &cfg.boot {
            Boot::Kernel {
                kernel,
                initrd,
                cmdline,
            } => {
                cmd.arg("-kernel").arg(kernel);
                if let Some(initrd) = initrd {
                    cmd.arg("-initrd").arg(initrd);
                }
                // The kernel ends the emulator through isa-debug-exit only when told it exists.
                cmd.args(["-append", &format!("debugexit {cmdline}")]);
            }
            Boot::Iso(iso) => {
                cmd.arg("-cdrom").arg(iso).args(["-boot", "d"]);
            }
        }
        if let Some(disk) = &cfg.disk {
            let mut drive = std::ffi::OsString::from("file=");
            drive.push(disk);
            drive.push(",format=raw,if=none,id=disk0,cache=unsafe");
            cmd.arg("-drive")
                .arg(drive)
                .args(["-device", "virtio-blk-pci,drive=disk0"]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| io_err("qemu-system-x86_64", e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Io("no qemu stdout".into()))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Io("no qemu stdin".into()))?;
        let console = Self::spawn_reader(stdout, cfg.echo);
        Ok(Machine {
            child,
            console,
            input: ConsoleInput::new(stdin),
            cursor: 0,
            emulator: Emulator::Qemu,
        })
    }

    fn start_bochs(cfg: &MachineConfig) -> Result<Machine, Error> {
        tools::ensure(&[tools::BOCHS]).map_err(Error::Io)?;
        let Boot::Iso(iso) = &cfg.boot else {
            return Err(Error::Io("Bochs boots only from an ISO".into()));
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io_err("console socket", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| io_err("console socket", e))?
            .port();
        let rc = cfg.work_dir.join("bochsrc");
        std::fs::write(&rc, bochsrc(cfg, iso, port)).map_err(|e| io_err("bochsrc", e))?;
        // Debian's Bochs is a debugger build: it stops at its prompt unless told to continue,
        // and quits when the simulation ends.
        let dbg = cfg.work_dir.join("bochs-debugger.rc");
        std::fs::write(&dbg, "c\nquit\n").map_err(|e| io_err("bochs rc", e))?;
        let log = std::fs::File::create(cfg.work_dir.join("bochs.stdout"))
            .map_err(|e| io_err("bochs log", e))?;
        let log2 = log.try_clone().map_err(|e| io_err("bochs log", e))?;
        let mut child = Command::new(tools::BOCHS.command)
            .arg("-q")
            // A killed Bochs leaves its disk image locked; the next run takes the lock over.
            .arg("-unlock")
            .arg("-f")
            .arg(&rc)
            .arg("-rc")
            .arg(&dbg)
            .current_dir(&cfg.work_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| io_err("bochs", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("console socket", e))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let out = std::fs::read_to_string(cfg.work_dir.join("bochs.stdout"))
                            .unwrap_or_default();
                        return Err(Error::Exited {
                            status: status.to_string(),
                            tail: tail_of(&out),
                        });
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        return Err(Error::Io("Bochs did not connect its COM1 socket".into()));
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(io_err("console socket", e)),
            }
        };
        stream
            .set_nonblocking(false)
            .map_err(|e| io_err("console socket", e))?;
        let reader = stream
            .try_clone()
            .map_err(|e| io_err("console socket", e))?;
        let console = Self::spawn_reader(reader, cfg.echo);
        Ok(Machine {
            child,
            console,
            input: ConsoleInput::new(stream),
            cursor: 0,
            emulator: Emulator::Bochs,
        })
    }

    fn spawn_reader(
        mut from: impl Read + Send + 'static,
        echo: bool,
    ) -> Arc<(Mutex<Console>, Condvar)> {
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        let shared = Arc::clone(&console);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if echo && n > 0 {
                    let mut out = io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                let (lock, cond) = &*shared;
                let mut c = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    c.closed = true;
                } else {
                    c.push(&buf[..n]);
                }
                cond.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        console
    }

    /// A handle for typing at the console from another thread.
    pub fn input(&self) -> ConsoleInput {
        self.input.clone()
    }

    /// Whether the emulator is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Which emulator this is.
    pub fn emulator(&self) -> Emulator {
        self.emulator
    }

    /// Everything the console printed so far (carriage returns removed).
    pub fn output(&self) -> String {
        self.console
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .text
            .clone()
    }

    /// Waits until `find` locates something in the unread output; returns the unread output
    /// up to the end of the match and moves the cursor there. `find` returns (start, end).
    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        find: impl Fn(&str) -> Option<(usize, usize)>,
    ) -> Result<String, Error> {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.console;
        let mut c = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let unread = &c.text[self.cursor..];
            if let Some((_, end)) = find(unread) {
                let out = unread[..end].to_string();
                self.cursor += end;
                return Ok(out);
            }
            if unread.contains(PANIC_MARKER) {
                // Give the panic message and stack trace a moment to arrive.
                drop(c);
                thread::sleep(Duration::from_millis(500));
                return Err(Error::Panicked {
                    tail: tail_of(&self.output()),
                });
            }
            if c.closed {
                let tail = tail_of(&c.text);
                drop(c);
                let status = match self.child.wait() {
                    Ok(s) => describe_status(s),
                    Err(e) => e.to_string(),
                };
                return Err(Error::Exited { status, tail });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    waiting_for: what.to_string(),
                    tail: tail_of(&c.text),
                });
            }
            c = cond
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for `needle` in the output; returns the output up to and including it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, Error> {
        self.wait_until(needle, timeout, |s| {
            s.find(needle).map(|i| (i, i + needle.len()))
        })
    }

    /// Waits for a shell or monitor prompt (a line starting with a word and ending in `$ `);
    /// returns the output before the prompt.
    pub fn wait_prompt(&mut self, timeout: Duration) -> Result<String, Error> {
        let out = self.wait_until("a prompt ending in \"$ \"", timeout, find_prompt)?;
        let cut = find_prompt(&out).map_or(out.len(), |(start, _)| start);
        Ok(out[..cut].to_string())
    }

    /// Types `line` and Enter.
    pub fn send_line(&mut self, line: &str) -> Result<(), Error> {
        self.send(format!("{line}\r").as_bytes())
    }

    /// Types raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.input
            .write_all(bytes)
            .and_then(|()| self.input.flush())
            .map_err(|e| io_err("console input", e))
    }

    /// Types `line`, waits for the next prompt, and returns what the command printed (without
    /// the echoed command line).
    pub fn run(&mut self, line: &str, timeout: Duration) -> Result<String, Error> {
        self.send_line(line)?;
        let out = self.wait_prompt(timeout)?;
        Ok(match out.split_once('\n') {
            Some((echo, rest)) if echo.trim_end() == line.trim_end() => rest.to_string(),
            _ => out,
        })
    }

    /// Waits for the emulator to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    return Err(Error::Timeout {
                        waiting_for: "the emulator to exit".into(),
                        tail: tail_of(&self.output()),
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(io_err("wait", e)),
            }
        }
    }

    /// Whether the kernel has panicked.
    pub fn panicked(&self) -> bool {
        self.output().contains(PANIC_MARKER)
    }

    /// Stops the emulator.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds the first prompt in `s`: at the start of a line, a short word (a path or a name,
/// optionally followed by one space) then `$ `.
pub fn find_prompt(s: &str) -> Option<(usize, usize)> {
    let mut line_start = 0;
    loop {
        let line = &s[line_start..];
        let line_end = line.find('\n').unwrap_or(line.len());
        if let Some(dollar) = line[..line_end].find("$ ") {
            let word = &line[..dollar];
            let word = word.strip_suffix(' ').unwrap_or(word);
            if !word.is_empty() && word.len() <= 128 && !word.contains(' ') {
                return Some((line_start, line_start + dollar + 2));
            }
        }
        if line_end == line.len() {
            return None;
        }
        line_start += line_end + 1;
    }
}

/// The last lines of console output, for error messages.
fn tail_of(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A readable exit status; QEMU's isa-debug-exit codes are named.
pub fn describe_status(s: ExitStatus) -> String {
    match s.code() {
        Some(33) => "exit 33: tests passed (isa-debug-exit)".into(),
        Some(35) => "exit 35: failure reported through isa-debug-exit".into(),
        _ => s.to_string(),
    }
}

fn bochsrc(cfg: &MachineConfig, iso: &Path, port: u16) -> String {
    let model = cfg.cpu.as_deref().unwrap_or("corei7_skylake_x");
    let mut rc = format!(
        "memory: guest={mem}, host={mem}\n\
         romimage: file=/usr/share/bochs/BIOS-bochs-latest, options=fastboot\n\
         vgaromimage: file=/usr/share/vgabios/vgabios.bin\n\
         display_library: rfb, options=\"timeout=0\"\n\
         cpu: model={model}, count={smp}, ips=100000000, reset_on_triple_fault=0, ignore_bad_msrs=0\n\
         clock: sync=none, time0=local\n\
         pci: enabled=1, chipset=i440fx\n\
         ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14\n\
         ata0-master: type=cdrom, path=\"{iso}\", status=inserted\n\
         boot: cdrom\n\
         floppy_bootsig_check: disabled=1\n\
         com1: enabled=1, mode=socket-client, dev=127.0.0.1:{port}\n\
         log: bochs.log\n\
         panic: action=fatal\nerror: action=report\ninfo: action=ignore\ndebug: action=ignore\n\
         speaker: enabled=0\nsound: driver=dummy\n",
        mem = cfg.mem_mib,
        smp = cfg.smp,
        iso = iso.display(),
    );
    if let Some(disk) = &cfg.disk {
        rc.push_str(&format!(
            "ata0-slave: type=disk, path=\"{}\", mode=flat\n",
            disk.display()
        ));
    }
    rc
}

#[cfg(test)]
mod tests {
    use super::find_prompt;

    #[test]
    fn prompts_are_found_at_line_starts_only() {
        assert_eq!(find_prompt("kmon$ "), Some((0, 6)));
        assert_eq!(find_prompt("boot\n/ $ "), Some((5, 9)));
        assert_eq!(find_prompt("x\n/mnt/a $ ls\n"), Some((2, 11)));
        assert_eq!(find_prompt("echo a $ b"), None);
        assert_eq!(find_prompt("costs 5$ each\n"), None);
        assert_eq!(find_prompt("no prompt here\n"), None);
        assert_eq!(find_prompt(""), None);
    }
}
