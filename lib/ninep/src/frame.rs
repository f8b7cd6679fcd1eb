//! Splitting a byte stream into frames (`intro(5)`: every message starts with its `size[4]`,
//! which counts itself), with the msize limit of `version(5)` applied before a byte of the body
//! is buffered.

use alloc::vec::Vec;

use crate::Error;
use crate::fcall::HEADER_LEN;

/// The length of the frame at the start of `buf`: `Ok(None)` until the 4-byte size is there;
/// an error if the size is below the 7-byte minimum or above `msize`.
pub fn frame_len(buf: &[u8], msize: u32) -> Result<Option<usize>, Error> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if (size as usize) < HEADER_LEN {
        return Err(Error::FrameTooShort { size });
    }
    if size > msize {
        return Err(Error::FrameTooBig {
            size: u64::from(size),
            msize,
        });
    }
    Ok(Some(size as usize))
}

/// Reassembles frames from chunks of a byte stream (a pipe, a TCP connection) for a kernel
/// that receives bytes in pieces: push what arrives, then take whole frames out.
#[derive(Debug, Clone)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    msize: u32,
}

impl FrameReader {
    /// A reader that refuses frames larger than `msize`.
    pub fn new(msize: u32) -> Self {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            msize,
        }
    }

    /// Changes the limit, as after `Tversion`/`Rversion`.
    pub fn set_msize(&mut self, msize: u32) {
        self.msize = msize;
    }

    /// The limit in force.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// How many more bytes the next frame needs before [`FrameReader::next_frame`] can return
    /// it (at least 1 while even the size prefix is incomplete); 0 if a frame is ready.
    pub fn wanted(&self) -> Result<usize, Error> {
        let avail = &self.buf[self.start..];
        Ok(match frame_len(avail, self.msize)? {
            None => 4 - avail.len(),
            Some(n) => n.saturating_sub(avail.len()),
        })
    }

    /// The next whole frame, if one has arrived. An error (a size below the minimum or above
    /// msize) means the stream cannot be resynchronised: close the connection.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let avail = &self.buf[self.start..];
        match frame_len(avail, self.msize)? {
            Some(n) if avail.len() >= n => {
                let s = self.start;
                self.start += n;
                Ok(self.buf.get(s..s + n))
            }
            _ => Ok(None),
        }
    }
}
