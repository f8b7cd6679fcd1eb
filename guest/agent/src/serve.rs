//! The 9P server as the agent runs it: start it on the mounted disk, stop it before unmounting.
//!
//! PLACEHOLDER until `ninepd` offers its library API: this listens on the port (so that
//! binding errors, readiness and shutdown behave as they will) but closes every connection.

use std::io;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A running server.
pub struct Server {
    addr: SocketAddrV4,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `root` on `addr`. Fails if the address cannot be bound.
    pub fn start(addr: SocketAddrV4, _root: &Path, _msize: Option<u32>) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                drop(conn);
            }
        });
        Ok(Server {
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    /// Stops serving; returns when no request touches the file system any more.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
