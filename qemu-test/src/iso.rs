//! Bootable GRUB ISOs (multiboot2) for Bochs, QEMU `-cdrom` and real hardware, built with
//! `grub-mkrescue` and cached next to the kernel by the hash of their inputs.

use crate::tools;
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds (or reuses) an ISO that boots `kernel` with `bootfs` as its module and `cmdline`.
/// The ISO is written to `out_dir`.
pub fn build(
    kernel: &Path,
    bootfs: Option<&Path>,
    cmdline: &str,
    out_dir: &Path,
) -> Result<PathBuf, String> {
    let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let kernel_bytes = read(kernel)?;
    let bootfs_bytes = bootfs.map(read).transpose()?;
    let mut h = DefaultHasher::new();
    (&kernel_bytes, &bootfs_bytes, cmdline).hash(&mut h);
    let iso = out_dir.join(format!("tern-{:016x}.iso", h.finish()));
    if iso.exists() {
        return Ok(iso);
    }
    tools::ensure(&[tools::GRUB_MKRESCUE])?;
    let root = out_dir.join(format!("iso-root-{:016x}", h.finish()));
    let _ = fs::remove_dir_all(&root);
    let grub = root.join("boot/grub");
    fs::create_dir_all(&grub).map_err(|e| format!("{}: {e}", grub.display()))?;
    let write =
        |p: PathBuf, data: &[u8]| fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()));
    write(root.join("boot/kernel"), &kernel_bytes)?;
    let module = match &bootfs_bytes {
        Some(b) => {
            write(root.join("boot/bootfs.cpio"), b)?;
            "    module2 /boot/bootfs.cpio bootfs\n"
        }
        None => "",
    };
    // The console is the first serial port at 115200 baud, as the kernel expects.
    let cfg = format!(
        "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n\
         set timeout=0\nmenuentry 'tern' {{\n    multiboot2 /boot/kernel {cmdline}\n{module}    boot\n}}\n"
    );
    write(grub.join("grub.cfg"), cfg.as_bytes())?;
    let tmp = iso.with_extension("iso.tmp");
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&tmp)
        .arg(&root)
        .output()
        .map_err(|e| format!("grub-mkrescue: {e}"))?;
    let _ = fs::remove_dir_all(&root);
    if !out.status.success() {
        return Err(format!(
            "grub-mkrescue failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fs::rename(&tmp, &iso).map_err(|e| format!("{}: {e}", iso.display()))?;
    Ok(iso)
}
