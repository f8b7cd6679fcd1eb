//! Reader and writer for "newc" cpio archives (the format of Linux initramfs, `cpio -H newc`),
//! which hold the boot file system (`#root`) and the guest's initramfs.
//!
//! Each entry is a 110-byte ASCII header (magic `070701` and thirteen 8-digit hex fields), the
//! NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes. The archive ends
//! with an entry named `TRAILER!!!`. The reader never trusts a field: every length is checked
//! against what is left of the archive.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// File type bits of `mode` (as in `st_mode`).
pub const S_IFMT: u32 = 0o170000;
/// A directory.
pub const S_IFDIR: u32 = 0o040000;
/// A regular file.
pub const S_IFREG: u32 = 0o100000;
/// A symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// A character device.
pub const S_IFCHR: u32 = 0o020000;

/// Why an archive could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The archive ends inside the entry that starts at this offset.
    Truncated { offset: usize },
    /// The entry at this offset does not start with `070701`.
    BadMagic { offset: usize },
    /// A header field at this offset is not 8 hex digits.
    BadField { offset: usize },
    /// An entry name is empty, not NUL-terminated, or not UTF-8.
    BadName { offset: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { offset } => {
                write!(f, "cpio: archive truncated in entry at {offset}")
            }
            Error::BadMagic { offset } => write!(f, "cpio: no newc magic at offset {offset}"),
            Error::BadField { offset } => write!(f, "cpio: bad header field at offset {offset}"),
            Error::BadName { offset } => write!(f, "cpio: bad entry name at offset {offset}"),
        }
    }
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Path inside the archive, without a leading `./` or `/`.
    pub name: &'a str,
    /// Type and permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// Contents (a symlink's target for links).
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

/// Iterates over the entries of an archive, stopping at the trailer.
pub struct Reader<'a> {
    data: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            offset: 0,
            done: false,
        }
    }

    fn field(&self, header: usize, index: usize) -> Result<u32, Error> {
        let at = header + 6 + index * 8;
        let digits = self
            .data
            .get(at..at + 8)
            .ok_or(Error::Truncated { offset: header })?;
        let text = core::str::from_utf8(digits).map_err(|_| Error::BadField { offset: at })?;
        u32::from_str_radix(text, 16).map_err(|_| Error::BadField { offset: at })
    }

    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, Error> {
        let start = self.offset;
        let header = self
            .data
            .get(start..start + HEADER_LEN)
            .ok_or(Error::Truncated { offset: start })?;
        if &header[..6] != MAGIC {
            return Err(Error::BadMagic { offset: start });
        }
        let mode = self.field(start, 1)?;
        let mtime = self.field(start, 5)?;
        let size = self.field(start, 6)? as usize;
        let namesize = self.field(start, 11)? as usize;
        let name_at = start + HEADER_LEN;
        let name_end = name_at
            .checked_add(namesize)
            .ok_or(Error::Truncated { offset: start })?;
        let name_bytes = self
            .data
            .get(name_at..name_end)
            .ok_or(Error::Truncated { offset: start })?;
        let (&nul, name_bytes) = name_bytes
            .split_last()
            .ok_or(Error::BadName { offset: start })?;
        if nul != 0 {
            return Err(Error::BadName { offset: start });
        }
        let name =
            core::str::from_utf8(name_bytes).map_err(|_| Error::BadName { offset: start })?;
        let data_at = name_end.next_multiple_of(4);
        let data_end = data_at
            .checked_add(size)
            .ok_or(Error::Truncated { offset: start })?;
        let data = self
            .data
            .get(data_at..data_end)
            .ok_or(Error::Truncated { offset: start })?;
        self.offset = data_end.next_multiple_of(4);
        if name == TRAILER {
            return Ok(None);
        }
        let name = match name {
            "." => "",
            _ => name.trim_start_matches("./").trim_start_matches('/'),
        };
        if name.is_empty() && mode & S_IFMT != S_IFDIR {
            return Err(Error::BadName { offset: start });
        }
        Ok(Some(Entry {
            name,
            mode,
            mtime,
            data,
        }))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds an archive in memory.
#[derive(Default)]
pub struct Writer {
    out: Vec<u8>,
    ino: u32,
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Self {
        Writer::default()
    }

    /// Appends an entry.
    pub fn add(&mut self, name: &str, mode: u32, mtime: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            mtime,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(MAGIC);
        for f in fields {
            self.out
                .extend_from_slice(alloc::format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// Appends a directory.
    pub fn dir(&mut self, name: &str) {
        self.add(name, S_IFDIR | 0o755, 0, &[]);
    }

    /// Appends a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.add(name, S_IFREG | perm, 0, data);
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Ends the archive with its trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.add(TRAILER, 0, 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new();
        w.dir("bin");
        w.file("bin/hello", 0o755, b"hello world");
        w.file("empty", 0o644, b"");
        w.finish()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let entries: Vec<_> = Reader::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries[0].is_dir());
        assert_eq!(entries[1].name, "bin/hello");
        assert_eq!(entries[1].data, b"hello world");
        assert_eq!(entries[1].mode, S_IFREG | 0o755);
        assert_eq!(entries[2].data, b"");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for cut in 0..bytes.len() - 1 {
            let r: Result<Vec<_>, _> = Reader::new(&bytes[..cut]).collect();
            assert!(r.is_err(), "cut at {cut} was accepted");
        }
    }

    #[test]
    fn bad_magic_and_fields() {
        let mut bytes = sample();
        bytes[0] = b'1';
        assert_eq!(
            Reader::new(&bytes).next(),
            Some(Err(Error::BadMagic { offset: 0 }))
        );
        let mut bytes = sample();
        bytes[6 + 6 * 8] = b'z'; // filesize of the first entry
        assert!(matches!(
            Reader::new(&bytes).next(),
            Some(Err(Error::BadField { .. }))
        ));
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut bytes = sample();
        bytes[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"ffffffff");
        assert!(matches!(
            Reader::new(&bytes).next(),
            Some(Err(Error::Truncated { .. }))
        ));
    }

    #[test]
    fn reads_gnu_cpio_output_shape() {
        // `find . | cpio -o -H newc` names the root "." and prefixes paths with "./".
        let mut w = Writer::new();
        w.dir(".");
        w.file("./etc/hostname", 0o644, b"tern\n");
        let bytes = w.finish();
        let names: Vec<_> = Reader::new(&bytes).map(|e| e.unwrap().name).collect();
        assert_eq!(names, ["", "etc/hostname"]);
    }
}
