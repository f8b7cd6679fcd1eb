//! The headline: DESIGN.md's console transcript. `fsvm` (a script in our shell) starts a Linux
//! VM under `vmrunkernel` that serves partition 1 of the demo disk over 9P; our kernel mounts it
//! through the VMM's NAT; killing the script syncs, unmounts and shuts the VM down, leaving no
//! process, mount, /srv entry or binding behind. Afterwards, on the host, the partition is clean
//! (`e2fsck -fn`) and holds the file written through 9P.
//!
//! SVM runs under QEMU, VMX under Bochs (`corei7_skylake_x`). Bad input beside it: a missing
//! partition, a kernel that is not one, missing files and bad options, each a clear error with
//! nothing left behind.
//!
//! The benchmarks print figures (never timed assertions): `fsvmbench` in the OS (start to the
//! agent's ready line and to a 9P mount, exits by reason, shutdown, 9P throughput through the
//! NAT), beside QEMU microvm booting the same guest directly on the host, as a ratio.

mod common;

use common::{available, bochs, power_off, qemu, run, start};
use guest_image::disk::{BIG_FILE, TOP_LEVEL, partition_extent};
use guest_image::microvm::{Microvm, MicrovmConfig, connect_9p, free_port};
use qemu_test::{Machine, MachineConfig, tools};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const QEMU_TIMEOUT: Duration = Duration::from_secs(300);
/// Bochs boots Linux in tens of seconds of real time; the margin is for a loaded machine.
const BOCHS_TIMEOUT: Duration = Duration::from_secs(1500);

/// What a test writes through 9P and then finds on the disk.
const NOTE_PATH: &str = "root/tern.txt";
const NOTE: &str = "written through 9P by tern";

/// Attaches a working copy of the demo disk of its own to `cfg` (tests run side by side).
fn demo_disk(cfg: &mut MachineConfig) {
    let copy = cfg.work_dir.join("disk.img");
    std::fs::create_dir_all(&cfg.work_dir).expect("create the work directory");
    let pristine = guest_image::demo_disk().expect("the demo disk");
    guest_image::disk::working_copy(&pristine, &copy).expect("copy the demo disk");
    cfg.disk = Some(copy);
}

/// The pid of the process named `name` whose parent is `ppid`, from `ps` output.
fn pid_of(ps: &str, name: &str, ppid: Option<&str>) -> Option<String> {
    ps.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 4 && f[1] == name && ppid.is_none_or(|p| f[3] == p)).then(|| f[0].to_string())
    })
}

/// Runs `line` until its output satisfies `done` or `timeout` passes (with `sleep 1` between).
fn poll(m: &mut Machine, line: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = run(m, line, timeout);
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "'{line}' still printed:\n{out}");
        run(m, "sleep 1", timeout);
    }
}

/// DESIGN.md's transcript on `cfg` (with the demo disk), plus a checksum of the 32 MiB file
/// when `big` and a file written through 9P. Checks the disk on the host afterwards.
fn transcript(mut cfg: MachineConfig, big: bool, timeout: Duration) {
    demo_disk(&mut cfg);
    let disk = cfg.disk.clone().unwrap();
    let mut m = start(&cfg, timeout);
    let ns_before = run(&mut m, "ns", timeout);
    let srv_before = run(&mut m, "ls /srv", timeout);
    assert_eq!(
        run(&mut m, "ls /mnt", timeout).trim(),
        "",
        "/mnt is not empty at first"
    );

    let started = Instant::now();
    run(&mut m, "fsvm /dev/sdE0/data 1 /mnt &", timeout);
    let listing = poll(&mut m, "ls /mnt", timeout, |out| out.contains("etc"));
    println!(
        "fsvm: the partition was mounted {:.1} s after fsvm started (emulator wall clock)",
        started.elapsed().as_secs_f64()
    );
    for dir in TOP_LEVEL {
        assert!(
            listing.lines().any(|l| l.trim() == *dir),
            "ls /mnt lacks {dir}:\n{listing}"
        );
    }
    assert_eq!(run(&mut m, "cat /mnt/etc/hostname", timeout).trim(), "fsvm");
    if big {
        let t = Instant::now();
        let sum = run(
            &mut m,
            &format!("sha256sum /mnt/{}", BIG_FILE.path),
            timeout,
        );
        let secs = t.elapsed().as_secs_f64();
        assert!(
            sum.starts_with(BIG_FILE.sha256),
            "sha256sum printed:\n{sum}"
        );
        println!(
            "fsvm: sha256sum of {} MiB over 9P took {secs:.2} s ({:.1} MiB/s)",
            BIG_FILE.size >> 20,
            (BIG_FILE.size >> 20) as f64 / secs
        );
    }
    run(
        &mut m,
        &format!("echo '{NOTE}' > /mnt/{NOTE_PATH}"),
        timeout,
    );
    assert_eq!(
        run(&mut m, &format!("cat /mnt/{NOTE_PATH}"), timeout).trim(),
        NOTE
    );

    let ps = run(&mut m, "ps", timeout);
    let sh = pid_of(&ps, "sh", None).unwrap_or_else(|| panic!("no shell in ps:\n{ps}"));
    let script = pid_of(&ps, "fsvm", Some(&sh)).unwrap_or_else(|| panic!("no fsvm in ps:\n{ps}"));
    pid_of(&ps, "vmrunkernel", Some(&script))
        .unwrap_or_else(|| panic!("no vmrunkernel under fsvm in ps:\n{ps}"));
    assert!(ps.contains(&format!("{script} fsvm WAITING {sh}")), "{ps}");

    run(&mut m, &format!("kill {script}"), timeout);
    let ps = poll(&mut m, "ps", timeout, |out| {
        !out.contains("fsvm") && !out.contains("vmrunkernel")
    });
    assert!(pid_of(&ps, "sh", None).is_some(), "{ps}");
    assert_eq!(
        run(&mut m, "ls /mnt", timeout).trim(),
        "",
        "/mnt is not empty after the kill"
    );
    assert_eq!(
        run(&mut m, "ns", timeout),
        ns_before,
        "the namespace changed"
    );
    assert_eq!(run(&mut m, "ls /srv", timeout), srv_before, "/srv changed");
    power_off(m, timeout);

    // The guest synced and unmounted before powering off: the file system is clean and holds
    // what we wrote.
    guest_image::disk::fsck(&disk, 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(debugfs_cat(&disk, NOTE_PATH).trim(), NOTE);
}

/// A file's contents from partition 1 of `image`, read by `debugfs` on the host.
fn debugfs_cat(image: &Path, path: &str) -> String {
    let (offset, _) = partition_extent(image, 1).expect("partition 1");
    let out = Command::new("debugfs")
        .args([
            "-R",
            &format!("cat /{path}"),
            &format!("{}?offset={offset}", image.display()),
        ])
        .output()
        .expect("run debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn qemu_svm_fsvm_transcript() {
    if available(tools::QEMU) {
        transcript(qemu("qemu-fsvm"), true, QEMU_TIMEOUT);
    }
}

#[test]
fn bochs_vmx_fsvm_transcript() {
    if available(tools::BOCHS) {
        transcript(
            bochs("bochs-fsvm", "corei7_skylake_x"),
            false,
            BOCHS_TIMEOUT,
        );
    }
}

/// Bad input: each a clear error, and nothing left running or mounted.
#[test]
fn qemu_fsvm_bad_input() {
    if !available(tools::QEMU) {
        return;
    }
    let mut cfg = qemu("qemu-fsvm-bad");
    demo_disk(&mut cfg);
    let t = QEMU_TIMEOUT;
    let mut m = start(&cfg, t);
    let ns_before = run(&mut m, "ns", t);

    let usage = run(&mut m, "fsvm; echo status $?", t);
    assert!(
        usage.contains("usage: fsvm DISK PART MOUNTPOINT") && usage.contains("status 2"),
        "{usage}"
    );

    // No partition 3: the agent says so, the VM powers off, the script reports it.
    let out = run(&mut m, "fsvm /dev/sdE0/data 3 /mnt; echo status $?", t);
    assert!(
        out.contains("fsvm: the VM ended") && out.contains("status 1"),
        "{out}"
    );
    assert!(
        out.contains("fsvm-agent: exit status"),
        "the agent's last words are missing:\n{out}"
    );

    let out = run(&mut m, "vmrunkernel /lib/fsvm/nonesuch; echo status $?", t);
    assert!(
        out.contains("/lib/fsvm/nonesuch") && out.contains("status 1"),
        "{out}"
    );
    // The initramfs is not a kernel.
    let out = run(&mut m, "vmrunkernel /lib/fsvm/initramfs; echo status $?", t);
    assert!(
        out.contains("/lib/fsvm/initramfs: ") && out.contains("status 1"),
        "{out}"
    );
    let out = run(
        &mut m,
        "vmrunkernel -m 1M /lib/fsvm/bzImage; echo status $?",
        t,
    );
    assert!(out.contains("-m") && out.contains("status 1"), "{out}");
    let out = run(
        &mut m,
        "vmrunkernel -f /dev/sdE0/nonesuch /lib/fsvm/bzImage; echo status $?",
        t,
    );
    assert!(
        out.contains("disk /dev/sdE0/nonesuch") && out.contains("status 1"),
        "{out}"
    );
    run(&mut m, "echo 'port:tcp:99999:564' > /tmp/badnet", t);
    let out = run(
        &mut m,
        "vmrunkernel -n /tmp/badnet /lib/fsvm/bzImage; echo status $?",
        t,
    );
    assert!(
        out.contains("/tmp/badnet:1") && out.contains("status 1"),
        "{out}"
    );

    // Killed while the VM is still booting: the script still shuts it down cleanly (the
    // SHUTDOWN line is repeated until the agent, once up, reads it).
    let out = run(
        &mut m,
        "fsvm /dev/sdE0/data 1 /mnt & sleep 0.3; kill $!; wait $!; echo status $?",
        t,
    );
    assert!(out.contains("status 0"), "{out}");
    // Killed outright (KILL cannot be trapped) once serving: its end of the VM's console
    // closes, vmrunkernel types SHUTDOWN, and the guest powers off by itself; only the dead
    // mount is left for the user to unmount.
    let out = run(
        &mut m,
        "fsvm /dev/sdE0/data 1 /mnt & n=0; until test -e /mnt/etc || [ $n -gt 300 ]; do \
         sleep 0.2; n=$((n + 1)); done; kill -KILL $!; sleep 5; ps; unmount /mnt; echo done",
        t,
    );
    assert!(
        out.contains("done") && !out.contains("vmrunkernel") && !out.contains("fsvm"),
        "{out}"
    );

    let ps = run(&mut m, "ps", t);
    assert!(!ps.contains("fsvm") && !ps.contains("vmrunkernel"), "{ps}");
    assert_eq!(run(&mut m, "ls /mnt", t).trim(), "");
    assert_eq!(run(&mut m, "ns", t), ns_before);
    power_off(m, t);
}

/// Boots the guest `boots` times under QEMU microvm directly on the host (TCG, no VMM of ours);
/// the median seconds from QEMU's start to the 9P server answering.
fn microvm_direct(disk: &Path, boots: usize) -> f64 {
    let a = guest_image::build(&guest_image::Options::default()).expect("the guest image");
    let mut times: Vec<f64> = (0..boots)
        .map(|_| {
            let port = free_port().expect("a free port");
            let cfg = MicrovmConfig::new(&a, Some(disk.to_path_buf()), 1, Some(port));
            let mut vm = Microvm::spawn(&cfg).expect("start QEMU microvm");
            let c = connect_9p(port, 64 << 10, Duration::from_secs(120)).expect("9P from microvm");
            let t = vm.started().elapsed().as_secs_f64();
            drop(c);
            vm.send("SHUTDOWN").expect("SHUTDOWN");
            vm.wait_exit(Duration::from_secs(60))
                .expect("microvm exits");
            t
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs `fsvmbench ARGS` on `cfg` and prints its figures; returns the median seconds from
/// `vmrunkernel`'s start to the 9P mount.
fn fsvmbench(mut cfg: MachineConfig, args: &str, timeout: Duration) -> f64 {
    demo_disk(&mut cfg);
    let mut m = start(&cfg, timeout);
    let out = run(&mut m, &format!("fsvmbench {args}"), timeout);
    println!("{out}");
    power_off(m, timeout);
    let median = out
        .lines()
        .find_map(|l| l.strip_prefix("median of "))
        .unwrap_or_else(|| panic!("fsvmbench printed no median:\n{out}"));
    median
        .split("-> 9P mounted ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the mount time in:\n{median}"))
}

#[test]
fn qemu_fsvm_bench() {
    if !available(tools::QEMU) {
        return;
    }
    let mut cfg = qemu("qemu-fsvm-bench");
    demo_disk(&mut cfg);
    let direct = microvm_direct(cfg.disk.as_ref().unwrap(), 3);
    let ours = fsvmbench(cfg, "-n 3", QEMU_TIMEOUT);
    println!(
        "start -> 9P answering, median of 3: QEMU microvm directly {direct:.2} s; our kernel + vmrunkernel inside QEMU {ours:.2} s; ratio {:.2} (DESIGN: within 2x of the direct boot; the published KVM + QEMU microvm peer nested here took 5.7 s)",
        ours / direct
    );
}

#[test]
fn bochs_vmx_fsvm_bench() {
    if !available(tools::BOCHS) {
        return;
    }
    let t = BOCHS_TIMEOUT;
    let mut cfg = bochs("bochs-fsvm-bench", "corei7_skylake_x");
    demo_disk(&mut cfg);
    let mut m = start(&cfg, t);
    // Bochs' clock is its own: time the boot by ours, from fsvmbench's progress lines.
    m.send_line("fsvmbench -T -n 1").unwrap();
    m.wait_for("boot 1: starting vmrunkernel", t)
        .unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    m.wait_for("boot 1: 9P mounted", t)
        .unwrap_or_else(|e| panic!("{e}"));
    let wall = t0.elapsed().as_secs_f64();
    let out = m.wait_prompt(t).unwrap_or_else(|e| panic!("{e}"));
    println!("{out}");
    assert!(out.contains("median of 1: "), "{out}");
    power_off(m, t);
    println!(
        "start -> 9P answering under Bochs VMX, by the host's clock: our kernel + vmrunkernel {wall:.1} s (DESIGN: the KVM + QEMU microvm peer took 15.8 s, Bochs booting the guest directly 7-8 s); fsvmbench's own figures above are in Bochs' time"
    );
}
