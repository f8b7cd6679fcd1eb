//! End-to-end tests of the filesystem VM under QEMU microvm (TCG): the guest kernel, the agent
//! and the 9P server, driven through the consoles and the forwarded 9P port by our 9P client and
//! by `python-9p`. Each test boots its own VM with its own copy of the disk; every wait has a
//! hard timeout, and a test that cannot boot fails (QEMU is installed by the code under test if
//! missing).

use fsvm_agent::control::Reply;
use guest_image::disk;
use guest_image::microvm::{Channel, Microvm, MicrovmConfig, free_port};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(20);

fn artifacts() -> &'static guest_image::Artifacts {
    static A: OnceLock<guest_image::Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        guest_image::build(&guest_image::Options::default()).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// A private, writable copy of the demo disk, removed when dropped.
struct TempDisk(PathBuf);

impl TempDisk {
    fn demo(name: &str) -> TempDisk {
        let pristine = guest_image::demo_disk().unwrap_or_else(|e| panic!("{e}"));
        let path =
            std::env::temp_dir().join(format!("tern-test-{}-{name}.img", std::process::id()));
        disk::working_copy(&pristine, &path).unwrap();
        TempDisk(path)
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn boot(disk: &TempDisk, part: u32) -> (Microvm, u16) {
    let port = free_port().unwrap();
    let cfg = MicrovmConfig::new(artifacts(), Some(disk.0.clone()), part, Some(port));
    (Microvm::spawn(&cfg).unwrap_or_else(|e| panic!("{e}")), port)
}

fn ok<T>(r: guest_image::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn boots_serves_and_shuts_down_cleanly() {
    let disk = TempDisk::demo("clean");
    let (mut vm, _port) = boot(&disk, 1);
    let ready = ok(vm.wait_ready(BOOT));
    assert_eq!(
        ready,
        Reply::Ready {
            addr: "tcp!10.0.2.15!564".into(),
            device: "/dev/vda1".into()
        }
    );
    let ready_at = vm.started().elapsed();
    ok(vm.send("STATUS"));
    let status = ok(vm.wait_for_reply(EXIT, |r| matches!(r, Reply::Status { .. })));
    assert!(
        matches!(status, Reply::Status { ref state, ref device, .. } if state == "serving" && device == "/dev/vda1")
    );
    let asked = Instant::now();
    ok(vm.send("SHUTDOWN"));
    ok(vm.wait_for_reply(EXIT, |r| *r == Reply::ShuttingDown));
    let exit = ok(vm.wait_exit(EXIT));
    eprintln!(
        "ready after {ready_at:?}; exit {:?} after SHUTDOWN",
        asked.elapsed()
    );
    assert_eq!(exit.agent_status, Some(0), "{}", vm.summary());
    assert!(exit.qemu.success());
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(
        vm.lines(Channel::Serial)
            .iter()
            .any(|l| l.contains("fsvm-agent: synced and unmounted /dev/vda1"))
    );
    ok(disk::fsck(&disk.0, 1));
}
