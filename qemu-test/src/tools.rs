//! Host tools the harness drives. When one is missing and we run as root on Debian, its
//! package is installed with apt-get; otherwise the error names the package to install.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// A host command and the Debian packages that provide it (and what it needs at run time).
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub command: &'static str,
    pub packages: &'static [&'static str],
}

/// QEMU for x86-64 (and the firmware it loads).
pub const QEMU: Tool = Tool {
    command: "qemu-system-x86_64",
    packages: &["qemu-system-x86"],
};
/// Bochs with its BIOS images.
pub const BOCHS: Tool = Tool {
    command: "bochs",
    packages: &["bochs", "bochsbios", "vgabios"],
};
/// GRUB's ISO builder with the BIOS platform files and its helpers.
pub const GRUB_MKRESCUE: Tool = Tool {
    command: "grub-mkrescue",
    packages: &["grub-pc-bin", "grub-common", "xorriso", "mtools"],
};

static INSTALL: Mutex<()> = Mutex::new(());

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(command).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Makes sure every tool is present, installing the missing ones on Debian as root.
pub fn ensure(tools: &[Tool]) -> Result<(), String> {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<Tool> = tools
        .iter()
        .copied()
        .filter(|t| !on_path(t.command))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing
        .iter()
        .flat_map(|t| t.packages.iter().copied())
        .collect();
    let names: Vec<&str> = missing.iter().map(|t| t.command).collect();
    if !(is_root() && Path::new("/etc/debian_version").exists()) {
        return Err(format!(
            "{} not found: install the Debian packages {} (or your system's equivalent)",
            names.join(", "),
            packages.join(" ")
        ));
    }
    eprintln!(
        "tern: installing {} for {}",
        packages.join(" "),
        names.join(", ")
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("apt-get: {e}"))
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&packages);
    let status = apt(&install)?;
    if !status.success() {
        return Err(format!(
            "apt-get install {} failed ({status})",
            packages.join(" ")
        ));
    }
    match missing.iter().find(|t| !on_path(t.command)) {
        Some(t) => Err(format!(
            "{} still not found after installing {}",
            t.command,
            packages.join(" ")
        )),
        None => Ok(()),
    }
}
