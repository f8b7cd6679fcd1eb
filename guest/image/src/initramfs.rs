//! The guest's initramfs: our programs only, built static for `x86_64-unknown-linux-musl` by a
//! nested `cargo build`, packed as a cpio "newc" archive (optionally gzipped) and cached under
//! `<cache>/initramfs/<hash>.cpio[.gz]`, named by the hash of its contents.
//!
//! Layout: `/init` (the agent, PID 1) and the empty directories it mounts on: `/dev`, `/proc`,
//! `/sys`, `/mnt`. `/dev/console` comes from the kernel's own built-in initramfs.

use crate::{Error, Result, deps, progress, workspace_dir};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target of the guest programs.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-musl";
/// The packages built for the guest, and the binary each provides.
const PROGRAMS: &[(&str, &str)] = &[("fsvm-agent", "fsvm-agent")];

/// Variables an outer cargo (or a user) may set that must not leak into the nested build: they
/// would redirect its output, change its target or flags, or hand it a jobserver it cannot use.
const CLEARED_ENV: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "RUSTC_WORKSPACE_WRAPPER",
    "__CARGO_FIX_PLZ",
];

/// Builds the guest programs and returns the path of each binary, by package name.
pub fn build_programs() -> Result<Vec<(String, PathBuf)>> {
    let ws = workspace_dir();
    deps::ensure_rust_target(&ws, GUEST_TARGET)?;
    deps::ensure(deps::MUSL_LINK, "linking the guest programs")?;
    // Its own target directory: the outer cargo holds the lock on its own.
    let target_dir = std::env::var_os("TERN_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target").join("guest"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
        .arg(&target_dir)
        // Static binaries in a RAM disk: no symbols, no line tables.
        .args([
            "--config",
            "profile.release.strip=\"symbols\"",
            "--config",
            "profile.release.debug=0",
        ]);
    for (package, _) in PROGRAMS {
        cmd.args(["-p", package]);
    }
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    progress(&format!("building the guest programs for {GUEST_TARGET}"));
    let status = cmd
        .status()
        .map_err(|e| Error::new(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Error::new(format!(
            "cargo build of the guest programs failed ({status})"
        )));
    }
    let bin_dir = target_dir.join(GUEST_TARGET).join("release");
    Ok(PROGRAMS
        .iter()
        .map(|(package, bin)| (package.to_string(), bin_dir.join(bin)))
        .collect())
}

/// Packs the archive from the agent's binary.
pub fn pack(agent: &[u8]) -> Vec<u8> {
    let mut w = cpio::Writer::new();
    for dir in ["dev", "proc", "sys", "mnt"] {
        w.dir(dir);
    }
    w.file("init", 0o755, agent);
    w.finish()
}

/// Builds (or finds in the cache) the initramfs and returns its path.
pub fn build(cache: &Path, gzip: bool) -> Result<PathBuf> {
    let programs = build_programs()?;
    let agent_path = &programs[0].1;
    let agent = fs::read(agent_path).map_err(|e| Error::io(agent_path, e))?;
    let archive = pack(&agent);
    let hash = crate::sha256_hex(&[&archive]);
    let dir = cache.join("initramfs");
    let path = dir.join(format!(
        "{}.cpio{}",
        &hash[..16],
        if gzip { ".gz" } else { "" }
    ));
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let bytes = if gzip {
        crate::gzip::compress(&archive)
    } else {
        archive
    };
    crate::write_atomically(&path, &bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_holds_init_and_mount_points() {
        let bytes = pack(b"\x7fELF...");
        let entries: Vec<_> = cpio::Reader::new(&bytes)
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name).collect();
        assert_eq!(names, ["dev", "proc", "sys", "mnt", "init"]);
        let init = entries.last().unwrap();
        assert_eq!(init.mode, cpio::S_IFREG | 0o755);
        assert_eq!(init.data, b"\x7fELF...");
    }
}
