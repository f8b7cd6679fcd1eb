//! Host programs and files the guest build needs, and how they get there: when one is missing
//! and we run as root on Debian, `apt-get` installs its package; otherwise the error names the
//! package. Also the Rust musl target for the guest programs.

use crate::{Error, Result, progress};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// Something the build needs and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    /// A command looked up on `PATH`, or an absolute path that must exist.
    pub probe: &'static str,
    /// The Debian package (`name` or `name=version`).
    pub package: &'static str,
}

const fn need(probe: &'static str, package: &'static str) -> Need {
    Need { probe, package }
}

/// What building the guest kernel needs (Linux's `Documentation/process/changes.rst`, minus
/// what tinyconfig leaves out), besides the source package itself.
pub const KERNEL_BUILD: &[Need] = &[
    need("make", "build-essential"),
    need("gcc", "build-essential"),
    need("bc", "bc"),
    need("bison", "bison"),
    need("flex", "flex"),
    need("xz", "xz-utils"),
    need("perl", "perl"),
    need("/usr/include/libelf.h", "libelf-dev"),
    need("/usr/include/openssl/opensslv.h", "libssl-dev"),
];
/// What making and checking ext4 images needs.
pub const EXT4: &[Need] = &[need("mkfs.ext4", "e2fsprogs"), need("e2fsck", "e2fsprogs")];
/// QEMU for x86-64 (microvm's firmware comes with it).
pub const QEMU: &[Need] = &[need("qemu-system-x86_64", "qemu-system-x86")];
/// Linking the static musl guest programs (Rust's musl target brings its own C library, but
/// links with the system's `cc`).
pub const MUSL_LINK: &[Need] = &[need("cc", "build-essential")];
/// A Python with `venv` and `ensurepip`, for the `python-9p` interop client.
pub const PYTHON_VENV: &[Need] = &[need("python3", "python3-venv")];

static APT: Mutex<()> = Mutex::new(());

fn present(probe: &str) -> bool {
    if probe.starts_with('/') {
        return Path::new(probe).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(probe).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn can_apt() -> bool {
    is_root() && Path::new("/etc/debian_version").exists() && present("apt-get")
}

/// Installs Debian packages with apt-get (after `apt-get update`), or says which to install.
pub fn install(packages: &[&str], why: &str) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !can_apt() {
        return Err(Error::new(format!(
            "{why}: install the Debian packages {list} (or your system's equivalent); \
             this is done automatically only as root on Debian"
        )));
    }
    let _one_at_a_time = APT.lock().unwrap_or_else(|e| e.into_inner());
    progress(&format!("installing {list} ({why})"));
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| Error::new(format!("cannot run apt-get: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "apt-get {} failed ({status})",
                args.join(" ")
            )))
        }
    };
    apt(&["update", "-q"])?;
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--allow-downgrades",
    ];
    args.extend(packages);
    apt(&args)
}

/// Makes sure every need is met, installing what is missing (see [`install`]).
pub fn ensure(needs: &[Need], why: &str) -> Result<()> {
    let mut missing: Vec<&str> = needs
        .iter()
        .filter(|n| !present(n.probe))
        .map(|n| n.package)
        .collect();
    missing.dedup();
    if !missing.is_empty() && !can_apt() {
        let probes: Vec<&str> = needs
            .iter()
            .filter(|n| !present(n.probe))
            .map(|n| n.probe)
            .collect();
        return Err(Error::new(format!(
            "{why} needs {}: install the Debian packages {} (or your system's equivalent)",
            probes.join(", "),
            missing.join(" ")
        )));
    }
    install(&missing, why)?;
    match needs.iter().find(|n| !present(n.probe)) {
        Some(n) => Err(Error::new(format!(
            "{} is still missing after installing {}",
            n.probe, n.package
        ))),
        None => Ok(()),
    }
}

/// The installed version of a Debian package, if dpkg knows it.
pub fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.strip_prefix("install ok installed ")?;
    Some(version.trim().to_string()).filter(|v| !v.is_empty())
}

/// The toolchain channel pinned in the workspace's `rust-toolchain.toml`.
fn pinned_toolchain(workspace: &Path) -> Option<String> {
    let text = std::fs::read_to_string(workspace.join("rust-toolchain.toml")).ok()?;
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("channel")?.trim().strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// Makes sure the pinned toolchain has the Rust standard library for `target`, adding it with
/// rustup if not (an already-installed toolchain does not pick up new targets from
/// `rust-toolchain.toml` by itself).
pub fn ensure_rust_target(workspace: &Path, target: &str) -> Result<()> {
    let sysroot = Command::new("rustc")
        .current_dir(workspace)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| Error::new(format!("cannot run rustc: {e}")))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
    {
        return Ok(());
    }
    let toolchain = pinned_toolchain(workspace)
        .ok_or_else(|| Error::new("rust-toolchain.toml names no channel".to_string()))?;
    progress(&format!(
        "adding the Rust target {target} to toolchain {toolchain}"
    ));
    let status = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "add", target, "--toolchain", &toolchain])
        .status()
        .map_err(|e| {
            Error::new(format!(
                "cannot run rustup (needed to add the {target} target): {e}"
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "rustup target add {target} --toolchain {toolchain} failed ({status})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pinned_toolchain() {
        let channel =
            pinned_toolchain(&crate::workspace_dir()).expect("rust-toolchain.toml has a channel");
        assert!(
            channel.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{channel}"
        );
    }

    #[test]
    fn probes_commands_and_paths() {
        assert!(present("sh"));
        assert!(present("/"));
        assert!(!present("/nonexistent/tern-probe"));
        assert!(!present("tern-no-such-command"));
    }

    #[test]
    fn needs_name_debian_packages() {
        for n in KERNEL_BUILD
            .iter()
            .chain(EXT4)
            .chain(QEMU)
            .chain(MUSL_LINK)
            .chain(PYTHON_VENV)
        {
            assert!(!n.package.is_empty() && !n.package.contains(' '), "{n:?}");
        }
    }
}
