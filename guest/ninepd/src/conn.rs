//! One client connection: a reader thread that takes frames off the socket, and a small pool of
//! workers that answer them, so a slow read does not hold up other requests on the same
//! connection (`intro(5)`: tags let many requests be in flight).
//!
//! `Tversion` (`version(5)`) and `Tflush` (`flush(5)`) are handled by the reader itself. A flush
//! of a request still queued drops it and answers `Rflush` at once; a flush of a request being
//! worked on is answered right after that request's reply, never before it, so a client never
//! sees a reply to a tag it has already seen flushed.
//!
//! Lock order: a worker takes the writer, then the state; the reader never waits for the writer
//! while holding the state.

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use ninep::io::read_frame;
use ninep::{Dialect, Fcall, MIN_MSIZE, Msg, MsgType, VERSION_9P2000, VERSION_UNKNOWN};

use crate::Options;
use crate::fs::Tree;
use crate::ops::Session;

/// Workers per connection: requests beyond this many in flight wait in the queue.
const MAX_WORKERS: usize = 16;

struct Job {
    tag: u16,
    frame: Vec<u8>,
    session: Arc<Session>,
}

/// Where a request is.
enum Req {
    Queued,
    /// Being worked on; the tags of the `Tflush`es that wait for it.
    Running(Vec<u16>),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    inflight: HashMap<u16, Req>,
    idle: usize,
    workers: Vec<JoinHandle<()>>,
    closed: bool,
}

struct Shared {
    writer: Mutex<TcpStream>,
    state: Mutex<State>,
    work: Condvar,
    quiet: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Sends one reply; a failed write shuts the socket so the reader ends the connection.
    fn send_locked(w: &mut TcpStream, frame: &[u8]) {
        if w.write_all(frame).is_err() {
            let _ = w.shutdown(Shutdown::Both);
        }
    }

    fn send(&self, tag: u16, msg: Msg<'_>) {
        let frame = encode(tag, msg);
        Self::send_locked(&mut lock(&self.writer), &frame);
    }
}

fn encode(tag: u16, msg: Msg<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = Fcall::new(tag, msg).encode_vec(Dialect::V9P2000, &mut out) {
        out.clear();
        let msg = Msg::error(format!("ninepd: cannot encode the reply: {e}"));
        let _ = Fcall::new(tag, msg).encode_vec(Dialect::V9P2000, &mut out);
    }
    out
}

/// Serves one connection until the client goes away or the socket is shut down (which is how
/// [`crate::Server::stop`] ends it). Returns once no request of it touches the tree any more.
pub fn serve(stream: TcpStream, tree: Arc<Tree>, opts: Options) {
    let _ = stream.set_nodelay(true);
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let shared = Arc::new(Shared {
        writer: Mutex::new(writer),
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        quiet: Condvar::new(),
    });
    let mut reader = BufReader::with_capacity(64 << 10, &stream);
    // Before Tversion, frames may be as large as our own limit.
    let mut msize = opts.msize;
    let mut session: Option<Arc<Session>> = None;
    let mut frame = Vec::new();
    // Any read error, an over-long or impossibly short frame, or EOF ends the connection:
    // a stream cannot be resynchronised after a bad size.
    while let Ok(true) = read_frame(&mut reader, msize, &mut frame) {
        let ty = frame[4];
        let tag = u16::from_le_bytes([frame[5], frame[6]]);
        if ty == MsgType::Tversion as u8 {
            wait_quiet(&shared);
            if let Some(old) = session.take() {
                old.clunk_all();
            }
            let (reply, new) = version(&frame, &tree, &opts);
            if let Some(s) = new {
                msize = s.msize();
                session = Some(Arc::new(s));
            }
            shared.send(tag, reply);
        } else if ty == MsgType::Tflush as u8 {
            flush(&shared, tag, &frame);
        } else if let Some(s) = &session {
            enqueue(
                &shared,
                Job {
                    tag,
                    frame: std::mem::take(&mut frame),
                    session: s.clone(),
                },
            );
        } else {
            shared.send(
                tag,
                Msg::error("version not negotiated: send Tversion first"),
            );
        }
    }
    // Drop what has not started, let running requests finish, then clunk every fid.
    let workers = {
        let mut st = lock(&shared.state);
        st.closed = true;
        st.queue.clear();
        st.inflight.retain(|_, r| matches!(r, Req::Running(_)));
        shared.work.notify_all();
        std::mem::take(&mut st.workers)
    };
    for w in workers {
        let _ = w.join();
    }
    if let Some(s) = session {
        s.clunk_all();
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// `version(5)`: the msize is the smaller of the client's and ours; any "9P2000" version
/// (including "9P2000.u", which we answer with plain "9P2000") is accepted.
fn version(frame: &[u8], tree: &Arc<Tree>, opts: &Options) -> (Msg<'static>, Option<Session>) {
    let (msize, version) = match Fcall::decode(frame, Dialect::V9P2000) {
        Ok(Fcall {
            msg: Msg::Tversion { msize, version },
            ..
        }) => (msize, version),
        Ok(_) => unreachable!("the type byte said Tversion"),
        Err(e) => return (Msg::error(format!("ninepd: {e}")), None),
    };
    if Dialect::from_version_string(&version).is_none() {
        let reply = Msg::Rversion {
            msize: msize.min(opts.msize),
            version: VERSION_UNKNOWN.into(),
        };
        return (reply, None);
    }
    let msize = msize.min(opts.msize);
    if msize < MIN_MSIZE {
        let e = format!("ninepd: msize {msize} is too small; at least {MIN_MSIZE} is needed");
        return (Msg::error(e), None);
    }
    let session = Session::new(tree.clone(), opts.readonly, msize);
    let reply = Msg::Rversion {
        msize,
        version: VERSION_9P2000.into(),
    };
    (reply, Some(session))
}

/// Waits until no request is queued or running (before `Tversion` resets the session).
fn wait_quiet(shared: &Shared) {
    let mut st = lock(&shared.state);
    while !st.inflight.is_empty() {
        st = shared.quiet.wait(st).unwrap_or_else(|p| p.into_inner());
    }
}

fn flush(shared: &Arc<Shared>, tag: u16, frame: &[u8]) {
    let oldtag = match Fcall::decode(frame, Dialect::V9P2000) {
        Ok(Fcall {
            msg: Msg::Tflush { oldtag },
            ..
        }) => oldtag,
        Ok(_) => unreachable!("the type byte said Tflush"),
        Err(e) => return shared.send(tag, Msg::error(format!("ninepd: {e}"))),
    };
    let answer_now = {
        let mut st = lock(&shared.state);
        match st.inflight.get_mut(&oldtag) {
            None => true,
            Some(Req::Queued) => {
                st.inflight.remove(&oldtag);
                st.queue.retain(|j| j.tag != oldtag);
                if st.inflight.is_empty() {
                    shared.quiet.notify_all();
                }
                true
            }
            Some(Req::Running(waiting)) => {
                waiting.push(tag);
                false
            }
        }
    };
    if answer_now {
        shared.send(tag, Msg::Rflush);
    }
}

fn enqueue(shared: &Arc<Shared>, job: Job) {
    let mut st = lock(&shared.state);
    if st.inflight.contains_key(&job.tag) {
        drop(st);
        let e = format!("ninepd: tag {} is already in use", job.tag);
        return shared.send(job.tag, Msg::error(e));
    }
    st.inflight.insert(job.tag, Req::Queued);
    st.queue.push_back(job);
    if st.queue.len() > st.idle && st.workers.len() < MAX_WORKERS {
        let s = shared.clone();
        match thread::Builder::new()
            .name("ninepd-worker".into())
            .spawn(move || worker(&s))
        {
            Ok(h) => st.workers.push(h),
            // Without a new worker the existing ones still drain the queue.
            Err(_) if !st.workers.is_empty() => {}
            Err(_) => {
                st.closed = true;
                let _ = lock(&shared.writer).shutdown(Shutdown::Both);
            }
        }
    }
    shared.work.notify_one();
}

fn worker(shared: &Shared) {
    let mut out = Vec::new();
    loop {
        let job = {
            let mut st = lock(&shared.state);
            loop {
                if let Some(job) = st.queue.pop_front() {
                    st.inflight.insert(job.tag, Req::Running(Vec::new()));
                    break job;
                }
                if st.closed {
                    return;
                }
                st.idle += 1;
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
                st.idle -= 1;
            }
        };
        answer(&job, &mut out);
        let mut w = lock(&shared.writer);
        let flushes = {
            let mut st = lock(&shared.state);
            let flushes = match st.inflight.remove(&job.tag) {
                Some(Req::Running(f)) => f,
                _ => Vec::new(),
            };
            if st.inflight.is_empty() {
                shared.quiet.notify_all();
            }
            flushes
        };
        Shared::send_locked(&mut w, &out);
        for tag in flushes {
            Shared::send_locked(&mut w, &encode(tag, Msg::Rflush));
        }
        // Do not keep a 1 MiB read buffer around for every idle worker.
        if out.capacity() > 256 << 10 {
            out = Vec::new();
        }
    }
}

/// Decodes the request and leaves the whole reply frame in `out`.
fn answer(job: &Job, out: &mut Vec<u8>) {
    let reply = match Fcall::decode(&job.frame, Dialect::V9P2000) {
        Err(e) => Msg::error(format!("ninepd: {e}")),
        Ok(f) => match job.session.handle(job.tag, f.msg, out) {
            None => return,
            Some(msg) => msg,
        },
    };
    *out = encode(job.tag, reply);
}
