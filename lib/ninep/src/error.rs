//! Errors of the codec: every malformed frame or unencodable message becomes one of these values,
//! never a panic. Each says what was wrong in words a user can act on.

use core::fmt;

/// Why a frame could not be decoded or a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The frame ends in the middle of a field.
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The size prefix is below the 7-byte minimum (size, type, tag).
    FrameTooShort {
        /// The size the frame declared.
        size: u32,
    },
    /// The size prefix exceeds the negotiated msize.
    FrameTooBig {
        /// The size the frame declared (or the size of the encoded message).
        size: u64,
        /// The limit in force.
        msize: u32,
    },
    /// The size prefix disagrees with the number of bytes handed to the decoder.
    SizeMismatch {
        /// The size the frame declared.
        declared: u32,
        /// The bytes actually present.
        actual: usize,
    },
    /// The type byte names no 9P2000 message (or a `Terror`, which is illegal).
    UnknownType(u8),
    /// Bytes are left over after the last field of the message.
    TrailingBytes {
        /// The message type.
        msg_type: u8,
        /// How many bytes are left over.
        count: usize,
    },
    /// A string field is not UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A `Twalk` names more than `MAXWELEM` elements, or an `Rwalk` carries more qids.
    TooManyWalkElements(usize),
    /// A stat's size field disagrees with the bytes around it.
    StatSizeMismatch {
        /// The size the stat (or its enclosing count) declared.
        declared: usize,
        /// The size the fields actually take.
        actual: usize,
    },
    /// A string is longer than the 65535 bytes its length prefix can express.
    StringTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// Read or write data longer than a 32-bit count can express.
    DataTooLong(usize),
    /// An encoded stat longer than its 16-bit size can express.
    StatTooLong(usize),
    /// The caller's buffer cannot hold the encoded message.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { field } => {
                write!(f, "9P: malformed message: it ends inside the {field} field")
            }
            Error::FrameTooShort { size } => {
                write!(
                    f,
                    "9P: malformed frame: size {size} is below the 7-byte minimum"
                )
            }
            Error::FrameTooBig { size, msize } => {
                write!(f, "9P: message of {size} bytes exceeds msize {msize}")
            }
            Error::SizeMismatch { declared, actual } => write!(
                f,
                "9P: malformed frame: size field says {declared} bytes but {actual} are present"
            ),
            Error::UnknownType(t) => write!(f, "9P: unknown message type {t}"),
            Error::TrailingBytes { msg_type, count } => write!(
                f,
                "9P: malformed message (type {msg_type}): {count} unexpected bytes after its last field"
            ),
            Error::InvalidUtf8 { field } => {
                write!(f, "9P: malformed message: the {field} string is not UTF-8")
            }
            Error::TooManyWalkElements(n) => write!(
                f,
                "9P: walk of {n} elements exceeds MAXWELEM ({})",
                crate::MAXWELEM
            ),
            Error::StatSizeMismatch { declared, actual } => write!(
                f,
                "9P: malformed stat: size says {declared} bytes but its fields take {actual}"
            ),
            Error::StringTooLong { field, len } => write!(
                f,
                "9P: the {field} string is {len} bytes, more than the 65535 a 9P string can hold"
            ),
            Error::DataTooLong(len) => {
                write!(f, "9P: {len} bytes of data do not fit in one message")
            }
            Error::StatTooLong(len) => {
                write!(
                    f,
                    "9P: a stat of {len} bytes does not fit its 16-bit size field"
                )
            }
            Error::BufferTooSmall { need, have } => write!(
                f,
                "9P: the message needs {need} bytes but the buffer has {have}"
            ),
        }
    }
}

impl core::error::Error for Error {}
