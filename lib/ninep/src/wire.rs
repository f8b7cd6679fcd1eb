//! The primitive wire types of `intro(5)`: little-endian integers, strings as `len[2]` + UTF-8
//! bytes, qids as 13 bytes. A [`Reader`] never reads past the slice it was given; a [`Sink`]
//! either counts bytes or writes them into a caller's buffer.

use alloc::borrow::Cow;

use crate::{Error, Qid};

/// A cursor over one frame (or one stat) that fails instead of reading out of bounds.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated { field })?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(Error::Truncated { field })?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Error> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn str(&mut self, field: &'static str) -> Result<Cow<'a, str>, Error> {
        let len = self.u16(field)? as usize;
        let bytes = self.take(len, field)?;
        core::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| Error::InvalidUtf8 { field })
    }

    pub(crate) fn qid(&mut self, field: &'static str) -> Result<Qid, Error> {
        Ok(Qid {
            ty: self.u8(field)?,
            version: self.u32(field)?,
            path: self.u64(field)?,
        })
    }
}

/// Where encoded bytes go: a [`Counter`] to size a message, a [`SliceSink`] to write it.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error>;

    fn u8(&mut self, v: u8) -> Result<(), Error> {
        self.put(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), Error> {
        self.put(&v.to_le_bytes())
    }

    fn str(&mut self, s: &str, field: &'static str) -> Result<(), Error> {
        let len = u16::try_from(s.len()).map_err(|_| Error::StringTooLong {
            field,
            len: s.len(),
        })?;
        self.u16(len)?;
        self.put(s.as_bytes())
    }

    fn qid(&mut self, q: &Qid) -> Result<(), Error> {
        self.u8(q.ty)?;
        self.u32(q.version)?;
        self.u64(q.path)
    }
}

/// Counts the bytes an encoding would take.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(())
    }
}

/// Writes into a caller's buffer, failing (not panicking) if it is too small.
pub(crate) struct SliceSink<'b> {
    pub(crate) buf: &'b mut [u8],
    pub(crate) pos: usize,
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let have = self.buf.len();
        let end = self.pos.saturating_add(bytes.len());
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall { need: end, have })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}
