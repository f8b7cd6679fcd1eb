//! The demo disk: a raw image with an MBR partition table whose partition 1 is ext4, made by
//! `mkfs.ext4 -d` from a tree we generate (no mounts, no root needed), and filled like a small
//! root file system: the usual top-level directories, a few text files with known contents
//! ([`TEXT_FILES`]) and one 32 MiB file of known SHA-256 ([`BIG_FILE`]).
//!
//! The pristine image is cached as `<cache>/disk/demo-<hash>/pristine.img` (read-only; the hash
//! covers the recipe below), and [`working_copy`] makes writable copies of it.

use crate::{Error, Result, deps, progress};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes per sector.
pub const SECTOR: u64 = 512;
/// First sector of partition 1 (1 MiB, the usual alignment).
pub const PART1_START_LBA: u64 = 2048;
/// Size of partition 1.
pub const PART1_BYTES: u64 = 96 << 20;
/// Size of the whole image.
pub const DISK_BYTES: u64 = PART1_START_LBA * SECTOR + PART1_BYTES;
/// The ext4 volume label.
pub const LABEL: &str = "fsvm-demo";

/// The top-level directories, as `ls /` on the served partition shows them.
pub const TOP_LEVEL: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lost+found",
    "root",
    "tmp",
    "usr",
    "var",
];

/// Text files with known contents (path from the partition's root, contents).
pub const TEXT_FILES: &[(&str, &str)] = &[
    ("etc/hostname", "fsvm\n"),
    (
        "etc/motd",
        "This ext4 partition is served over 9P2000 by the Linux filesystem VM.\n",
    ),
    (
        "etc/os-release",
        "NAME=\"fsvm demo disk\"\nID=fsvm-demo\nVERSION_ID=1\n",
    ),
    (
        "home/glenda/notes.txt",
        "Plan 9 from User Space, by way of a Linux VM.\n",
    ),
    (
        "root/README",
        "The demo disk of the tern project (guest/image/src/disk.rs).\n",
    ),
    (
        "var/log/boot.log",
        "fsvm demo disk: nothing has booted from here.\n",
    ),
    (
        "usr/share/doc/fsvm/README",
        "Files under /usr/share/fsvm have known checksums.\n",
    ),
];

/// The large file for checksums and throughput.
pub struct BigFile {
    /// Path from the partition's root.
    pub path: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its contents, lower-case hex.
    pub sha256: &'static str,
}

/// The 32 MiB file: [`big_file_contents`], a fixed pseudo-random stream (incompressible, so that
/// throughput figures are honest).
pub const BIG_FILE: BigFile = BigFile {
    path: "usr/share/fsvm/random-32m.bin",
    size: 32 << 20,
    sha256: "9bbfbbc8043a75203964380c96cddec56ba93d8ef898df2e2ecf70b97caf8697",
};

/// The contents of [`BIG_FILE`]: xorshift64* from a fixed seed, little-endian words.
pub fn big_file_contents() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(BIG_FILE.size as usize);
    while (out.len() as u64) < BIG_FILE.size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out
}

/// Everything that decides the image's contents; its hash names the cache entry.
fn recipe() -> String {
    let mut r = format!(
        "demo disk v1\nsector {SECTOR} start {PART1_START_LBA} part {PART1_BYTES} disk {DISK_BYTES} label {LABEL}\n{}\n",
        mkfs_args(Path::new("ROOT"), Path::new("IMG")).join(" ")
    );
    for d in TOP_LEVEL {
        r += &format!("dir {d}\n");
    }
    for (p, c) in TEXT_FILES {
        r += &format!("file {p} {c:?}\n");
    }
    r += &format!(
        "big {} {} {}\n",
        BIG_FILE.path, BIG_FILE.size, BIG_FILE.sha256
    );
    r
}

fn mkfs_args(root: &Path, image: &Path) -> Vec<String> {
    vec![
        "-q".into(),
        "-F".into(),
        "-t".into(),
        "ext4".into(),
        "-L".into(),
        LABEL.into(),
        // 4 KiB blocks (mke2fs picks 1 KiB for a volume this small, which slows reads down).
        "-b".into(),
        "4096".into(),
        "-E".into(),
        format!("offset={},root_owner=0:0", PART1_START_LBA * SECTOR),
        "-d".into(),
        root.display().to_string(),
        image.display().to_string(),
        format!("{}k", PART1_BYTES / 1024),
    ]
}

/// An MBR (sector 0) with one Linux partition (type 0x83) at `start` sectors, `sectors` long.
pub fn mbr(start: u64, sectors: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[440..444].copy_from_slice(&0x7465_726eu32.to_le_bytes()); // disk signature "tern"
    let e = &mut s[446..462];
    // CHS fields are unused by Linux for LBA disks; 0xfe/0xff/0xff is the "beyond CHS" marker.
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = 0x83;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// The partitions of an MBR: (number, first byte, length in bytes) of each used primary entry.
pub fn partitions(sector0: &[u8]) -> Vec<(u32, u64, u64)> {
    if sector0.len() < 512 || sector0[510..512] != [0x55, 0xaa] {
        return Vec::new();
    }
    (0..4)
        .filter_map(|i| {
            let e = &sector0[446 + 16 * i..462 + 16 * i];
            let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
            let len = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
            (e[4] != 0 && len != 0).then_some((i as u32 + 1, start * SECTOR, len * SECTOR))
        })
        .collect()
}

/// The offset and length of partition `part` of an image (0: the whole image).
pub fn partition_extent(image: &Path, part: u32) -> Result<(u64, u64)> {
    let mut f = fs::File::open(image).map_err(|e| Error::io(image, e))?;
    let len = f.metadata().map_err(|e| Error::io(image, e))?.len();
    if part == 0 {
        return Ok((0, len));
    }
    let mut s0 = [0u8; 512];
    f.read_exact(&mut s0).map_err(|e| Error::io(image, e))?;
    partitions(&s0)
        .into_iter()
        .find(|&(n, _, _)| n == part)
        .map(|(_, off, l)| (off, l))
        .ok_or_else(|| {
            Error::new(format!(
                "{}: no partition {part} in its MBR",
                image.display()
            ))
        })
}

/// Writes the tree [`TOP_LEVEL`], [`TEXT_FILES`] and [`BIG_FILE`] under `root`.
fn write_tree(root: &Path) -> Result<()> {
    for d in TOP_LEVEL.iter().filter(|&&d| d != "lost+found") {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    let tmp = root.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(|e| Error::io(&tmp, e))?;
    let files = TEXT_FILES.iter().map(|&(p, c)| (p, c.as_bytes().to_vec()));
    for (p, contents) in files.chain([(BIG_FILE.path, big_file_contents())]) {
        let p = root.join(p);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        fs::write(&p, contents).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Makes the demo image at `image` (which must not exist).
pub fn make(image: &Path) -> Result<()> {
    deps::ensure(deps::EXT4, "making the demo disk")?;
    let scratch = crate::scratch_dir("demo-tree")?;
    let root = scratch.join("root");
    write_tree(&root)?;
    {
        let mut f = fs::File::create(image).map_err(|e| Error::io(image, e))?;
        f.set_len(DISK_BYTES).map_err(|e| Error::io(image, e))?;
        f.write_all(&mbr(PART1_START_LBA, PART1_BYTES / SECTOR))
            .map_err(|e| Error::io(image, e))?;
    }
    let out = Command::new("mkfs.ext4")
        .args(mkfs_args(&root, image))
        .output()
        .map_err(|e| Error::new(format!("cannot run mkfs.ext4: {e}")))?;
    let _ = fs::remove_dir_all(&scratch);
    if !out.status.success() {
        return Err(Error::new(format!(
            "mkfs.ext4 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The cached pristine demo image, made if needed. Do not write to it: see [`working_copy`].
pub fn demo_disk(cache: &Path) -> Result<PathBuf> {
    let hash = crate::sha256_hex(&[recipe().as_bytes()]);
    let dir = cache.join("disk").join(format!("demo-{}", &hash[..16]));
    let pristine = dir.join("pristine.img");
    if pristine.is_file() {
        return Ok(pristine);
    }
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let _lock = crate::lock_file(&dir.join(".lock"))?;
    if pristine.is_file() {
        return Ok(pristine);
    }
    progress("making the demo disk (MBR, partition 1 ext4 via mkfs.ext4 -d)");
    let partial = dir.join("pristine.img.partial");
    let _ = fs::remove_file(&partial);
    make(&partial)?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o444))
        .map_err(|e| Error::io(&partial, e))?;
    fs::rename(&partial, &pristine).map_err(|e| Error::io(&pristine, e))?;
    Ok(pristine)
}

/// The persistent, writable copy of the demo disk (`<cache>/disk/demo-<hash>/disk.img`), made
/// from the pristine image the first time: what `cargo run` attaches by default, so that what a
/// user writes survives from one run to the next. Delete it to start afresh.
pub fn demo_working_copy(cache: &Path) -> Result<PathBuf> {
    let pristine = demo_disk(cache)?;
    let work = pristine.with_file_name("disk.img");
    if !work.is_file() {
        let partial = pristine.with_file_name("disk.img.partial");
        working_copy(&pristine, &partial)?;
        fs::rename(&partial, &work).map_err(|e| Error::io(&work, e))?;
    }
    Ok(work)
}

/// Copies an image to `dest` (writable), keeping holes: runs of zero blocks become holes.
pub fn working_copy(src: &Path, dest: &Path) -> Result<()> {
    let mut from = fs::File::open(src).map_err(|e| Error::io(src, e))?;
    let len = from.metadata().map_err(|e| Error::io(src, e))?.len();
    let mut to = fs::File::create(dest).map_err(|e| Error::io(dest, e))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(dest, e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = from.read(&mut buf).map_err(|e| Error::io(src, e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|&b| b == 0) {
            to.seek(SeekFrom::Current(n as i64))
                .map_err(|e| Error::io(dest, e))?;
        } else {
            to.write_all(&buf[..n]).map_err(|e| Error::io(dest, e))?;
        }
    }
    to.set_len(len).map_err(|e| Error::io(dest, e))?;
    Ok(())
}

/// Runs `e2fsck -fn` on partition `part` of `image` (0: the whole image); Ok if it is clean.
pub fn fsck(image: &Path, part: u32) -> Result<String> {
    deps::ensure(deps::EXT4, "checking an ext4 image")?;
    let (offset, _) = partition_extent(image, part)?;
    // e2fsprogs reads `path?offset=N` as the device `path` starting at byte N.
    let dev = format!("{}?offset={offset}", image.display());
    let out = Command::new("e2fsck")
        .args(["-fn", &dev])
        .output()
        .map_err(|e| Error::new(format!("cannot run e2fsck: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(Error::new(format!(
            "e2fsck -fn {dev} found problems ({}):\n{text}",
            out.status
        )))
    }
}

/// The SHA-256 of a byte string, lower-case hex.
pub fn sha256(data: &[u8]) -> String {
    crate::hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_file_has_its_checksum() {
        let data = big_file_contents();
        assert_eq!(data.len() as u64, BIG_FILE.size);
        assert_eq!(sha256(&data), BIG_FILE.sha256);
    }

    #[test]
    fn mbr_round_trips() {
        let s = mbr(PART1_START_LBA, PART1_BYTES / SECTOR);
        assert_eq!(partitions(&s), [(1, PART1_START_LBA * SECTOR, PART1_BYTES)]);
        let mut bad = s;
        bad[511] = 0;
        assert!(partitions(&bad).is_empty());
        assert!(partitions(&[0u8; 100]).is_empty());
    }
}
