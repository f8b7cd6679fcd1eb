//! fsvmbench: the filesystem VM's figures under our kernel and `vmrunkernel` (DESIGN.md section
//! 8): from starting `vmrunkernel` to the agent's `ready` line on its console and to a 9P mount
//! through the NAT succeeding, the VM's exits up to then by reason, the time from `SHUTDOWN` to
//! `vmrunkernel`'s exit, and read throughput of the demo disk's 32 MiB file through the mount at
//! msize 8 KiB and 64 KiB (with what each read cost the VM: exits, time in guest, kernel and
//! VMM, and the CPU's idle time), beside the same file read inside the guest (the agent's
//! `READ` command). Compare with `guest-image bench` (QEMU microvm booting the same guest
//! directly) as ratios in one run; the figures are wall-clock time of the machine we run on.
//!
//! ```text
//! fsvmbench [-T] [-n BOOTS] [DISK [PART]]     default: 3 boots of /dev/sdE0/data partition 1
//! ```
//!
//! `-T` leaves out the throughput reads (they take minutes under Bochs).

#![no_std]
#![no_main]

extern crate alloc;

use abi::sys::bind::{MREPL, with_msize};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use cmd::args;
use core::sync::atomic::{AtomicU64, Ordering};
use rt::process::{self, RFFDG, RFPROC};
use rt::sync::Mutex;
use rt::sys::nsec;
use rt::{Error, Result, format, fs, io, net, println, thread, vec};

rt::entry!(main);

const USAGE: &str = "fsvmbench [-T] [-n BOOTS] [DISK [PART]]";
/// The host port forwarded to the guest's 9P server.
const PORT: u16 = 5699;
/// The demo disk's large file, from the partition's root.
const BIG_FILE: &str = "usr/share/fsvm/random-32m.bin";
const MNT: &str = "/n/fsvmbench";
/// How long a boot may take before we give up.
const BOOT_LIMIT_NS: u64 = 600_000_000_000;

/// One boot's figures, in nanoseconds from starting `vmrunkernel`.
struct Boot {
    ready: u64,
    mounted: u64,
    shutdown: u64,
    stats: String,
}

fn secs(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000_000_000, ns / 1_000_000 % 1000)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Writes `text` to a new file `path`.
fn put(path: &str, text: &str) -> Result<()> {
    let fd = fs::create(path, fs::OWRITE | fs::OTRUNC, 0o644)?;
    let r = io::write(fd, text.as_bytes());
    io::close(fd)?;
    r.map(|_| ())
}

/// A running `vmrunkernel`.
struct Running {
    pid: u64,
    /// The write end of its console input.
    control: u64,
    /// When the agent's `ready` line came (ns from the start), or 0.
    ready: Arc<AtomicU64>,
    /// Its console output so far.
    console: Arc<Mutex<String>>,
}

/// Starts `vmrunkernel` on `disk`, its console input from a pipe (returned) and its output
/// read by a thread that notes when the agent says `ready` (and keeps the text for errors).
fn start_vm(disk: &str, part: &str) -> Result<Running> {
    put(
        "/tmp/fsvmbench.cmdline",
        &format!("console=hvc0 quiet fsvm.part={part} fsvm.port=564\n"),
    )?;
    put("/tmp/fsvmbench.net", &format!("port:tcp:{PORT}:564\n"))?;
    let (in_r, in_w) = io::pipe()?;
    let (out_r, out_w) = io::pipe()?;
    let args: Vec<String> = [
        "vmrunkernel",
        "-m",
        "128M",
        "-i",
        "/lib/fsvm/initramfs",
        "-k",
        "/tmp/fsvmbench.cmdline",
        "-n",
        "/tmp/fsvmbench.net",
        "-f",
        disk,
        "/lib/fsvm/bzImage",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pid = match process::rfork(RFPROC | RFFDG)? {
        0 => {
            let _ = io::dup(in_r, Some(0));
            let _ = io::dup(out_w, Some(1));
            let _ = io::dup(out_w, Some(2));
            for fd in [in_r, in_w, out_r, out_w] {
                let _ = io::close(fd);
            }
            let e = process::exec("/bin/vmrunkernel", &args);
            process::exits(e.msg())
        }
        pid => pid,
    };
    io::close(in_r)?;
    io::close(out_w)?;
    let started = nsec();
    let ready = Arc::new(AtomicU64::new(0));
    let text = Arc::new(Mutex::new(String::new()));
    let (r, t) = (ready.clone(), text.clone());
    thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n @ 1..) = io::read(out_r, &mut buf) {
            let mut t = t.lock();
            t.push_str(&String::from_utf8_lossy(&buf[..n]));
            if r.load(Ordering::Relaxed) == 0 && t.contains("fsvm-agent: ready") {
                r.store(nsec() - started, Ordering::Relaxed);
            }
        }
        let _ = io::close(out_r);
    })?;
    Ok(Running {
        pid,
        control: in_w,
        ready,
        console: text,
    })
}

/// The newest VM's `stats` (ours: nobody else runs one while we measure).
fn vm_stats() -> Result<String> {
    let newest = fs::read_dir("#vm")?
        .iter()
        .filter_map(|d| d.name.parse::<u64>().ok())
        .max();
    match newest {
        Some(n) => fs::read_to_string(&format!("#vm/{n}/stats")),
        None => Err(Error::new("#vm: no VM")),
    }
}

/// `#arch/idle`: ns the CPUs were halted with nothing to run (0 if it cannot be read).
fn idle_ns() -> u64 {
    fs::read_to_string("#arch/idle")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// `stats` as (name, value) pairs: the lines whose last word is a number.
fn stat_values(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, v) = l.trim().rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// What changed between two `stats` readings, as one line: exits by reason and the split of
/// the wall-clock time between guest, halted, kernel and VMM (ms).
fn stats_delta(before: &str, after: &str) -> String {
    let old = stat_values(before);
    let mut out = String::new();
    for (name, v) in stat_values(after) {
        let was = old.iter().find(|(n, _)| *n == name).map_or(0, |p| p.1);
        let d = v.saturating_sub(was);
        if d == 0 || name.starts_with("memory-") || name.starts_with("nested-") {
            continue;
        }
        match name.strip_suffix("-ns") {
            Some(n) => out.push_str(&format!(" {n}-ms {}", d / 1_000_000)),
            None => out.push_str(&format!(
                " {} {d}",
                name.strip_prefix("exit ").unwrap_or(&name)
            )),
        }
    }
    out
}

/// Mounts the guest's 9P server on [`MNT`] with `msize`, retrying until it answers.
fn mount(msize: u32, started: u64, console: &Mutex<String>) -> Result<()> {
    loop {
        let attempt = net::dial(&format!("tcp!127.0.0.1!{PORT}")).and_then(|fd| {
            fs::mount(fd, MNT, with_msize(MREPL, msize), "").and_then(|()| io::close(fd))
        });
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if nsec() - started > BOOT_LIMIT_NS => {
                return Err(e.context(format!(
                    "the guest's 9P server never answered; its console:\n{}",
                    console.lock().as_str()
                )));
            }
            Err(_) => process::sleep(10)?,
        }
    }
}

/// Bytes in `ns` nanoseconds as tenths of a MiB/s (the figures are printed with one decimal:
/// whole MiB/s hid changes of 10-20% at the rates seen under emulation).
fn tenths_mib_s(bytes: u64, ns: u64) -> u64 {
    ((u128::from(bytes) * 10_000_000_000 / u128::from(ns.max(1))) >> 20) as u64
}

/// `x.y` from tenths.
fn tenths(v: u64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

/// `a / b` with two decimals.
fn ratio(a: u64, b: u64) -> String {
    let r = a * 100 / b.max(1);
    format!("{}.{:02}", r / 100, r % 100)
}

/// Reads the big file through the mount; tenths of MiB/s.
fn read_rate() -> Result<u64> {
    let fd = fs::open(&format!("{MNT}/{BIG_FILE}"), fs::OREAD)?;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = nsec();
    let mut total = 0u64;
    loop {
        match io::read(fd, &mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    let ns = nsec() - t0;
    io::close(fd)?;
    Ok(tenths_mib_s(total, ns))
}

/// Has the agent read [`BIG_FILE`] inside the guest (its `READ` control command) and returns
/// the rate it reports, tenths of MiB/s; the agent's reply comes on the console after `READ`.
fn read_in_guest(control: u64, console: &Mutex<String>) -> Result<u64> {
    let from = console.lock().len();
    io::write(control, format!("READ {BIG_FILE}\n").as_bytes())?;
    let t0 = nsec();
    loop {
        let reply = {
            let text = console.lock();
            text[from..]
                .lines()
                .find(|l| l.starts_with("fsvm-agent: read ") || l.starts_with("fsvm-agent: error"))
                .map(String::from)
        };
        match reply.as_deref().map(parse_read_reply) {
            Some(Some((bytes, ns))) => {
                return Ok(tenths_mib_s(bytes, ns));
            }
            Some(None) => {
                return Err(Error::new(format!(
                    "READ {BIG_FILE} in the guest: {}",
                    reply.unwrap_or_default()
                )));
            }
            None if nsec() - t0 > BOOT_LIMIT_NS => {
                return Err(Error::new("READ in the guest: no reply from the agent"));
            }
            None => process::sleep(10)?,
        }
    }
}

/// `fsvm-agent: read PATH BYTES NS` (the agent's `Reply::Read`) as (bytes, ns); `None` for
/// anything else, an `error` line included.
fn parse_read_reply(line: &str) -> Option<(u64, u64)> {
    let mut w = line.strip_prefix("fsvm-agent: read ")?.split(' ');
    let (_path, bytes, ns) = (w.next()?, w.next()?, w.next()?);
    if w.next().is_some() {
        return None;
    }
    Some((bytes.parse().ok()?, ns.parse().ok()?))
}

/// Boot `n`: start, wait for the mount, optionally read, shut down. Prints a line as it starts
/// `vmrunkernel` and as the mount succeeds, so that a harness outside can time them by its own
/// clock (an emulator's clock need not be the wall clock).
fn boot(n: usize, disk: &str, part: &str, read: bool) -> Result<Boot> {
    println!("boot {n}: starting vmrunkernel");
    io::flush_stdout();
    let started = nsec();
    let Running {
        pid,
        control,
        ready,
        console,
    } = start_vm(disk, part)?;
    // Dialling before the agent listens would send SYNs the guest cannot answer yet, and the
    // NAT would retransmit them only a second later.
    while ready.load(Ordering::Relaxed) == 0 {
        if nsec() - started > BOOT_LIMIT_NS || fs::stat(&format!("/proc/{pid}")).is_err() {
            return Err(Error::new(format!(
                "the agent never said it was ready; its console:\n{}",
                console.lock().as_str()
            )));
        }
        process::sleep(5)?;
    }
    mount(64 * 1024 + ninep::IOHDRSZ, started, &console)?;
    let mounted = nsec() - started;
    println!("boot {n}: 9P mounted");
    io::flush_stdout();
    let stats = vm_stats().unwrap_or_else(|e| e.msg().to_string());
    if read {
        let _ = read_rate()?; // warms the guest's page cache
        fs::unmount(None, MNT)?;
        let inside = read_in_guest(control, &console)?;
        let mut rates = Vec::new();
        for msize in [8 * 1024, 64 * 1024] {
            mount(msize + ninep::IOHDRSZ, started, &console)?;
            let (before, idle0) = (vm_stats().unwrap_or_default(), idle_ns());
            rates.push(read_rate()?);
            let (after, idle1) = (vm_stats().unwrap_or_default(), idle_ns());
            println!(
                "msize {} KiB read:{}; CPU idle {} ms",
                msize / 1024,
                stats_delta(&before, &after),
                idle1.saturating_sub(idle0) / 1_000_000
            );
            fs::unmount(None, MNT)?;
        }
        println!(
            "9P read of the 32 MiB file through the NAT: msize 8 KiB {} MiB/s, 64 KiB {} MiB/s, ratio {} (DESIGN: at least 4)",
            tenths(rates[0]),
            tenths(rates[1]),
            ratio(rates[1], rates[0])
        );
        println!(
            "the same file read inside the guest: {} MiB/s; 9P at msize 64 KiB over that: {} (DESIGN: at least 0.25)",
            tenths(inside),
            ratio(rates[1], inside)
        );
    } else {
        fs::unmount(None, MNT)?;
    }
    let t = nsec();
    io::write(control, b"SHUTDOWN\n")?;
    let (exit, _) = process::wait_for(pid)?;
    let shutdown = nsec() - t;
    io::close(control)?;
    if !exit.msg.is_empty() {
        return Err(Error::new(format!(
            "vmrunkernel: {}; its console:\n{}",
            exit.msg,
            console.lock().as_str()
        )));
    }
    Ok(Boot {
        ready: ready.load(Ordering::Relaxed),
        mounted,
        shutdown,
        stats,
    })
}

fn main() -> Result<()> {
    let a = args::parse(USAGE, "T", "n");
    let boots: usize = match a.value('n') {
        Some(v) => v
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| args::usage(USAGE)),
        None => 3,
    };
    if a.rest.len() > 2 {
        args::usage(USAGE);
    }
    let disk = a.rest.first().map_or("/dev/sdE0/data", String::as_str);
    let part = a.rest.get(1).map_or("1", String::as_str);
    if fs::stat(MNT).is_err() {
        fs::create(MNT, fs::OREAD, ninep::DMDIR | 0o755).and_then(io::close)?;
    }
    println!("fsvmbench: {boots} boots of the filesystem VM on {disk} partition {part}");
    let mut all = Vec::new();
    for i in 0..boots {
        let b = boot(i + 1, disk, part, !a.has('T') && i + 1 == boots)?;
        println!(
            "boot {}: start -> ready line {} s, -> 9P mounted {} s; SHUTDOWN -> exit {} s",
            i + 1,
            secs(b.ready),
            secs(b.mounted),
            secs(b.shutdown)
        );
        all.push(b);
    }
    println!(
        "median of {boots}: vmrunkernel start -> ready line {} s, -> 9P mounted {} s; SHUTDOWN -> exit {} s",
        secs(median(all.iter().map(|b| b.ready).collect())),
        secs(median(all.iter().map(|b| b.mounted).collect())),
        secs(median(all.iter().map(|b| b.shutdown).collect()))
    );
    println!("the first VM's #vm stats when 9P first answered:");
    for line in all[0].stats.lines() {
        println!("  {line}");
    }
    Ok(())
}
