//! `tern`: builds the OS (see `build.rs`) and boots it in QEMU or Bochs.
//!
//! Interactive by default: the serial console is the terminal. With `--run` or `--script`, it
//! waits for the prompt, types each line, waits for the prompt again, then powers the OS off
//! and exits non-zero if the OS panicked or the timeout passed.

use qemu_test::{Boot, Emulator, Machine, MachineConfig, iso};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo run --release -- [OPTIONS]

Boots the OS in QEMU (default) or Bochs with its serial console on this terminal.

options:
  --bochs            boot the GRUB ISO in Bochs (VMX: corei7_skylake_x) instead of QEMU
  --cpu MODEL        QEMU -cpu model (default max) or Bochs CPU model (e.g. trinity_apu for SVM)
  --iso              boot QEMU from the GRUB ISO instead of -kernel
  --run LINE         type LINE at the prompt (repeatable); then power off and exit
  --script FILE      like --run, for each line of FILE
  --timeout SECONDS  give up (exit 1) after this long; default 600 with --run/--script
  --disk FILE        attach FILE as a raw disk (virtio-blk in QEMU, ATA in Bochs); default:
                     a working copy of the demo disk (MBR, partition 1 ext4)
  --no-disk          attach no disk
  --smp N            number of CPUs (default 1)
  --mem MIB          memory in MiB (default 512)
  --append ARGS      extra kernel command line
  --microvm          boot the Linux filesystem VM directly under QEMU microvm instead: it serves
                     the disk's partition over 9P on 127.0.0.1:PORT; its control console
                     (hvc0) is this terminal: type SHUTDOWN (or end input) to stop it
  --part N           with --microvm: the partition to serve (0 = whole disk)
  --9p-port PORT     with --microvm: the host port for 9P (default 5640)
  --help             this text
";

struct Options {
    emulator: Emulator,
    cpu: Option<String>,
    iso: bool,
    lines: Vec<String>,
    scripted: bool,
    timeout: Option<Duration>,
    disk: Option<PathBuf>,
    no_disk: bool,
    microvm: bool,
    part: Option<u32>,
    ninep_port: Option<u16>,
    smp: u32,
    mem_mib: u32,
    append: String,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        emulator: Emulator::Qemu,
        cpu: None,
        iso: false,
        lines: Vec::new(),
        scripted: false,
        timeout: None,
        disk: None,
        no_disk: false,
        microvm: false,
        part: None,
        ninep_port: None,
        smp: 1,
        mem_mib: 512,
        append: String::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value (see --help)"))
        };
        let number = |name: &str, v: String| {
            v.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name}: '{v}' is not a positive number"))
        };
        match arg.as_str() {
            "--bochs" => o.emulator = Emulator::Bochs,
            "--iso" => o.iso = true,
            "--cpu" => o.cpu = Some(value("--cpu")?),
            "--run" => {
                o.lines.push(value("--run")?);
                o.scripted = true;
            }
            "--script" => {
                let file = value("--script")?;
                let text =
                    std::fs::read_to_string(&file).map_err(|e| format!("--script {file}: {e}"))?;
                o.lines.extend(text.lines().map(str::to_string));
                o.scripted = true;
            }
            "--timeout" => {
                let v = value("--timeout")?;
                o.timeout = Some(Duration::from_secs(number("--timeout", v)?.into()));
            }
            "--disk" => {
                let file = PathBuf::from(value("--disk")?);
                if !file.is_file() {
                    return Err(format!("--disk {}: no such file", file.display()));
                }
                o.disk = Some(file);
            }
            "--no-disk" => o.no_disk = true,
            "--microvm" => o.microvm = true,
            "--part" => {
                let v = value("--part")?;
                o.part = Some(
                    v.parse()
                        .map_err(|_| format!("--part: '{v}' is not a partition number"))?,
                );
            }
            "--9p-port" => {
                let v = value("--9p-port")?;
                o.ninep_port = Some(
                    v.parse()
                        .ok()
                        .filter(|&p| p > 0)
                        .ok_or_else(|| format!("--9p-port: '{v}' is not a port"))?,
                );
            }
            "--smp" => o.smp = number("--smp", value("--smp")?)?,
            "--mem" => o.mem_mib = number("--mem", value("--mem")?)?,
            "--append" => o.append = value("--append")?,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tern: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.microvm {
        return microvm(&opts);
    }
    match boot(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tern: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--microvm`: the guest image alone under QEMU microvm.
fn microvm(o: &Options) -> ExitCode {
    let opts = guest_image::microvm::MicrovmOptions {
        disk: o.disk.clone(),
        part: o.part,
        host_port: o
            .ninep_port
            .unwrap_or(guest_image::microvm::DEFAULT_HOST_PORT),
        build: Default::default(),
    };
    match guest_image::microvm::run(&opts) {
        Ok(exit) => ExitCode::from(exit.exit_code()),
        Err(e) => {
            eprintln!("tern: {e}");
            ExitCode::FAILURE
        }
    }
}

fn boot(o: &Options) -> Result<ExitCode, String> {
    let kernel = Path::new(env!("TERN_KERNEL"));
    let bootfs = Path::new(env!("TERN_BOOTFS"));
    let work_dir = Path::new(env!("TERN_OS_DIR")).join("run");
    let boot = if o.iso || o.emulator == Emulator::Bochs {
        Boot::Iso(iso::build(
            kernel,
            Some(bootfs),
            &o.append,
            Path::new(env!("TERN_OS_DIR")),
        )?)
    } else {
        Boot::Kernel {
            kernel: kernel.into(),
            initrd: Some(bootfs.into()),
            cmdline: o.append.clone(),
        }
    };
    let cfg = MachineConfig {
        emulator: o.emulator,
        boot,
        cpu: o.cpu.clone(),
        smp: o.smp,
        mem_mib: o.mem_mib,
        disk: match (&o.disk, o.no_disk) {
            (_, true) => None,
            (Some(d), false) => Some(d.clone()),
            (None, false) => Some(guest_image::demo_disk_copy().map_err(|e| e.to_string())?),
        },
        echo: true,
        work_dir,
    };
    if !o.scripted {
        return interactive(&cfg, o.timeout);
    }
    let timeout = o.timeout.unwrap_or(Duration::from_secs(600));
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut m = Machine::start(&cfg).map_err(|e| e.summary())?;
    let result = (|| {
        m.wait_prompt(left())?;
        for line in &o.lines {
            m.run(line, left())?;
        }
        m.send_line("poweroff")?;
        m.wait_exit(left().min(Duration::from_secs(60)))
    })();
    println!();
    match result {
        Ok(_) if m.panicked() => Err("the kernel panicked".into()),
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.summary()),
    }
}

/// Byte that leaves an interactive session (Ctrl-]), as in telnet.
const ESCAPE: u8 = 0x1d;

/// Runs the machine with this terminal as its console until it exits (or Ctrl-] is typed).
fn interactive(cfg: &MachineConfig, timeout: Option<Duration>) -> Result<ExitCode, String> {
    use std::io::{IsTerminal, Read, Write};
    let mut m = Machine::start(cfg).map_err(|e| e.summary())?;
    let terminal = std::io::stdin().is_terminal();
    if terminal {
        // Raw mode: keys (including ^C) go to the OS, which echoes them itself.
        let _ = std::process::Command::new("stty")
            .args(["raw", "-echo"])
            .status();
        eprint!("tern: console attached; Ctrl-] quits\r\n");
    }
    let quit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn({
        let mut input = m.input();
        let quit = quit.clone();
        move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if let Some(at) = buf[..n].iter().position(|&b| b == ESCAPE) {
                    let _ = input.write_all(&buf[..at]);
                    quit.store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                if input
                    .write_all(&buf[..n])
                    .and_then(|()| input.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    let deadline = timeout.map(|t| Instant::now() + t);
    let outcome = loop {
        if !m.running() {
            break Ok(());
        }
        if quit.load(std::sync::atomic::Ordering::SeqCst) {
            m.kill();
            break Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            m.kill();
            break Err("timed out".to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if terminal {
        let _ = std::process::Command::new("stty").arg("sane").status();
    }
    println!();
    outcome?;
    if m.panicked() {
        return Err("the kernel panicked".into());
    }
    Ok(ExitCode::SUCCESS)
}
