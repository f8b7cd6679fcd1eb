//! End-to-end tests of the filesystem VM under QEMU microvm (TCG): the guest kernel, the agent
//! and the 9P server, driven through the consoles and the forwarded 9P port by our 9P client and
//! by `python-9p`. Each test boots its own VM on its own copy of the disk; every wait has a hard
//! timeout, and a test that cannot boot fails (the code under test installs QEMU if missing).

use abi::hv::PowerOffStatus;
use fsvm_agent::control::Reply;
use guest_image::disk::{self, BIG_FILE, TEXT_FILES, TOP_LEVEL};
use guest_image::microvm::{Channel, Exit, Microvm, MicrovmConfig, connect_9p, free_port};
use ninep::client::Client;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// From QEMU's start to the agent's `ready` line (about 1 s here; TCG on a busy CI machine is
/// slower).
const BOOT: Duration = Duration::from_secs(60);
/// From `SHUTDOWN` (or a fatal error) to QEMU's exit: "within seconds".
const EXIT: Duration = Duration::from_secs(15);

fn ok<T>(r: guest_image::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn artifacts() -> &'static guest_image::Artifacts {
    static A: OnceLock<guest_image::Artifacts> = OnceLock::new();
    A.get_or_init(|| ok(guest_image::build(&guest_image::Options::default())))
}

/// A private disk image, removed when dropped.
struct TempDisk(PathBuf);

impl TempDisk {
    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tern-test-{}-{name}.img", std::process::id()))
    }

    /// A writable copy of the demo disk.
    fn demo(name: &str) -> TempDisk {
        let pristine = ok(guest_image::demo_disk());
        let d = TempDisk(Self::path(name));
        ok(disk::working_copy(&pristine, &d.0));
        d
    }

    /// 8 MiB with an MBR whose partition 1 holds nothing but zeros.
    fn blank_partition(name: &str) -> TempDisk {
        let d = TempDisk(Self::path(name));
        let mut bytes = vec![0u8; 8 << 20];
        bytes[..512].copy_from_slice(&disk::mbr(2048, (8 << 20) / 512 - 2048));
        std::fs::write(&d.0, bytes).unwrap();
        d
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Boots with `disk` (or none), serving `part`, the guest's 9P port forwarded to a free host
/// port; retries if another process took that port in the meantime.
fn boot_with(
    disk: Option<&TempDisk>,
    part: u32,
    tweak: impl Fn(&mut MicrovmConfig),
) -> (Microvm, u16) {
    for attempt in 0.. {
        let port = ok(free_port());
        let mut cfg = MicrovmConfig::new(artifacts(), disk.map(|d| d.0.clone()), part, Some(port));
        tweak(&mut cfg);
        match Microvm::spawn(&cfg) {
            Ok(vm) => return (vm, port),
            Err(e) if attempt < 3 && e.to_string().contains("host forwarding") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    unreachable!()
}

fn boot(disk: &TempDisk, part: u32) -> (Microvm, u16) {
    boot_with(Some(disk), part, |_| {})
}

/// Sends `SHUTDOWN` and checks that the VM exits cleanly within [`EXIT`].
fn shutdown(vm: &mut Microvm) -> Exit {
    let asked = Instant::now();
    ok(vm.send("SHUTDOWN"));
    ok(vm.wait_for_reply(EXIT, |r| *r == Reply::ShuttingDown));
    let exit = ok(vm.wait_exit(EXIT));
    eprintln!("QEMU exited {:?} after SHUTDOWN", asked.elapsed());
    assert_eq!(
        exit.agent(),
        Some(PowerOffStatus::Clean),
        "{}",
        vm.summary()
    );
    assert!(exit.qemu.success(), "qemu: {}", exit.qemu);
    exit
}

/// Waits for the VM to power off by itself with `status`, after an `error` reply containing
/// `message` on the control channel.
fn expect_failure(vm: &mut Microvm, status: PowerOffStatus, message: &str) {
    let err = ok(vm.wait_for_reply(BOOT, |r| matches!(r, Reply::Error(_))));
    assert!(
        matches!(&err, Reply::Error(m) if m.contains(message)),
        "{err:?}"
    );
    let exit = ok(vm.wait_exit(EXIT));
    assert_eq!(exit.agent(), Some(status), "{}", vm.summary());
    assert_eq!(exit.exit_code(), status as u8);
    // The serial console carries the same verdict.
    let line = Reply::exit(status).to_string();
    assert!(
        vm.lines(Channel::Serial).iter().any(|l| l.ends_with(&line)),
        "{}",
        vm.summary()
    );
}

fn read_file(c: &mut Client<TcpStream>, root: u32, path: &str) -> Vec<u8> {
    let (fid, _) = c
        .walk_path(root, path)
        .unwrap_or_else(|e| panic!("walk {path}: {e}"));
    c.open(fid, ninep::OREAD).unwrap();
    let data = c.read_all(fid).unwrap();
    c.clunk(fid).unwrap();
    data
}

/// `debugfs -R "cat PATH"` on partition 1 of an image.
fn debugfs_cat(image: &std::path::Path, path: &str) -> String {
    let dev = format!(
        "{}?offset={}",
        image.display(),
        disk::PART1_START_LBA * disk::SECTOR
    );
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}"), &dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn serves_the_demo_disk_and_writes_survive_shutdown() {
    let disk = TempDisk::demo("serve");
    let (mut vm, port) = boot(&disk, 1);
    let ready = ok(vm.wait_ready(BOOT));
    assert_eq!(
        ready,
        Reply::Ready {
            addr: "tcp!10.0.2.15!564".into(),
            device: "/dev/vda1".into()
        }
    );
    eprintln!("ready {:?} after QEMU started", vm.started().elapsed());

    let mut c = ok(connect_9p(port, 64 * 1024 + ninep::IOHDRSZ, BOOT));
    let (root, _) = c.attach("glenda", "").unwrap();
    let (dir, _) = c.walk(root, &[]).unwrap();
    c.open(dir, ninep::OREAD).unwrap();
    let mut names: Vec<String> = c
        .read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|d| d.name.into_owned())
        .collect();
    c.clunk(dir).unwrap();
    names.sort();
    assert_eq!(names, TOP_LEVEL);
    for (path, text) in TEXT_FILES {
        assert_eq!(
            String::from_utf8(read_file(&mut c, root, path)).unwrap(),
            *text,
            "{path}"
        );
    }
    let big = read_file(&mut c, root, BIG_FILE.path);
    assert_eq!(big.len() as u64, BIG_FILE.size);
    assert_eq!(disk::sha256(&big), BIG_FILE.sha256);

    // A file written over 9P must be on the disk after SHUTDOWN.
    let written = "written over 9P before SHUTDOWN\n";
    let (fid, _) = c.walk_path(root, "tmp").unwrap();
    c.create(fid, "from-9p.txt", 0o644, ninep::OWRITE).unwrap();
    assert_eq!(c.write(fid, 0, written.as_bytes()).unwrap(), written.len());
    c.clunk(fid).unwrap();

    ok(vm.send("STATUS"));
    let status = ok(vm.wait_for_reply(EXIT, |r| matches!(r, Reply::Status { .. })));
    assert!(
        matches!(&status, Reply::Status { state, device, connections, .. }
            if state == "serving" && device == "/dev/vda1" && *connections >= 1),
        "{status:?}"
    );
    shutdown(&mut vm);
    assert!(
        vm.lines(Channel::Serial)
            .iter()
            .any(|l| l.contains("fsvm-agent: synced and unmounted /dev/vda1"))
    );
    ok(disk::fsck(&disk.0, 1));
    assert_eq!(debugfs_cat(&disk.0, "/tmp/from-9p.txt"), written);
}

#[test]
fn python_9p_reads_the_demo_disk() {
    let python = ok(guest_image::py9p::python(&guest_image::cache_dir()));
    let disk = TempDisk::demo("py9p");
    let (mut vm, port) = boot(&disk, 1);
    ok(vm.wait_ready(BOOT));
    let expect = format!(
        "{{\"top\": [{}], \"files\": {{{}}}, \"big\": {{\"path\": \"{}\", \"size\": {}, \"sha256\": \"{}\"}}}}",
        TOP_LEVEL
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        TEXT_FILES
            .iter()
            .map(|(p, t)| format!("{p:?}: {t:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        BIG_FILE.path,
        BIG_FILE.size,
        BIG_FILE.sha256,
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/fsvm_check.py");
    for msize in [8192, 65536 + 24] {
        let out = Command::new(&python)
            .arg(&script)
            .args([port.to_string(), msize.to_string(), expect.clone()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "python-9p at msize {msize}:\n{text}");
        assert!(
            text.contains(&format!("ok {} sha256", BIG_FILE.path)),
            "{text}"
        );
    }
    shutdown(&mut vm);
    ok(disk::fsck(&disk.0, 1));
}

#[test]
fn bzimage_boots_too() {
    let disk = TempDisk::demo("bzimage");
    let (mut vm, _) = boot_with(Some(&disk), 1, |c| c.kernel = artifacts().bz_image.clone());
    ok(vm.wait_ready(BOOT));
    shutdown(&mut vm);
}

#[test]
fn unknown_control_lines_are_refused_and_the_agent_keeps_serving() {
    let disk = TempDisk::demo("control");
    let (mut vm, port) = boot(&disk, 1);
    ok(vm.wait_ready(BOOT));
    for bad in ["REBOOT", "shutdown", "SHUTDOWN NOW"] {
        ok(vm.send(bad));
        let r = ok(vm.wait_for_reply(EXIT, |r| matches!(r, Reply::Error(_))));
        assert_eq!(
            r,
            Reply::Error(format!(
                "unknown control line {bad:?} (expected SHUTDOWN, STATUS or READ PATH)"
            ))
        );
    }
    ok(vm.send(&"X".repeat(1000)));
    let r = ok(vm.wait_for_reply(EXIT, |r| matches!(r, Reply::Error(_))));
    assert!(
        matches!(&r, Reply::Error(m) if m.contains("too long")),
        "{r:?}"
    );
    // Still serving.
    ok(vm.send(""));
    ok(vm.send("STATUS"));
    ok(vm.wait_for_reply(
        EXIT,
        |r| matches!(r, Reply::Status { state, .. } if state == "serving"),
    ));
    let mut c = ok(connect_9p(port, 8192, EXIT));
    let (root, _) = c.attach("glenda", "").unwrap();
    assert_eq!(read_file(&mut c, root, "etc/hostname"), b"fsvm\n");
    shutdown(&mut vm);
}

#[test]
fn a_partition_that_does_not_exist_powers_off_with_status_2() {
    let disk = TempDisk::demo("nopart");
    let (mut vm, _) = boot(&disk, 3);
    expect_failure(
        &mut vm,
        PowerOffStatus::NoSuchPartition,
        "partition 3 of /dev/vda does not exist (it has vda1",
    );
}

#[test]
fn a_vm_without_a_disk_powers_off_with_status_2() {
    let (mut vm, _) = boot_with(None, 1, |_| {});
    expect_failure(&mut vm, PowerOffStatus::NoSuchPartition, "no disk /dev/vda");
}

#[test]
fn a_partition_that_is_not_ext4_powers_off_with_status_3() {
    let disk = TempDisk::blank_partition("blank");
    let (mut vm, _) = boot(&disk, 1);
    expect_failure(
        &mut vm,
        PowerOffStatus::NotExt4,
        "cannot mount /dev/vda1 as ext4",
    );
}

#[test]
fn a_partitioned_disk_served_whole_is_not_ext4_either() {
    let disk = TempDisk::demo("whole");
    let (mut vm, _) = boot(&disk, 0);
    expect_failure(
        &mut vm,
        PowerOffStatus::NotExt4,
        "cannot mount /dev/vda as ext4",
    );
}

#[test]
fn a_bad_option_on_the_command_line_powers_off_with_status_5() {
    let disk = TempDisk::demo("badopt");
    let (mut vm, _) = boot_with(Some(&disk), 1, |c| {
        c.extra_cmdline = "fsvm.port=http".into()
    });
    expect_failure(
        &mut vm,
        PowerOffStatus::AgentFailed,
        "bad option `fsvm.port=http`",
    );
}

#[test]
fn qemu_failing_to_start_is_an_error_naming_the_cause() {
    let mut cfg = MicrovmConfig::new(artifacts(), None, 1, None);
    cfg.kernel = "/nonexistent/vmlinux".into();
    // QEMU connects its consoles before it loads the kernel, so the failure may show at spawn
    // or at the first wait; either way the error carries QEMU's own message.
    let err = match Microvm::spawn(&cfg) {
        Err(e) => e,
        Ok(vm) => vm.wait_ready(BOOT).expect_err("no VM without a kernel"),
    };
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/vmlinux"), "{msg}");
}
