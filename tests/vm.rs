//! Boot tests of hardware virtualization: `vmtest` passes every case through `#vm` on each
//! backend the emulators offer (SVM in QEMU TCG, VMX in Bochs `corei7_skylake_x`, SVM in
//! Bochs `trinity_apu`), and `vmbench` prints its figures. The kernel must not panic, and the
//! shell must still answer afterwards.
//!
//! Each test skips with a loud message only when its emulator is absent and cannot be installed
//! here; under CI (`CI` set) a missing emulator is a failure.

mod common;

use common::{available, bochs, qemu, run, start};
use qemu_test::tools;
use std::time::Duration;

/// Bochs runs the whole suite in a few minutes; the margin is for a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Boots, runs `vmtest` (and `vmbench` with a small count), checks every case passed and the
/// benchmark printed its lines, and that the shell still answers. Returns vmtest's output.
fn vmtest(cfg: &qemu_test::MachineConfig, backend: &str, summary: &str) -> String {
    let mut m = start(cfg, TIMEOUT);
    let out = run(&mut m, "vmtest", TIMEOUT);
    assert!(!m.panicked(), "the kernel panicked:\n{}", m.output());
    assert!(
        out.contains(backend),
        "vmtest did not report {backend}:\n{out}"
    );
    assert!(out.contains(summary), "vmtest printed:\n{out}");
    assert!(!out.contains("FAILED"), "vmtest printed:\n{out}");
    let bench = run(&mut m, "vmbench 1000", TIMEOUT);
    for line in [
        "null system call",
        "exit handled in the kernel",
        "exit reflected to the VMM",
    ] {
        assert!(bench.contains(line), "vmbench printed:\n{bench}");
    }
    println!("{out}{bench}");
    let echo = run(&mut m, "echo still here", TIMEOUT);
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
