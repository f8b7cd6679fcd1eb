//! `#mnt`: the 9P2000 client that makes a file server's tree part of a namespace (Plan 9
//! `port/devmnt.c`; the protocol is intro(5)).
//!
//! `mount(fd, old, ...)` speaks 9P over any byte-stream channel (a pipe, a `#srv` entry, a TCP
//! connection): one `Tversion` (msize at least 64 KiB unless asked for less, clamped to what the
//! server offers), then `Tattach`. Each channel of the mounted tree owns a fid. Requests from
//! any number of processes are in flight at once, matched by tag; a kernel thread per mount
//! reads every reply and hands it to its waiter. I/O is split into msize-sized pieces.
//!
//! A request interrupted by a note sends `Tflush` and waits a bounded time for the server to
//! answer it. Clunks are sent without waiting. A server that hangs up or sends a malformed
//! frame marks the mount dead: every later call fails at once with an error naming the mount
//! point, `unmount` still works, nothing waits forever.

use crate::arch::x86_64::context::Start;
use crate::error::{Error, KResult};
use crate::ns::chan::{Chan, Dev, new_devno};
use crate::proc::sched::{self, Thread};
use crate::proc::wait::{QLock, WaitQueue, Woken};
use crate::sync::IrqLock;
use abi::errors::{EINTR, ENOTEXIST, ETOOLONG};
use alloc::borrow::Cow;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use ninep::{Dialect, Dir, Fcall, FrameReader, IOHDRSZ, Msg, NOFID, NOTAG, OwnedFcall, Qid};

/// msize asked for when the mount does not say.
pub const DEFAULT_MSIZE: u32 = 64 * 1024 + IOHDRSZ;
/// The smallest msize a mount may ask for.
const MIN_MSIZE: u32 = 4096;
/// The largest msize the kernel uses.
const MAX_MSIZE: u32 = 1024 * 1024 + IOHDRSZ;
/// Treads one read keeps in flight (see [`MntDev::read`]).
const READ_AHEAD: usize = 4;
/// How long a flushed request waits for the server's Rflush.
const FLUSH_WAIT_NS: u64 = 2_000_000_000;

/// What a request's slot holds.
enum Slot {
    Waiting,
    Replied(OwnedFcall),
    /// Nobody waits (a clunk, or a request given up after a flush): drop the reply.
    Discard,
}

/// The connection to one server, shared by the mount's channels and its reader thread.
struct Conn {
    /// Names the mount in errors (the mount point).
    name: String,
    chan: Arc<Chan>,
    msize: u32,
    write: QLock,
    slots: IrqLock<BTreeMap<u16, Slot>>,
    replies: WaitQueue,
    free_tags: IrqLock<(u16, Vec<u16>)>,
    fids: IrqLock<(u32, BTreeSet<u32>)>,
    /// Why the mount no longer works.
    dead: IrqLock<Option<String>>,
    closing: AtomicBool,
    reader: IrqLock<Option<Arc<Thread>>>,
}

/// A mount: its channels hold it; when the last goes, the connection is shut down.
struct Mount {
    conn: Arc<Conn>,
    devno: u64,
    /// The path of the channel the server was reached by (`/srv/x`, `/net/tcp/3/data`).
    source: String,
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.conn.closing.store(true, Ordering::Release);
        self.conn.die("unmounted");
        if let Some(t) = self.conn.reader.lock().take() {
            t.killed.store(true, Ordering::Release);
            sched::wake(&t);
        }
        crate::ns::purge_instance("mnt", self.devno);
    }
}

/// One file of a mount: the fid naming it on the server.
struct MntFile {
    mount: Arc<Mount>,
    fid: u32,
    /// The largest atomic I/O for an open file (0 before open).
    iounit: u32,
    /// The fid is gone already (removed), so no clunk is owed.
    gone: AtomicBool,
}

impl Drop for MntFile {
    fn drop(&mut self) {
        if !self.gone.load(Ordering::Acquire) {
            self.mount.conn.clunk_async(self.fid);
        }
    }
}

/// The `#mnt` device.
pub struct MntDev;

/// The one instance.
pub static MNT: MntDev = MntDev;

fn file(c: &Chan) -> Arc<MntFile> {
    c.aux::<MntFile>().expect("#mnt channels carry their fid")
}

impl Conn {
    fn error(&self, why: &str) -> Error {
        alloc::format!("mount {}: {why}", self.name).into()
    }

    fn check_alive(&self) -> KResult<()> {
        match &*self.dead.lock() {
            Some(why) => Err(self.error(why)),
            None => Ok(()),
        }
    }

    /// Marks the mount dead and wakes every waiter.
    fn die(&self, why: &str) {
        {
            let mut dead = self.dead.lock();
            if dead.is_none() {
                *dead = Some(String::from(why));
                if !self.closing.load(Ordering::Acquire) {
                    log::warn!("mount {}: {why}", self.name);
                }
            }
        }
        self.replies.wake_all();
    }

    fn alloc_tag(&self) -> u16 {
        let mut t = self.free_tags.lock();
        t.1.pop().unwrap_or_else(|| {
            t.0 = t.0.wrapping_add(1) % NOTAG;
            t.0
        })
    }

    fn free_tag(&self, tag: u16) {
        self.free_tags.lock().1.push(tag);
    }

    fn alloc_fid(&self) -> u32 {
        let mut f = self.fids.lock();
        loop {
            f.0 = f.0.wrapping_add(1);
            if f.0 != NOFID && !f.1.contains(&f.0) {
                let fid = f.0;
                f.1.insert(fid);
                return fid;
            }
        }
    }

    fn free_fid(&self, fid: u32) {
        self.fids.lock().1.remove(&fid);
    }

    /// Encodes and writes one request. A note before the first byte is out ends it with
    /// `EINTR`; after that the frame is finished regardless (a partial frame would be read as
    /// the start of the next one), unless the writer is killed, which kills the mount.
    fn send(&self, fcall: &Fcall<'_>) -> KResult<()> {
        let frame = fcall
            .to_vec(Dialect::V9P2000, self.msize)
            .map_err(|_| Error::from(ETOOLONG))?;
        let _guard = self.write.lock()?;
        let mut held = None;
        let mut done = 0;
        while done < frame.len() {
            match self.chan.dev.write(&self.chan, &frame[done..], 0) {
                Ok(0) => {
                    self.die("server hung up");
                    return Err(self.error("server hung up"));
                }
                Ok(n) => {
                    done += n;
                    held.get_or_insert_with(sched::hold_notes);
                }
                Err(e) if e.is(EINTR) && done == 0 => return Err(e),
                Err(e) if e.is(EINTR) => {
                    self.die("a request was cut short by a kill");
                    return Err(e);
                }
                Err(e) => {
                    self.die("server hung up");
                    return Err(self.error(&alloc::format!("write: {e}")));
                }
            }
        }
        Ok(())
    }

    /// One request and its reply. An `Rerror` becomes an error with the server's text.
    fn rpc(&self, msg: Msg<'_>) -> KResult<Msg<'static>> {
        let tag = self.start(msg)?;
        self.finish(tag)
    }

    /// Sends a request; its reply is collected with [`Conn::finish`] (or given up with
    /// [`Conn::abandon`]), so a caller may have several in flight.
    fn start(&self, msg: Msg<'_>) -> KResult<u16> {
        self.check_alive()?;
        let tag = self.alloc_tag();
        log::trace!("mount {}: tag {tag} {msg:?}", self.name);
        self.slots.lock().insert(tag, Slot::Waiting);
        if let Err(e) = self.send(&Fcall { tag, msg }) {
            self.slots.lock().remove(&tag);
            self.free_tag(tag);
            return Err(e);
        }
        Ok(tag)
    }

    /// Gives up a request [`Conn::start`] sent without waiting for it: its reply, when it
    /// comes, is dropped (for requests with no effect to undo, such as reads ahead).
    fn abandon(&self, tag: u16) {
        let mut slots = self.slots.lock();
        if matches!(slots.get(&tag), Some(Slot::Replied(_))) {
            slots.remove(&tag);
            drop(slots);
            self.free_tag(tag);
        } else {
            slots.insert(tag, Slot::Discard);
        }
    }

    /// Waits for the reply to `tag`, sent by [`Conn::start`]. An `Rerror` becomes an error with
    /// the server's text; a note sends `Tflush`.
    fn finish(&self, tag: u16) -> KResult<Msg<'static>> {
        let mut reply = None;
        let waited = self.replies.wait_until(|| {
            let mut slots = self.slots.lock();
            if matches!(slots.get(&tag), Some(Slot::Replied(_))) {
                if let Some(Slot::Replied(r)) = slots.remove(&tag) {
                    reply = Some(r);
                }
                return true;
            }
            self.dead.lock().is_some()
        });
        if let Err(e) = waited {
            self.flush(tag);
            return Err(e.into());
        }
        let Some(reply) = reply else {
            self.slots.lock().remove(&tag);
            self.free_tag(tag);
            return Err(self.error(self.dead.lock().as_deref().unwrap_or("no reply")));
        };
        self.free_tag(tag);
        match reply.msg {
            Msg::Rerror { ename, .. } => Err(Error::from(ename.into_owned())),
            other => Ok(other),
        }
    }

    /// Asks the server to abandon request `oldtag` and waits, a bounded time, for it to agree
    /// (or for the original reply). The tag is reused only after that.
    fn flush(&self, oldtag: u16) {
        let tag = self.alloc_tag();
        self.slots.lock().insert(tag, Slot::Waiting);
        let sent = self
            .send(&Fcall {
                tag,
                msg: Msg::Tflush { oldtag },
            })
            .is_ok();
        let deadline = crate::time::uptime_ns() + FLUSH_WAIT_NS;
        let outcome = if sent {
            self.replies.wait_deadline_through_notes(deadline, || {
                let slots = self.slots.lock();
                matches!(slots.get(&tag), Some(Slot::Replied(_)))
                    || matches!(slots.get(&oldtag), Some(Slot::Replied(_)))
                    || self.dead.lock().is_some()
            })
        } else {
            Woken::TimedOut
        };
        let mut slots = self.slots.lock();
        // If the server never answered, the old tag stays reserved (its reply may still come),
        // and so does the flush's own tag: a late Rflush must not answer a later request.
        let old_answered = matches!(slots.get(&oldtag), Some(Slot::Replied(_)));
        let flushed = matches!(slots.get(&tag), Some(Slot::Replied(_)));
        if old_answered || flushed || outcome == Woken::Ready {
            slots.remove(&oldtag);
        } else {
            slots.insert(oldtag, Slot::Discard);
        }
        let flush_pending = sent && !flushed && self.dead.lock().is_none();
        if flush_pending {
            slots.insert(tag, Slot::Discard);
        } else {
            slots.remove(&tag);
        }
        let free_old = !matches!(slots.get(&oldtag), Some(Slot::Discard));
        drop(slots);
        if free_old {
            self.free_tag(oldtag);
        }
        if !flush_pending {
            self.free_tag(tag);
        }
    }

    /// Sends a clunk and does not wait for its reply. If it cannot be sent (a note, a dying
    /// connection), the fid stays reserved: the server may still hold it, and reusing its
    /// number would make a later walk fail with "fid in use".
    fn clunk_async(&self, fid: u32) {
        if self.dead.lock().is_some() {
            self.free_fid(fid);
            return;
        }
        let tag = self.alloc_tag();
        self.slots.lock().insert(tag, Slot::Discard);
        let sent = self
            .send(&Fcall {
                tag,
                msg: Msg::Tclunk { fid },
            })
            .is_ok();
        if sent {
            self.free_fid(fid);
        } else {
            self.slots.lock().remove(&tag);
            self.free_tag(tag);
        }
    }

    /// Gives back `newfid` after a walk to it failed with `e`: if the walk was interrupted, the
    /// server may have made the fid before the flush, so it is clunked; otherwise it never
    /// existed there.
    fn walk_failed(&self, newfid: u32, e: &Error) {
        if e.is(EINTR) {
            self.clunk_async(newfid);
        } else {
            self.free_fid(newfid);
        }
    }

    /// Hands a reply to its waiter.
    fn dispatch(&self, reply: OwnedFcall) {
        let tag = reply.tag;
        let mut slots = self.slots.lock();
        match slots.get(&tag) {
            Some(Slot::Waiting) => {
                slots.insert(tag, Slot::Replied(reply));
                drop(slots);
                self.replies.wake_all();
            }
            Some(Slot::Discard) => {
                slots.remove(&tag);
                drop(slots);
                self.free_tag(tag);
            }
            _ => log::debug!("mount {}: reply with unknown tag {tag}", self.name),
        }
    }
}

/// The reader thread of one mount: reads frames and dispatches replies until the connection
/// ends or the mount goes away.
extern "C" fn reader_main(arg: usize) -> ! {
    {
        // SAFETY: `attach` leaked exactly one Arc<Conn> for this thread.
        let conn = unsafe { Arc::from_raw(arg as *const Conn) };
        read_replies(&conn);
        conn.reader.lock().take();
    }
    sched::exit_current()
}

fn read_replies(conn: &Conn) {
    let mut frames = FrameReader::new(conn.msize);
    let mut buf = alloc::vec![0u8; conn.msize as usize];
    while !conn.closing.load(Ordering::Acquire) {
        let n = match conn.chan.dev.read(&conn.chan, &mut buf, 0) {
            Ok(0) => return conn.die("server hung up"),
            Ok(n) => n,
            Err(_) if conn.closing.load(Ordering::Acquire) => return,
            Err(e) => return conn.die(&alloc::format!("read: {e}")),
        };
        frames.push(&buf[..n]);
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return conn.die(&alloc::format!("malformed reply: {e}")),
            };
            match Fcall::decode(frame, Dialect::V9P2000) {
                Ok(f) if is_reply(&f.msg) => conn.dispatch(f.into_owned()),
                Ok(_) => return conn.die("the server sent a request"),
                Err(e) => return conn.die(&alloc::format!("malformed reply: {e}")),
            }
        }
    }
}

fn is_reply(m: &Msg<'_>) -> bool {
    matches!(
        m,
        Msg::Rversion { .. }
            | Msg::Rauth { .. }
            | Msg::Rattach { .. }
            | Msg::Rerror { .. }
            | Msg::Rflush
            | Msg::Rwalk { .. }
            | Msg::Ropen { .. }
            | Msg::Rcreate { .. }
            | Msg::Rread { .. }
            | Msg::Rwrite { .. }
            | Msg::Rclunk
            | Msg::Rremove
            | Msg::Rstat { .. }
            | Msg::Rwstat
    )
}

/// Negotiates the version before the reader thread runs: one request, one reply, read here.
fn version(chan: &Arc<Chan>, msize: u32) -> KResult<u32> {
    let t = Fcall {
        tag: NOTAG,
        msg: Msg::Tversion {
            msize,
            version: Cow::Borrowed("9P2000"),
        },
    };
    let frame = t
        .to_vec(Dialect::V9P2000, msize)
        .map_err(|_| Error::from(ETOOLONG))?;
    let mut done = 0;
    while done < frame.len() {
        done += match chan.dev.write(chan, &frame[done..], 0)? {
            0 => return Err("mount: the server hung up".into()),
            n => n,
        };
    }
    let mut frames = FrameReader::new(msize);
    let mut buf = alloc::vec![0u8; 4096];
    loop {
        let n = chan.dev.read(chan, &mut buf, 0)?;
        if n == 0 {
            return Err("mount: the server hung up before answering Tversion".into());
        }
        frames.push(&buf[..n]);
        let frame = match frames.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => return Err(alloc::format!("mount: malformed Rversion: {e}").into()),
        };
        return match Fcall::decode(frame, Dialect::V9P2000) {
            Ok(Fcall {
                msg: Msg::Rversion { msize: m, version },
                ..
            }) if version == "9P2000" => {
                if m < MIN_MSIZE || m > msize {
                    Err(alloc::format!("mount: the server's msize {m} is unusable").into())
                } else {
                    Ok(m)
                }
            }
            Ok(Fcall {
                msg: Msg::Rversion { version, .. },
                ..
            }) => Err(alloc::format!("mount: the server speaks {version}, not 9P2000").into()),
            Ok(Fcall {
                msg: Msg::Rerror { ename, .. },
                ..
            }) => Err(alloc::format!("mount: {ename}").into()),
            Ok(_) => Err("mount: unexpected reply to Tversion".into()),
            Err(e) => Err(alloc::format!("mount: malformed Rversion: {e}").into()),
        };
    }
}

/// Attaches to the 9P server on `chan` (open for reading and writing) with attach name
/// `aname`, asking for `msize` (0: the default). `name` names the mount in errors.
pub fn attach(chan: Arc<Chan>, aname: &str, msize: u32, name: &str) -> KResult<Chan> {
    crate::ns::chan::check_io(&chan, true)?;
    crate::ns::chan::check_io(&chan, false)?;
    let want = if msize == 0 {
        DEFAULT_MSIZE
    } else {
        msize.clamp(MIN_MSIZE, MAX_MSIZE)
    };
    let msize = version(&chan, want)?;
    let conn = Arc::new(Conn {
        name: String::from(name),
        chan,
        msize,
        write: QLock::new(),
        slots: IrqLock::new(BTreeMap::new()),
        replies: WaitQueue::new(),
        free_tags: IrqLock::new((0, Vec::new())),
        fids: IrqLock::new((0, BTreeSet::new())),
        dead: IrqLock::new(None),
        closing: AtomicBool::new(false),
        reader: IrqLock::new(None),
    });
    let arg = Arc::into_raw(conn.clone()) as usize;
    let Some(reader) = Thread::new(
        None,
        Some(Start::Kernel {
            entry: reader_main,
            arg,
        }),
    ) else {
        // SAFETY: The thread was not created, so the leaked Arc is still ours.
        drop(unsafe { Arc::from_raw(arg as *const Conn) });
        return Err(abi::errors::ENOMEM.into());
    };
    *conn.reader.lock() = Some(reader.clone());
    sched::spawn(reader);
    let source = conn.chan.path.clone();
    let mount = Arc::new(Mount {
        conn: conn.clone(),
        devno: new_devno(),
        source,
    });
    let fid = conn.alloc_fid();
    let uname = Cow::Borrowed("tern");
    let attach = Msg::Tattach {
        fid,
        afid: NOFID,
        uname,
        aname: Cow::Borrowed(aname),
        n_uname: u32::MAX,
    };
    let qid = match conn.rpc(attach) {
        Ok(Msg::Rattach { qid }) => qid,
        Ok(_) => return Err(conn.error("unexpected reply to Tattach")),
        Err(e) => {
            conn.free_fid(fid);
            return Err(e);
        }
    };
    let devno = mount.devno;
    let f = Arc::new(MntFile {
        mount,
        fid,
        iounit: 0,
        gone: AtomicBool::new(false),
    });
    Ok(Chan::new(&MNT, devno, qid, String::from(name), Some(f)))
}

/// Where a mounted tree comes from, if `c` is the root of a 9P mount (for `#proc/N/ns`).
pub fn source(c: &Chan) -> Option<String> {
    if c.dev.name() != "mnt" {
        return None;
    }
    c.aux::<MntFile>().map(|f| f.mount.source.clone())
}

impl MntDev {
    /// A new fid for the same file as `c` (`Twalk` with no names).
    fn clone_fid(&self, c: &Chan) -> KResult<(Arc<Mount>, u32)> {
        let f = file(c);
        let conn = &f.mount.conn;
        let newfid = conn.alloc_fid();
        match conn.rpc(Msg::Twalk {
            fid: f.fid,
            newfid,
            wnames: Vec::new(),
        }) {
            Ok(Msg::Rwalk { .. }) => Ok((f.mount.clone(), newfid)),
            Ok(_) => {
                conn.free_fid(newfid);
                Err(conn.error("unexpected reply to Twalk"))
            }
            Err(e) => {
                conn.walk_failed(newfid, &e);
                Err(e)
            }
        }
    }

    fn opened(
        c: &Chan,
        mount: Arc<Mount>,
        fid: u32,
        qid: Qid,
        iounit: u32,
        mode: u64,
    ) -> Arc<Chan> {
        let f = Arc::new(MntFile {
            mount,
            fid,
            iounit,
            gone: AtomicBool::new(false),
        });
        let mut new = Chan::new(&MNT, c.devno, qid, c.path.clone(), Some(f));
        new.mode = Some(mode);
        Arc::new(new)
    }

    /// Bytes per request for an open file.
    fn chunk(f: &MntFile) -> usize {
        let max = (f.mount.conn.msize - IOHDRSZ) as usize;
        if f.iounit == 0 {
            max
        } else {
            (f.iounit as usize).min(max)
        }
    }
}

impl Dev for MntDev {
    fn name(&self) -> &'static str {
        "mnt"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Err(abi::errors::ENOATTACH.into())
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        let f = file(c);
        let conn = &f.mount.conn;
        let newfid = conn.alloc_fid();
        let wnames = alloc::vec![Cow::Borrowed(name)];
        match conn.rpc(Msg::Twalk {
            fid: f.fid,
            newfid,
            wnames,
        }) {
            Ok(Msg::Rwalk { wqids }) if wqids.len() == 1 => {
                let nf = Arc::new(MntFile {
                    mount: f.mount.clone(),
                    fid: newfid,
                    iounit: 0,
                    gone: AtomicBool::new(false),
                });
                Ok(c.walked(wqids[0], name, Some(nf)))
            }
            Ok(Msg::Rwalk { .. }) => {
                conn.free_fid(newfid);
                Err(ENOTEXIST.into())
            }
            Ok(_) => {
                conn.free_fid(newfid);
                Err(conn.error("unexpected reply to Twalk"))
            }
            Err(e) => {
                conn.walk_failed(newfid, &e);
                Err(e)
            }
        }
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        let f = file(c);
        match f.mount.conn.rpc(Msg::Tstat { fid: f.fid })? {
            Msg::Rstat { stat } => Ok(stat),
            _ => Err(f.mount.conn.error("unexpected reply to Tstat")),
        }
    }

    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        let (mount, fid) = self.clone_fid(c)?;
        let conn = mount.conn.clone();
        match conn.rpc(Msg::Topen {
            fid,
            mode: mode as u8,
        }) {
            Ok(Msg::Ropen { qid, iounit }) => Ok(Self::opened(c, mount, fid, qid, iounit, mode)),
            other => {
                conn.clunk_async(fid);
                match other {
                    Err(e) => Err(e),
                    Ok(_) => Err(conn.error("unexpected reply to Topen")),
                }
            }
        }
    }

    fn create(&self, c: &Chan, name: &str, mode: u64, perm: u32) -> KResult<Chan> {
        let (mount, fid) = self.clone_fid(c)?;
        let conn = mount.conn.clone();
        let msg = Msg::Tcreate {
            fid,
            name: Cow::Borrowed(name),
            perm,
            mode: mode as u8,
            extension: Cow::Borrowed(""),
        };
        match conn.rpc(msg) {
            Ok(Msg::Rcreate { qid, iounit }) => {
                let f = Arc::new(MntFile {
                    mount,
                    fid,
                    iounit,
                    gone: AtomicBool::new(false),
                });
                let mut new = c.walked(qid, name, Some(f));
                new.mode = Some(mode);
                Ok(new)
            }
            other => {
                conn.clunk_async(fid);
                match other {
                    Err(e) => Err(e),
                    Ok(_) => Err(conn.error("unexpected reply to Tcreate")),
                }
            }
        }
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        crate::ns::chan::check_io(c, false)?;
        let f = file(c);
        let conn = &f.mount.conn;
        let chunk = Self::chunk(&f);
        // A read larger than one message keeps up to READ_AHEAD Treads for the next pieces in
        // flight once a first piece came back full, so the server and the transport work on
        // several at once (the per-request round trip dominated reads through a VM's NAT).
        // Only plain files: a directory's offsets come from its replies, and a stream-like
        // file (append-only, exclusive, or one that answers short) would lose what a request
        // after a short answer consumed.
        let plain = c.qid.ty & !ninep::QTTMP == ninep::QTFILE;
        let mut window = 1;
        let mut pending: VecDeque<(u16, u32)> = VecDeque::new();
        let (mut done, mut asked) = (0usize, 0usize);
        let result = loop {
            while pending.len() < window && asked < buf.len() {
                let count = (buf.len() - asked).min(chunk) as u32;
                let msg = Msg::Tread {
                    fid: f.fid,
                    offset: offset + asked as u64,
                    count,
                };
                match conn.start(msg) {
                    Ok(tag) => pending.push_back((tag, count)),
                    // Collect what is in flight; the error comes back on the next attempt.
                    Err(_) if !pending.is_empty() => break,
                    Err(e) if done > 0 && e.is(EINTR) => return Ok(done),
                    Err(e) => return Err(e),
                }
                asked += count as usize;
            }
            let Some((tag, count)) = pending.pop_front() else {
                break Ok(done);
            };
            let data = match conn.finish(tag) {
                Ok(Msg::Rread { data }) => data,
                Ok(_) => break Err(conn.error("unexpected reply to Tread")),
                Err(e) if done > 0 && e.is(EINTR) => break Ok(done),
                Err(e) => break Err(e),
            };
            if data.len() > count as usize {
                conn.die("Rread longer than asked for");
                break Err(conn.error("Rread longer than asked for"));
            }
            buf[done..done + data.len()].copy_from_slice(&data);
            done += data.len();
            // A short read ends the request (what was asked beyond it is dropped); directories
            // always return whole entries only.
            if data.len() < count as usize || c.is_dir() {
                break Ok(done);
            }
            if plain {
                window = READ_AHEAD;
            }
        };
        for (tag, _) in pending {
            conn.abandon(tag);
        }
        result
    }

    fn write(&self, c: &Chan, buf: &[u8], offset: u64) -> KResult<usize> {
        crate::ns::chan::check_io(c, true)?;
        let f = file(c);
        let chunk = Self::chunk(&f);
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(chunk);
            let msg = Msg::Twrite {
                fid: f.fid,
                offset: offset + done as u64,
                data: Cow::Borrowed(&buf[done..done + n]),
            };
            let count = match f.mount.conn.rpc(msg) {
                Ok(Msg::Rwrite { count }) => count as usize,
                Ok(_) => return Err(f.mount.conn.error("unexpected reply to Twrite")),
                Err(e) if done > 0 && e.is(EINTR) => return Ok(done),
                Err(e) => return Err(e),
            };
            if count > n {
                return Err(f.mount.conn.error("Rwrite counts more than was sent"));
            }
            done += count;
            if count < n {
                break;
            }
        }
        Ok(done)
    }

    fn remove(&self, c: &Chan) -> KResult<()> {
        let f = file(c);
        // Tremove clunks the fid whether or not the removal succeeds (remove(5)).
        let r = f.mount.conn.rpc(Msg::Tremove { fid: f.fid });
        f.gone.store(true, Ordering::Release);
        f.mount.conn.free_fid(f.fid);
        match r? {
            Msg::Rremove => Ok(()),
            _ => Err(f.mount.conn.error("unexpected reply to Tremove")),
        }
    }

    fn wstat(&self, c: &Chan, d: &Dir<'_>) -> KResult<()> {
        let f = file(c);
        match f.mount.conn.rpc(Msg::Twstat {
            fid: f.fid,
            stat: d.clone(),
        })? {
            Msg::Rwstat => Ok(()),
            _ => Err(f.mount.conn.error("unexpected reply to Twstat")),
        }
    }
}
