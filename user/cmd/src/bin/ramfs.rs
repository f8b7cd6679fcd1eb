//! ramfs: a file server in user space. Serves an in-memory tree over 9P2000 on a pipe.
//!
//! `ramfs -s NAME` posts the client end as `/srv/NAME` (mount it with `mount /srv/NAME DIR`);
//! `ramfs -m DIR` mounts it on DIR itself (both may be given); `ramfs -i` serves on fd 0 in
//! the foreground (for a parent that holds the other end). The server
//! runs in the background (its own note group, so ^C at the console leaves it alone) and exits
//! when every client end of the pipe is closed (end of file), or on `kill`.

#![no_std]
#![no_main]

use ninep::{
    DMDIR, Dialect, Dir, Fcall, FrameReader, IOHDRSZ, MAXWELEM, Msg, NOTAG, QTDIR, Qid,
    VERSION_9P2000,
};
use rt::borrow::Cow;
use rt::collections::BTreeMap;
use rt::process::{self, RFFDG, RFNOTEG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{fs, io};

rt::entry!(main);

/// The largest msize served.
const MAX_MSIZE: u32 = 1024 * 1024 + IOHDRSZ;

struct Node {
    name: String,
    parent: u64,
    mode: u32,
    mtime: u32,
    version: u32,
    children: BTreeMap<String, u64>,
    data: Vec<u8>,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.mode & DMDIR != 0
    }
}

struct Fid {
    node: u64,
    open: Option<u8>,
}

struct Server {
    nodes: BTreeMap<u64, Node>,
    next: u64,
    fids: BTreeMap<u32, Fid>,
    msize: u32,
}

type Reply = Result<Msg<'static>, &'static str>;

fn now() -> u32 {
    fs::read_to_string("/dev/time")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl Server {
    fn new() -> Server {
        let root = Node {
            name: String::from("/"),
            parent: 0,
            mode: DMDIR | 0o777,
            mtime: now(),
            version: 0,
            children: BTreeMap::new(),
            data: Vec::new(),
        };
        let mut nodes = BTreeMap::new();
        nodes.insert(0, root);
        Server {
            nodes,
            next: 1,
            fids: BTreeMap::new(),
            msize: 8192,
        }
    }

    fn qid(&self, path: u64) -> Qid {
        let n = &self.nodes[&path];
        Qid {
            ty: if n.is_dir() { QTDIR } else { 0 },
            version: n.version,
            path,
        }
    }

    fn dir(&self, path: u64) -> Dir<'static> {
        let n = &self.nodes[&path];
        Dir {
            qid: self.qid(path),
            mode: n.mode,
            atime: n.mtime,
            mtime: n.mtime,
            length: if n.is_dir() { 0 } else { n.data.len() as u64 },
            name: Cow::Owned(n.name.clone()),
            uid: Cow::Borrowed("ramfs"),
            gid: Cow::Borrowed("ramfs"),
            muid: Cow::Borrowed("ramfs"),
            ..Dir::default()
        }
    }

    fn fid(&self, fid: u32) -> Result<&Fid, &'static str> {
        self.fids.get(&fid).ok_or("unknown fid")
    }

    fn handle(&mut self, msg: Msg<'_>) -> Reply {
        match msg {
            Msg::Tversion { msize, version } => {
                self.fids.clear();
                self.msize = msize.min(MAX_MSIZE);
                let v = if version.starts_with("9P2000") {
                    VERSION_9P2000
                } else {
                    "unknown"
                };
                Ok(Msg::Rversion {
                    msize: self.msize,
                    version: Cow::Borrowed(v),
                })
            }
            Msg::Tauth { .. } => Err("authentication not required"),
            Msg::Tattach { fid, .. } => {
                if self.fids.contains_key(&fid) {
                    return Err("fid in use");
                }
                self.fids.insert(
                    fid,
                    Fid {
                        node: 0,
                        open: None,
                    },
                );
                Ok(Msg::Rattach { qid: self.qid(0) })
            }
            Msg::Tflush { .. } => Ok(Msg::Rflush),
            Msg::Twalk {
                fid,
                newfid,
                wnames,
            } => {
                let start = self.fid(fid)?.node;
                if wnames.len() > MAXWELEM || (newfid != fid && self.fids.contains_key(&newfid)) {
                    return Err("bad walk");
                }
                let mut at = start;
                let mut wqids = Vec::new();
                for name in &wnames {
                    let n = &self.nodes[&at];
                    if !n.is_dir() {
                        break;
                    }
                    let next = if name == ".." {
                        Some(n.parent)
                    } else {
                        n.children.get(name.as_ref()).copied()
                    };
                    let Some(next) = next else { break };
                    at = next;
                    wqids.push(self.qid(at));
                }
                if wqids.is_empty() && !wnames.is_empty() {
                    return Err("file does not exist");
                }
                if wqids.len() == wnames.len() {
                    self.fids.insert(
                        newfid,
                        Fid {
                            node: at,
                            open: None,
                        },
                    );
                }
                Ok(Msg::Rwalk { wqids })
            }
            Msg::Topen { fid, mode } => {
                let node = self.fid(fid)?.node;
                let n = self.nodes.get_mut(&node).ok_or("file does not exist")?;
                if n.is_dir() && mode & 3 != 0 {
                    return Err("file is a directory");
                }
                if mode & 0x10 != 0 && !n.is_dir() {
                    n.data.clear();
                    n.version += 1;
                }
                self.fids.get_mut(&fid).ok_or("unknown fid")?.open = Some(mode);
                Ok(Msg::Ropen {
                    qid: self.qid(node),
                    iounit: 0,
                })
            }
            Msg::Tcreate {
                fid,
                name,
                perm,
                mode,
                ..
            } => {
                let dir = self.fid(fid)?.node;
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err("bad file name");
                }
                let d = self.nodes.get(&dir).ok_or("file does not exist")?;
                if !d.is_dir() {
                    return Err("not a directory");
                }
                if d.children.contains_key(name.as_ref()) {
                    return Err("file already exists");
                }
                let path = self.next;
                self.next += 1;
                let node = Node {
                    name: String::from(name.as_ref()),
                    parent: dir,
                    mode: if perm & DMDIR != 0 {
                        DMDIR | (perm & 0o777)
                    } else {
                        perm & 0o777
                    },
                    mtime: now(),
                    version: 0,
                    children: BTreeMap::new(),
                    data: Vec::new(),
                };
                self.nodes.insert(path, node);
                if let Some(d) = self.nodes.get_mut(&dir) {
                    d.children.insert(String::from(name.as_ref()), path);
                }
                self.fids.insert(
                    fid,
                    Fid {
                        node: path,
                        open: Some(mode),
                    },
                );
                Ok(Msg::Rcreate {
                    qid: self.qid(path),
                    iounit: 0,
                })
            }
            Msg::Tread { fid, offset, count } => {
                let f = self.fid(fid)?;
                if f.open.is_none() {
                    return Err("file not open");
                }
                let node = f.node;
                let count = (count as usize).min((self.msize - IOHDRSZ) as usize);
                let n = &self.nodes[&node];
                if n.is_dir() {
                    let mut all = Vec::new();
                    for &child in n.children.values() {
                        self.dir(child)
                            .encode_vec(Dialect::V9P2000, &mut all)
                            .map_err(|_| "stat too long")?;
                    }
                    // Whole entries from `offset` that fit in `count`.
                    let mut data = Vec::new();
                    let mut pos = 0usize;
                    for d in ninep::DirEntries::new(&all, Dialect::V9P2000).flatten() {
                        let len = d.encoded_len(Dialect::V9P2000).unwrap_or(0);
                        if pos as u64 >= offset {
                            if data.len() + len > count {
                                break;
                            }
                            let _ = d.encode_vec(Dialect::V9P2000, &mut data);
                        }
                        pos += len;
                    }
                    return Ok(Msg::Rread {
                        data: Cow::Owned(data),
                    });
                }
                let start = (offset as usize).min(n.data.len());
                let end = start.saturating_add(count).min(n.data.len());
                Ok(Msg::Rread {
                    data: Cow::Owned(n.data[start..end].into()),
                })
            }
            Msg::Twrite { fid, offset, data } => {
                let f = self.fid(fid)?;
                if f.open.is_none_or(|m| m & 3 == 0) {
                    return Err("file not open for writing");
                }
                let node = f.node;
                let n = self.nodes.get_mut(&node).ok_or("file does not exist")?;
                let end = (offset as usize)
                    .checked_add(data.len())
                    .ok_or("bad offset")?;
                if end > 1 << 30 {
                    return Err("file too large");
                }
                if n.data.len() < end {
                    n.data.resize(end, 0);
                }
                n.data[offset as usize..end].copy_from_slice(&data);
                n.version += 1;
                n.mtime = now();
                Ok(Msg::Rwrite {
                    count: data.len() as u32,
                })
            }
            Msg::Tclunk { fid } => {
                self.fids.remove(&fid).ok_or("unknown fid")?;
                Ok(Msg::Rclunk)
            }
            Msg::Tremove { fid } => {
                let f = self.fids.remove(&fid).ok_or("unknown fid")?;
                if f.node == 0 {
                    return Err("cannot remove the root");
                }
                let n = self.nodes.get(&f.node).ok_or("file does not exist")?;
                if !n.children.is_empty() {
                    return Err("directory not empty");
                }
                let (parent, name) = (n.parent, n.name.clone());
                self.nodes.remove(&f.node);
                if let Some(p) = self.nodes.get_mut(&parent) {
                    p.children.remove(&name);
                }
                Ok(Msg::Rremove)
            }
            Msg::Tstat { fid } => {
                let node = self.fid(fid)?.node;
                Ok(Msg::Rstat {
                    stat: self.dir(node),
                })
            }
            Msg::Twstat { fid, stat } => {
                let node = self.fid(fid)?.node;
                let n = self.nodes.get(&node).ok_or("file does not exist")?;
                let parent = n.parent;
                let old = n.name.clone();
                if !stat.name.is_empty() && stat.name != old.as_str() {
                    if node == 0 || stat.name.contains('/') {
                        return Err("bad file name");
                    }
                    if self.nodes[&parent]
                        .children
                        .contains_key(stat.name.as_ref())
                    {
                        return Err("file already exists");
                    }
                    if let Some(p) = self.nodes.get_mut(&parent) {
                        p.children.remove(&old);
                        p.children.insert(String::from(stat.name.as_ref()), node);
                    }
                    if let Some(n) = self.nodes.get_mut(&node) {
                        n.name = String::from(stat.name.as_ref());
                    }
                }
                let n = self.nodes.get_mut(&node).ok_or("file does not exist")?;
                if stat.length != u64::MAX && !n.is_dir() {
                    n.data.resize(
                        usize::try_from(stat.length)
                            .map_err(|_| "bad length")?
                            .min(1 << 30),
                        0,
                    );
                }
                if stat.mode != u32::MAX {
                    n.mode = (n.mode & DMDIR) | (stat.mode & 0o777);
                }
                if stat.mtime != u32::MAX {
                    n.mtime = stat.mtime;
                }
                Ok(Msg::Rwstat)
            }
            _ => Err("unexpected message"),
        }
    }
}

/// Serves 9P on `fd` until end of file.
fn serve(fd: u64) -> rt::Result<()> {
    let mut server = Server::new();
    let mut frames = FrameReader::new(MAX_MSIZE);
    let mut buf = rt::vec![0u8; MAX_MSIZE as usize];
    loop {
        let n = io::read(fd, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        frames.push(&buf[..n]);
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(rt::Error(rt::format!("bad frame from the client: {e}"))),
            };
            let (tag, reply) = match Fcall::decode(frame, Dialect::V9P2000) {
                Ok(f) => (f.tag, server.handle(f.msg)),
                Err(_) => (NOTAG, Err("malformed message")),
            };
            let msg = reply.unwrap_or_else(|e| Msg::Rerror {
                ename: Cow::Borrowed(e),
                errno: None,
            });
            let out = Fcall { tag, msg }
                .to_vec(Dialect::V9P2000, server.msize.max(8192))
                .map_err(|e| rt::Error(rt::format!("{e}")))?;
            io::write(fd, &out)?;
        }
    }
}

fn usage() -> rt::Error {
    rt::Error::new("usage: ramfs [-s NAME] [-m DIR] | ramfs -i")
}

fn main() -> rt::Result<()> {
    let args = &rt::env::args()[1..];
    if args.len() == 1 && args[0] == "-i" {
        return serve(0);
    }
    let (mut srv, mut mountpoint) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(usage)?.clone();
        match flag.as_str() {
            "-s" => srv = Some(value),
            "-m" => mountpoint = Some(value),
            _ => return Err(usage()),
        }
    }
    if srv.is_none() && mountpoint.is_none() {
        return Err(usage());
    }
    let (client, server) = io::pipe()?;
    if let Some(name) = &srv {
        let path = rt::format!("/srv/{name}");
        let post = fs::create(&path, fs::OWRITE | fs::OEXCL, 0o600)?;
        io::write(post, rt::format!("{client}").as_bytes()).map_err(|e| e.context(&path))?;
        io::close(post)?;
    }
    match process::rfork(RFPROC | RFFDG | RFNOTEG)? {
        0 => {
            let _ = io::close(client);
            match serve(server) {
                Ok(()) => process::exits(""),
                Err(e) => {
                    rt::eprintln!("ramfs: {e}");
                    process::exits(e.msg())
                }
            }
        }
        _ => {
            io::close(server)?;
            if let Some(dir) = mountpoint {
                fs::mount(client, &dir, fs::MREPL | fs::MCREATE, "")?;
            }
            io::close(client)?;
            Ok(())
        }
    }
}
