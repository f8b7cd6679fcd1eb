//! The directory entry, `Dir`, in the machine-independent layout of `stat(5)`: what `Rstat`
//! carries, what `Twstat` changes, and what a read of a directory returns, one after another.
//!
//! ```text
//! size[2] type[2] dev[4] qid[13] mode[4] atime[4] mtime[4] length[8]
//! name[s] uid[s] gid[s] muid[s]
//! 9P2000.u only: extension[s] n_uid[4] n_gid[4] n_muid[4]
//! ```
//!
//! `size` counts the bytes after itself. Decoding is strict: the fields must fill exactly `size`
//! bytes, so a short or padded entry is an error, not a guess.

use alloc::borrow::Cow;

use crate::consts::NONUNAME;
use crate::wire::{Counter, Reader, Sink, SliceSink};
use crate::{Dialect, Error, Qid};

/// A directory entry (`stat(5)`). Strings borrow from the frame they were decoded from until
/// [`Dir::into_owned`] is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir<'a> {
    /// For the kernel's use (the device type); servers send 0.
    pub ty: u16,
    /// For the kernel's use (the device instance); servers send 0.
    pub dev: u32,
    /// The file's qid.
    pub qid: Qid,
    /// Permission bits and `DM*` flags.
    pub mode: u32,
    /// Last access time, seconds since the epoch.
    pub atime: u32,
    /// Last modification time, seconds since the epoch.
    pub mtime: u32,
    /// Length in bytes (0 for directories).
    pub length: u64,
    /// The last element of the file's path; `/` for the server's root.
    pub name: Cow<'a, str>,
    /// Owner name.
    pub uid: Cow<'a, str>,
    /// Group name.
    pub gid: Cow<'a, str>,
    /// Name of the user who last modified the file.
    pub muid: Cow<'a, str>,
    /// 9P2000.u: symlink target or device description; empty in 9P2000.
    pub extension: Cow<'a, str>,
    /// 9P2000.u: numeric owner id; `NONUNAME` in 9P2000.
    pub n_uid: u32,
    /// 9P2000.u: numeric group id; `NONUNAME` in 9P2000.
    pub n_gid: u32,
    /// 9P2000.u: numeric id of the last modifier; `NONUNAME` in 9P2000.
    pub n_muid: u32,
}

impl Default for Dir<'_> {
    fn default() -> Self {
        Dir {
            ty: 0,
            dev: 0,
            qid: Qid::default(),
            mode: 0,
            atime: 0,
            mtime: 0,
            length: 0,
            name: Cow::Borrowed(""),
            uid: Cow::Borrowed(""),
            gid: Cow::Borrowed(""),
            muid: Cow::Borrowed(""),
            extension: Cow::Borrowed(""),
            n_uid: NONUNAME,
            n_gid: NONUNAME,
            n_muid: NONUNAME,
        }
    }
}

impl<'a> Dir<'a> {
    /// The "don't touch" entry of `stat(5)` for `Twstat`: every integer all ones, every string
    /// empty. Set only the fields to change. A wstat of this value unchanged asks the server to
    /// commit the file to stable storage.
    pub fn dont_touch() -> Self {
        Dir {
            ty: u16::MAX,
            dev: u32::MAX,
            qid: Qid {
                ty: u8::MAX,
                version: u32::MAX,
                path: u64::MAX,
            },
            mode: u32::MAX,
            atime: u32::MAX,
            mtime: u32::MAX,
            length: u64::MAX,
            ..Dir::default()
        }
    }

    /// Copies borrowed strings so the entry outlives the frame it came from.
    pub fn into_owned(self) -> Dir<'static> {
        Dir {
            name: Cow::Owned(self.name.into_owned()),
            uid: Cow::Owned(self.uid.into_owned()),
            gid: Cow::Owned(self.gid.into_owned()),
            muid: Cow::Owned(self.muid.into_owned()),
            extension: Cow::Owned(self.extension.into_owned()),
            ty: self.ty,
            dev: self.dev,
            qid: self.qid,
            mode: self.mode,
            atime: self.atime,
            mtime: self.mtime,
            length: self.length,
            n_uid: self.n_uid,
            n_gid: self.n_gid,
            n_muid: self.n_muid,
        }
    }

    /// The number of bytes the entry takes on the wire, including its `size[2]` prefix.
    pub fn encoded_len(&self, dialect: Dialect) -> Result<usize, Error> {
        let mut c = Counter::default();
        self.encode_into(&mut c, dialect)?;
        Ok(c.0)
    }

    /// Encodes the entry (with its `size[2]` prefix) at the start of `buf`; returns its length.
    pub fn encode(&self, dialect: Dialect, buf: &mut [u8]) -> Result<usize, Error> {
        let need = self.encoded_len(dialect)?;
        let have = buf.len();
        let dst = buf
            .get_mut(..need)
            .ok_or(Error::BufferTooSmall { need, have })?;
        let mut s = SliceSink { buf: dst, pos: 0 };
        self.encode_into(&mut s, dialect)?;
        Ok(s.pos)
    }

    /// Appends the entry (with its `size[2]` prefix) to `out`; returns its length.
    pub fn encode_vec(
        &self,
        dialect: Dialect,
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<usize, Error> {
        let need = self.encoded_len(dialect)?;
        let start = out.len();
        out.resize(start + need, 0);
        let result = self.encode(dialect, &mut out[start..]);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    pub(crate) fn encode_into<S: Sink>(&self, s: &mut S, dialect: Dialect) -> Result<(), Error> {
        let mut body = Counter::default();
        self.encode_body(&mut body, dialect)?;
        let size = u16::try_from(body.0).map_err(|_| Error::StatTooLong(body.0 + 2))?;
        s.u16(size)?;
        self.encode_body(s, dialect)
    }

    fn encode_body<S: Sink>(&self, s: &mut S, dialect: Dialect) -> Result<(), Error> {
        s.u16(self.ty)?;
        s.u32(self.dev)?;
        s.qid(&self.qid)?;
        s.u32(self.mode)?;
        s.u32(self.atime)?;
        s.u32(self.mtime)?;
        s.u64(self.length)?;
        s.str(&self.name, "stat name")?;
        s.str(&self.uid, "stat uid")?;
        s.str(&self.gid, "stat gid")?;
        s.str(&self.muid, "stat muid")?;
        if dialect == Dialect::V9P2000U {
            s.str(&self.extension, "stat extension")?;
            s.u32(self.n_uid)?;
            s.u32(self.n_gid)?;
            s.u32(self.n_muid)?;
        }
        Ok(())
    }

    /// Decodes one entry from the start of `buf`; returns it and the bytes it took (its size
    /// prefix included). Bytes after the entry are left alone: see [`DirEntries`] to walk a
    /// directory read.
    pub fn decode(buf: &'a [u8], dialect: Dialect) -> Result<(Dir<'a>, usize), Error> {
        let mut r = Reader::new(buf);
        let size = r.u16("stat size")? as usize;
        let body = r.take(size, "stat")?;
        let dir = Self::decode_body(body, dialect)?;
        Ok((dir, size + 2))
    }

    /// Decodes an entry that must fill `buf` exactly, as in `Rstat` and `Twstat`.
    pub fn decode_exact(buf: &'a [u8], dialect: Dialect) -> Result<Dir<'a>, Error> {
        let (dir, used) = Self::decode(buf, dialect)?;
        if used != buf.len() {
            return Err(Error::StatSizeMismatch {
                declared: buf.len(),
                actual: used,
            });
        }
        Ok(dir)
    }

    fn decode_body(body: &'a [u8], dialect: Dialect) -> Result<Dir<'a>, Error> {
        let mut r = Reader::new(body);
        let mut dir = Dir {
            ty: r.u16("stat type")?,
            dev: r.u32("stat dev")?,
            qid: r.qid("stat qid")?,
            mode: r.u32("stat mode")?,
            atime: r.u32("stat atime")?,
            mtime: r.u32("stat mtime")?,
            length: r.u64("stat length")?,
            name: r.str("stat name")?,
            uid: r.str("stat uid")?,
            gid: r.str("stat gid")?,
            muid: r.str("stat muid")?,
            ..Dir::default()
        };
        if dialect == Dialect::V9P2000U {
            dir.extension = r.str("stat extension")?;
            dir.n_uid = r.u32("stat n_uid")?;
            dir.n_gid = r.u32("stat n_gid")?;
            dir.n_muid = r.u32("stat n_muid")?;
        }
        if r.remaining() != 0 {
            return Err(Error::StatSizeMismatch {
                declared: body.len(),
                actual: r.position(),
            });
        }
        Ok(dir)
    }
}

/// The entries in the data of an `Rread` of a directory (`read(5)`: "an integral number of
/// directory entries"). Yields an error, then stops, at the first malformed entry.
#[derive(Debug, Clone)]
pub struct DirEntries<'a> {
    data: &'a [u8],
    dialect: Dialect,
    failed: bool,
}

impl<'a> DirEntries<'a> {
    /// Iterates over the entries packed in `data`.
    pub fn new(data: &'a [u8], dialect: Dialect) -> Self {
        DirEntries {
            data,
            dialect,
            failed: false,
        }
    }
}

impl<'a> Iterator for DirEntries<'a> {
    type Item = Result<Dir<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        match Dir::decode(self.data, self.dialect) {
            Ok((dir, used)) => {
                self.data = self.data.get(used..).unwrap_or(&[]);
                Some(Ok(dir))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
