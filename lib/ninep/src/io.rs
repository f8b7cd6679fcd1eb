//! Frames on `std::io` streams: read exactly one frame (checked against msize before its body is
//! read) and write one message. Used by [`crate::client`] and by the `ninepd` server.

extern crate std;

use alloc::vec::Vec;
use std::io::{self, Read, Write};

use crate::{Dialect, Fcall, frame_len};

/// Reads one frame into `buf` (replacing its contents). `Ok(false)` on a clean end of stream
/// before the first byte; an `InvalidData` error for a size below the minimum or above `msize`;
/// `UnexpectedEof` if the stream ends inside a frame.
pub fn read_frame<R: Read + ?Sized>(r: &mut R, msize: u32, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "9P: connection closed inside a frame's size",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = frame_len(&prefix, msize)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        .unwrap_or(4);
    buf.clear();
    buf.extend_from_slice(&prefix);
    buf.resize(len, 0);
    r.read_exact(&mut buf[4..]).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "9P: connection closed inside a frame",
            )
        } else {
            e
        }
    })?;
    Ok(true)
}

/// Encodes `fcall` (refusing it if it exceeds `msize`) and writes it with one `write_all`.
pub fn write_fcall<W: Write + ?Sized>(
    w: &mut W,
    fcall: &Fcall<'_>,
    dialect: Dialect,
    msize: u32,
) -> io::Result<()> {
    let frame = fcall
        .to_vec(dialect, msize)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    w.write_all(&frame)?;
    w.flush()
}
