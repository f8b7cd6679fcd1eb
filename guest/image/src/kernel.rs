//! The guest Linux kernel: built from Debian's `linux-source-6.1` package at a pinned version
//! with the `guest/kernel/fsvm.config` fragment, by `guest/kernel/build.sh`, and cached under
//! `<cache>/kernel/linux-<version>-<hash>/`, where the hash covers the package version, the
//! fragment and the build script. A cache entry holds `vmlinux` (PVH entry), `bzImage`, the
//! final `config`, `build.log` and `build-seconds` (how long the cold build took).

use crate::{Error, Result, deps, progress};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian source package.
pub const SOURCE_PACKAGE: &str = "linux-source-6.1";
/// The pinned version of [`SOURCE_PACKAGE`] (Debian 12's at the time of writing). Changing it
/// changes the cache key, so the next build is a cold one.
pub const SOURCE_VERSION: &str = "6.1.192-2";
/// Where the package puts its tarball.
pub const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";
/// The configuration fragment applied on top of `make tinyconfig`.
pub const CONFIG_FRAGMENT: &str = include_str!("../../kernel/fsvm.config");
/// The script that runs the kernel's make.
const BUILD_SCRIPT: &str = include_str!("../../kernel/build.sh");

/// A built guest kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The uncompressed ELF, booted through its PVH entry note.
    pub vmlinux: PathBuf,
    /// The compressed image for the Linux/x86 boot protocol.
    pub bz_image: PathBuf,
    /// The `.config` the kernel was built with.
    pub config: PathBuf,
    /// How long the cold build took.
    pub build_time: Duration,
    /// Whether this call found it in the cache.
    pub cached: bool,
}

/// The cache key: package version, fragment and script.
pub fn cache_key() -> String {
    let hash = crate::sha256_hex(&[
        SOURCE_PACKAGE.as_bytes(),
        SOURCE_VERSION.as_bytes(),
        CONFIG_FRAGMENT.as_bytes(),
        BUILD_SCRIPT.as_bytes(),
    ]);
    format!("linux-{SOURCE_VERSION}-{}", &hash[..16])
}

fn entry(dir: &Path, cached: bool) -> Option<Kernel> {
    let k = Kernel {
        vmlinux: dir.join("vmlinux"),
        bz_image: dir.join("bzImage"),
        config: dir.join("config"),
        build_time: Duration::from_secs_f64(
            fs::read_to_string(dir.join("build-seconds"))
                .ok()?
                .trim()
                .parse()
                .ok()?,
        ),
        cached,
    };
    (k.vmlinux.is_file() && k.bz_image.is_file()).then_some(k)
}

/// Makes sure the pinned source package is installed.
fn ensure_source() -> Result<()> {
    match deps::installed_version(SOURCE_PACKAGE) {
        Some(v) if v == SOURCE_VERSION && Path::new(SOURCE_TARBALL).is_file() => return Ok(()),
        Some(v) if v != SOURCE_VERSION => progress(&format!(
            "{SOURCE_PACKAGE} {v} is installed but {SOURCE_VERSION} is pinned (guest/image/src/kernel.rs)"
        )),
        _ => {}
    }
    let pinned = format!("{SOURCE_PACKAGE}={SOURCE_VERSION}");
    deps::install(&[&pinned], "the guest kernel's source").map_err(|e| {
        Error::new(format!(
            "{e}\n(if apt no longer offers {SOURCE_VERSION}, update SOURCE_VERSION in \
             guest/image/src/kernel.rs to the version `apt-cache policy {SOURCE_PACKAGE}` shows)"
        ))
    })?;
    match deps::installed_version(SOURCE_PACKAGE) {
        Some(v) if v == SOURCE_VERSION && Path::new(SOURCE_TARBALL).is_file() => Ok(()),
        v => Err(Error::new(format!(
            "{SOURCE_PACKAGE} {SOURCE_VERSION} is pinned but {} is installed",
            v.unwrap_or_else(|| "nothing".into())
        ))),
    }
}

/// Returns the cached kernel, building it first if the cache has none for this key (about 5
/// minutes on 2 cores). `jobs` is make's `-j` (default: the number of CPUs).
pub fn build(cache: &Path, jobs: Option<usize>) -> Result<Kernel> {
    let root = cache.join("kernel");
    let dir = root.join(cache_key());
    if let Some(k) = entry(&dir, true) {
        return Ok(k);
    }
    fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    // One build at a time per cache, across processes; the loser finds the winner's result.
    let _lock = crate::lock_file(&root.join(".lock"))?;
    if let Some(k) = entry(&dir, true) {
        return Ok(k);
    }
    ensure_source()?;
    deps::ensure(deps::KERNEL_BUILD, "building the guest kernel")?;

    let work = root.join("work");
    let staging = root.join(format!("{}.partial", cache_key()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    let fragment = staging.join("fsvm.config");
    let script = staging.join("build.sh");
    fs::write(&fragment, CONFIG_FRAGMENT).map_err(|e| Error::io(&fragment, e))?;
    fs::write(&script, BUILD_SCRIPT).map_err(|e| Error::io(&script, e))?;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let log_path = staging.join("build.log");

    progress(&format!(
        "building the guest Linux kernel ({SOURCE_PACKAGE} {SOURCE_VERSION}, make -j{jobs}); \
         this takes about 5 minutes on 2 cores and happens once per configuration"
    ));
    progress(&format!("  log: {}", log_path.display()));
    let start = Instant::now();
    let ok = run_logged(
        Command::new("sh")
            .arg(&script)
            .arg(SOURCE_TARBALL)
            .arg(&work)
            .arg(&fragment)
            .arg(&staging)
            .arg(jobs.to_string()),
        &log_path,
        start,
    )?;
    if !ok {
        let tail = log_tail(&log_path, 25);
        return Err(Error::new(format!(
            "the guest kernel build failed; the end of {}:\n{tail}",
            log_path.display()
        )));
    }
    let took = start.elapsed();
    let seconds = staging.join("build-seconds");
    fs::write(&seconds, format!("{:.1}\n", took.as_secs_f64()))
        .map_err(|e| Error::io(&seconds, e))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).map_err(|e| Error::io(&dir, e))?;
    let _ = fs::remove_dir_all(&work);
    progress(&format!(
        "guest kernel built in {:.0} s: {}",
        took.as_secs_f64(),
        dir.display()
    ));
    entry(&dir, false)
        .ok_or_else(|| Error::new(format!("{} is incomplete after the build", dir.display())))
}

/// Runs `cmd` with its output in `log`, printing a progress line every 30 seconds.
fn run_logged(cmd: &mut Command, log: &Path, start: Instant) -> Result<bool> {
    let out = fs::File::create(log).map_err(|e| Error::io(log, e))?;
    let err = out.try_clone().map_err(|e| Error::io(log, e))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::new(format!("cannot run the kernel build script: {e}")))?;
    let mut last = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) => {}
            Err(e) => return Err(Error::new(format!("waiting for the kernel build: {e}"))),
        }
        if last.elapsed() >= Duration::from_secs(30) {
            last = Instant::now();
            let line = log_tail(log, 1);
            progress(&format!(
                "  {:3.0} s: {}",
                start.elapsed().as_secs_f64(),
                line.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(f) = fs::File::open(path) else {
        return String::new();
    };
    let all: Vec<String> = BufReader::new(f).lines().map_while(|l| l.ok()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_asks_for_what_the_guest_needs() {
        for want in [
            "CONFIG_64BIT=y",
            "CONFIG_PVH=y",
            "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y",
            "CONFIG_VIRTIO_BLK=y",
            "CONFIG_VIRTIO_NET=y",
            "CONFIG_VIRTIO_CONSOLE=y",
            "CONFIG_EXT4_FS=y",
            "CONFIG_DEVTMPFS=y",
            "CONFIG_BLK_DEV_INITRD=y",
            "CONFIG_SERIAL_8250_CONSOLE=y",
            "CONFIG_UNIX=y",
            "CONFIG_INET=y",
            "# CONFIG_PCI is not set",
            "# CONFIG_ACPI is not set",
            "# CONFIG_MODULES is not set",
        ] {
            assert!(
                CONFIG_FRAGMENT.lines().any(|l| l == want),
                "{want} missing from fsvm.config"
            );
        }
    }

    #[test]
    fn key_names_the_version_and_is_stable() {
        assert_eq!(cache_key(), cache_key());
        assert!(cache_key().starts_with("linux-6.1.192-2-"));
        assert_eq!(cache_key().len(), "linux-6.1.192-2-".len() + 16);
    }
}
