//! `fsvm-agent`: PID 1 of the Linux filesystem VM (DESIGN.md section 5).
//!
//! It mounts proc, sys and devtmpfs; reads its options from the kernel command line
//! ([`fsvm_agent::cmdline`]); brings up loopback and eth0; mounts the disk's partition as ext4 on
//! `/mnt`; serves it with our 9P2000 server; then obeys control lines on `hvc0`
//! ([`fsvm_agent::control`]). Every step is logged on the console (`/dev/console`, the serial
//! port) with the time since boot. Whatever happens, it ends the same way: stop the server, sync,
//! unmount, print the `exit status` line on the console and on `hvc0`, and power off, with our
//! VMM's hypercall if the CPU reports our hypervisor and otherwise by a reboot (which
//! `reboot=t` plus QEMU's `-no-reboot` turn into an exit).

mod sys;

use abi::hv::PowerOffStatus;
use fsvm_agent::cmdline::{self, Options};
use fsvm_agent::control::{self, Command, Reply};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddrV4;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where the disk is mounted and served from.
const MOUNT_POINT: &str = "/mnt";
/// The control channel: the first virtio-console port.
const CONTROL_TTY: &str = "/dev/hvc0";
/// How long to wait for `hvc0` (virtio-console adds its ports asynchronously after probe).
const CONTROL_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for the disk's device node.
const DISK_WAIT: Duration = Duration::from_secs(3);

/// Writes one line to the console, prefixed with the time since boot as printk does.
fn log(msg: &str) {
    let t = sys::since_boot();
    let line = format!(
        "[{:5}.{:06}] fsvm-agent: {msg}\n",
        t.as_secs(),
        t.subsec_micros()
    );
    // A console that cannot be written to must not stop the agent.
    let _ = io::stdout().lock().write_all(line.as_bytes());
}

/// The write side of the control channel, once `hvc0` is open.
static CONTROL_OUT: Mutex<Option<File>> = Mutex::new(None);
static CONTROL_OPENED: Condvar = Condvar::new();

/// Prints a reply line on the control channel, if it is open.
fn reply(r: &Reply) {
    if let Ok(mut out) = CONTROL_OUT.lock()
        && let Some(f) = out.as_mut()
    {
        let _ = f.write_all(format!("{r}\n").as_bytes());
    }
}

/// Whether the control channel is open.
fn control_is_open() -> bool {
    CONTROL_OUT.lock().is_ok_and(|out| out.is_some())
}

/// Waits up to `limit` for the control channel to open.
fn wait_for_control(limit: Duration) {
    let Ok(guard) = CONTROL_OUT.lock() else {
        return;
    };
    let _ = CONTROL_OPENED.wait_timeout_while(guard, limit, |out| out.is_none());
}

/// Why the agent stops serving.
struct Failure {
    status: PowerOffStatus,
    message: String,
}

fn fail(status: PowerOffStatus, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

/// What the control thread tells the main loop.
enum Event {
    /// `hvc0` is open (its writer is in `CONTROL_OUT`).
    ControlOpen,
    /// `hvc0` did not appear or could not be opened.
    NoControl(String),
    /// One line from `hvc0`, or `Err(length)` if it was too long.
    Line(Result<String, usize>),
    /// `hvc0` reached end of file or failed.
    ControlClosed(String),
}

/// Opens `hvc0` once it exists, publishes its writer and forwards its lines.
fn control_thread(events: Sender<Event>) {
    let start = Instant::now();
    let file = loop {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(CONTROL_TTY)
        {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && start.elapsed() < CONTROL_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let _ = events.send(Event::NoControl(format!("cannot open {CONTROL_TTY}: {e}")));
                return;
            }
        }
    };
    if let Err(e) = sys::set_control_mode(file.as_fd()) {
        log(&format!(
            "warning: cannot set the terminal mode of {CONTROL_TTY}: {e}"
        ));
    }
    match file.try_clone() {
        Ok(w) => {
            if let Ok(mut out) = CONTROL_OUT.lock() {
                *out = Some(w);
            }
            CONTROL_OPENED.notify_all();
        }
        Err(e) => {
            let _ = events.send(Event::NoControl(format!(
                "cannot duplicate {CONTROL_TTY}: {e}"
            )));
            return;
        }
    }
    if events.send(Event::ControlOpen).is_err() {
        return;
    }
    let mut reader = BufReader::new(file);
    loop {
        let mut line = Vec::new();
        let limit = control::MAX_COMMAND_LEN as u64 + 2;
        let r = (&mut reader).take(limit).read_until(b'\n', &mut line);
        let event = match r {
            Ok(0) => Event::ControlClosed("end of file".into()),
            Ok(_) if line.ends_with(b"\n") => {
                Event::Line(Ok(String::from_utf8_lossy(&line).into_owned()))
            }
            Ok(n) => {
                // Too long: skip to the end of the line, then report it once.
                let mut rest = Vec::new();
                match reader.read_until(b'\n', &mut rest) {
                    Ok(m) => Event::Line(Err(n + m)),
                    Err(e) => Event::ControlClosed(e.to_string()),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Event::ControlClosed(e.to_string()),
        };
        let closed = matches!(event, Event::ControlClosed(_));
        if events.send(event).is_err() || closed {
            return;
        }
    }
}

/// The agent's state, so that the end can undo what the start did.
#[derive(Default)]
struct Agent {
    options: Option<Options>,
    device: String,
    mounted: bool,
    server: Option<ninepd::Server>,
}

impl Agent {
    fn dial_string(&self) -> String {
        self.options
            .as_ref()
            .map_or("-".into(), |o| control::dial_string(o.ip, o.port))
    }

    /// Everything up to serving: Ok once the 9P server listens.
    fn start(&mut self) -> Result<(), Failure> {
        let raw = std::fs::read_to_string("/proc/cmdline").map_err(|e| {
            fail(
                PowerOffStatus::AgentFailed,
                format!("cannot read /proc/cmdline: {e}"),
            )
        })?;
        let opts =
            cmdline::parse(&raw).map_err(|e| fail(PowerOffStatus::AgentFailed, e.to_string()))?;
        self.device = opts.device_path();
        log(&format!(
            "options: disk {} partition {} ({}), 9P on {}:{}, eth0 {}/{}, gateway {}",
            opts.disk,
            opts.part,
            self.device,
            opts.ip,
            opts.port,
            opts.ip,
            opts.prefix,
            opts.gateway.map_or("none".into(), |g| g.to_string()),
        ));
        self.options = Some(opts.clone());

        configure_network(&opts)?;
        wait_for_device(&opts, &self.device)?;

        sys::mount(&self.device, MOUNT_POINT, "ext4", libc::MS_NOATIME).map_err(|e| {
            fail(
                PowerOffStatus::NotExt4,
                format!(
                    "cannot mount {} as ext4 on {MOUNT_POINT}: {e} (is it ext4?)",
                    self.device
                ),
            )
        })?;
        self.mounted = true;
        log(&format!("mounted {} (ext4) on {MOUNT_POINT}", self.device));

        let addr = SocketAddrV4::new(opts.ip, opts.port);
        let mut server_opts = ninepd::Options::default();
        if let Some(m) = opts.msize {
            server_opts.msize = m;
        }
        let server = ninepd::Server::bind(addr, MOUNT_POINT, server_opts).map_err(|e| {
            let status = match e.kind() {
                io::ErrorKind::AddrInUse => PowerOffStatus::PortInUse,
                _ => PowerOffStatus::AgentFailed,
            };
            fail(status, format!("9P server on {addr}: {e}"))
        })?;
        self.server = Some(server);
        log(&format!(
            "serving {MOUNT_POINT} over 9P2000 on {}",
            self.dial_string()
        ));
        Ok(())
    }

    /// Obeys the control channel until `SHUTDOWN`.
    fn serve(&mut self, events: &Receiver<Event>) {
        let ready = Reply::Ready {
            addr: self.dial_string(),
            device: self.device.clone(),
        };
        // Announce readiness once, as soon as both the server and the channel are up.
        let mut announced = control_is_open();
        if announced {
            reply(&ready);
        }
        while let Ok(event) = events.recv() {
            match event {
                Event::ControlOpen => {
                    log(&format!("control channel {CONTROL_TTY} open"));
                    if !announced {
                        reply(&ready);
                        announced = true;
                    }
                }
                Event::NoControl(e) => log(&format!("warning: no control channel: {e}")),
                Event::ControlClosed(e) => log(&format!("warning: control channel closed: {e}")),
                Event::Line(line) => {
                    let parsed = match line {
                        Ok(l) => control::parse_command(&l),
                        Err(n) => Err(control::ControlError::TooLong(n)),
                    };
                    match parsed {
                        Ok(None) => {}
                        Ok(Some(Command::Status)) => {
                            let t = sys::since_boot();
                            reply(&Reply::Status {
                                state: "serving".into(),
                                device: self.device.clone(),
                                addr: self.dial_string(),
                                uptime: format!("{}.{:03}", t.as_secs(), t.subsec_millis()),
                                connections: self.server.as_ref().map_or(0, |s| s.connections()),
                            });
                        }
                        Ok(Some(Command::Read(path))) => {
                            // In a thread of its own: a long read must not hold up SHUTDOWN.
                            let spawned = std::thread::Builder::new()
                                .name("read".into())
                                .spawn(move || reply(&read_in_guest(path.as_str())));
                            if let Err(e) = spawned {
                                reply(&Reply::Error(format!("READ: no thread: {e}")));
                            }
                        }
                        Ok(Some(Command::Shutdown)) => {
                            log("SHUTDOWN received");
                            reply(&Reply::ShuttingDown);
                            return;
                        }
                        Err(e) => {
                            log(&format!("control: {e}"));
                            reply(&Reply::Error(e.to_string()));
                        }
                    }
                }
            }
        }
    }

    /// Stops the server, syncs and unmounts. Returns false if the file system could not be
    /// unmounted or remounted read-only.
    fn stop(&mut self) -> bool {
        if let Some(server) = self.server.take() {
            server.stop();
            log("9P server stopped");
        }
        sys::sync();
        if !self.mounted {
            return true;
        }
        for _ in 0..20 {
            match sys::unmount(MOUNT_POINT) {
                Ok(()) => {
                    self.mounted = false;
                    log(&format!("synced and unmounted {}", self.device));
                    return true;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    log(&format!("cannot unmount {MOUNT_POINT}: {e}"));
                    break;
                }
            }
        }
        match sys::remount_read_only(MOUNT_POINT) {
            Ok(()) => {
                sys::sync();
                log(&format!(
                    "{MOUNT_POINT} stays mounted but is now read-only and clean"
                ));
                true
            }
            Err(e) => {
                log(&format!("cannot remount {MOUNT_POINT} read-only: {e}"));
                false
            }
        }
    }
}

/// `READ PATH`: reads the served tree's file `path` to its end in 1 MiB reads and times it.
fn read_in_guest(path: &str) -> Reply {
    let started = Instant::now();
    let mut file = match File::open(Path::new(MOUNT_POINT).join(path)) {
        Ok(f) => f,
        Err(e) => return Reply::Error(format!("READ {path}: {e}")),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Reply::Error(format!("READ {path}: {e}")),
        }
    }
    Reply::Read {
        path: path.to_string(),
        bytes,
        ns: started.elapsed().as_nanos() as u64,
    }
}

/// proc, sysfs and devtmpfs; failures are logged (the steps that need them will fail clearly).
fn mount_kernel_file_systems() {
    for (fstype, target) in [("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")] {
        let _ = std::fs::create_dir_all(target);
        match sys::mount(fstype, target, fstype, libc::MS_NOSUID | libc::MS_NOEXEC) {
            Ok(()) => log(&format!("mounted {fstype} on {target}")),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => log(&format!("warning: cannot mount {fstype} on {target}: {e}")),
        }
    }
    let _ = std::fs::create_dir_all(MOUNT_POINT);
}

fn configure_network(opts: &Options) -> Result<(), Failure> {
    let net = |what: &str, e: io::Error| {
        fail(PowerOffStatus::AgentFailed, format!("network: {what}: {e}"))
    };
    sys::configure_interface("lo", Some(([127, 0, 0, 1].into(), [255, 0, 0, 0].into())))
        .map_err(|e| net("cannot bring up lo", e))?;
    sys::configure_interface("eth0", Some((opts.ip, opts.netmask())))
        .map_err(|e| net("cannot configure eth0 (is there a virtio-net device?)", e))?;
    if let Some(gw) = opts.gateway {
        sys::add_default_route(gw)
            .map_err(|e| net(&format!("cannot add a default route via {gw}"), e))?;
    }
    log(&format!("eth0 up as {}/{}, lo up", opts.ip, opts.prefix));
    Ok(())
}

/// Waits for the disk's node, then checks that the partition exists (Linux has read the
/// partition table by the time the disk's node appears).
fn wait_for_device(opts: &Options, device: &str) -> Result<(), Failure> {
    let disk = format!("/dev/{}", opts.disk);
    let start = Instant::now();
    while !Path::new(&disk).exists() {
        if start.elapsed() > DISK_WAIT {
            return Err(fail(
                PowerOffStatus::NoSuchPartition,
                format!("no disk {disk} (is there a virtio-blk device?)"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if opts.part == 0 || Path::new(device).exists() {
        return Ok(());
    }
    // Name the partitions there are, from sysfs, so the user can pick one.
    let mut parts: Vec<String> = std::fs::read_dir(format!("/sys/block/{}", opts.disk))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().join("partition").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    let have = if parts.is_empty() {
        "it has no partitions".to_string()
    } else {
        format!("it has {}", parts.join(", "))
    };
    Err(fail(
        PowerOffStatus::NoSuchPartition,
        format!(
            "partition {} of {disk} does not exist ({have}; 0 means the whole disk)",
            opts.part
        ),
    ))
}

/// Prints the exit line on both channels, waits for them to drain, and powers off.
fn power_off(status: PowerOffStatus) -> ! {
    let exit = Reply::exit(status);
    let text = exit.to_string();
    log(text.strip_prefix(control::PREFIX).unwrap_or(&text));
    reply(&exit);
    // Power-off does not wait for terminals to drain; bound the wait in case one is stuck.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sys::drain(io::stdout().as_fd());
        if let Ok(out) = CONTROL_OUT.lock()
            && let Some(f) = out.as_ref()
        {
            let _ = sys::drain(f.as_fd());
        }
        let _ = done_tx.send(());
    });
    let _ = done_rx.recv_timeout(Duration::from_secs(2));
    if sys::under_our_vmm() {
        sys::power_off_hypercall(status);
        log("warning: the power-off hypercall returned; rebooting instead");
    }
    let e = sys::reboot();
    log(&format!("cannot reboot: {e}"));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "fsvm-agent: this is the init of the filesystem VM; it runs only as PID 1 in the guest"
        );
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        log(&format!("internal error: {info}"));
        reply(&Reply::Error(format!("internal error: {info}")));
        sys::sync();
        power_off(PowerOffStatus::AgentFailed);
    }));
    log("starting");
    let (tx, rx) = mpsc::channel();
    let mut agent = Agent::default();
    mount_kernel_file_systems();
    // The control channel opens in parallel with the rest of the start.
    std::thread::spawn(move || control_thread(tx));
    let mut status = match agent.start() {
        Ok(()) => {
            agent.serve(&rx);
            PowerOffStatus::Clean
        }
        Err(f) => {
            log(&format!("error: {}", f.message));
            wait_for_control(Duration::from_secs(3));
            reply(&Reply::Error(f.message));
            f.status
        }
    };
    if !agent.stop() && status == PowerOffStatus::Clean {
        status = PowerOffStatus::AgentFailed;
    }
    power_off(status)
}
