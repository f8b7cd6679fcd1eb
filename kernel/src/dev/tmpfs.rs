//! `#tmpfs`: an in-memory file system. Every attach makes a fresh, private instance that lives
//! as long as a channel refers to it; when the last one goes, the instance is freed and every
//! mount point inside it is removed from every namespace (so a script that `cd`s into
//! `#tmpfs` and binds things there leaves nothing behind).
//!
//! Files hold their data in page frames taken from the frame allocator on first write (not from
//! the kernel heap, which never shrinks, so a removed file gives its memory back to everyone),
//! kept by page number, so sparse files cost only what was written and large files grow without
//! copying. All instances together may hold at most half of physical memory (Linux's tmpfs
//! default); past that, or when no frame is free, a write fails with "file system full" instead
//! of exhausting memory. qid.path is a 64-bit counter per
//! instance, never reused (Akaros' tmpfs reused 16-bit paths and its mount table mixed files up).

use crate::error::KResult;
use crate::mm::PAGE_SIZE;
use crate::mm::frame::{self, Frame};
use crate::ns::chan::{Chan, Dev, check_io, check_open, dir_entry, new_devno, read_dir_entries};
use crate::sync::IrqLock;
use abi::errors::{EBADARG, EEXIST, EFULL, EISDIR, ENOTDIR, ENOTEMPTY, ENOTEXIST, EPERM, ETOOLONG};
use abi::sys::mode::{OEXCL, OTRUNC};
use alloc::collections::BTreeMap;
use alloc::collections::btree_map::Entry;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use ninep::{DMAPPEND, DMDIR, Dir, QTDIR, Qid};

/// Bytes per data chunk: one page frame.
const CHUNK: usize = PAGE_SIZE as usize;
/// Longest file name.
const MAX_NAME: usize = 255;
/// Largest file.
const MAX_FILE: u64 = 1 << 40;

/// Bytes of chunks held by every instance together.
static CHUNK_BYTES: AtomicU64 = AtomicU64::new(0);

/// One page of a file's data: a frame of its own, counted against the shared limit while it
/// lives and freed with it.
struct Chunk(Frame);

impl Chunk {
    /// A zeroed chunk, if the limit and the free frames allow it.
    fn new() -> KResult<Chunk> {
        let limit = frame::total_bytes() / 2;
        CHUNK_BYTES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + CHUNK as u64 <= limit).then_some(held + CHUNK as u64)
            })
            .map_err(|_| EFULL)?;
        match frame::alloc_zeroed() {
            Some(f) => Ok(Chunk(f)),
            None => {
                CHUNK_BYTES.fetch_sub(CHUNK as u64, Ordering::AcqRel);
                Err(EFULL.into())
            }
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        frame::free(self.0);
        CHUNK_BYTES.fetch_sub(CHUNK as u64, Ordering::AcqRel);
    }
}

impl core::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: The frame belongs to this chunk alone until it is dropped, and the direct
        // map covers it; borrows of the chunk bound the slice's lifetime.
        unsafe { core::slice::from_raw_parts(self.0.as_mut_ptr(), CHUNK) }
    }
}

impl core::ops::DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: As for `deref`; `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr(), CHUNK) }
    }
}

enum Body {
    Dir(BTreeMap<String, u64>),
    /// Data pages by page number (absent: a hole, which reads as zeros).
    File {
        chunks: BTreeMap<usize, Chunk>,
        len: u64,
    },
}

struct Node {
    name: String,
    parent: u64,
    mode: u32,
    mtime: u32,
    version: u32,
    body: Body,
}

/// One instance: its files by qid.path (the root is path 0).
pub struct Instance {
    devno: u64,
    nodes: IrqLock<BTreeMap<u64, Node>>,
    next: IrqLock<u64>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        crate::ns::purge_instance("tmpfs", self.devno);
    }
}

/// The `#tmpfs` device.
pub struct Tmpfs;

/// The one instance of the device (each attach creates a file system instance).
pub static TMPFS: Tmpfs = Tmpfs;

fn instance(c: &Chan) -> Arc<Instance> {
    c.aux::<Instance>()
        .expect("#tmpfs channels carry their instance")
}

fn qid(path: u64, n: &Node) -> Qid {
    let ty = if matches!(n.body, Body::Dir(_)) {
        QTDIR
    } else {
        0
    };
    Qid {
        ty,
        version: n.version,
        path,
    }
}

fn dir_of(path: u64, n: &Node) -> Dir<'static> {
    let len = match &n.body {
        Body::File { len, .. } => *len,
        Body::Dir(_) => 0,
    };
    let mut d = dir_entry(&n.name, qid(path, n), n.mode, len);
    d.mtime = n.mtime;
    d.atime = n.mtime;
    d
}

fn now() -> u32 {
    crate::time::unix_seconds() as u32
}

fn read_file(chunks: &BTreeMap<usize, Chunk>, len: u64, buf: &mut [u8], offset: u64) -> usize {
    if offset >= len {
        return 0;
    }
    let n = buf.len().min((len - offset) as usize);
    let mut done = 0;
    while done < n {
        let pos = offset as usize + done;
        let (ci, co) = (pos / CHUNK, pos % CHUNK);
        let take = (CHUNK - co).min(n - done);
        match chunks.get(&ci) {
            Some(chunk) => buf[done..done + take].copy_from_slice(&chunk[co..co + take]),
            None => buf[done..done + take].fill(0), // a hole
        }
        done += take;
    }
    n
}

fn write_file(
    chunks: &mut BTreeMap<usize, Chunk>,
    len: &mut u64,
    buf: &[u8],
    offset: u64,
) -> KResult<usize> {
    offset
        .checked_add(buf.len() as u64)
        .filter(|&e| e <= MAX_FILE)
        .ok_or(ETOOLONG)?;
    let mut done = 0;
    while done < buf.len() {
        let pos = offset as usize + done;
        let (ci, co) = (pos / CHUNK, pos % CHUNK);
        let take = (CHUNK - co).min(buf.len() - done);
        let chunk = match chunks.entry(ci) {
            Entry::Occupied(c) => c.into_mut(),
            Entry::Vacant(v) => match Chunk::new() {
                Ok(c) => v.insert(c),
                Err(_) => break,
            },
        };
        chunk[co..co + take].copy_from_slice(&buf[done..done + take]);
        done += take;
    }
    // What fitted was written (and counts); nothing at all is an error.
    if done == 0 && !buf.is_empty() {
        return Err(EFULL.into());
    }
    *len = (*len).max(offset + done as u64);
    Ok(done)
}

fn truncate(chunks: &mut BTreeMap<usize, Chunk>, len: &mut u64, new_len: u64) {
    let keep = (new_len as usize).div_ceil(CHUNK);
    drop(chunks.split_off(&keep));
    // Zero the tail of the last page kept, so growing the file again reads zeros.
    let from = new_len as usize % CHUNK;
    if from != 0
        && let Some(last) = chunks.get_mut(&(keep - 1))
    {
        last[from..].fill(0);
    }
    *len = new_len;
}

impl Dev for Tmpfs {
    fn name(&self) -> &'static str {
        "tmpfs"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        let devno = new_devno();
        let root = Node {
            name: String::from("/"),
            parent: 0,
            mode: DMDIR | 0o777,
            mtime: now(),
            version: 0,
            body: Body::Dir(BTreeMap::new()),
        };
        let q = qid(0, &root);
        let mut nodes = BTreeMap::new();
        nodes.insert(0, root);
        let inst = Arc::new(Instance {
            devno,
            nodes: IrqLock::new(nodes),
            next: IrqLock::new(1),
        });
        Ok(Chan::new(
            self,
            devno,
            q,
            String::from("#tmpfs"),
            Some(inst),
        ))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        let inst = instance(c);
        let nodes = inst.nodes.lock();
        let node = nodes.get(&c.qid.path).ok_or(ENOTEXIST)?;
        let Body::Dir(entries) = &node.body else {
            return Err(ENOTDIR.into());
        };
        let &child = entries.get(name).ok_or(ENOTEXIST)?;
        let q = qid(child, &nodes[&child]);
        drop(nodes);
        Ok(c.walked(q, name, Some(inst)))
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        let inst = instance(c);
        let nodes = inst.nodes.lock();
        let node = nodes.get(&c.qid.path).ok_or(ENOTEXIST)?;
        Ok(dir_of(c.qid.path, node))
    }

    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        let d = self.stat(c)?;
        check_open(&d, mode)?;
        if mode & OTRUNC != 0 {
            let inst = instance(c);
            let mut nodes = inst.nodes.lock();
            if let Some(Node {
                body: Body::File { chunks, len },
                mtime,
                version,
                ..
            }) = nodes.get_mut(&c.qid.path)
            {
                truncate(chunks, len, 0);
                *mtime = now();
                *version += 1;
            }
        }
        Ok(Arc::new(c.opened(mode)))
    }

    fn create(&self, c: &Chan, name: &str, mode: u64, perm: u32) -> KResult<Chan> {
        if name.is_empty()
            || name.len() > MAX_NAME
            || name.contains('/')
            || name == "."
            || name == ".."
        {
            return Err(EBADARG.into());
        }
        let inst = instance(c);
        let mut nodes = inst.nodes.lock();
        let parent = nodes.get(&c.qid.path).ok_or(ENOTEXIST)?;
        let Body::Dir(entries) = &parent.body else {
            return Err(ENOTDIR.into());
        };
        if parent.mode & 0o200 == 0 {
            return Err(EPERM.into());
        }
        if let Some(&existing) = entries.get(name) {
            // Plan 9 create(2): an existing file is truncated, unless OEXCL.
            let node = nodes.get_mut(&existing).ok_or(ENOTEXIST)?;
            if mode & OEXCL != 0 || perm & DMDIR != 0 {
                return Err(EEXIST.into());
            }
            let Body::File { chunks, len } = &mut node.body else {
                return Err(EISDIR.into());
            };
            truncate(chunks, len, 0);
            node.version += 1;
            let q = qid(existing, node);
            drop(nodes);
            return Ok(c.walked(q, name, Some(inst)).opened(mode & !OEXCL));
        }
        let path = {
            let mut next = inst.next.lock();
            *next += 1;
            *next - 1
        };
        let is_dir = perm & DMDIR != 0;
        if is_dir && mode & 3 != abi::sys::mode::OREAD {
            return Err(EISDIR.into());
        }
        let node = Node {
            name: String::from(name),
            parent: c.qid.path,
            mode: if is_dir {
                DMDIR | (perm & 0o777)
            } else {
                perm & (0o777 | DMAPPEND)
            },
            mtime: now(),
            version: 0,
            body: if is_dir {
                Body::Dir(BTreeMap::new())
            } else {
                Body::File {
                    chunks: BTreeMap::new(),
                    len: 0,
                }
            },
        };
        let q = qid(path, &node);
        nodes.insert(path, node);
        if let Some(Node {
            body: Body::Dir(entries),
            mtime,
            ..
        }) = nodes.get_mut(&c.qid.path)
        {
            entries.insert(String::from(name), path);
            *mtime = now();
        }
        drop(nodes);
        Ok(c.walked(q, name, Some(inst)).opened(mode & !OEXCL))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        check_io(c, false)?;
        let inst = instance(c);
        let nodes = inst.nodes.lock();
        let node = nodes.get(&c.qid.path).ok_or(ENOTEXIST)?;
        match &node.body {
            Body::Dir(entries) => {
                let list: Vec<Dir<'static>> = entries
                    .values()
                    .filter_map(|p| nodes.get(p).map(|n| dir_of(*p, n)))
                    .collect();
                drop(nodes);
                read_dir_entries(&list, buf, offset)
            }
            Body::File { chunks, len } => Ok(read_file(chunks, *len, buf, offset)),
        }
    }

    fn write(&self, c: &Chan, buf: &[u8], offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        let inst = instance(c);
        let mut nodes = inst.nodes.lock();
        let node = nodes.get_mut(&c.qid.path).ok_or(ENOTEXIST)?;
        let append = node.mode & DMAPPEND != 0;
        let Body::File { chunks, len } = &mut node.body else {
            return Err(EISDIR.into());
        };
        let at = if append { *len } else { offset };
        let n = write_file(chunks, len, buf, at)?;
        node.mtime = now();
        node.version = node.version.wrapping_add(1);
        Ok(n)
    }

    fn remove(&self, c: &Chan) -> KResult<()> {
        if c.qid.path == 0 {
            return Err(EPERM.into());
        }
        let inst = instance(c);
        let mut nodes = inst.nodes.lock();
        let node = nodes.get(&c.qid.path).ok_or(ENOTEXIST)?;
        if let Body::Dir(entries) = &node.body
            && !entries.is_empty()
        {
            return Err(ENOTEMPTY.into());
        }
        let (parent, name) = (node.parent, node.name.clone());
        nodes.remove(&c.qid.path);
        if let Some(Node {
            body: Body::Dir(entries),
            mtime,
            ..
        }) = nodes.get_mut(&parent)
        {
            entries.remove(&name);
            *mtime = now();
        }
        Ok(())
    }

    fn wstat(&self, c: &Chan, d: &Dir<'_>) -> KResult<()> {
        let inst = instance(c);
        let mut nodes = inst.nodes.lock();
        let node = nodes.get(&c.qid.path).ok_or(ENOTEXIST)?;
        let is_dir = matches!(node.body, Body::Dir(_));
        // Check everything before changing anything (wstat(5): all or nothing).
        let rename = !d.name.is_empty() && d.name != node.name.as_str();
        if rename {
            if c.qid.path == 0
                || d.name.contains('/')
                || d.name.len() > MAX_NAME
                || d.name == "."
                || d.name == ".."
            {
                return Err(EBADARG.into());
            }
            let Some(Node {
                body: Body::Dir(siblings),
                ..
            }) = nodes.get(&node.parent)
            else {
                return Err(ENOTEXIST.into());
            };
            if siblings.contains_key(d.name.as_ref()) {
                return Err(EEXIST.into());
            }
        }
        if d.length != u64::MAX && (is_dir || d.length > MAX_FILE) {
            return Err(EBADARG.into());
        }
        if d.mode != u32::MAX && (d.mode & DMDIR != 0) != is_dir {
            return Err(EBADARG.into());
        }
        let parent = node.parent;
        let old_name = node.name.clone();
        let node = nodes.get_mut(&c.qid.path).ok_or(ENOTEXIST)?;
        if d.length != u64::MAX
            && let Body::File { chunks, len } = &mut node.body
        {
            truncate(chunks, len, d.length);
            node.version += 1;
        }
        if d.mode != u32::MAX {
            node.mode = (node.mode & DMDIR) | (d.mode & (0o777 | DMAPPEND));
        }
        if d.mtime != u32::MAX {
            node.mtime = d.mtime;
        }
        if rename {
            node.name = String::from(d.name.as_ref());
            if let Some(Node {
                body: Body::Dir(siblings),
                ..
            }) = nodes.get_mut(&parent)
            {
                siblings.remove(&old_name);
                siblings.insert(String::from(d.name.as_ref()), c.qid.path);
            }
        }
        Ok(())
    }
}
