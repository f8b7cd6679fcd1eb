//! Builds the OS the launcher boots and the boot tests drive: the kernel for
//! `x86_64-unknown-none` and the boot archive, under `<target>/os/`. Their paths reach the
//! launcher and tests as `TERN_KERNEL` and `TERN_BOOTFS`. The boot archive holds the user
//! programs in `/bin` and the Linux filesystem VM (built by `guest-image`, cached outside the
//! work tree: the first build takes about five minutes) in `/lib/fsvm`.
//!
//! The kernel is a separate `cargo build` with its own target directory (a nested build in the
//! same directory would wait forever on the outer build's lock), always in release mode: it
//! runs under emulation, where speed matters more than debug assertions.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// Every target the toolchain file lists; a toolchain installed before that file existed may
/// lack them, and rustup adds them only on `rustup toolchain install`.
const TARGETS: [&str; 2] = ["x86_64-unknown-none", "x86_64-unknown-linux-musl"];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is inside the target directory");
    let os_dir = target_dir.join("os");

    for dir in [
        "kernel",
        "lib",
        "user",
        "guest",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    ensure_targets(&root);
    let kernel = build_kernel(&root, &os_dir);
    let programs = build_user(&root, &os_dir);
    let guest = guest_image::build(&guest_image::Options::default())
        .unwrap_or_else(|e| panic!("building the Linux guest: {e}"));
    let files = [
        ("lib/fsvm/bzImage", guest.bz_image),
        ("lib/fsvm/initramfs", guest.initramfs),
    ];
    let bootfs = pack_bootfs(&os_dir, &programs, &files);
    println!("cargo:rustc-env=TERN_KERNEL={}", kernel.display());
    println!("cargo:rustc-env=TERN_BOOTFS={}", bootfs.display());
    println!("cargo:rustc-env=TERN_OS_DIR={}", os_dir.display());
}

fn ensure_targets(root: &Path) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .expect("rustc --print sysroot");
    let missing: Vec<&str> = TARGETS
        .into_iter()
        .filter(|t| !sysroot.join("lib/rustlib").join(t).exists())
        .collect();
    if missing.is_empty() {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup
        .current_dir(root)
        .args(["target", "add"])
        .args(&missing);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let status = rustup
        .status()
        .expect("rustup is needed to add the kernel's targets");
    assert!(
        status.success(),
        "rustup target add {} failed",
        missing.join(" ")
    );
}

/// Runs `cargo build` for a crate of the workspace in `target_dir`, with the outer build's
/// settings removed from the environment.
fn cargo(root: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .arg("build")
        .arg("--release")
        .arg("--target-dir")
        .arg(target_dir);
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn build_kernel(root: &Path, os_dir: &Path) -> PathBuf {
    let target_dir = os_dir.join("kernel");
    let status = cargo(root, &target_dir)
        .args(["-p", "kernel", "--target", KERNEL_TARGET])
        .env(
            "RUSTFLAGS",
            "-C force-frame-pointers=yes -C relocation-model=static",
        )
        .status()
        .expect("cargo build of the kernel");
    assert!(status.success(), "building the kernel failed");
    target_dir.join(KERNEL_TARGET).join("release/kernel")
}

/// Builds every user program (the binaries of `user/cmd`); returns (name, path) pairs.
fn build_user(root: &Path, os_dir: &Path) -> Vec<(String, PathBuf)> {
    let target_dir = os_dir.join("user");
    let status = cargo(root, &target_dir)
        .args(["-p", "cmd", "--bins", "--target", KERNEL_TARGET])
        .env(
            "RUSTFLAGS",
            "-C relocation-model=static -C link-arg=--no-pie -C link-arg=--strip-all",
        )
        .status()
        .expect("cargo build of the user programs");
    assert!(status.success(), "building the user programs failed");
    let bin_dir = target_dir.join(KERNEL_TARGET).join("release");
    let mut programs: Vec<(String, PathBuf)> = std::fs::read_dir(root.join("user/cmd/src/bin"))
        .expect("user/cmd/src/bin")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let name = name.strip_suffix(".rs")?.to_string();
            let path = bin_dir.join(&name);
            Some((name, path))
        })
        .collect();
    programs.sort();
    programs
}

/// The boot archive (`#root`): the directories of the boot namespace, the programs in `/bin`
/// and other read-only files (archive path, host path).
fn pack_bootfs(
    os_dir: &Path,
    programs: &[(String, PathBuf)],
    files: &[(&str, PathBuf)],
) -> PathBuf {
    let mut archive = cpio::Writer::new();
    let dirs = [
        "bin", "dev", "env", "lib", "lib/fsvm", "mnt", "n", "net", "proc", "srv", "tmp",
    ];
    for dir in dirs {
        archive.dir(dir);
    }
    for (name, path) in files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        archive.add(name, cpio::S_IFREG | 0o444, mtime(path), &bytes);
    }
    // Scripts (user/scripts) go to /bin beside the programs.
    let scripts = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("user/scripts"))
        .into_iter()
        .flatten();
    for entry in scripts.flatten() {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .expect("script names are UTF-8");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        archive.add(
            &format!("bin/{name}"),
            cpio::S_IFREG | 0o755,
            mtime(&path),
            &bytes,
        );
    }
    for (name, path) in programs {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        archive.add(
            &format!("bin/{name}"),
            cpio::S_IFREG | 0o755,
            mtime(path),
            &bytes,
        );
    }
    let path = os_dir.join("bootfs.cpio");
    std::fs::create_dir_all(os_dir).expect("create the OS output directory");
    std::fs::write(&path, archive.finish()).expect("write the boot archive");
    path
}

/// A file's modification time in seconds since the epoch (0 if unknown).
fn mtime(path: &Path) -> u32 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as u32)
}
