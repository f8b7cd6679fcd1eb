//! The guest under QEMU's `microvm` machine: a VMM we did not write, the reference our own VMM
//! must match and the baseline of its performance figures.
//!
//! QEMU runs with TCG, boots `vmlinux` through its PVH note with the initramfs, and gets three
//! virtio-mmio devices (microvm announces them on the kernel command line itself): virtio-blk
//! on the disk image, virtio-net on QEMU's user network with the guest's 9P port forwarded to
//! `127.0.0.1:<host port>`, and virtio-console (`hvc0`, the agent's control channel). The serial
//! port (`ttyS0`) carries the kernel's and the agent's log.
//!
//! Both consoles reach us over Unix sockets that QEMU connects to, so that one program reads
//! both and types into `hvc0`: [`Microvm`] is that program for tests; [`run`] is the launcher's
//! `--microvm` mode, which shows the control channel on stdout, the serial log on stderr, and
//! sends what is typed on stdin to `hvc0`.

use crate::{Error, Result, deps, disk, progress};
use abi::hv::PowerOffStatus;
use fsvm_agent::control::Reply;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The host port the launcher forwards to the guest's 9P port by default.
pub const DEFAULT_HOST_PORT: u16 = 5640;
/// Guest memory.
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// The kernel parameters every boot gets: log on the serial port, quiet, and a reset by triple
/// fault on reboot or panic (which `-no-reboot` turns into QEMU's exit: microvm has no ACPI
/// power-off and no hypercall of ours).
pub const BASE_CMDLINE: &str = "console=ttyS0 quiet panic=-1 reboot=t";

/// What to boot and how to wire it.
#[derive(Clone, Debug)]
pub struct MicrovmConfig {
    /// The kernel: `vmlinux` (PVH entry) or `bzImage`.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initramfs: PathBuf,
    /// The disk image for virtio-blk, if any.
    pub disk: Option<PathBuf>,
    /// The partition the agent serves (`fsvm.part`, 0 for the whole disk).
    pub part: u32,
    /// The guest's 9P port (`fsvm.port`).
    pub guest_port: u16,
    /// The host port on 127.0.0.1 forwarded to `guest_port`, if any.
    pub host_port: Option<u16>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// More kernel parameters, appended after ours.
    pub extra_cmdline: String,
    /// Copy the serial log to our stderr and the control channel to our stdout as lines arrive.
    pub echo: bool,
}

impl MicrovmConfig {
    /// Boots `vmlinux` from `artifacts` with `disk`, serving partition `part` on the default
    /// guest port, forwarded from `host_port`.
    pub fn new(
        artifacts: &crate::Artifacts,
        disk: Option<PathBuf>,
        part: u32,
        host_port: Option<u16>,
    ) -> Self {
        MicrovmConfig {
            kernel: artifacts.vmlinux.clone(),
            initramfs: artifacts.initramfs.clone(),
            disk,
            part,
            guest_port: fsvm_agent::cmdline::DEFAULT_PORT,
            host_port,
            memory_mib: DEFAULT_MEMORY_MIB,
            extra_cmdline: String::new(),
            echo: false,
        }
    }

    /// The full kernel command line (microvm adds its `virtio_mmio.device=` entries after it).
    pub fn cmdline(&self) -> String {
        let mut c = format!(
            "{BASE_CMDLINE} {}",
            crate::agent_cmdline(self.part, self.guest_port)
        );
        if !self.extra_cmdline.is_empty() {
            c += " ";
            c += &self.extra_cmdline;
        }
        c
    }

    /// QEMU's arguments, with the consoles on the Unix sockets `serial` and `control`.
    pub fn qemu_args(&self, serial: &Path, control: &Path) -> Vec<String> {
        let mut a: Vec<String> = [
            "-M",
            "microvm,acpi=off,x-option-roms=off",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        let mem = self.memory_mib.to_string();
        push(&["-m", &mem]);
        push(&["-kernel", &self.kernel.display().to_string()]);
        push(&["-initrd", &self.initramfs.display().to_string()]);
        push(&["-append", &self.cmdline()]);
        push(&[
            "-chardev",
            &format!("socket,id=serial,path={}", serial.display()),
            "-serial",
            "chardev:serial",
        ]);
        push(&["-device", "virtio-serial-device,max_ports=1"]);
        push(&[
            "-chardev",
            &format!("socket,id=control,path={}", control.display()),
        ]);
        push(&["-device", "virtconsole,chardev=control"]);
        if let Some(d) = &self.disk {
            // QEMU splits -drive options at commas; a comma in the path is written twice.
            let file = d.display().to_string().replace(',', ",,");
            push(&["-drive", &format!("id=disk,file={file},format=raw,if=none")]);
            push(&["-device", "virtio-blk-device,drive=disk"]);
        }
        let mut net = "user,id=net,ipv6=off".to_string();
        if let Some(h) = self.host_port {
            net += &format!(",hostfwd=tcp:127.0.0.1:{h}-:{}", self.guest_port);
        }
        push(&["-netdev", &net, "-device", "virtio-net-device,netdev=net"]);
        a
    }
}

/// One of the guest's consoles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `ttyS0`: the kernel's and the agent's log.
    Serial,
    /// `hvc0`: the agent's control channel.
    Control,
}

/// What has been read so far from both consoles and QEMU's stderr.
#[derive(Default)]
struct Transcript {
    serial: Vec<String>,
    control: Vec<String>,
    /// When each line arrived, since QEMU's start.
    serial_at: Vec<Duration>,
    control_at: Vec<Duration>,
    serial_closed: bool,
    control_closed: bool,
    qemu_stderr: String,
    stderr_closed: bool,
}

impl Transcript {
    fn lines(&self, ch: Channel) -> &Vec<String> {
        match ch {
            Channel::Serial => &self.serial,
            Channel::Control => &self.control,
        }
    }

    fn arrivals(&self, ch: Channel) -> &Vec<Duration> {
        match ch {
            Channel::Serial => &self.serial_at,
            Channel::Control => &self.control_at,
        }
    }

    fn closed(&self, ch: Channel) -> bool {
        match ch {
            Channel::Serial => self.serial_closed,
            Channel::Control => self.control_closed,
        }
    }

    /// The end of both consoles and QEMU's complaints, for error messages.
    fn summary(&self) -> String {
        let tail = |v: &Vec<String>| v[v.len().saturating_sub(15)..].join("\n    ");
        let mut s = format!(
            "serial (last lines):\n    {}\ncontrol (last lines):\n    {}",
            tail(&self.serial),
            tail(&self.control)
        );
        if !self.qemu_stderr.trim().is_empty() {
            s += &format!(
                "\nqemu stderr:\n    {}",
                self.qemu_stderr.trim().replace('\n', "\n    ")
            );
        }
        s
    }
}

type Shared = Arc<(Mutex<Transcript>, Condvar)>;

/// How QEMU ended.
#[derive(Clone, Debug)]
pub struct Exit {
    /// QEMU's own exit status.
    pub qemu: ExitStatus,
    /// The agent's status from its `exit status` line, if it printed one.
    pub agent_status: Option<u64>,
    /// Time from QEMU's start to its exit.
    pub elapsed: Duration,
}

impl Exit {
    /// The agent's status as the ABI names it.
    pub fn agent(&self) -> Option<PowerOffStatus> {
        self.agent_status.map(PowerOffStatus::from_raw)
    }

    /// A process exit code for the launcher: the agent's status (0 for a clean shutdown), or 1
    /// if QEMU ended without the agent saying why.
    pub fn exit_code(&self) -> u8 {
        match self.agent_status {
            Some(s) => u8::try_from(s).unwrap_or(1),
            None => 1,
        }
    }
}

/// A running microvm whose consoles we hold. Dropping it kills QEMU.
pub struct Microvm {
    child: Child,
    shared: Shared,
    control: UnixStream,
    cursors: Mutex<[usize; 2]>,
    started: Instant,
    dir: PathBuf,
    exit: Option<Exit>,
}

/// Reads lines from `r` into the transcript until end of file, echoing them if asked.
fn pump(r: impl Read, ch: Channel, shared: Shared, echo: bool, started: Instant) {
    let mut r = BufReader::new(r);
    loop {
        let mut buf = Vec::new();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']).to_string();
        if echo {
            // A console we cannot echo to must not stop the VM.
            let _ = match ch {
                Channel::Serial => writeln!(std::io::stderr(), "{line}"),
                Channel::Control => writeln!(std::io::stdout(), "{line}"),
            };
        }
        let (lock, cv) = &*shared;
        if let Ok(mut t) = lock.lock() {
            match ch {
                Channel::Serial => {
                    t.serial.push(line);
                    t.serial_at.push(started.elapsed());
                }
                Channel::Control => {
                    t.control.push(line);
                    t.control_at.push(started.elapsed());
                }
            }
        }
        cv.notify_all();
    }
    let (lock, cv) = &*shared;
    if let Ok(mut t) = lock.lock() {
        match ch {
            Channel::Serial => t.serial_closed = true,
            Channel::Control => t.control_closed = true,
        }
    }
    cv.notify_all();
}

/// Waits for QEMU to connect to `listener`, giving up if QEMU exits or 20 s pass.
fn accept(
    listener: &UnixListener,
    child: &mut Child,
    what: &str,
    shared: &Shared,
) -> Result<UnixStream> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::new(format!("socket: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)
                    .map_err(|e| Error::new(format!("socket: {e}")))?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                return Err(Error::new(format!(
                    "accepting QEMU's {what} connection: {e}"
                )));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            let err = shared
                .0
                .lock()
                .map(|t| t.qemu_stderr.clone())
                .unwrap_or_default();
            return Err(Error::new(format!(
                "QEMU exited at start ({status}): {}",
                err.trim()
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::new(format!(
                "QEMU did not connect its {what} console within 20 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Microvm {
    /// Starts QEMU (installing it first if needed) and connects both consoles.
    pub fn spawn(cfg: &MicrovmConfig) -> Result<Microvm> {
        deps::ensure(deps::QEMU, "running the guest under QEMU microvm")?;
        let dir = crate::scratch_dir("microvm")?;
        let (serial_path, control_path) = (dir.join("serial.sock"), dir.join("control.sock"));
        let bind = |p: &Path| {
            UnixListener::bind(p).map_err(|e| Error::new(format!("{}: {e}", p.display())))
        };
        let (serial_l, control_l) = (bind(&serial_path)?, bind(&control_path)?);
        let started = Instant::now();
        let mut child = Command::new("qemu-system-x86_64")
            .args(cfg.qemu_args(&serial_path, &control_path))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(format!("cannot start qemu-system-x86_64: {e}")))?;
        let shared: Shared = Arc::default();
        if let Some(mut err) = child.stderr.take() {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = shared.0.lock() {
                        t.qemu_stderr.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
                if let Ok(mut t) = shared.0.lock() {
                    t.stderr_closed = true;
                }
                shared.1.notify_all();
            });
        }
        let mut vm = Microvm {
            child,
            shared: shared.clone(),
            control: UnixStream::pair()
                .map_err(|e| Error::new(format!("socket: {e}")))?
                .0,
            cursors: Mutex::new([0, 0]),
            started,
            dir,
            exit: None,
        };
        let serial = accept(&serial_l, &mut vm.child, "serial", &shared)?;
        let control = accept(&control_l, &mut vm.child, "control", &shared)?;
        vm.control = control
            .try_clone()
            .map_err(|e| Error::new(format!("socket: {e}")))?;
        for (stream, ch) in [(serial, Channel::Serial), (control, Channel::Control)] {
            let shared = shared.clone();
            let echo = cfg.echo;
            let started = vm.started;
            std::thread::spawn(move || pump(stream, ch, shared, echo, started));
        }
        Ok(vm)
    }

    /// When QEMU was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Every line read so far from a console.
    pub fn lines(&self, ch: Channel) -> Vec<String> {
        self.shared
            .0
            .lock()
            .map(|t| t.lines(ch).clone())
            .unwrap_or_default()
    }

    /// The end of both consoles and QEMU's stderr, for error messages.
    pub fn summary(&self) -> String {
        self.shared
            .0
            .lock()
            .map(|t| t.summary())
            .unwrap_or_default()
    }

    /// Waits for a line on `ch` that satisfies `pred`, looking only at lines after the last one
    /// a previous wait on `ch` returned. Fails if the console closes or `timeout` passes.
    pub fn wait_for_line(
        &self,
        ch: Channel,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        self.wait_for_line_at(ch, timeout, pred).map(|(_, l)| l)
    }

    /// Like [`Microvm::wait_for_line`], also returning when the line arrived (since QEMU's
    /// start).
    pub fn wait_for_line_at(
        &self,
        ch: Channel,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(Duration, String)> {
        let deadline = Instant::now() + timeout;
        let idx = ch as usize;
        let (lock, cv) = &*self.shared;
        let mut t = lock
            .lock()
            .map_err(|_| Error::new("transcript lock poisoned"))?;
        let mut cursor = self.cursors.lock().map(|c| c[idx]).unwrap_or(0);
        loop {
            let lines = t.lines(ch);
            while cursor < lines.len() {
                let line = &lines[cursor];
                cursor += 1;
                if pred(line) {
                    if let Ok(mut c) = self.cursors.lock() {
                        c[idx] = cursor;
                    }
                    return Ok((t.arrivals(ch)[cursor - 1], line.clone()));
                }
            }
            if t.closed(ch) {
                // QEMU is probably gone: give its last words a moment to arrive.
                t = cv
                    .wait_timeout_while(t, Duration::from_secs(1), |t| !t.stderr_closed)
                    .map_err(|_| Error::new("transcript lock poisoned"))?
                    .0;
                return Err(Error::new(format!(
                    "the {ch:?} console closed before the expected line\n{}",
                    t.summary()
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(format!(
                    "no expected line on the {ch:?} console within {timeout:?}\n{}",
                    t.summary()
                )));
            }
            t = cv
                .wait_timeout(t, deadline - now)
                .map_err(|_| Error::new("transcript lock poisoned"))?
                .0;
        }
    }

    /// Waits for an agent reply on the control channel that satisfies `pred`.
    pub fn wait_for_reply(
        &self,
        timeout: Duration,
        pred: impl Fn(&Reply) -> bool,
    ) -> Result<Reply> {
        self.wait_for_reply_at(timeout, pred).map(|(_, r)| r)
    }

    /// Like [`Microvm::wait_for_reply`], also returning when the line arrived (since QEMU's
    /// start).
    pub fn wait_for_reply_at(
        &self,
        timeout: Duration,
        pred: impl Fn(&Reply) -> bool,
    ) -> Result<(Duration, Reply)> {
        let (at, line) = self.wait_for_line_at(Channel::Control, timeout, |l| {
            Reply::parse(l).is_some_and(|r| pred(&r))
        })?;
        let reply = Reply::parse(&line).ok_or_else(|| Error::new("reply vanished"))?;
        Ok((at, reply))
    }

    /// Waits for the agent's `ready` line.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Reply> {
        self.wait_for_reply(timeout, |r| matches!(r, Reply::Ready { .. }))
    }

    /// Types a line into the control channel.
    pub fn send(&self, line: &str) -> Result<()> {
        (&self.control)
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| Error::new(format!("writing to the control channel: {e}")))
    }

    /// Waits up to `timeout` for QEMU to exit (killing it if it does not) and for the consoles
    /// to drain; returns how it ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Exit> {
        if let Some(e) = &self.exit {
            return Ok(e.clone());
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    self.kill();
                    return Err(Error::new(format!(
                        "QEMU did not exit within {timeout:?}; killed it\n{}",
                        self.summary()
                    )));
                }
                Err(e) => return Err(Error::new(format!("waiting for QEMU: {e}"))),
            }
        };
        let elapsed = self.started.elapsed();
        // QEMU closed its sockets when it exited; let the readers reach end of file.
        let (lock, cv) = &*self.shared;
        if let Ok(t) = lock.lock() {
            let _ = cv.wait_timeout_while(t, Duration::from_secs(2), |t| {
                !(t.serial_closed && t.control_closed)
            });
        }
        let agent_status = {
            let t = lock
                .lock()
                .map_err(|_| Error::new("transcript lock poisoned"))?;
            t.control
                .iter()
                .chain(t.serial.iter())
                .rev()
                .find_map(|l| match Reply::parse(l) {
                    Some(Reply::Exit { status, .. }) => Some(status),
                    _ => None,
                })
        };
        let exit = Exit {
            qemu: status,
            agent_status,
            elapsed,
        };
        self.exit = Some(exit.clone());
        Ok(exit)
    }

    /// Kills QEMU (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Microvm {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects a 9P client to `127.0.0.1:port`, retrying until the server answers `Tversion` or
/// `timeout` passes. QEMU's user network accepts the host's TCP connection at once and only then
/// connects to the guest, retrying its SYN with backoff while the guest is not up yet; so each
/// attempt waits a short, growing time for `Rversion` and then starts afresh.
pub fn connect_9p(
    port: u16,
    msize: u32,
    timeout: Duration,
) -> Result<ninep::client::Client<TcpStream>> {
    let deadline = Instant::now() + timeout;
    let mut patience = Duration::from_millis(100);
    loop {
        let attempt = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.set_read_timeout(Some(patience))
                    .map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut c = ninep::client::Client::connect(s, msize).map_err(|e| e.to_string())?;
                c.stream_mut()
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .map_err(|e| e.to_string())?;
                Ok(c)
            });
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::new(format!(
                    "no 9P server answered on 127.0.0.1:{port} within {timeout:?}: {e}"
                )));
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                // Short attempts while a boot is plausible (they set the figure's resolution),
                // longer ones after that, for a slow machine.
                if Instant::now() + timeout > deadline + Duration::from_secs(10) {
                    patience = (patience * 3 / 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when this returns; QEMU binds it a moment later).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::new(format!("cannot bind a port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("{e}")))
}

/// The launcher's `--microvm` mode.
#[derive(Clone, Debug)]
pub struct MicrovmOptions {
    /// The disk to serve; `None` for (a working copy of) the demo disk.
    pub disk: Option<PathBuf>,
    /// The partition; `None`: 1 for the demo disk, and for `disk` 1 if it has an MBR
    /// partition table, else 0 (the whole disk).
    pub part: Option<u32>,
    /// Host port on 127.0.0.1 forwarded to the guest's 9P port.
    pub host_port: u16,
    /// How to build the guest.
    pub build: crate::Options,
}

impl Default for MicrovmOptions {
    fn default() -> Self {
        MicrovmOptions {
            disk: None,
            part: None,
            host_port: DEFAULT_HOST_PORT,
            build: crate::Options::default(),
        }
    }
}

/// Builds what is needed, boots the guest under QEMU microvm with its control channel on the
/// terminal (stdout; lines typed on stdin go to `hvc0`, and end of input sends `SHUTDOWN`) and
/// its serial log on stderr, and waits for it to power off. The demo disk is used through a
/// persistent working copy in the cache (`<cache>/disk/demo-*/disk.img`), so writes survive.
///
/// Returns how it ended; [`Exit::exit_code`] is the launcher's exit code.
pub fn run(opts: &MicrovmOptions) -> Result<Exit> {
    let artifacts = crate::build(&opts.build)?;
    let disk = match &opts.disk {
        Some(d) => {
            if !d.is_file() {
                return Err(Error::new(format!("disk {}: no such file", d.display())));
            }
            d.clone()
        }
        None => {
            disk::demo_working_copy(&opts.build.cache.clone().unwrap_or_else(crate::cache_dir))?
        }
    };
    let part = match opts.part {
        Some(p) => p,
        None if opts.disk.is_none() => 1,
        // Partition 1 if the disk has an MBR partition table, else the whole disk.
        None => match disk::partition_extent(&disk, 1) {
            Ok(_) => 1,
            Err(_) => 0,
        },
    };
    if std::net::TcpListener::bind(("127.0.0.1", opts.host_port)).is_err() {
        return Err(Error::new(format!(
            "port {} on 127.0.0.1 is in use; pick another with --9p-port",
            opts.host_port
        )));
    }
    let mut cfg = MicrovmConfig::new(&artifacts, Some(disk.clone()), part, Some(opts.host_port));
    cfg.echo = true;
    progress(&format!(
        "booting the filesystem VM under QEMU microvm: {} partition {part}, 9P at tcp!127.0.0.1!{}",
        disk.display(),
        opts.host_port
    ));
    progress(
        "the control channel (hvc0) is on stdout/stdin: type STATUS or SHUTDOWN; end of input sends SHUTDOWN",
    );
    let mut vm = Microvm::spawn(&cfg)?;
    let control = vm
        .control
        .try_clone()
        .map_err(|e| Error::new(format!("socket: {e}")))?;
    std::thread::spawn(move || forward_stdin(control));
    // The user decides when it ends.
    let exit = vm.wait_exit(Duration::from_secs(u64::MAX / 4))?;
    match exit.agent() {
        Some(s) => progress(&format!(
            "the VM powered off: {} (status {})",
            s.describe(),
            exit.exit_code()
        )),
        None => progress(&format!(
            "QEMU exited ({}) without the agent's exit status line",
            exit.qemu
        )),
    }
    Ok(exit)
}

/// Copies stdin to the control channel line by line; at end of input, sends `SHUTDOWN`.
fn forward_stdin(mut control: UnixStream) {
    let stdin = std::io::stdin();
    let mut pending: VecDeque<String> = VecDeque::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        pending.push_back(line);
        while let Some(l) = pending.pop_front() {
            if control.write_all(format!("{l}\n").as_bytes()).is_err() {
                return;
            }
        }
    }
    let _ = control.write_all(b"SHUTDOWN\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MicrovmConfig {
        MicrovmConfig {
            kernel: "/k/vmlinux".into(),
            initramfs: "/k/initramfs.cpio".into(),
            disk: Some("/d/a,b.img".into()),
            part: 1,
            guest_port: 564,
            host_port: Some(5640),
            memory_mib: 256,
            extra_cmdline: "fsvm.msize=8192".into(),
            echo: false,
        }
    }

    #[test]
    fn command_line_carries_the_agent_options() {
        assert_eq!(
            cfg().cmdline(),
            "console=ttyS0 quiet panic=-1 reboot=t fsvm.part=1 fsvm.port=564 fsvm.msize=8192"
        );
        let parsed = fsvm_agent::cmdline::parse(&cfg().cmdline()).unwrap();
        assert_eq!(
            (parsed.part, parsed.port, parsed.msize),
            (1, 564, Some(8192))
        );
    }

    #[test]
    fn qemu_arguments() {
        let a = cfg()
            .qemu_args(Path::new("/s/serial.sock"), Path::new("/s/control.sock"))
            .join(" ");
        for want in [
            "-M microvm,acpi=off,x-option-roms=off",
            "-accel tcg",
            "-no-reboot",
            "-kernel /k/vmlinux",
            "-serial chardev:serial",
            "socket,id=control,path=/s/control.sock",
            "-device virtconsole,chardev=control",
            "id=disk,file=/d/a,,b.img,format=raw,if=none",
            "-device virtio-blk-device,drive=disk",
            "hostfwd=tcp:127.0.0.1:5640-:564",
            "-device virtio-net-device,netdev=net",
        ] {
            assert!(a.contains(want), "{want} not in {a}");
        }
        let mut c = cfg();
        c.disk = None;
        c.host_port = None;
        let a = c.qemu_args(Path::new("s"), Path::new("c")).join(" ");
        assert!(!a.contains("virtio-blk") && !a.contains("hostfwd"));
    }

    #[test]
    fn exit_codes() {
        let qemu = std::process::Command::new("true").status().unwrap();
        let e = |s| Exit {
            qemu,
            agent_status: s,
            elapsed: Duration::ZERO,
        };
        assert_eq!(e(Some(0)).exit_code(), 0);
        assert_eq!(e(Some(3)).exit_code(), 3);
        assert_eq!(e(Some(3)).agent(), Some(PowerOffStatus::NotExt4));
        assert_eq!(e(None).exit_code(), 1);
        assert_eq!(e(Some(1000)).exit_code(), 1);
    }
}
