//! `guest-image`: builds the Linux filesystem VM and its demo disk, and runs it under QEMU's
//! `microvm` machine (DESIGN.md section 5).
//!
//! - [`build`] returns the guest's `vmlinux`, `bzImage` and initramfs ([`kernel`],
//!   [`initramfs`]); [`demo_disk`] the pristine demo disk image and [`demo_disk_copy`] the
//!   writable copy that `cargo run` attaches ([`disk`]).
//! - [`microvm`] boots them under `qemu-system-x86_64 -M microvm`: the user-facing `--microvm`
//!   mode of the launcher ([`microvm::run`]) and the harness the tests drive ([`microvm::Microvm`]).
//! - [`py9p`] provides the third-party 9P client (`python-9p` from PyPI) for interop tests.
//!
//! Everything built is cached outside the work tree, under `$TERN_CACHE` or else
//! `~/.cache/tern` ([`cache_dir`]), keyed by what it is built from, so that CI and `cargo run`
//! rebuild only when an input changes. What the build needs on the host is installed with
//! apt-get when we run as root on Debian ([`deps`]); otherwise the error names the packages.

pub mod deps;
pub mod disk;
pub mod initramfs;
pub mod kernel;
pub mod microvm;
pub mod py9p;

use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An error with a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }

    fn io(path: &Path, e: std::io::Error) -> Error {
        Error(format!("{}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest-image: {}", self.0)
    }
}

impl std::error::Error for Error {}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Prints a progress line on stderr (a kernel build is long; the user should know why). It
/// writes to the stream itself rather than through `eprintln!`, which the test harness captures:
/// a test that starts a 5-minute build should say so.
pub fn progress(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "guest-image: {msg}");
}

/// The cache directory: `$TERN_CACHE`, else `$XDG_CACHE_HOME/tern`, else `~/.cache/tern`.
pub fn cache_dir() -> PathBuf {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("TERN_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("tern")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("tern")))
        .unwrap_or_else(|| std::env::temp_dir().join("tern-cache"))
}

/// The workspace root (where `rust-toolchain.toml` is).
pub fn workspace_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// How to build the guest.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The cache directory (default: [`cache_dir`]).
    pub cache: Option<PathBuf>,
    /// Gzip the initramfs (default: plain cpio, which boots faster in emulators and is small).
    pub gzip_initramfs: bool,
    /// make's `-j` for the kernel (default: the number of CPUs).
    pub jobs: Option<usize>,
}

/// The guest's boot files.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The uncompressed kernel ELF (PVH entry).
    pub vmlinux: PathBuf,
    /// The compressed kernel (Linux/x86 boot protocol).
    pub bz_image: PathBuf,
    /// The initramfs (cpio newc, gzipped if asked).
    pub initramfs: PathBuf,
    /// The kernel's final `.config`.
    pub kernel_config: PathBuf,
    /// How long the kernel's cold build took (recorded when it was built).
    pub kernel_build_time: Duration,
    /// Whether the kernel came from the cache.
    pub kernel_cached: bool,
}

/// Builds (or finds in the cache) the guest kernel and initramfs.
pub fn build(opts: &Options) -> Result<Artifacts> {
    let cache = opts.cache.clone().unwrap_or_else(cache_dir);
    let k = kernel::build(&cache, opts.jobs)?;
    let initramfs = initramfs::build(&cache, opts.gzip_initramfs)?;
    Ok(Artifacts {
        vmlinux: k.vmlinux,
        bz_image: k.bz_image,
        initramfs,
        kernel_config: k.config,
        kernel_build_time: k.build_time,
        kernel_cached: k.cached,
    })
}

/// The pristine demo disk in the default cache (made if needed). It is read-only: boot a copy
/// ([`disk::working_copy`]), as [`microvm::run`] does.
pub fn demo_disk() -> Result<PathBuf> {
    disk::demo_disk(&cache_dir())
}

/// The writable demo disk in the default cache, persistent across runs: what `cargo run`
/// attaches by default ([`disk::demo_working_copy`]).
pub fn demo_disk_copy() -> Result<PathBuf> {
    disk::demo_working_copy(&cache_dir())
}

/// The agent's part of the guest kernel command line (see `fsvm_agent::cmdline`).
pub fn agent_cmdline(part: u32, port: u16) -> String {
    format!("fsvm.part={part} fsvm.port={port}")
}

/// Lower-case hex of bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over several byte strings, each length-prefixed so that boundaries count.
fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

/// Takes an exclusive lock on `path` (created if needed) until the file is dropped.
fn lock_file(path: &Path) -> Result<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.lock().map_err(|e| Error::io(path, e))?;
    Ok(f)
}

/// A new empty directory under the system's temporary directory.
fn scratch_dir(what: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tern-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Writes a file through a temporary name, so that readers never see half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("partial.{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Gzip compression of the initramfs.
mod gzip {
    use std::io::Write;

    /// Compresses `data` as one gzip member at the best compression level.
    pub fn compress(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let _ = e.write_all(data);
        e.finish().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_separate_their_parts() {
        assert_ne!(sha256_hex(&[b"ab", b"c"]), sha256_hex(&[b"a", b"bc"]));
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }

    #[test]
    fn gzip_output_is_gzip() {
        let z = gzip::compress(&[7u8; 10000]);
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        assert!(z.len() < 200);
    }
}
