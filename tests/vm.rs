//! Boot tests of hardware virtualization: `vmtest` passes every case through `#vm` on each
//! backend the emulators offer (SVM in QEMU TCG, VMX in Bochs `corei7_skylake_x`, SVM in
//! Bochs `trinity_apu`), and `vmbench` prints its figures. The kernel must not panic, and the
//! shell must still answer afterwards.
//!
//! Each test skips with a loud message only when its emulator is absent and cannot be installed
//! here; under CI (`CI` set) a missing emulator is a failure.

use qemu_test::{Boot, Emulator, Machine, MachineConfig, iso, tools};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bochs runs the whole suite in a few minutes; the margin is for a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(600);

fn work_dir(test: &str) -> PathBuf {
    Path::new(env!("TERN_OS_DIR")).join("tests").join(test)
}

fn kernel() -> &'static Path {
    Path::new(env!("TERN_KERNEL"))
}

fn bootfs() -> &'static Path {
    Path::new(env!("TERN_BOOTFS"))
}

/// Whether the emulator is usable; prints a loud message and returns false if not (outside CI).
fn available(tool: tools::Tool) -> bool {
    match tools::ensure(&[tool]) {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("\n*** SKIPPED: {e} ***\n");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

fn qemu(test: &str) -> MachineConfig {
    MachineConfig::qemu_kernel(kernel(), Some(bootfs()), "", &work_dir(test))
}

fn bochs(test: &str, cpu: &str) -> MachineConfig {
    let dir = work_dir(test);
    let image = iso::build(kernel(), Some(bootfs()), "", &dir).expect("build the GRUB ISO");
    MachineConfig {
        emulator: Emulator::Bochs,
        boot: Boot::Iso(image),
        cpu: Some(cpu.to_string()),
        smp: 1,
        mem_mib: 512,
        disk: None,
        echo: false,
        work_dir: dir,
    }
}

/// Boots, runs `vmtest` (and `vmbench` with a small count), checks every case passed and the
/// benchmark printed its lines, and that the shell still answers. Returns vmtest's output.
fn vmtest(cfg: &MachineConfig, backend: &str, summary: &str) -> String {
    let mut m = Machine::start(cfg).unwrap_or_else(|e| panic!("cannot start the emulator: {e}"));
    m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let out = m.run("vmtest", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(!m.panicked(), "the kernel panicked:\n{}", m.output());
    assert!(
        out.contains(backend),
        "vmtest did not report {backend}:\n{out}"
    );
    assert!(out.contains(summary), "vmtest printed:\n{out}");
    assert!(!out.contains("FAILED"), "vmtest printed:\n{out}");
    let bench = m
        .run("vmbench 1000", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    for line in [
        "null system call",
        "exit handled in the kernel",
        "exit reflected to the VMM",
    ] {
        assert!(bench.contains(line), "vmbench printed:\n{bench}");
    }
    println!("{out}{bench}");
    let echo = m
        .run("echo still here", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        echo.contains("still here"),
        "the shell after vmtest:\n{echo}"
    );
    assert!(!m.panicked(), "the kernel panicked:\n{}", m.output());
    m.kill();
    out
}

#[test]
fn qemu_svm_vmtest() {
    if available(tools::QEMU) {
        vmtest(
            &qemu("vm-qemu-svm"),
            "SVM (NPT",
            "vmtest: 16 passed, 0 failed\n",
        );
    }
}

#[test]
fn bochs_vmx_vmtest() {
    if available(tools::BOCHS) {
        vmtest(
            &bochs("vm-bochs-vmx", "corei7_skylake_x"),
            "VMX (EPT VPID unrestricted-guest",
            "vmtest: 16 passed, 0 failed\n",
        );
    }
}

#[test]
fn bochs_svm_vmtest() {
    if available(tools::BOCHS) {
        // Bochs 2.7's SVM cannot stop a guest that spins with interrupts off (see vmtest).
        vmtest(
            &bochs("vm-bochs-svm", "trinity_apu"),
            "SVM (NPT NRIP-save",
            "vmtest: 15 passed, 0 failed, 1 skipped\n",
        );
    }
}
