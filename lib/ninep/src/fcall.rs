//! The 9P2000 messages (`intro(5)` and the pages it lists: `version(5)`, `attach(5)`,
//! `error(5)`, `flush(5)`, `walk(5)`, `open(5)`, `read(5)`, `clunk(5)`, `remove(5)`, `stat(5)`),
//! and their encoding: `size[4] type[1] tag[2]` followed by the message's fields.
//!
//! Decoding checks every length against the bytes present, so a malformed frame is an
//! [`Error`], never a panic or a read out of bounds; it borrows strings and data from the frame
//! (see [`Fcall::into_owned`] to keep them). Trailing bytes after the last field are an error,
//! with one exception, decided for interoperability: in plain 9P2000 an `Rerror` may carry exactly
//! four more bytes, which are a 9P2000.u `errno` sent by servers that mix the dialects (aio9p's
//! examples do). They are kept in [`Msg::Rerror`]'s `errno` rather than making the server's error
//! string unreadable; any other count of trailing bytes is still malformed.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::consts::{MAXWELEM, NONUNAME, VERSION_9P2000, VERSION_9P2000_U};
use crate::wire::{Counter, Reader, Sink, SliceSink};
use crate::{Dir, Error, Qid};

/// Which version of the protocol frames are in: changes `Tauth`, `Tattach`, `Rerror`,
/// `Tcreate` and `Dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// Plain 9P2000.
    #[default]
    V9P2000,
    /// 9P2000.u, the Unix extension (numeric ids, errno, symlink and device extensions).
    V9P2000U,
}

impl Dialect {
    /// The version string of the dialect, as sent in `Tversion`.
    pub fn version_string(self) -> &'static str {
        match self {
            Dialect::V9P2000 => VERSION_9P2000,
            Dialect::V9P2000U => VERSION_9P2000_U,
        }
    }

    /// The dialect a version string names, if any (`version(5)`: anything after a period in a
    /// string we do not know is ignored, so "9P2000.x" is plain 9P2000).
    pub fn from_version_string(s: &str) -> Option<Dialect> {
        if s == VERSION_9P2000_U {
            return Some(Dialect::V9P2000U);
        }
        let base = s.split('.').next().unwrap_or(s);
        (base == VERSION_9P2000).then_some(Dialect::V9P2000)
    }
}

/// The type byte of each message (`<fcall.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum MsgType {
    Tversion = 100,
    Rversion = 101,
    Tauth = 102,
    Rauth = 103,
    Tattach = 104,
    Rattach = 105,
    Rerror = 107,
    Tflush = 108,
    Rflush = 109,
    Twalk = 110,
    Rwalk = 111,
    Topen = 112,
    Ropen = 113,
    Tcreate = 114,
    Rcreate = 115,
    Tread = 116,
    Rread = 117,
    Twrite = 118,
    Rwrite = 119,
    Tclunk = 120,
    Rclunk = 121,
    Tremove = 122,
    Rremove = 123,
    Tstat = 124,
    Rstat = 125,
    Twstat = 126,
    Rwstat = 127,
}

impl TryFrom<u8> for MsgType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self, Error> {
        use MsgType::*;
        Ok(match v {
            100 => Tversion,
            101 => Rversion,
            102 => Tauth,
            103 => Rauth,
            104 => Tattach,
            105 => Rattach,
            107 => Rerror,
            108 => Tflush,
            109 => Rflush,
            110 => Twalk,
            111 => Rwalk,
            112 => Topen,
            113 => Ropen,
            114 => Tcreate,
            115 => Rcreate,
            116 => Tread,
            117 => Rread,
            118 => Twrite,
            119 => Rwrite,
            120 => Tclunk,
            121 => Rclunk,
            122 => Tremove,
            123 => Rremove,
            124 => Tstat,
            125 => Rstat,
            126 => Twstat,
            127 => Rwstat,
            other => return Err(Error::UnknownType(other)),
        })
    }
}

impl MsgType {
    /// Whether this is a request (T-message) rather than a reply.
    pub fn is_request(self) -> bool {
        (self as u8).is_multiple_of(2)
    }
}

/// The body of a message: one variant per message type, fields in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Msg<'a> {
    /// Negotiate the protocol version and message size (`version(5)`).
    Tversion { msize: u32, version: Cow<'a, str> },
    /// The server's msize (never above the client's) and version.
    Rversion { msize: u32, version: Cow<'a, str> },
    /// Open an authentication file (`attach(5)`); `n_uname` is 9P2000.u only.
    Tauth {
        afid: u32,
        uname: Cow<'a, str>,
        aname: Cow<'a, str>,
        n_uname: u32,
    },
    /// The qid of the authentication file.
    Rauth { aqid: Qid },
    /// Attach `fid` to the root of the file tree `aname`; `n_uname` is 9P2000.u only.
    Tattach {
        fid: u32,
        afid: u32,
        uname: Cow<'a, str>,
        aname: Cow<'a, str>,
        n_uname: u32,
    },
    /// The qid of the root.
    Rattach { qid: Qid },
    /// A failed request (`error(5)`); `errno` is 9P2000.u (see the module notes for 9P2000).
    Rerror {
        ename: Cow<'a, str>,
        errno: Option<u32>,
    },
    /// Abort the request tagged `oldtag` (`flush(5)`).
    Tflush { oldtag: u16 },
    /// The flush is done: no reply to `oldtag` will follow.
    Rflush,
    /// Walk `fid` along `wnames` (at most `MAXWELEM`) to `newfid` (`walk(5)`).
    Twalk {
        fid: u32,
        newfid: u32,
        wnames: Vec<Cow<'a, str>>,
    },
    /// The qids of the elements walked; fewer than asked means the walk stopped there.
    Rwalk { wqids: Vec<Qid> },
    /// Open `fid` with an `O*` mode (`open(5)`).
    Topen { fid: u32, mode: u8 },
    /// The opened file's qid and the largest I/O that is atomic (0: msize - IOHDRSZ).
    Ropen { qid: Qid, iounit: u32 },
    /// Create `name` in the directory `fid` and open it (`open(5)`); `extension` is 9P2000.u.
    Tcreate {
        fid: u32,
        name: Cow<'a, str>,
        perm: u32,
        mode: u8,
        extension: Cow<'a, str>,
    },
    /// The new file's qid and iounit.
    Rcreate { qid: Qid, iounit: u32 },
    /// Read up to `count` bytes at `offset` (`read(5)`).
    Tread { fid: u32, offset: u64, count: u32 },
    /// The bytes read; empty at end of file.
    Rread { data: Cow<'a, [u8]> },
    /// Write `data` at `offset`.
    Twrite {
        fid: u32,
        offset: u64,
        data: Cow<'a, [u8]>,
    },
    /// The bytes written.
    Rwrite { count: u32 },
    /// Forget `fid` (`clunk(5)`).
    Tclunk { fid: u32 },
    /// The fid is forgotten.
    Rclunk,
    /// Remove the file and clunk `fid`, even if the removal fails (`remove(5)`).
    Tremove { fid: u32 },
    /// The file is removed.
    Rremove,
    /// Ask for the file's directory entry (`stat(5)`).
    Tstat { fid: u32 },
    /// The entry.
    Rstat { stat: Dir<'a> },
    /// Change the fields of the entry that are not "don't touch".
    Twstat { fid: u32, stat: Dir<'a> },
    /// The entry is changed.
    Rwstat,
}

/// One message with its tag, as it travels in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fcall<'a> {
    /// Pairs a reply with its request; `NOTAG` for version.
    pub tag: u16,
    /// The message.
    pub msg: Msg<'a>,
}

/// A message that owns its strings and data.
pub type OwnedFcall = Fcall<'static>;

/// The size of the header every frame starts with: `size[4] type[1] tag[2]`.
pub const HEADER_LEN: usize = 7;
/// The size of an `Rread` frame without its data: header + `count[4]`.
pub const RREAD_HEADER_LEN: usize = HEADER_LEN + 4;

/// Writes the header of an `Rread` carrying `count` data bytes into `buf[..RREAD_HEADER_LEN]`,
/// so that a server can read file data straight into `buf[RREAD_HEADER_LEN..]` and send `buf`
/// without a copy.
pub fn put_rread_header(buf: &mut [u8], tag: u16, count: u32) -> Result<(), Error> {
    let size = (RREAD_HEADER_LEN as u64) + u64::from(count);
    let size = u32::try_from(size).map_err(|_| Error::DataTooLong(count as usize))?;
    let mut s = SliceSink { buf, pos: 0 };
    s.u32(size)?;
    s.u8(MsgType::Rread as u8)?;
    s.u16(tag)?;
    s.u32(count)
}

/// The size of a `Twrite` frame without its data: header + `fid[4] offset[8] count[4]`.
pub const TWRITE_HEADER_LEN: usize = HEADER_LEN + 16;

/// Writes the header of a `Twrite` of `count` data bytes into `buf[..TWRITE_HEADER_LEN]`, so a
/// client can place the data at `buf[TWRITE_HEADER_LEN..]` (from user memory, say) without an
/// intermediate copy.
pub fn put_twrite_header(
    buf: &mut [u8],
    tag: u16,
    fid: u32,
    offset: u64,
    count: u32,
) -> Result<(), Error> {
    let size = (TWRITE_HEADER_LEN as u64) + u64::from(count);
    let size = u32::try_from(size).map_err(|_| Error::DataTooLong(count as usize))?;
    let mut s = SliceSink { buf, pos: 0 };
    s.u32(size)?;
    s.u8(MsgType::Twrite as u8)?;
    s.u16(tag)?;
    s.u32(fid)?;
    s.u64(offset)?;
    s.u32(count)
}

impl<'a> Msg<'a> {
    /// The message's type byte.
    pub fn msg_type(&self) -> MsgType {
        use MsgType as T;
        match self {
            Msg::Tversion { .. } => T::Tversion,
            Msg::Rversion { .. } => T::Rversion,
            Msg::Tauth { .. } => T::Tauth,
            Msg::Rauth { .. } => T::Rauth,
            Msg::Tattach { .. } => T::Tattach,
            Msg::Rattach { .. } => T::Rattach,
            Msg::Rerror { .. } => T::Rerror,
            Msg::Tflush { .. } => T::Tflush,
            Msg::Rflush => T::Rflush,
            Msg::Twalk { .. } => T::Twalk,
            Msg::Rwalk { .. } => T::Rwalk,
            Msg::Topen { .. } => T::Topen,
            Msg::Ropen { .. } => T::Ropen,
            Msg::Tcreate { .. } => T::Tcreate,
            Msg::Rcreate { .. } => T::Rcreate,
            Msg::Tread { .. } => T::Tread,
            Msg::Rread { .. } => T::Rread,
            Msg::Twrite { .. } => T::Twrite,
            Msg::Rwrite { .. } => T::Rwrite,
            Msg::Tclunk { .. } => T::Tclunk,
            Msg::Rclunk => T::Rclunk,
            Msg::Tremove { .. } => T::Tremove,
            Msg::Rremove => T::Rremove,
            Msg::Tstat { .. } => T::Tstat,
            Msg::Rstat { .. } => T::Rstat,
            Msg::Twstat { .. } => T::Twstat,
            Msg::Rwstat => T::Rwstat,
        }
    }

    /// An `Rerror` with the given message and no errno.
    pub fn error(ename: impl Into<Cow<'a, str>>) -> Self {
        Msg::Rerror {
            ename: ename.into(),
            errno: None,
        }
    }

    /// Copies borrowed strings and data so the message outlives its frame.
    pub fn into_owned(self) -> Msg<'static> {
        fn s(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        fn b(c: Cow<'_, [u8]>) -> Cow<'static, [u8]> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Msg::Tversion { msize, version } => Msg::Tversion {
                msize,
                version: s(version),
            },
            Msg::Rversion { msize, version } => Msg::Rversion {
                msize,
                version: s(version),
            },
            Msg::Tauth {
                afid,
                uname,
                aname,
                n_uname,
            } => Msg::Tauth {
                afid,
                uname: s(uname),
                aname: s(aname),
                n_uname,
            },
            Msg::Rauth { aqid } => Msg::Rauth { aqid },
            Msg::Tattach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            } => Msg::Tattach {
                fid,
                afid,
                uname: s(uname),
                aname: s(aname),
                n_uname,
            },
            Msg::Rattach { qid } => Msg::Rattach { qid },
            Msg::Rerror { ename, errno } => Msg::Rerror {
                ename: s(ename),
                errno,
            },
            Msg::Tflush { oldtag } => Msg::Tflush { oldtag },
            Msg::Rflush => Msg::Rflush,
            Msg::Twalk {
                fid,
                newfid,
                wnames,
            } => Msg::Twalk {
                fid,
                newfid,
                wnames: wnames.into_iter().map(s).collect(),
            },
            Msg::Rwalk { wqids } => Msg::Rwalk { wqids },
            Msg::Topen { fid, mode } => Msg::Topen { fid, mode },
            Msg::Ropen { qid, iounit } => Msg::Ropen { qid, iounit },
            Msg::Tcreate {
                fid,
                name,
                perm,
                mode,
                extension,
            } => Msg::Tcreate {
                fid,
                name: s(name),
                perm,
                mode,
                extension: s(extension),
            },
            Msg::Rcreate { qid, iounit } => Msg::Rcreate { qid, iounit },
            Msg::Tread { fid, offset, count } => Msg::Tread { fid, offset, count },
            Msg::Rread { data } => Msg::Rread { data: b(data) },
            Msg::Twrite { fid, offset, data } => Msg::Twrite {
                fid,
                offset,
                data: b(data),
            },
            Msg::Rwrite { count } => Msg::Rwrite { count },
            Msg::Tclunk { fid } => Msg::Tclunk { fid },
            Msg::Rclunk => Msg::Rclunk,
            Msg::Tremove { fid } => Msg::Tremove { fid },
            Msg::Rremove => Msg::Rremove,
            Msg::Tstat { fid } => Msg::Tstat { fid },
            Msg::Rstat { stat } => Msg::Rstat {
                stat: stat.into_owned(),
            },
            Msg::Twstat { fid, stat } => Msg::Twstat {
                fid,
                stat: stat.into_owned(),
            },
            Msg::Rwstat => Msg::Rwstat,
        }
    }

    fn encode_body<S: Sink>(&self, s: &mut S, d: Dialect) -> Result<(), Error> {
        let u = d == Dialect::V9P2000U;
        match self {
            Msg::Tversion { msize, version } | Msg::Rversion { msize, version } => {
                s.u32(*msize)?;
                s.str(version, "version")?;
            }
            Msg::Tauth {
                afid,
                uname,
                aname,
                n_uname,
            } => {
                s.u32(*afid)?;
                s.str(uname, "uname")?;
                s.str(aname, "aname")?;
                if u {
                    s.u32(*n_uname)?;
                }
            }
            Msg::Rauth { aqid } => s.qid(aqid)?,
            Msg::Tattach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            } => {
                s.u32(*fid)?;
                s.u32(*afid)?;
                s.str(uname, "uname")?;
                s.str(aname, "aname")?;
                if u {
                    s.u32(*n_uname)?;
                }
            }
            Msg::Rattach { qid } => s.qid(qid)?,
            Msg::Rerror { ename, errno } => {
                s.str(ename, "ename")?;
                if u {
                    s.u32(errno.unwrap_or(0))?;
                }
            }
            Msg::Tflush { oldtag } => s.u16(*oldtag)?,
            Msg::Rflush | Msg::Rclunk | Msg::Rremove | Msg::Rwstat => {}
            Msg::Twalk {
                fid,
                newfid,
                wnames,
            } => {
                if wnames.len() > MAXWELEM {
                    return Err(Error::TooManyWalkElements(wnames.len()));
                }
                s.u32(*fid)?;
                s.u32(*newfid)?;
                s.u16(wnames.len() as u16)?;
                for w in wnames {
                    s.str(w, "wname")?;
                }
            }
            Msg::Rwalk { wqids } => {
                if wqids.len() > MAXWELEM {
                    return Err(Error::TooManyWalkElements(wqids.len()));
                }
                s.u16(wqids.len() as u16)?;
                for q in wqids {
                    s.qid(q)?;
                }
            }
            Msg::Topen { fid, mode } => {
                s.u32(*fid)?;
                s.u8(*mode)?;
            }
            Msg::Ropen { qid, iounit } | Msg::Rcreate { qid, iounit } => {
                s.qid(qid)?;
                s.u32(*iounit)?;
            }
            Msg::Tcreate {
                fid,
                name,
                perm,
                mode,
                extension,
            } => {
                s.u32(*fid)?;
                s.str(name, "name")?;
                s.u32(*perm)?;
                s.u8(*mode)?;
                if u {
                    s.str(extension, "extension")?;
                }
            }
            Msg::Tread { fid, offset, count } => {
                s.u32(*fid)?;
                s.u64(*offset)?;
                s.u32(*count)?;
            }
            Msg::Rread { data } => {
                let n = u32::try_from(data.len()).map_err(|_| Error::DataTooLong(data.len()))?;
                s.u32(n)?;
                s.put(data)?;
            }
            Msg::Twrite { fid, offset, data } => {
                let n = u32::try_from(data.len()).map_err(|_| Error::DataTooLong(data.len()))?;
                s.u32(*fid)?;
                s.u64(*offset)?;
                s.u32(n)?;
                s.put(data)?;
            }
            Msg::Rwrite { count } => s.u32(*count)?,
            Msg::Tclunk { fid } | Msg::Tremove { fid } | Msg::Tstat { fid } => s.u32(*fid)?,
            Msg::Rstat { stat } => {
                let n = stat.encoded_len(d)?;
                s.u16(u16::try_from(n).map_err(|_| Error::StatTooLong(n))?)?;
                stat.encode_into(s, d)?;
            }
            Msg::Twstat { fid, stat } => {
                s.u32(*fid)?;
                let n = stat.encoded_len(d)?;
                s.u16(u16::try_from(n).map_err(|_| Error::StatTooLong(n))?)?;
                stat.encode_into(s, d)?;
            }
        }
        Ok(())
    }

    fn decode_body(t: MsgType, r: &mut Reader<'a>, d: Dialect) -> Result<Msg<'a>, Error> {
        let u = d == Dialect::V9P2000U;
        use MsgType as T;
        Ok(match t {
            T::Tversion => Msg::Tversion {
                msize: r.u32("msize")?,
                version: r.str("version")?,
            },
            T::Rversion => Msg::Rversion {
                msize: r.u32("msize")?,
                version: r.str("version")?,
            },
            T::Tauth => Msg::Tauth {
                afid: r.u32("afid")?,
                uname: r.str("uname")?,
                aname: r.str("aname")?,
                n_uname: if u { r.u32("n_uname")? } else { NONUNAME },
            },
            T::Rauth => Msg::Rauth {
                aqid: r.qid("aqid")?,
            },
            T::Tattach => Msg::Tattach {
                fid: r.u32("fid")?,
                afid: r.u32("afid")?,
                uname: r.str("uname")?,
                aname: r.str("aname")?,
                n_uname: if u { r.u32("n_uname")? } else { NONUNAME },
            },
            T::Rattach => Msg::Rattach { qid: r.qid("qid")? },
            T::Rerror => {
                let ename = r.str("ename")?;
                // 9P2000: tolerate exactly one trailing u32, a 9P2000.u errno (module notes).
                let errno = if u || r.remaining() == 4 {
                    Some(r.u32("errno")?)
                } else {
                    None
                };
                Msg::Rerror { ename, errno }
            }
            T::Tflush => Msg::Tflush {
                oldtag: r.u16("oldtag")?,
            },
            T::Rflush => Msg::Rflush,
            T::Twalk => {
                let fid = r.u32("fid")?;
                let newfid = r.u32("newfid")?;
                let n = r.u16("nwname")? as usize;
                if n > MAXWELEM {
                    return Err(Error::TooManyWalkElements(n));
                }
                let mut wnames = Vec::with_capacity(n);
                for _ in 0..n {
                    wnames.push(r.str("wname")?);
                }
                Msg::Twalk {
                    fid,
                    newfid,
                    wnames,
                }
            }
            T::Rwalk => {
                let n = r.u16("nwqid")? as usize;
                if n > MAXWELEM {
                    return Err(Error::TooManyWalkElements(n));
                }
                let mut wqids = Vec::with_capacity(n);
                for _ in 0..n {
                    wqids.push(r.qid("wqid")?);
                }
                Msg::Rwalk { wqids }
            }
            T::Topen => Msg::Topen {
                fid: r.u32("fid")?,
                mode: r.u8("mode")?,
            },
            T::Ropen => Msg::Ropen {
                qid: r.qid("qid")?,
                iounit: r.u32("iounit")?,
            },
            T::Tcreate => Msg::Tcreate {
                fid: r.u32("fid")?,
                name: r.str("name")?,
                perm: r.u32("perm")?,
                mode: r.u8("mode")?,
                extension: if u {
                    r.str("extension")?
                } else {
                    Cow::Borrowed("")
                },
            },
            T::Rcreate => Msg::Rcreate {
                qid: r.qid("qid")?,
                iounit: r.u32("iounit")?,
            },
            T::Tread => Msg::Tread {
                fid: r.u32("fid")?,
                offset: r.u64("offset")?,
                count: r.u32("count")?,
            },
            T::Rread => {
                let n = r.u32("count")? as usize;
                Msg::Rread {
                    data: Cow::Borrowed(r.take(n, "data")?),
                }
            }
            T::Twrite => {
                let fid = r.u32("fid")?;
                let offset = r.u64("offset")?;
                let n = r.u32("count")? as usize;
                Msg::Twrite {
                    fid,
                    offset,
                    data: Cow::Borrowed(r.take(n, "data")?),
                }
            }
            T::Rwrite => Msg::Rwrite {
                count: r.u32("count")?,
            },
            T::Tclunk => Msg::Tclunk { fid: r.u32("fid")? },
            T::Rclunk => Msg::Rclunk,
            T::Tremove => Msg::Tremove { fid: r.u32("fid")? },
            T::Rremove => Msg::Rremove,
            T::Tstat => Msg::Tstat { fid: r.u32("fid")? },
            T::Rstat => {
                let n = r.u16("stat count")? as usize;
                Msg::Rstat {
                    stat: Dir::decode_exact(r.take(n, "stat")?, d)?,
                }
            }
            T::Twstat => {
                let fid = r.u32("fid")?;
                let n = r.u16("stat count")? as usize;
                Msg::Twstat {
                    fid,
                    stat: Dir::decode_exact(r.take(n, "stat")?, d)?,
                }
            }
            T::Rwstat => Msg::Rwstat,
        })
    }
}

impl<'a> Fcall<'a> {
    /// A message with its tag.
    pub fn new(tag: u16, msg: Msg<'a>) -> Self {
        Fcall { tag, msg }
    }

    /// Decodes one whole frame, size prefix included. The size prefix must equal `frame.len()`;
    /// check it against msize first with [`crate::frame_len`].
    pub fn decode(frame: &'a [u8], dialect: Dialect) -> Result<Fcall<'a>, Error> {
        let mut r = Reader::new(frame);
        let size = r.u32("size")?;
        if (size as usize) < HEADER_LEN {
            return Err(Error::FrameTooShort { size });
        }
        if size as usize != frame.len() {
            return Err(Error::SizeMismatch {
                declared: size,
                actual: frame.len(),
            });
        }
        let type_byte = r.u8("type")?;
        let t = MsgType::try_from(type_byte)?;
        let tag = r.u16("tag")?;
        let msg = Msg::decode_body(t, &mut r, dialect)?;
        if r.remaining() != 0 {
            return Err(Error::TrailingBytes {
                msg_type: type_byte,
                count: r.remaining(),
            });
        }
        Ok(Fcall { tag, msg })
    }

    /// The size of the encoded frame, size prefix included.
    pub fn encoded_len(&self, dialect: Dialect) -> Result<usize, Error> {
        let mut c = Counter(HEADER_LEN);
        self.msg.encode_body(&mut c, dialect)?;
        if c.0 > u32::MAX as usize {
            return Err(Error::DataTooLong(c.0));
        }
        Ok(c.0)
    }

    /// Encodes the frame at the start of `buf`; returns its length.
    pub fn encode(&self, dialect: Dialect, buf: &mut [u8]) -> Result<usize, Error> {
        let need = self.encoded_len(dialect)?;
        let have = buf.len();
        let dst = buf
            .get_mut(..need)
            .ok_or(Error::BufferTooSmall { need, have })?;
        let mut s = SliceSink { buf: dst, pos: 0 };
        s.u32(need as u32)?;
        s.u8(self.msg.msg_type() as u8)?;
        s.u16(self.tag)?;
        self.msg.encode_body(&mut s, dialect)?;
        Ok(s.pos)
    }

    /// Appends the frame to `out`; returns its length. `out` is unchanged on error.
    pub fn encode_vec(&self, dialect: Dialect, out: &mut Vec<u8>) -> Result<usize, Error> {
        let need = self.encoded_len(dialect)?;
        let start = out.len();
        out.resize(start + need, 0);
        let result = self.encode(dialect, &mut out[start..]);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Encodes the frame into a new vector, checking it against `msize`.
    pub fn to_vec(&self, dialect: Dialect, msize: u32) -> Result<Vec<u8>, Error> {
        let need = self.encoded_len(dialect)?;
        if need > msize as usize {
            return Err(Error::FrameTooBig {
                size: need as u64,
                msize,
            });
        }
        let mut v = Vec::new();
        self.encode_vec(dialect, &mut v)?;
        Ok(v)
    }

    /// Copies borrowed strings and data so the message outlives its frame.
    pub fn into_owned(self) -> OwnedFcall {
        Fcall {
            tag: self.tag,
            msg: self.msg.into_owned(),
        }
    }
}
