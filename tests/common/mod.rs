//! What the boot tests share: where the built OS is, machine configurations for QEMU and Bochs,
//! and the rule for a missing emulator (skip loudly here, fail under CI).

#![allow(dead_code)] // each test file uses its own part of this

use qemu_test::{Boot, Emulator, Machine, MachineConfig, iso, tools};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The kernel ELF that `build.rs` built.
pub fn kernel() -> &'static Path {
    Path::new(env!("TERN_KERNEL"))
}

/// The boot archive that `build.rs` packed.
pub fn bootfs() -> &'static Path {
    Path::new(env!("TERN_BOOTFS"))
}

/// A directory of its own for `test`'s logs, configuration and images.
pub fn work_dir(test: &str) -> PathBuf {
    Path::new(env!("TERN_OS_DIR")).join("tests").join(test)
}

/// Whether `tool` is usable; prints a loud message and returns false if not (outside CI).
pub fn available(tool: tools::Tool) -> bool {
    match tools::ensure(&[tool]) {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("\n*** SKIPPED: {e} ***\n");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

/// QEMU booting the kernel by PVH (`-cpu max`: SVM with NPT).
pub fn qemu(test: &str) -> MachineConfig {
    qemu_cmdline(test, "")
}

/// QEMU booting the kernel by PVH with `cmdline`.
pub fn qemu_cmdline(test: &str, cmdline: &str) -> MachineConfig {
    MachineConfig::qemu_kernel(kernel(), Some(bootfs()), cmdline, &work_dir(test))
}

/// Bochs booting the GRUB ISO with CPU model `cpu` (`corei7_skylake_x`: VMX with EPT).
pub fn bochs(test: &str, cpu: &str) -> MachineConfig {
    iso_machine(test, Emulator::Bochs, Some(cpu), "")
}

/// `emulator` booting the GRUB ISO (multiboot2) with `cmdline`; `cpu` as in [`MachineConfig`].
pub fn iso_machine(
    test: &str,
    emulator: Emulator,
    cpu: Option<&str>,
    cmdline: &str,
) -> MachineConfig {
    let dir = work_dir(test);
    let image = iso::build(kernel(), Some(bootfs()), cmdline, &dir).expect("build the GRUB ISO");
    MachineConfig {
        emulator,
        boot: Boot::Iso(image),
        cpu: cpu.map(str::to_string),
        smp: 1,
        mem_mib: 512,
        disk: None,
        echo: false,
        work_dir: dir,
    }
}

/// Starts `cfg` without waiting for anything.
pub fn launch(cfg: &MachineConfig) -> Machine {
    Machine::start(cfg).unwrap_or_else(|e| panic!("cannot start the emulator: {e}"))
}

/// Starts `cfg` and waits for the shell's first prompt.
pub fn start(cfg: &MachineConfig, timeout: Duration) -> Machine {
    let mut m = launch(cfg);
    m.wait_prompt(timeout).unwrap_or_else(|e| panic!("{e}"));
    m
}

/// Runs `line` at the prompt and returns its output; a timeout fails the test with the console.
pub fn run(m: &mut Machine, line: &str, timeout: Duration) -> String {
    m.run(line, timeout)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Powers the machine off and checks that the kernel did not panic on the way.
pub fn power_off(mut m: Machine, timeout: Duration) {
    m.send_line("poweroff").unwrap();
    let status = m.wait_exit(timeout).unwrap_or_else(|e| panic!("{e}"));
    assert!(!m.panicked(), "{}", m.output());
    if m.emulator() == Emulator::Qemu {
        assert!(status.success(), "QEMU exited with {status} after poweroff");
    }
}
