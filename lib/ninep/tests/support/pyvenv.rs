//! A Python virtual environment with the third-party 9P2000 implementations the interop tests
//! talk to: `python-9p` (imports as `py9p`: plan9port's wire codec and a multiplexed client) and
//! `aio9p` (an asyncio server). It lives in the cargo target directory and is built once, then
//! reused; a file lock keeps test binaries that run at the same time from building it twice.
//! Without PyPI the tests fail with a message that says so: CI has PyPI, so a skip would hide a
//! regression.
//!
//! Shared by `lib/ninep/tests` and `guest/ninepd/tests` (included there by path).

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Pinned so that a new upload cannot change what the tests exercise.
const PACKAGES: [&str; 2] = ["python-9p==0.1.0", "aio9p==0.3.3"];

fn venv_dir() -> PathBuf {
    // Integration tests get CARGO_TARGET_TMPDIR (<target>/tmp), shared by every package.
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ninep-pyvenv")
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    cmd.output().map_err(|e| format!("cannot run {shown}: {e}"))
}

fn ready(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", "import py9p, aio9p; py9p.encode_message"])
            .output()
            .is_ok_and(|o| o.status.success())
}

fn build() -> Result<PathBuf, String> {
    let dir = venv_dir();
    fs::create_dir_all(dir.parent().expect("target tmp dir")).map_err(|e| e.to_string())?;
    let lock = File::create(dir.with_extension("lock")).map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock the venv: {e}"))?;
    let python = dir.join("bin/python");
    if ready(&python) {
        return Ok(python);
    }
    let _ = fs::remove_dir_all(&dir);
    let out = run(Command::new("python3").arg("-m").arg("venv").arg(&dir))?;
    if !out.status.success() {
        return Err(format!(
            "python3 -m venv {} failed (is python3-venv installed?): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let out = run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
        ])
        .args(PACKAGES))?;
    if !out.status.success() || !ready(&python) {
        let _ = fs::remove_dir_all(&dir);
        return Err(format!(
            "could not install {} from PyPI into {}: these interop tests need PyPI \
             (CI has it); pip said:\n{}{}",
            PACKAGES.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(python)
}

/// The venv's python, building the venv on first use. Panics with the reason if it cannot.
pub fn python() -> PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PY.get_or_init(build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// A child process killed when dropped (a server, or a client that hangs).
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
