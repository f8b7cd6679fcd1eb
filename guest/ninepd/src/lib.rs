//! `ninepd`, a 9P2000 file server (`intro(5)`) that serves one directory over TCP.
//!
//! It runs as a child of the guest's init agent in the file-system VM, serving the ext4 disk,
//! and on the host for tests. Requests: version, attach (no auth), walk, open, create, read,
//! write, clunk, remove, stat, wstat, flush. Many clients, and many requests in flight on each
//! (a pool of workers per connection); msize up to [`MAX_MSIZE`], [`DEFAULT_MSIZE`] by default.
//! Qids come from inode numbers (path) and modification times (version); errors are Plan 9's
//! strings ("file does not exist", "permission denied", ...). No path leaves the served root: see
//! the module `fs` for how `..` and symbolic links are confined.
//!
//! ```no_run
//! let server = ninepd::Server::bind("0.0.0.0:564", "/mnt/disk", ninepd::Options::default())?;
//! // ... on SHUTDOWN:
//! server.stop(); // no request touches /mnt/disk once this returns
//! # Ok::<(), std::io::Error>(())
//! ```

mod conn;
mod fs;
mod ops;

use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ninep::{IOHDRSZ, MIN_MSIZE};

pub use fs::NineError;

/// The default (and usual) largest msize: 1 MiB of data per read plus the header.
pub const DEFAULT_MSIZE: u32 = (1 << 20) + IOHDRSZ;
/// The largest msize the server accepts in [`Options`].
pub const MAX_MSIZE: u32 = 64 << 20;

/// How the server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The largest message the server will accept or send; clients may negotiate less.
    pub msize: u32,
    /// Refuse every change to the tree ("read-only file system").
    pub readonly: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            msize: DEFAULT_MSIZE,
            readonly: false,
        }
    }
}

struct Conn {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

struct Inner {
    tree: Arc<fs::Tree>,
    opts: Options,
    stopping: AtomicBool,
    conns: Mutex<Vec<Conn>>,
    stopped: Mutex<bool>,
    stopped_cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running server: accepting connections on its own thread until [`Server::stop`].
pub struct Server {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("root", &self.inner.tree.root())
            .field("opts", &self.inner.opts)
            .finish()
    }
}

impl Server {
    /// Listens on `addr` and serves the directory `root` from a background thread.
    pub fn bind<A: ToSocketAddrs>(
        addr: A,
        root: impl AsRef<Path>,
        opts: Options,
    ) -> io::Result<Server> {
        let root = root.as_ref();
        if !(MIN_MSIZE..=MAX_MSIZE).contains(&opts.msize) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "ninepd: msize {} is outside {MIN_MSIZE}..={MAX_MSIZE}",
                    opts.msize
                ),
            ));
        }
        let tree = fs::Tree::new(root).map_err(|e| {
            io::Error::new(e.kind(), format!("ninepd: root {}: {e}", root.display()))
        })?;
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("ninepd: listen: {e}")))?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            tree: Arc::new(tree),
            opts,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
        });
        let i = inner.clone();
        let accept = thread::Builder::new()
            .name("ninepd-accept".into())
            .spawn(move || accept_loop(&listener, &i))?;
        Ok(Server {
            inner,
            addr,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// The address the server listens on (with the real port if bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections currently open.
    pub fn connections(&self) -> usize {
        lock(&self.inner.conns)
            .iter()
            .filter(|c| !c.thread.is_finished())
            .count()
    }

    /// Stops the server: closes the listener and every connection, lets requests already
    /// running finish, clunks every fid, and returns only when no request touches the file
    /// system any more. Calling it again does nothing.
    pub fn stop(&self) {
        let Some(accept) = lock(&self.accept).take() else {
            // Stopped already, or stopping on another thread: wait for that to finish.
            return self.wait();
        };
        self.inner.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own.
        let wake = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), self.addr.port())
            }
            _ => self.addr,
        };
        if TcpStream::connect_timeout(&wake, Duration::from_secs(2)).is_ok() {
            let _ = accept.join();
        }
        let conns = std::mem::take(&mut *lock(&self.inner.conns));
        for c in &conns {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        for c in conns {
            let _ = c.thread.join();
        }
        *lock(&self.inner.stopped) = true;
        self.inner.stopped_cv.notify_all();
    }

    /// Blocks until the server has been stopped (by [`Server::stop`] on another thread).
    pub fn wait(&self) {
        let mut stopped = lock(&self.inner.stopped);
        while !*stopped {
            stopped = self
                .inner
                .stopped_cv
                .wait(stopped)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, inner: &Arc<Inner>) {
    for stream in listener.incoming() {
        if inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            // Out of file descriptors or a connection reset before accept: try again shortly.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let tree = inner.tree.clone();
        let opts = inner.opts;
        let spawned = thread::Builder::new()
            .name("ninepd-conn".into())
            .spawn(move || conn::serve(stream, tree, opts));
        if let Ok(thread) = spawned {
            let mut conns = lock(&inner.conns);
            conns.retain(|c| !c.thread.is_finished());
            conns.push(Conn {
                stream: handle,
                thread,
            });
        }
    }
}
