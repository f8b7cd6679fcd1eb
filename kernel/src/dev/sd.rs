//! `#sd`: the disks (see `drivers::disk` for their names). Each has a directory `sdXN` with
//! - `data`: the whole disk as bytes, read and written at any offset and length (partial
//!   sectors are read, changed and written back); reads stop at the end of the disk and writes
//!   past it fail;
//! - `ctl`: reads give the model, the geometry and the partitions found in an MBR or GPT
//!   (`part N START END` in sectors, as Linux numbers them); writing `sync` flushes the disk.

use crate::drivers::disk::{self, Named, SECTOR};
use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, check_io, dir_entry, read_dir_entries, read_slice};
use abi::errors::{EBADCTL, EBADOFFSET, ENOTDIR, ENOTEXIST};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use ninep::{DMDIR, Dir, QTDIR, Qid};

const QDATA: u64 = 1;
const QCTL: u64 = 2;
/// Bytes moved per driver request.
const CHUNK: usize = 128 * SECTOR;

/// The `#sd` device.
pub struct Sd;

/// The one instance.
pub static SD: Sd = Sd;

/// qid.path: disk index + 1 in the high bits, the file in the low 8 (0 = the disk's directory).
fn qpath(disk: usize, file: u64) -> u64 {
    ((disk as u64 + 1) << 8) | file
}

fn qid(path: u64) -> Qid {
    let dir = path & 0xff == 0;
    Qid {
        ty: if dir { QTDIR } else { 0 },
        version: 0,
        path,
    }
}

fn disk_of(path: u64) -> KResult<Arc<Named>> {
    let index = (path >> 8).checked_sub(1).ok_or(ENOTEXIST)? as usize;
    disk::all()
        .get(index)
        .cloned()
        .ok_or_else(|| ENOTEXIST.into())
}

fn bytes(d: &Named) -> u64 {
    d.disk.lock().sectors() * SECTOR as u64
}

/// The text of `sdXN/ctl`.
fn ctl_text(d: &Named) -> String {
    let mut disk = d.disk.lock();
    let sectors = disk.sectors();
    let mut out = String::new();
    let _ = writeln!(out, "inquiry {}", disk.model());
    let _ = writeln!(out, "geometry {sectors} {SECTOR}");
    let _ = writeln!(out, "part data 0 {sectors}");
    let read = |lba: u64| {
        let mut s = [0u8; part::SECTOR];
        disk.read(lba, &mut s).ok().map(|()| s)
    };
    match part::read(sectors, read) {
        Ok((_, parts)) => {
            for p in parts {
                let _ = writeln!(out, "part {} {} {}", p.number, p.start, p.start + p.sectors);
            }
        }
        Err(e) => {
            let _ = writeln!(out, "error {e}");
        }
    }
    out
}

/// Reads `buf.len()` bytes at `offset` (inside the disk), whole sectors through a bounce buffer.
fn read_bytes(d: &Named, buf: &mut [u8], offset: u64) -> KResult<usize> {
    let mut disk = d.disk.lock();
    let mut sectors = alloc::vec![0u8; CHUNK];
    let mut done = 0;
    while done < buf.len() {
        let pos = offset + done as u64;
        let lba = pos / SECTOR as u64;
        let skip = (pos % SECTOR as u64) as usize;
        let want = (buf.len() - done + skip)
            .next_multiple_of(SECTOR)
            .min(CHUNK);
        disk.read(lba, &mut sectors[..want])?;
        let n = (want - skip).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&sectors[skip..skip + n]);
        done += n;
    }
    Ok(done)
}

/// Writes `buf` at `offset` (inside the disk); partial sectors are read first.
fn write_bytes(d: &Named, buf: &[u8], offset: u64) -> KResult<usize> {
    let mut disk = d.disk.lock();
    let mut sectors = alloc::vec![0u8; CHUNK];
    let mut done = 0;
    while done < buf.len() {
        let pos = offset + done as u64;
        let lba = pos / SECTOR as u64;
        let skip = (pos % SECTOR as u64) as usize;
        let span = (buf.len() - done + skip)
            .next_multiple_of(SECTOR)
            .min(CHUNK);
        let n = (span - skip).min(buf.len() - done);
        if skip != 0 || !(skip + n).is_multiple_of(SECTOR) {
            disk.read(lba, &mut sectors[..span])?;
        }
        sectors[skip..skip + n].copy_from_slice(&buf[done..done + n]);
        disk.write(lba, &sectors[..span])?;
        done += n;
    }
    Ok(done)
}

impl Dev for Sd {
    fn name(&self) -> &'static str {
        "sd"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(self, 0, qid(0), String::from("#sd"), None))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        if c.qid.path == 0 {
            let index = disk::all()
                .iter()
                .position(|d| d.name == name)
                .ok_or(ENOTEXIST)?;
            return Ok(c.walked(qid(qpath(index, 0)), name, None));
        }
        if c.qid.path & 0xff != 0 {
            return Err(ENOTDIR.into());
        }
        let file = match name {
            "data" => QDATA,
            "ctl" => QCTL,
            _ => return Err(ENOTEXIST.into()),
        };
        Ok(c.walked(qid(c.qid.path | file), name, None))
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        let path = c.qid.path;
        if path == 0 {
            return Ok(dir_entry("sd", qid(0), DMDIR | 0o555, 0));
        }
        let d = disk_of(path)?;
        Ok(match path & 0xff {
            QDATA => dir_entry("data", qid(path), 0o660, bytes(&d)),
            QCTL => dir_entry("ctl", qid(path), 0o660, 0),
            _ => dir_entry(&d.name, qid(path), DMDIR | 0o555, 0),
        })
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        let path = c.qid.path;
        if path == 0 {
            let entries: Vec<Dir<'static>> = disk::all()
                .iter()
                .enumerate()
                .map(|(i, d)| dir_entry(&d.name, qid(qpath(i, 0)), DMDIR | 0o555, 0))
                .collect();
            return read_dir_entries(&entries, buf, offset);
        }
        let d = disk_of(path)?;
        match path & 0xff {
            0 => {
                let entries = [
                    dir_entry("data", qid(path | QDATA), 0o660, bytes(&d)),
                    dir_entry("ctl", qid(path | QCTL), 0o660, 0),
                ];
                read_dir_entries(&entries, buf, offset)
            }
            QDATA => {
                check_io(c, false)?;
                let size = bytes(&d);
                if offset >= size {
                    return Ok(0);
                }
                let n = buf.len().min((size - offset) as usize);
                read_bytes(&d, &mut buf[..n], offset)
            }
            _ => {
                check_io(c, false)?;
                Ok(read_slice(ctl_text(&d).as_bytes(), buf, offset))
            }
        }
    }

    fn write(&self, c: &Chan, buf: &[u8], offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        let d = disk_of(c.qid.path)?;
        match c.qid.path & 0xff {
            QDATA => {
                let end = offset.checked_add(buf.len() as u64).ok_or(EBADOFFSET)?;
                if end > bytes(&d) {
                    return Err(alloc::format!("{}: write past the end of the disk", d.name).into());
                }
                write_bytes(&d, buf, offset)
            }
            QCTL => match core::str::from_utf8(buf).map(str::trim) {
                Ok("sync") => {
                    d.disk.lock().flush()?;
                    Ok(buf.len())
                }
                _ => Err(EBADCTL.into()),
            },
            _ => Err(abi::errors::EPERM.into()),
        }
    }
}
