//! `#root`: the boot archive (a cpio newc module from the loader), read-only. It holds the
//! skeleton of the namespace (`/bin /dev /env /mnt /n /proc /srv /tmp`) and the programs.
//!
//! The archive stays where the loader put it; files are slices of that memory.

use crate::error::KResult;
use crate::ns::chan::{Chan, Dev, dir_entry, read_dir_entries, read_slice};
use abi::errors::{ENOTDIR, ENOTEXIST};
use alloc::string::String;
use alloc::vec::Vec;
use ninep::{DMDIR, Dir, QTDIR, Qid};

/// Directories every namespace expects, created if the archive lacks them.
const SKELETON: [&str; 8] = ["bin", "dev", "env", "mnt", "n", "proc", "srv", "tmp"];

struct Node {
    name: String,
    children: Vec<usize>,
    data: &'static [u8],
    mode: u32,
    mtime: u32,
}

/// The `#root` device.
pub struct Root {
    nodes: spin::Once<Vec<Node>>,
}

/// The one instance.
pub static ROOT: Root = Root {
    nodes: spin::Once::new(),
};

fn dir_node(name: &str) -> Node {
    Node {
        name: name.into(),
        children: Vec::new(),
        data: &[],
        mode: DMDIR | 0o555,
        mtime: 0,
    }
}

/// Indexes the boot archive. A malformed archive is reported and what was read before the
/// error is kept.
pub fn init(archive: &'static [u8]) {
    let mut nodes = alloc::vec![dir_node("/")];
    fn lookup_or_make(nodes: &mut Vec<Node>, path: &str) -> usize {
        let mut at = 0;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            at = match nodes[at]
                .children
                .iter()
                .copied()
                .find(|&c| nodes[c].name == name)
            {
                Some(c) => c,
                None => {
                    nodes.push(dir_node(name));
                    let id = nodes.len() - 1;
                    nodes[at].children.push(id);
                    id
                }
            };
        }
        at
    }
    let mut files = 0;
    for entry in cpio::Reader::new(archive) {
        let e = match entry {
            Ok(e) => e,
            Err(err) => {
                log::error!("boot archive: {err}; keeping the {files} files before it");
                break;
            }
        };
        if e.name.is_empty() {
            continue;
        }
        let id = lookup_or_make(&mut nodes, e.name);
        let node = &mut nodes[id];
        node.mtime = e.mtime;
        if e.is_dir() {
            node.mode = DMDIR | (e.mode & 0o777);
        } else {
            node.mode = e.mode & 0o777;
            node.data = e.data;
            files += 1;
        }
    }
    for dir in SKELETON {
        lookup_or_make(&mut nodes, dir);
    }
    log::info!("boot archive: {files} files, {} KiB", archive.len() / 1024);
    ROOT.nodes.call_once(|| nodes);
}

impl Root {
    fn nodes(&self) -> &[Node] {
        self.nodes.get().map_or(&[], Vec::as_slice)
    }

    fn qid(&self, id: usize) -> Qid {
        let dir = self.nodes().get(id).is_none_or(|n| n.mode & DMDIR != 0);
        Qid {
            ty: if dir { QTDIR } else { 0 },
            version: 0,
            path: id as u64,
        }
    }

    fn dir(&self, id: usize) -> Dir<'static> {
        match self.nodes().get(id) {
            Some(n) => {
                let mut d = dir_entry(&n.name, self.qid(id), n.mode, n.data.len() as u64);
                d.mtime = n.mtime;
                d.atime = n.mtime;
                d
            }
            None => dir_entry("/", self.qid(0), DMDIR | 0o555, 0),
        }
    }

    /// The contents of the file at `path` (for the kernel's own use: starting init).
    pub fn file(&self, path: &str) -> Option<&'static [u8]> {
        let nodes = self.nodes();
        let mut at = 0;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            at = nodes
                .get(at)?
                .children
                .iter()
                .copied()
                .find(|&c| nodes[c].name == name)?;
        }
        let n = nodes.get(at)?;
        (n.mode & DMDIR == 0).then_some(n.data)
    }
}

impl Dev for Root {
    fn name(&self) -> &'static str {
        "root"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(self, 0, self.qid(0), String::from("#root"), None))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        let nodes = self.nodes();
        let node = nodes.get(c.qid.path as usize).ok_or(ENOTEXIST)?;
        if node.mode & DMDIR == 0 {
            return Err(ENOTDIR.into());
        }
        let child = node
            .children
            .iter()
            .copied()
            .find(|&i| nodes[i].name == name)
            .ok_or(ENOTEXIST)?;
        Ok(c.walked(self.qid(child), name, None))
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        Ok(self.dir(c.qid.path as usize))
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        let id = c.qid.path as usize;
        let node = self.nodes().get(id).ok_or(ENOTEXIST)?;
        if node.mode & DMDIR != 0 {
            let entries: Vec<Dir<'static>> = node.children.iter().map(|&i| self.dir(i)).collect();
            return read_dir_entries(&entries, buf, offset);
        }
        Ok(read_slice(node.data, buf, offset))
    }
}
