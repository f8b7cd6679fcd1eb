//! 9P2000, the Plan 9 file protocol (`intro(5)` and the section-5 pages it lists), as a codec
//! that a kernel can use: no `std`, messages encoded into a caller's buffer or `Vec`, decoded from
//! a byte slice into messages that borrow from it ([`Fcall`], [`Msg`]) or own their data
//! ([`Fcall::into_owned`]), directory entries ([`Dir`], `stat(5)`), the protocol's constants, and
//! a frame splitter with msize checks ([`frame_len`], [`FrameReader`]). 9P2000.u is an option
//! ([`Dialect`]).
//!
//! Strictness: a frame whose size disagrees with its bytes, a string or count that runs past the
//! frame, a walk of more than `MAXWELEM` elements, a stat whose size disagrees with its fields, or
//! bytes after the last field are [`Error`]s, never panics or reads out of bounds. The one
//! tolerated irregularity, an errno after an `Rerror` string, is described in [`fcall`].
//!
//! With the `std` feature: [`io`] reads and writes frames on `Read`/`Write` streams, and
//! [`client::Client`] is a small blocking client for tests and host tools.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

mod consts;
pub mod dir;
mod error;
pub mod fcall;
mod frame;
mod qid;
mod wire;

#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod io;

pub use consts::*;
pub use dir::{Dir, DirEntries};
pub use error::Error;
pub use fcall::{
    Dialect, Fcall, HEADER_LEN, Msg, MsgType, OwnedFcall, RREAD_HEADER_LEN, TWRITE_HEADER_LEN,
    put_rread_header, put_twrite_header,
};
pub use frame::{FrameReader, frame_len};
pub use qid::Qid;
