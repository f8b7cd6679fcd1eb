//! A small blocking 9P2000 client over any `Read + Write` stream, for tests and host tools
//! (`version(5)`, `attach(5)`, `walk(5)`, `open(5)`, `read(5)`, `stat(5)`, `clunk(5)`,
//! `remove(5)`, `flush(5)`).
//!
//! One request is in flight at a time through the typed methods; [`Client::send`] and
//! [`Client::recv`] let a test put several on the wire at once. Reads and writes are split at
//! `msize - IOHDRSZ`; walks longer than `MAXWELEM` are split into several `Twalk`s.

extern crate std;

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use std::io::{self, Read, Write};

use crate::io::{read_frame, write_fcall};
use crate::{
    Dialect, Dir, DirEntries, Fcall, IOHDRSZ, MAXWELEM, MIN_MSIZE, Msg, MsgType, NOFID, NONUNAME,
    NOTAG, OwnedFcall, Qid,
};

/// What went wrong in a client call.
#[derive(Debug)]
pub enum Error {
    /// The transport failed (or closed).
    Io(io::Error),
    /// The server sent a malformed frame.
    Protocol(crate::Error),
    /// The server answered `Rerror`.
    Remote {
        /// The server's error string.
        ename: String,
        /// The 9P2000.u errno, if the server sent one.
        errno: Option<u32>,
    },
    /// The server answered with the wrong message type or tag.
    Unexpected {
        /// What the client waited for.
        expected: &'static str,
        /// What came.
        got: MsgType,
        /// Its tag.
        tag: u16,
    },
    /// The server does not speak a version we do, or chose an unusable msize.
    Version(String),
    /// A walk stopped before its last element (`walk(5)`): that element does not exist.
    WalkStopped {
        /// The element that could not be walked to.
        name: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "9P transport: {e}"),
            Error::Protocol(e) => write!(f, "{e}"),
            Error::Remote { ename, .. } => write!(f, "{ename}"),
            Error::Unexpected { expected, got, tag } => {
                write!(
                    f,
                    "9P: expected {expected}, server sent {got:?} (tag {tag})"
                )
            }
            Error::Version(s) => write!(f, "9P version negotiation failed: {s}"),
            Error::WalkStopped { name } => write!(f, "'{name}' file does not exist"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<crate::Error>())
        {
            Some(p) => Error::Protocol(*p),
            None => Error::Io(e),
        }
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Protocol(e)
    }
}

/// A result of a client call.
pub type Result<T> = core::result::Result<T, Error>;

/// A blocking 9P2000 client on one connection.
#[derive(Debug)]
pub struct Client<T> {
    stream: T,
    msize: u32,
    dialect: Dialect,
    next_tag: u16,
    next_fid: u32,
    free_fids: Vec<u32>,
    rbuf: Vec<u8>,
}

impl<T: Read + Write> Client<T> {
    /// Negotiates plain 9P2000 with at most `msize` bytes per message.
    pub fn connect(stream: T, msize: u32) -> Result<Self> {
        Self::connect_dialect(stream, msize, Dialect::V9P2000)
    }

    /// Negotiates `dialect` (the server may answer plain 9P2000 instead).
    pub fn connect_dialect(stream: T, msize: u32, dialect: Dialect) -> Result<Self> {
        let mut c = Client {
            stream,
            msize,
            dialect,
            next_tag: 0,
            next_fid: 0,
            free_fids: Vec::new(),
            rbuf: Vec::new(),
        };
        c.send(
            NOTAG,
            Msg::Tversion {
                msize,
                version: dialect.version_string().into(),
            },
        )?;
        let reply = c.recv()?;
        let Msg::Rversion {
            msize: server_msize,
            version,
        } = reply.msg
        else {
            return Err(unexpected("Rversion", reply));
        };
        c.dialect = Dialect::from_version_string(&version)
            .ok_or_else(|| Error::Version(alloc::format!("server speaks {version:?}")))?;
        if server_msize > msize || server_msize < MIN_MSIZE {
            return Err(Error::Version(alloc::format!(
                "server chose msize {server_msize} (asked for {msize}, minimum {MIN_MSIZE})"
            )));
        }
        c.msize = server_msize;
        Ok(c)
    }

    /// The negotiated message size.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// The negotiated dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The most data one `Tread` or `Twrite` carries.
    pub fn iounit(&self) -> u32 {
        self.msize - IOHDRSZ
    }

    /// The transport, for tests that want to misbehave on it.
    pub fn stream_mut(&mut self) -> &mut T {
        &mut self.stream
    }

    /// Sends one message without waiting for the reply.
    pub fn send(&mut self, tag: u16, msg: Msg<'_>) -> Result<()> {
        write_fcall(
            &mut self.stream,
            &Fcall::new(tag, msg),
            self.dialect,
            self.msize,
        )?;
        Ok(())
    }

    /// Receives the next reply, whatever its tag.
    pub fn recv(&mut self) -> Result<OwnedFcall> {
        if !read_frame(&mut self.stream, self.msize, &mut self.rbuf)? {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "9P server closed the connection",
            )));
        }
        Ok(Fcall::decode(&self.rbuf, self.dialect)?.into_owned())
    }

    /// A tag for a new request (never `NOTAG`).
    pub fn alloc_tag(&mut self) -> u16 {
        let t = self.next_tag;
        self.next_tag = if t >= NOTAG - 1 { 0 } else { t + 1 };
        t
    }

    /// A fid not in use on this connection.
    pub fn alloc_fid(&mut self) -> u32 {
        self.free_fids.pop().unwrap_or_else(|| {
            self.next_fid += 1;
            self.next_fid
        })
    }

    fn release_fid(&mut self, fid: u32) {
        self.free_fids.push(fid);
    }

    /// Sends `msg`, waits for its reply, and turns `Rerror` into [`Error::Remote`].
    pub fn rpc(&mut self, msg: Msg<'_>) -> Result<Msg<'static>> {
        let tag = self.alloc_tag();
        self.send(tag, msg)?;
        let reply = self.recv()?;
        if reply.tag != tag {
            return Err(unexpected("a reply to our tag", reply));
        }
        match reply.msg {
            Msg::Rerror { ename, errno } => Err(Error::Remote {
                ename: ename.into_owned(),
                errno,
            }),
            msg => Ok(msg),
        }
    }

    /// Attaches a new fid to the root of the tree `aname` as user `uname`, without
    /// authentication.
    pub fn attach(&mut self, uname: &str, aname: &str) -> Result<(u32, Qid)> {
        let fid = self.alloc_fid();
        match self.rpc(Msg::Tattach {
            fid,
            afid: NOFID,
            uname: uname.into(),
            aname: aname.into(),
            n_uname: NONUNAME,
        }) {
            Ok(Msg::Rattach { qid }) => Ok((fid, qid)),
            other => {
                self.release_fid(fid);
                Err(expect_err("Rattach", other))
            }
        }
    }

    /// Walks from `fid` along `names` to a new fid; returns it and the qid of the last element
    /// (of `fid` itself for an empty walk, which clones it).
    pub fn walk(&mut self, fid: u32, names: &[&str]) -> Result<(u32, Option<Qid>)> {
        let newfid = self.alloc_fid();
        let mut from = fid;
        let mut last = None;
        let mut chunks: Vec<&[&str]> = names.chunks(MAXWELEM).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let wnames = chunk.iter().map(|s| Cow::Borrowed(*s)).collect();
            let result = self.rpc(Msg::Twalk {
                fid: from,
                newfid,
                wnames,
            });
            let failure = match result {
                Ok(Msg::Rwalk { wqids }) if wqids.len() == chunk.len() => {
                    last = wqids.last().copied().or(last);
                    from = newfid;
                    continue;
                }
                Ok(Msg::Rwalk { wqids }) => Error::WalkStopped {
                    name: chunk.get(wqids.len()).unwrap_or(&"").to_string(),
                },
                other => expect_err("Rwalk", other),
            };
            // newfid exists on the server only if an earlier chunk succeeded.
            if from == newfid {
                let _ = self.clunk(newfid);
            } else {
                self.release_fid(newfid);
            }
            return Err(failure);
        }
        Ok((newfid, last))
    }

    /// Walks along a slash-separated path (empty elements are skipped).
    pub fn walk_path(&mut self, fid: u32, path: &str) -> Result<(u32, Option<Qid>)> {
        let names: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.walk(fid, &names)
    }

    /// Opens `fid` with an `O*` mode; returns the qid and iounit.
    pub fn open(&mut self, fid: u32, mode: u8) -> Result<(Qid, u32)> {
        match self.rpc(Msg::Topen { fid, mode }) {
            Ok(Msg::Ropen { qid, iounit }) => Ok((qid, iounit)),
            other => Err(expect_err("Ropen", other)),
        }
    }

    /// Creates `name` in the directory `fid` and opens it; `fid` then names the new file.
    pub fn create(&mut self, fid: u32, name: &str, perm: u32, mode: u8) -> Result<(Qid, u32)> {
        match self.rpc(Msg::Tcreate {
            fid,
            name: name.into(),
            perm,
            mode,
            extension: "".into(),
        }) {
            Ok(Msg::Rcreate { qid, iounit }) => Ok((qid, iounit)),
            other => Err(expect_err("Rcreate", other)),
        }
    }

    /// One `Tread` of at most `count` bytes (capped at the iounit).
    pub fn read(&mut self, fid: u32, offset: u64, count: u32) -> Result<Vec<u8>> {
        let count = count.min(self.iounit());
        match self.rpc(Msg::Tread { fid, offset, count }) {
            Ok(Msg::Rread { data }) if data.len() <= count as usize => Ok(data.into_owned()),
            Ok(Msg::Rread { data }) => Err(Error::Version(alloc::format!(
                "server returned {} bytes for a read of {count}",
                data.len()
            ))),
            other => Err(expect_err("Rread", other)),
        }
    }

    /// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
    pub fn read_at(&mut self, fid: u32, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(self.iounit() as usize) as u32;
            let data = self.read(fid, offset + done as u64, want)?;
            if data.is_empty() {
                break;
            }
            buf[done..done + data.len()].copy_from_slice(&data);
            done += data.len();
        }
        Ok(done)
    }

    /// Reads from offset 0 to the end of the file.
    pub fn read_all(&mut self, fid: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let data = self.read(fid, out.len() as u64, self.iounit())?;
            if data.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&data);
        }
    }

    /// Writes all of `data` at `offset`, in iounit-sized pieces; returns the bytes written
    /// (fewer only if the server wrote short).
    pub fn write(&mut self, fid: u32, offset: u64, data: &[u8]) -> Result<usize> {
        let mut done = 0;
        loop {
            let n = (data.len() - done).min(self.iounit() as usize);
            let piece = &data[done..done + n];
            let count = match self.rpc(Msg::Twrite {
                fid,
                offset: offset + done as u64,
                data: Cow::Borrowed(piece),
            }) {
                Ok(Msg::Rwrite { count }) => count as usize,
                other => return Err(expect_err("Rwrite", other)),
            };
            done += count.min(n);
            if count < n || done == data.len() {
                return Ok(done);
            }
        }
    }

    /// Reads a whole directory opened on `fid`.
    pub fn read_dir(&mut self, fid: u32) -> Result<Vec<Dir<'static>>> {
        let mut entries = Vec::new();
        let mut offset = 0u64;
        loop {
            let data = self.read(fid, offset, self.iounit())?;
            if data.is_empty() {
                return Ok(entries);
            }
            offset += data.len() as u64;
            for d in DirEntries::new(&data, self.dialect) {
                entries.push(d?.into_owned());
            }
        }
    }

    /// The directory entry of `fid`.
    pub fn stat(&mut self, fid: u32) -> Result<Dir<'static>> {
        match self.rpc(Msg::Tstat { fid }) {
            Ok(Msg::Rstat { stat }) => Ok(stat),
            other => Err(expect_err("Rstat", other)),
        }
    }

    /// Changes the fields of `stat` that are not "don't touch" (start from
    /// [`Dir::dont_touch`]).
    pub fn wstat(&mut self, fid: u32, stat: &Dir<'_>) -> Result<()> {
        match self.rpc(Msg::Twstat {
            fid,
            stat: stat.clone(),
        }) {
            Ok(Msg::Rwstat) => Ok(()),
            other => Err(expect_err("Rwstat", other)),
        }
    }

    /// Forgets `fid`.
    pub fn clunk(&mut self, fid: u32) -> Result<()> {
        let result = self.rpc(Msg::Tclunk { fid });
        // clunk(5): the fid is gone even if the server reports an error.
        self.release_fid(fid);
        match result {
            Ok(Msg::Rclunk) => Ok(()),
            other => Err(expect_err("Rclunk", other)),
        }
    }

    /// Removes the file `fid` names; the fid is clunked whatever the outcome (`remove(5)`).
    pub fn remove(&mut self, fid: u32) -> Result<()> {
        let result = self.rpc(Msg::Tremove { fid });
        self.release_fid(fid);
        match result {
            Ok(Msg::Rremove) => Ok(()),
            other => Err(expect_err("Rremove", other)),
        }
    }

    /// Gives back the transport.
    pub fn into_inner(self) -> T {
        self.stream
    }
}

fn unexpected(expected: &'static str, reply: OwnedFcall) -> Error {
    match reply.msg {
        Msg::Rerror { ename, errno } => Error::Remote {
            ename: ename.into_owned(),
            errno,
        },
        msg => Error::Unexpected {
            expected,
            got: msg.msg_type(),
            tag: reply.tag,
        },
    }
}

fn expect_err(expected: &'static str, r: Result<Msg<'static>>) -> Error {
    match r {
        Err(e) => e,
        Ok(msg) => Error::Unexpected {
            expected,
            got: msg.msg_type(),
            tag: 0,
        },
    }
}
