//! The served tree: confined path resolution, directory entries from `stat(2)`, and errors in
//! 9P style (`intro(5)`, `walk(5)`, `stat(5)`).
//!
//! Confinement. A fid names a [`Node`]: a list of names below the root with no `..`, no `.` and no
//! symbolic link among them, so the path the server hands to the kernel never leaves the root.
//! Walking resolves each element with `lstat`: `..` at the root stays at the root, and a symbolic
//! link is expanded by the server itself as if the root were `/` (like a chroot): an absolute
//! target starts again at the served root, a relative one at the link's directory, and `..` in
//! a target stops at the root too. So a link never leads out of the root, and the absolute links
//! of a served system disk (`/etc/localtime -> /usr/share/zoneinfo/...`) resolve inside the disk,
//! not in the server's own file system. Links that do not resolve (dangling, or a loop) are listed
//! with their own `lstat` but cannot be opened. Clients cannot create links (9P2000 has no
//! symlink), so the resolved path stays link-free unless something outside the server changes
//! the tree concurrently.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use ninep::{DMDIR, Dir, QTDIR, QTFILE, Qid};

/// Symbolic links followed while resolving one walk element, as Linux's MAXSYMLINKS.
const MAX_SYMLINK_HOPS: u32 = 40;

/// An error as a 9P error string (`error(5)`): what goes into `Rerror`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NineError(pub Cow<'static, str>);

impl NineError {
    /// An error with a fixed message.
    pub const fn new(s: &'static str) -> Self {
        NineError(Cow::Borrowed(s))
    }
}

impl std::fmt::Display for NineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<io::Error> for NineError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind as K;
        let s = match e.kind() {
            K::NotFound => "file does not exist",
            K::PermissionDenied => "permission denied",
            K::AlreadyExists => "file exists",
            K::NotADirectory => "not a directory",
            K::IsADirectory => "is a directory",
            K::DirectoryNotEmpty => "directory not empty",
            K::ReadOnlyFilesystem => "read-only file system",
            K::StorageFull => "file system full",
            K::QuotaExceeded => "disk quota exceeded",
            K::FileTooLarge => "file too large",
            K::InvalidFilename => "file name too long",
            K::CrossesDevices => "cross-device link",
            K::Interrupted => "interrupted",
            _ => {
                // "Input/output error (os error 5)" -> "input/output error"
                let full = e.to_string();
                let text = full.split(" (os error").next().unwrap_or(&full);
                let mut chars = text.chars();
                let lowered = match chars.next() {
                    Some(c) => c.to_lowercase().chain(chars).collect(),
                    None => String::from("i/o error"),
                };
                return NineError(Cow::Owned(lowered));
            }
        };
        NineError::new(s)
    }
}

/// Errors the server itself raises.
pub mod errors {
    use super::NineError;
    /// A walk element or created name that cannot be a file name.
    pub const BAD_NAME: NineError = NineError::new("invalid file name");
    /// Too many symbolic links on the way.
    pub const LOOP: NineError = NineError::new("too many levels of symbolic links");
    /// The root itself cannot be removed or renamed.
    pub const ROOT: NineError = NineError::new("permission denied: the root cannot be changed");
    /// A write on a server started with `--readonly`.
    pub const READONLY: NineError = NineError::new("read-only file system");
}

/// A file below the root, by its resolved names (no `.`, `..` or symbolic links).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    names: Vec<OsString>,
}

impl Node {
    /// The root itself.
    pub fn is_root(&self) -> bool {
        self.names.is_empty()
    }

    /// The node one level up (the root for the root).
    pub fn parent(&self) -> Node {
        let mut p = self.clone();
        p.names.pop();
        p
    }

    /// The node for `name` inside this directory (no resolution).
    pub fn child(&self, name: &OsStr) -> Node {
        let mut c = self.clone();
        c.names.push(name.to_owned());
        c
    }

    /// The last name ("/" for the root, as `stat(5)` asks).
    pub fn name(&self) -> String {
        match self.names.last() {
            Some(n) => n.to_string_lossy().into_owned(),
            None => "/".to_string(),
        }
    }
}

/// The served directory.
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
}

/// Checks a name a client wants to walk to or create: one path element, not `.` or `..` for
/// creation (walks handle those before calling this).
pub fn check_name(name: &str) -> Result<(), NineError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name == "." || name == ".." {
        return Err(errors::BAD_NAME);
    }
    Ok(())
}

impl Tree {
    /// Serves `root`, which must be a directory.
    pub fn new(root: &Path) -> io::Result<Tree> {
        let root = fs::canonicalize(root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Tree { root })
    }

    /// The host path of the root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of a node.
    pub fn path(&self, node: &Node) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(&node.names);
        p
    }

    /// Resolves one walk element from the directory `from` (see the module notes).
    pub fn walk(&self, from: &Node, name: &str) -> Result<Node, NineError> {
        match name {
            ".." => return Ok(from.parent()),
            "." => return Ok(from.clone()),
            _ => check_name(name)?,
        }
        // The element must be walked from a directory even if it names a symlink.
        if !fs::symlink_metadata(self.path(from))?.is_dir() {
            return Err(NineError::new("not a directory"));
        }
        let mut node = from.clone();
        let mut pending: Vec<OsString> = vec![OsString::from(name)];
        let mut hops = 0;
        // `pending` is a stack: the next element to resolve is last.
        while let Some(elem) = pending.pop() {
            if elem == ".." {
                node.names.pop();
                continue;
            }
            if elem == "." || elem.is_empty() {
                continue;
            }
            let cand = node.child(&elem);
            let path = self.path(&cand);
            let meta = fs::symlink_metadata(&path)?;
            if !meta.file_type().is_symlink() {
                node = cand;
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(errors::LOOP);
            }
            let target = fs::read_link(&path)?;
            if target.is_absolute() {
                node = Node::default();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_owned()),
                    Component::ParentDir => pending.push("..".into()),
                    Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                }
            }
        }
        Ok(node)
    }

    /// `lstat` of a node (which has no symlinks, so this is its own metadata).
    pub fn metadata(&self, node: &Node) -> Result<Metadata, NineError> {
        Ok(fs::symlink_metadata(self.path(node))?)
    }

    /// The entry for a directory listing: the file `name` in `dir` as the walk would see it;
    /// an unresolvable symlink is shown as itself.
    pub fn list_entry(&self, dir: &Node, name: &str) -> Option<Dir<'static>> {
        let meta = match self.walk(dir, name).and_then(|n| self.metadata(&n)) {
            Ok(m) => m,
            Err(_) => fs::symlink_metadata(self.path(&dir.child(OsStr::new(name)))).ok()?,
        };
        Some(dir_entry(name.to_string(), &meta))
    }
}

/// The qid of a file: `path` from the inode number, `version` from the modification time.
pub fn qid(meta: &Metadata) -> Qid {
    Qid {
        ty: if meta.is_dir() { QTDIR } else { QTFILE },
        version: (meta.mtime() as u32) ^ (meta.mtime_nsec() as u32),
        path: meta.ino(),
    }
}

/// A directory entry from `stat(2)`: permission bits and `DMDIR`, times in seconds, numeric
/// owner and group names.
pub fn dir_entry(name: String, meta: &Metadata) -> Dir<'static> {
    let uid = meta.uid().to_string();
    Dir {
        ty: 0,
        dev: 0,
        qid: qid(meta),
        mode: (meta.mode() & 0o777) | if meta.is_dir() { DMDIR } else { 0 },
        atime: meta.atime() as u32,
        mtime: meta.mtime() as u32,
        length: if meta.is_dir() { 0 } else { meta.len() },
        name: name.into(),
        muid: uid.clone().into(),
        uid: uid.into(),
        gid: meta.gid().to_string().into(),
        ..Dir::default()
    }
}
