//! Boot tests: the OS boots to its shell in QEMU (by `-kernel` and from the GRUB ISO) and in
//! Bochs (VMX and SVM CPU models); the kernel monitor answers when asked for; the in-kernel
//! tests pass; user programs check processes, threads and notes; a panic fails loudly.
//!
//! Each test skips with a loud message only when its emulator is absent and cannot be installed
//! here; under CI (`CI` set) a missing emulator is a failure.

mod common;

use common::{available, iso_machine, launch, qemu_cmdline, work_dir};
use qemu_test::{Emulator, Error, MachineConfig, tools};
use std::path::PathBuf;
use std::time::Duration;

/// Generous: the machine is shared and emulation is slow; a hang still ends the test.
const TIMEOUT: Duration = Duration::from_secs(180);

const SHELL_UNKNOWN: &str = "sh: frobnicate: file does not exist";
const MONITOR_UNKNOWN: &str = "frobnicate: unknown command";

/// Boots, checks `cpu` reports `virt` and `pci` lists a host bridge, then powers off cleanly.
/// `unknown` is what an unknown command prints (the shell's or the monitor's message).
fn session(cfg: &MachineConfig, loader: &str, virt: &str, unknown: &str) {
    let mut m = launch(cfg);
    let banner = m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        banner.contains(&format!("booted by {loader}")),
        "banner: {banner}"
    );
    let cpu = m.run("cpu", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(cpu.contains(virt), "cpu printed:\n{cpu}");
    let pci = m.run("pci", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(pci.contains("host bridge"), "pci printed:\n{pci}");
    let bad = m
        .run("frobnicate", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(bad.contains(unknown), "unknown command printed:\n{bad}");
    m.send_line("poweroff").unwrap();
    let status = m.wait_exit(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(!m.panicked(), "{}", m.output());
    if m.emulator() == Emulator::Qemu {
        assert!(status.success(), "QEMU exited with {status} after poweroff");
    }
}

#[test]
fn qemu_kernel_boots_to_shell_and_powers_off() {
    if available(tools::QEMU) {
        session(
            &qemu_cmdline("qemu-kernel", ""),
            "PVH",
            "virtualization: SVM (NPT",
            SHELL_UNKNOWN,
        );
    }
}

#[test]
fn qemu_kernel_monitor_on_request() {
    if available(tools::QEMU) {
        let cfg = qemu_cmdline("qemu-monitor", "monitor");
        session(&cfg, "PVH", "virtualization: SVM (NPT", MONITOR_UNKNOWN);
    }
}

#[test]
fn qemu_iso_boots_by_multiboot2() {
    if available(tools::QEMU) {
        let cfg = iso_machine("qemu-iso", Emulator::Qemu, None, "");
        session(
            &cfg,
            "multiboot2",
            "virtualization: SVM (NPT",
            SHELL_UNKNOWN,
        );
    }
}

#[test]
fn bochs_skylake_reports_vmx() {
    if available(tools::BOCHS) {
        let cfg = iso_machine("bochs-vmx", Emulator::Bochs, Some("corei7_skylake_x"), "");
        let vmx = "virtualization: VMX (EPT VPID unrestricted-guest";
        session(&cfg, "multiboot2", vmx, SHELL_UNKNOWN);
    }
}

#[test]
fn bochs_trinity_reports_svm() {
    if available(tools::BOCHS) {
        let cfg = iso_machine("bochs-svm", Emulator::Bochs, Some("trinity_apu"), "monitor");
        let svm = "virtualization: SVM (NPT NRIP-save";
        session(&cfg, "multiboot2", svm, MONITOR_UNKNOWN);
    }
}

/// Runs `ptest` with `args` at the shell and checks every case passed.
fn ptest(cfg: &MachineConfig, args: &str) -> String {
    let mut m = launch(cfg);
    m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let out = m
        .run(&format!("ptest {args}"), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains(" passed, 0 failed"), "ptest printed:\n{out}");
    assert!(!out.contains("FAILED"), "ptest printed:\n{out}");
    out
}

#[test]
fn qemu_processes_threads_and_notes() {
    if available(tools::QEMU) {
        let out = ptest(&qemu_cmdline("qemu-ptest", ""), "");
        assert!(
            out.contains("ptest processes_free_everything ... ok"),
            "{out}"
        );
    }
}

#[test]
fn bochs_processes_threads_and_notes() {
    if available(tools::BOCHS) {
        let cfg = iso_machine("bochs-ptest", Emulator::Bochs, None, "");
        let cases = "fork_exec_await threads_share_memory note_interrupts_sleep kill_ends_an_unkillable_loop";
        ptest(&cfg, cases);
    }
}

#[test]
fn qemu_in_kernel_tests_pass() {
    if !available(tools::QEMU) {
        return;
    }
    let mut m = launch(&qemu_cmdline("qemu-ktest", "ktest"));
    let out = m
        .wait_for(" failed\n", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = m.wait_exit(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("ktest: ") && out.contains(" passed, 0 failed"),
        "{out}"
    );
    assert_eq!(
        status.code(),
        Some(33),
        "isa-debug-exit should report success:\n{out}"
    );
}

#[test]
fn bochs_in_kernel_tests_pass() {
    if !available(tools::BOCHS) {
        return;
    }
    let mut m = launch(&iso_machine("bochs-ktest", Emulator::Bochs, None, "ktest"));
    let out = m
        .wait_for(" failed\n", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn panic_is_reported_as_a_failure() {
    if !available(tools::QEMU) {
        return;
    }
    let mut m = launch(&qemu_cmdline("qemu-panic", "monitor"));
    m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    match m.run("panic", TIMEOUT) {
        Err(Error::Panicked { tail }) => {
            assert!(tail.contains("panic requested from the monitor"), "{tail}");
            assert!(tail.contains("stack trace"), "{tail}");
        }
        other => panic!("expected a reported panic, got {other:?}"),
    }
    let status = m.wait_exit(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.code(),
        Some(35),
        "isa-debug-exit should report failure"
    );
}

/// A scratch disk for a test: `mib` MiB with an MBR whose partition 1 starts at sector 2048.
fn scratch_disk(test: &str, mib: usize) -> PathBuf {
    let path = work_dir(test).join("scratch.img");
    std::fs::create_dir_all(work_dir(test)).unwrap();
    let mut img = vec![0u8; mib << 20];
    let sectors = (mib << 20) / 512;
    let entry = &mut img[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&((sectors - 2048) as u32).to_le_bytes());
    img[510] = 0x55;
    img[511] = 0xaa;
    std::fs::write(&path, img).unwrap();
    path
}

/// Runs `nstest` with `args` and checks every case passed.
fn nstest(cfg: &MachineConfig, args: &str) -> String {
    let mut m = launch(cfg);
    m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let out = m
        .run(&format!("nstest {args}"), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains(" passed, 0 failed") && !out.contains("FAILED"),
        "nstest printed:\n{out}"
    );
    out
}

#[test]
fn qemu_namespaces_and_devices() {
    if available(tools::QEMU) {
        let mut cfg = qemu_cmdline("qemu-nstest", "");
        cfg.disk = Some(scratch_disk("qemu-nstest", 64));
        let out = nstest(&cfg, "");
        assert!(
            out.contains("part 1 2048 131072"),
            "the partition was not listed:\n{out}"
        );
        assert!(!out.contains("no disk attached"), "{out}");
    }
}

#[test]
fn bochs_namespaces_and_ata_disk() {
    if available(tools::BOCHS) {
        let mut cfg = iso_machine("bochs-nstest", Emulator::Bochs, None, "");
        cfg.disk = Some(scratch_disk("bochs-nstest", 16));
        let out = nstest(
            &cfg,
            "disk_raw_io union_order_and_create pipe_hangup_both_ways",
        );
        assert!(
            out.contains("part 1 2048 32768"),
            "the partition was not listed:\n{out}"
        );
    }
}

#[test]
fn qemu_9p_mounts_of_a_user_space_server() {
    if !available(tools::QEMU) {
        return;
    }
    let mut m = launch(&qemu_cmdline("qemu-ninetest", ""));
    m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let out = m.run("ninetest", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("ninetest: 5 passed, 0 failed"),
        "ninetest printed:\n{out}"
    );
    // The benchmark prints its figures (checked for shape, not speed).
    let bench = m
        .run("ninetest bench", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        bench.contains("msize 8 KiB") && bench.contains("64 KiB"),
        "{bench}"
    );
    println!("{bench}");
}
