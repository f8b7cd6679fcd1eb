//! The qid (`intro(5)`): the server's unique identification of a file.

use crate::consts::{QTAPPEND, QTAUTH, QTDIR, QTEXCL, QTMOUNT, QTTMP};

/// A qid: `type[1] version[4] path[8]`, 13 bytes on the wire.
///
/// Two files are the same file if and only if their qids' `path`s (and servers) are equal; the
/// `version` changes when the file is modified; `ty` holds the `QT*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Qid {
    /// `QT*` bits, the high byte of the file's mode.
    pub ty: u8,
    /// Version number for the given path, usually bumped on each modification.
    pub version: u32,
    /// The server's unique identification of the file.
    pub path: u64,
}

impl Qid {
    /// The size of a qid on the wire.
    pub const LEN: usize = 13;

    /// Whether the qid names a directory.
    pub fn is_dir(&self) -> bool {
        self.ty & QTDIR != 0
    }

    /// The qid type bits that correspond to the `DM*` bits of a mode (`stat(5)`: "the high 8 bits
    /// of the file's mode word").
    pub fn type_from_mode(mode: u32) -> u8 {
        let high = (mode >> 24) as u8;
        high & (QTDIR | QTAPPEND | QTEXCL | QTMOUNT | QTAUTH | QTTMP | crate::consts::QTSYMLINK)
    }
}
