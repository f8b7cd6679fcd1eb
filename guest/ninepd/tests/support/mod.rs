//! Helpers for the server tests: temporary trees, a server on a free port, a connected client.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ninep::client::Client;

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ninepd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server on 127.0.0.1 with a free port.
pub fn server(root: &Path, opts: ninepd::Options) -> ninepd::Server {
    ninepd::Server::bind("127.0.0.1:0", root, opts).expect("server starts")
}

/// A client connected and attached; returns it and the root fid.
pub fn client(server: &ninepd::Server, msize: u32) -> (Client<TcpStream>, u32) {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_nodelay(true).unwrap();
    let mut c = Client::connect(s, msize).expect("version");
    let (root, _) = c.attach("glenda", "").expect("attach");
    (c, root)
}

/// The remote error string of a failed call.
pub fn ename<T: std::fmt::Debug>(r: Result<T, ninep::client::Error>) -> String {
    match r {
        Err(ninep::client::Error::Remote { ename, .. }) => ename,
        other => panic!("expected Rerror, got {other:?}"),
    }
}

/// A small, fast checksum (FNV-1a, 64-bit) for comparing large files.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
