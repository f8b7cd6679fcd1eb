//! The file operations behind each request, on one connection's fid table: `attach(5)`,
//! `walk(5)`, `open(5)` (and create), `read(5)` (and write), `clunk(5)`, `remove(5)`,
//! `stat(5)` (and wstat).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ninep::{
    DMDIR, Dialect, Dir, IOHDRSZ, MAXWELEM, Msg, NOFID, OACCMODE, OEXEC, ORCLOSE, ORDWR, OREAD,
    OTRUNC, OWRITE, Qid, RREAD_HEADER_LEN, put_rread_header,
};

use crate::fs::{NineError, Node, Tree, check_name, dir_entry, errors, qid};

/// What an open fid holds.
enum Open {
    File(Arc<File>),
    Dir(Listing),
}

/// A directory listing taken when the directory is read at offset 0: the encoded entries and
/// where each one starts, so reads return whole entries (`read(5)`).
#[derive(Default)]
struct Listing {
    data: Vec<u8>,
    starts: Vec<usize>,
}

/// A fid: the file it names and, once opened, how.
struct Fid {
    node: Node,
    /// The name the client walked to: a symbolic link keeps its own name in `stat`.
    name: String,
    qid: Qid,
    open: Option<Open>,
    mode: u8,
}

type FidRef = Arc<Mutex<Fid>>;

/// One connection's view of the tree: its fids and its msize.
pub struct Session {
    tree: Arc<Tree>,
    readonly: bool,
    msize: u32,
    fids: Mutex<HashMap<u32, FidRef>>,
}

fn err<T>(s: &'static str) -> Result<T, NineError> {
    Err(NineError::new(s))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another request must not wedge the connection: the data is still consistent
    // (every update is a single assignment).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// A session with no fids.
    pub fn new(tree: Arc<Tree>, readonly: bool, msize: u32) -> Self {
        Session {
            tree,
            readonly,
            msize,
            fids: Mutex::new(HashMap::new()),
        }
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    fn fid(&self, fid: u32) -> Result<FidRef, NineError> {
        lock(&self.fids)
            .get(&fid)
            .cloned()
            .ok_or(NineError::new("unknown fid"))
    }

    fn writable(&self) -> Result<(), NineError> {
        if self.readonly {
            Err(errors::READONLY)
        } else {
            Ok(())
        }
    }

    /// Clunks every fid (removing `ORCLOSE` files), as when the connection ends or `Tversion`
    /// resets the session.
    pub fn clunk_all(&self) {
        let all: Vec<u32> = lock(&self.fids).keys().copied().collect();
        for fid in all {
            let _ = self.clunk(fid);
        }
    }

    /// Handles one request other than version and flush; a `Tread` reply is built straight in
    /// `out` (which then holds the whole reply frame) and `None` is returned.
    pub fn handle(&self, tag: u16, msg: Msg<'_>, out: &mut Vec<u8>) -> Option<Msg<'static>> {
        let result = match msg {
            Msg::Tread { fid, offset, count } => match self.read(tag, fid, offset, count, out) {
                Ok(()) => return None,
                Err(e) => Err(e),
            },
            Msg::Tauth { .. } => err("authentication not required"),
            Msg::Tattach { fid, afid, .. } => self.attach(fid, afid),
            Msg::Twalk {
                fid,
                newfid,
                wnames,
            } => self.walk(fid, newfid, &wnames),
            Msg::Topen { fid, mode } => self.open(fid, mode),
            Msg::Tcreate {
                fid,
                name,
                perm,
                mode,
                ..
            } => self.create(fid, &name, perm, mode),
            Msg::Twrite { fid, offset, data } => self.write(fid, offset, &data),
            Msg::Tclunk { fid } => self.clunk(fid).map(|()| Msg::Rclunk),
            Msg::Tremove { fid } => self.remove(fid),
            Msg::Tstat { fid } => self.stat(fid),
            Msg::Twstat { fid, stat } => self.wstat(fid, &stat),
            other => Err(NineError(
                format!("unexpected message {:?}", other.msg_type()).into(),
            )),
        };
        Some(result.unwrap_or_else(|e| Msg::Rerror {
            ename: e.0,
            errno: None,
        }))
    }

    fn attach(&self, fid: u32, afid: u32) -> Result<Msg<'static>, NineError> {
        if afid != NOFID {
            return err("authentication not required");
        }
        let node = Node::default();
        let meta = self.tree.metadata(&node)?;
        let q = qid(&meta);
        let mut fids = lock(&self.fids);
        if fids.contains_key(&fid) {
            return err("fid already in use");
        }
        fids.insert(
            fid,
            Arc::new(Mutex::new(Fid {
                node,
                name: "/".into(),
                qid: q,
                open: None,
                mode: 0,
            })),
        );
        Ok(Msg::Rattach { qid: q })
    }

    fn walk(
        &self,
        fid: u32,
        newfid: u32,
        names: &[std::borrow::Cow<'_, str>],
    ) -> Result<Msg<'static>, NineError> {
        let f = self.fid(fid)?;
        let (mut node, mut cur_qid, mut name) = {
            let f = lock(&f);
            if f.open.is_some() {
                return err("cannot walk an open fid");
            }
            (f.node.clone(), f.qid, f.name.clone())
        };
        if newfid != fid && lock(&self.fids).contains_key(&newfid) {
            return err("fid already in use");
        }
        let mut wqids = Vec::with_capacity(names.len().min(MAXWELEM));
        for (i, elem) in names.iter().enumerate() {
            // walk(5): only a directory can be walked from.
            if !cur_qid.is_dir() {
                if i == 0 {
                    return err("not a directory");
                }
                break;
            }
            let step = self
                .tree
                .walk(&node, elem)
                .and_then(|n| Ok((self.tree.metadata(&n)?, n)));
            match step {
                Ok((meta, n)) => {
                    name = match &**elem {
                        "." => name,
                        ".." => n.name(),
                        elem => elem.to_string(),
                    };
                    node = n;
                    cur_qid = qid(&meta);
                    wqids.push(cur_qid);
                }
                // The first element failing is an error; a later one, a short Rwalk.
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if wqids.len() == names.len() {
            let new = Fid {
                node,
                name,
                qid: cur_qid,
                open: None,
                mode: 0,
            };
            let mut fids = lock(&self.fids);
            if newfid != fid && fids.contains_key(&newfid) {
                return err("fid already in use");
            }
            fids.insert(newfid, Arc::new(Mutex::new(new)));
        }
        Ok(Msg::Rwalk { wqids })
    }

    fn iounit(&self) -> u32 {
        self.msize - IOHDRSZ
    }

    fn open(&self, fid: u32, mode: u8) -> Result<Msg<'static>, NineError> {
        let f = self.fid(fid)?;
        let mut f = lock(&f);
        if f.open.is_some() {
            return err("fid already open");
        }
        let acc = mode & OACCMODE;
        let writes = acc == OWRITE || acc == ORDWR || mode & (OTRUNC | ORCLOSE) != 0;
        if writes {
            self.writable()?;
        }
        let path = self.tree.path(&f.node);
        let meta = self.tree.metadata(&f.node)?;
        let open = if meta.is_dir() {
            if acc != OREAD && acc != OEXEC || mode & OTRUNC != 0 {
                return err("is a directory");
            }
            if mode & ORCLOSE != 0 && f.node.is_root() {
                return Err(errors::ROOT);
            }
            // Check that it can be listed now rather than on the first read.
            fs::read_dir(&path)?;
            Open::Dir(Listing::default())
        } else if meta.is_file() {
            let file = OpenOptions::new()
                .read(acc != OWRITE)
                .write(acc == OWRITE || acc == ORDWR)
                .truncate(mode & OTRUNC != 0)
                .open(&path)?;
            Open::File(Arc::new(file))
        } else {
            return err("permission denied: not a regular file or directory");
        };
        let meta = self.tree.metadata(&f.node)?;
        f.qid = qid(&meta);
        f.open = Some(open);
        f.mode = mode;
        Ok(Msg::Ropen {
            qid: f.qid,
            iounit: self.iounit(),
        })
    }

    fn create(&self, fid: u32, name: &str, perm: u32, mode: u8) -> Result<Msg<'static>, NineError> {
        self.writable()?;
        check_name(name)?;
        let f = self.fid(fid)?;
        let mut f = lock(&f);
        if f.open.is_some() {
            return err("fid already open");
        }
        let dir_meta = self.tree.metadata(&f.node)?;
        if !dir_meta.is_dir() {
            return err("not a directory");
        }
        let node = f.node.child(name.as_ref());
        let path = self.tree.path(&node);
        let acc = mode & OACCMODE;
        // open(5): the new file's permissions are limited by the directory's.
        let open = if perm & DMDIR != 0 {
            if acc != OREAD && acc != OEXEC || mode & OTRUNC != 0 {
                return err("is a directory");
            }
            let bits = perm & (!0o777 | (dir_meta.permissions().mode() & 0o777));
            fs::DirBuilder::new().mode(bits & 0o777).create(&path)?;
            Open::Dir(Listing::default())
        } else {
            let bits = perm & (!0o666 | (dir_meta.permissions().mode() & 0o666));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(bits & 0o777)
                .open(&path)?;
            Open::File(Arc::new(file))
        };
        let meta = self.tree.metadata(&node)?;
        f.node = node;
        f.name = name.to_string();
        f.qid = qid(&meta);
        f.open = Some(open);
        f.mode = mode;
        Ok(Msg::Rcreate {
            qid: f.qid,
            iounit: self.iounit(),
        })
    }

    fn read(
        &self,
        tag: u16,
        fid: u32,
        offset: u64,
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), NineError> {
        let count = count.min(self.iounit()) as usize;
        let f = self.fid(fid)?;
        let mut f = lock(&f);
        let acc = f.mode & OACCMODE;
        let file = match &mut f.open {
            None => return err("file not open"),
            Some(_) if acc == OWRITE => return err("file not open for reading"),
            Some(Open::File(file)) => file.clone(),
            Some(Open::Dir(_)) => {
                let node = f.node.clone();
                let Some(Open::Dir(listing)) = &mut f.open else {
                    unreachable!("matched a directory above")
                };
                return self.read_dir(tag, &node, listing, offset, count, out);
            }
        };
        // Concurrent reads of one fid must not wait for each other: let go of the fid.
        drop(f);
        out.clear();
        out.resize(RREAD_HEADER_LEN + count, 0);
        let mut got = 0;
        while got < count {
            match file.read_at(&mut out[RREAD_HEADER_LEN + got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if got == 0 => return Err(e.into()),
                Err(_) => break,
            }
        }
        out.truncate(RREAD_HEADER_LEN + got);
        put_rread_header(out, tag, got as u32).map_err(|_| NineError::new("read too large"))?;
        Ok(())
    }

    fn read_dir(
        &self,
        tag: u16,
        node: &Node,
        listing: &mut Listing,
        offset: u64,
        count: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), NineError> {
        if offset == 0 {
            *listing = self.list(node)?;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let first = if start == listing.data.len() {
            listing.starts.len()
        } else {
            listing
                .starts
                .binary_search(&start)
                .map_err(|_| NineError::new("bad offset in directory read"))?
        };
        // Whole entries only, as many as fit in count.
        let mut end = start;
        for i in first..listing.starts.len() {
            let entry_end = listing
                .starts
                .get(i + 1)
                .copied()
                .unwrap_or(listing.data.len());
            if entry_end - start > count {
                break;
            }
            end = entry_end;
        }
        if end == start && start < listing.data.len() {
            return err("read count too small for a directory entry");
        }
        out.clear();
        out.resize(RREAD_HEADER_LEN, 0);
        out.extend_from_slice(&listing.data[start..end]);
        put_rread_header(out, tag, (end - start) as u32)
            .map_err(|_| NineError::new("read too large"))?;
        Ok(())
    }

    fn list(&self, node: &Node) -> Result<Listing, NineError> {
        let mut listing = Listing::default();
        for entry in fs::read_dir(self.tree.path(node))? {
            let entry = entry?;
            // 9P2000 names are UTF-8; a name that is not cannot be walked to, so it is not listed.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(d) = self.tree.list_entry(node, &name) {
                listing.starts.push(listing.data.len());
                d.encode_vec(Dialect::V9P2000, &mut listing.data)
                    .map_err(|e| NineError(e.to_string().into()))?;
            }
        }
        Ok(listing)
    }

    fn write(&self, fid: u32, offset: u64, data: &[u8]) -> Result<Msg<'static>, NineError> {
        let f = self.fid(fid)?;
        let f = lock(&f);
        let acc = f.mode & OACCMODE;
        let file = match &f.open {
            None => return err("file not open"),
            Some(Open::Dir(_)) => return err("is a directory"),
            Some(Open::File(_)) if acc != OWRITE && acc != ORDWR => {
                return err("file not open for writing");
            }
            Some(Open::File(file)) => file.clone(),
        };
        drop(f);
        file.write_all_at(data, offset)?;
        Ok(Msg::Rwrite {
            count: data.len() as u32,
        })
    }

    /// Forgets a fid; an `ORCLOSE` file is removed.
    fn clunk(&self, fid: u32) -> Result<(), NineError> {
        let f = lock(&self.fids)
            .remove(&fid)
            .ok_or(NineError::new("unknown fid"))?;
        let f = lock(&f);
        if f.open.is_some() && f.mode & ORCLOSE != 0 {
            let _ = self.remove_node(&f.node);
        }
        Ok(())
    }

    fn remove_node(&self, node: &Node) -> Result<(), NineError> {
        self.writable()?;
        if node.is_root() {
            return Err(errors::ROOT);
        }
        let path = self.tree.path(node);
        if self.tree.metadata(node)?.is_dir() {
            fs::remove_dir(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        Ok(())
    }

    fn remove(&self, fid: u32) -> Result<Msg<'static>, NineError> {
        // remove(5): the fid is clunked even if the remove fails.
        let f = lock(&self.fids)
            .remove(&fid)
            .ok_or(NineError::new("unknown fid"))?;
        let node = lock(&f).node.clone();
        self.remove_node(&node)?;
        Ok(Msg::Rremove)
    }

    fn stat(&self, fid: u32) -> Result<Msg<'static>, NineError> {
        let f = self.fid(fid)?;
        let (node, name) = {
            let f = lock(&f);
            (f.node.clone(), f.name.clone())
        };
        let meta = self.tree.metadata(&node)?;
        Ok(Msg::Rstat {
            stat: dir_entry(name, &meta),
        })
    }

    /// `stat(5)`: changes name (within the directory), length, permission bits, times and
    /// (numeric) group; all-"don't touch" syncs the file. Everything is checked before anything
    /// is changed, so a refused wstat changes nothing.
    fn wstat(&self, fid: u32, d: &Dir<'_>) -> Result<Msg<'static>, NineError> {
        self.writable()?;
        let f = self.fid(fid)?;
        let mut f = lock(&f);
        let node = f.node.clone();
        let path = self.tree.path(&node);
        let meta = self.tree.metadata(&node)?;
        let is_dir = meta.is_dir();
        let cur = dir_entry(f.name.clone(), &meta);

        let new_name = (!d.name.is_empty() && d.name != cur.name).then_some(&*d.name);
        let new_len = (d.length != u64::MAX).then_some(d.length);
        let new_mode = (d.mode != u32::MAX).then_some(d.mode);
        let new_mtime = (d.mtime != u32::MAX).then_some(d.mtime);
        let new_atime = (d.atime != u32::MAX).then_some(d.atime);
        let new_gid = (!d.gid.is_empty() && d.gid != cur.gid).then_some(&*d.gid);
        if !d.uid.is_empty() && d.uid != cur.uid {
            return err("permission denied: the owner cannot be changed");
        }
        if let Some(name) = new_name {
            check_name(name)?;
            if node.is_root() {
                return Err(errors::ROOT);
            }
            if fs::symlink_metadata(self.tree.path(&node.parent().child(name.as_ref()))).is_ok() {
                return err("file exists");
            }
        }
        if new_len.is_some() && is_dir {
            return err("is a directory");
        }
        if let Some(m) = new_mode
            && (m & DMDIR != 0) != is_dir
        {
            return err("permission denied: the directory bit cannot be changed");
        }
        let gid = match new_gid {
            Some(g) => Some(
                g.parse::<u32>()
                    .map_err(|_| NineError::new("unknown group: give a numeric gid"))?,
            ),
            None => None,
        };

        let nothing = new_name.is_none()
            && new_len.is_none()
            && new_mode.is_none()
            && new_mtime.is_none()
            && new_atime.is_none()
            && gid.is_none();
        if nothing {
            // stat(5): a wstat that changes nothing asks for the file to be committed.
            File::open(&path)?.sync_all()?;
            return Ok(Msg::Rwstat);
        }
        if let Some(len) = new_len {
            OpenOptions::new().write(true).open(&path)?.set_len(len)?;
        }
        if let Some(m) = new_mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(m & 0o777))?;
        }
        if let Some(g) = gid {
            std::os::unix::fs::chown(&path, None, Some(g))?;
        }
        if new_mtime.is_some() || new_atime.is_some() {
            let at = |s: u32| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(s));
            let mut times = fs::FileTimes::new();
            if let Some(t) = new_mtime {
                times = times.set_modified(at(t));
            }
            if let Some(t) = new_atime {
                times = times.set_accessed(at(t));
            }
            File::open(&path)?.set_times(times)?;
        }
        if let Some(name) = new_name {
            let to = node.parent().child(name.as_ref());
            fs::rename(&path, self.tree.path(&to))?;
            f.node = to;
            f.name = name.to_string();
        }
        Ok(Msg::Rwstat)
    }
}
