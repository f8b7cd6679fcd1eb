//! Boot tests of the network stack (`#ip` at /net):
//! - `nettest` over the loopback interface, in QEMU (with its virtio-net NIC present) and in
//!   Bochs (no NIC we drive: the loopback alone), and `nettest bench`'s figures;
//! - the kernel's 9P client mounting a host directory over TCP: a `ninepd` started here serves
//!   a temporary directory on 127.0.0.1, the OS dials it as `tcp!10.0.2.2!PORT` through QEMU's
//!   user network, mounts it on /n/host, lists it and reads files, one of them 3 MB; once the
//!   server is gone, the mount fails at once with an error naming it.
//!
//! Each test skips with a loud message only when its emulator is absent and cannot be
//! installed here; under CI (`CI` set) a missing emulator is a failure.

mod common;

use common::{available, iso_machine, qemu, start, work_dir};
use qemu_test::{Emulator, Machine, tools};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine is shared and emulation is slow; a hang still ends the test.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Bochs is an order of magnitude slower than QEMU.
const BOCHS_TIMEOUT: Duration = Duration::from_secs(1200);

/// Runs `nettest ARGS` and checks that every case passed.
fn nettest(m: &mut Machine, args: &str, timeout: Duration) -> String {
    let out = m
        .run(&format!("nettest {args}"), timeout)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("nettest: ") && out.contains(" passed, 0 failed") && !out.contains("FAILED"),
        "nettest printed:\n{out}"
    );
    println!("{out}");
    out
}

#[test]
fn qemu_loopback_tcp() {
    if !available(tools::QEMU) {
        return;
    }
    let mut m = start(&qemu("qemu-nettest"), TIMEOUT);
    let ifcs = m
        .run("cat /net/ipifc/0/status /net/ipifc/1/status", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ifcs.contains("lo addr 127.0.0.1/8"), "{ifcs}");
    assert!(ifcs.contains("eth0 addr 10.0.2.15/24"), "{ifcs}");
    let out = nettest(&mut m, "", TIMEOUT);
    assert!(out.contains("nettest: 10 passed, 0 failed"), "{out}");
    // Every conversation was freed by its last close.
    let convs = m
        .run("ls /net/tcp", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(convs.contains("clone"), "ls /net/tcp printed:\n{convs}");
    assert!(
        !convs
            .lines()
            .any(|l| !l.trim().is_empty() && l.trim().bytes().all(|b| b.is_ascii_digit())),
        "conversations left over:\n{convs}"
    );
    // The benchmark prints its figures (checked for shape, not speed).
    let bench = m
        .run("nettest bench", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    for want in ["MiB/s", "round trip", "connection setup"] {
        assert!(bench.contains(want), "{bench}");
    }
    println!("{bench}");
}

#[test]
fn bochs_loopback_tcp() {
    if !available(tools::BOCHS) {
        return;
    }
    let cfg = iso_machine("bochs-nettest", Emulator::Bochs, None, "");
    let mut m = start(&cfg, BOCHS_TIMEOUT);
    let ifcs = m
        .run("ls /net/ipifc", BOCHS_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!ifcs.contains('1'), "Bochs has no NIC we drive:\n{ifcs}");
    nettest(&mut m, "", BOCHS_TIMEOUT);
}

/// A `ninepd` serving a directory on 127.0.0.1, killed when dropped.
struct Ninepd {
    child: Child,
    port: u16,
}

impl Drop for Ninepd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the host's `ninepd` (a workspace binary) and returns its path.
fn build_ninepd() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "ninepd",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build -p ninepd");
    assert!(out.status.success(), "cargo build -p ninepd failed");
    // The compiler-artifact message of the binary names it: "executable":"/path/ninepd".
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = text
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .find_map(|l| {
            let rest = l.split("\"executable\":\"").nth(1)?;
            let path = &rest[..rest.find('"')?];
            path.ends_with("/ninepd").then(|| PathBuf::from(path))
        })
        .expect("cargo named no ninepd executable");
    assert!(exe.exists(), "{} is missing", exe.display());
    exe
}

/// Starts `ninepd` on a free port of 127.0.0.1 serving `root`; returns once it accepts.
fn start_ninepd(root: &Path) -> Ninepd {
    let exe = build_ninepd();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port");
    let child = Command::new(exe)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ninepd");
    let server = Ninepd { child, port };
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "ninepd did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The SHA-256 of a host file, by the host's `sha256sum` (compared with the OS's).
fn host_sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum on the host");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum printed a digest")
        .to_string()
}

#[test]
fn qemu_mounts_a_host_9p_server_over_tcp() {
    if !available(tools::QEMU) {
        return;
    }
    let root = work_dir("qemu-net9p").join("share");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("hello.txt"), "hello from the host\n").unwrap();
    // 3 MB of bytes that are not all alike.
    let mut big = Vec::with_capacity(3_000_000);
    let mut x: u32 = 12345;
    while big.len() < 3_000_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.push((x >> 16) as u8);
    }
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let want = host_sha256(&root.join("big.bin"));
    let mut server = start_ninepd(&root);

    let mut m = start(&qemu("qemu-net9p"), TIMEOUT);
    let out = m
        .run(
            &format!("nettest mount tcp!10.0.2.2!{} /n/host", server.port),
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("nettest: mounted"), "{out}");
    assert!(out.contains("hello from the host"), "{out}");
    let ls = m
        .run("ls /n/host", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    for name in ["big.bin", "hello.txt", "sub"] {
        assert!(ls.contains(name), "ls printed:\n{ls}");
    }
    let cat = m
        .run("cat /n/host/hello.txt", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cat.contains("hello from the host"), "{cat}");
    let sum = m
        .run("sha256sum /n/host/big.bin", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        sum.contains(&want),
        "sha256sum printed:\n{sum}\nexpected {want}"
    );
    let status = m
        .run("cat /net/ipifc/1/status", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.contains("eth0") && !status.contains(" rx 0 "),
        "{status}"
    );

    // A dial to a port where nothing listens on the host is refused, not left hanging.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let refused = m
        .run(
            &format!("nettest mount tcp!10.0.2.2!{closed} /n/none"),
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        refused.contains(&format!("dial tcp!10.0.2.2!{closed}: connection refused")),
        "{refused}"
    );

    // ninepd is still serving.
    if let Ok(Some(status)) = server.child.try_wait() {
        panic!("ninepd exited ({status})");
    }

    // When the server goes away, the mount fails at once and says so.
    drop(server);
    std::thread::sleep(Duration::from_millis(500));
    let gone = m
        .run("ls /n/host", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        gone.contains("mount /n/host") && gone.contains("hung up"),
        "ls of a dead mount printed:\n{gone}"
    );
}
