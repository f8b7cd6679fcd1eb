//! Namespaces (Plan 9 `port/chan.c`, `port/pgrp.c`): path evaluation, the mount table, bind,
//! mount and unmount, and union directories.
//!
//! A path is evaluated element by element from the namespace root, the current directory, or a
//! `#device` attach. After every step the mount table is consulted with the file's key
//! (device, instance, qid.path); a mounted-on file stands for the union of what was bound
//! there. `..` is lexical: it returns to the channel the walk came from (never above the start).

pub mod chan;
pub mod devtab;
pub mod fgrp;

use crate::error::KResult;
use crate::sync::IrqLock;
use abi::errors::{EMOUNT, ENOCREATE, ENOTDIR, ENOTEXIST, ENOTMOUNTED, ETOOLONG};
use abi::sys::bind::{MAFTER, MBEFORE, MCREATE, MORDER};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use chan::{Chan, MountKey, Union};

/// Deepest path the kernel walks.
const MAX_DEPTH: usize = 256;

/// One thing bound at a mount point.
#[derive(Clone)]
pub struct Mount {
    pub chan: Arc<Chan>,
    pub flags: u64,
}

/// A mount point and what is bound there, in union order.
#[derive(Clone)]
pub struct Mhead {
    /// The mount point's path when the first bind was made (for `#proc/N/ns`).
    pub path: String,
    pub mounts: Vec<Mount>,
    /// When the mount point was made, so `#proc/N/ns` lists binds in an order that rebuilds.
    seq: u64,
}

static NEXT_SEQ: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A name space: the root and the mount table. Shared by processes until `rfork(RFNAMEG)`.
pub struct Namespace {
    root: Arc<Chan>,
    table: IrqLock<BTreeMap<MountKey, Mhead>>,
}

/// Every namespace, so a device instance that goes away can purge its mount points.
static ALL: IrqLock<Vec<Weak<Namespace>>> = IrqLock::new(Vec::new());

/// A resolved channel with the chain of channels it was walked through (for `..`).
#[derive(Clone)]
pub struct Walked {
    pub chan: Arc<Chan>,
    /// The channels walked through, outermost first (empty at a walk's start).
    pub parents: Vec<Arc<Chan>>,
}

impl Namespace {
    /// A namespace whose root is `root` and whose mount table is empty.
    pub fn new(root: Arc<Chan>) -> Arc<Namespace> {
        let ns = Arc::new(Namespace {
            root,
            table: IrqLock::new(BTreeMap::new()),
        });
        register(&ns);
        ns
    }

    /// A copy with the same root and mount table (`rfork(RFNAMEG)`).
    pub fn fork(&self) -> Arc<Namespace> {
        let ns = Arc::new(Namespace {
            root: self.root.clone(),
            table: IrqLock::new(self.table.lock().clone()),
        });
        register(&ns);
        ns
    }

    /// The root directory, with whatever is mounted on it.
    pub fn root(&self) -> Walked {
        Walked {
            chan: self.resolve(self.root.clone()),
            parents: Vec::new(),
        }
    }

    /// The union standing at `c`, if something is mounted there.
    fn resolve(&self, c: Arc<Chan>) -> Arc<Chan> {
        if c.union.is_some() {
            return c;
        }
        let table = self.table.lock();
        let Some(head) = table.get(&c.key()) else {
            return c;
        };
        // The mount point's own member is stored without its device state (see `bind`); the
        // walked channel, which has it, stands in for it.
        let key = c.key();
        let members: Vec<(Arc<Chan>, u64)> = head
            .mounts
            .iter()
            .map(|m| {
                let chan = if m.chan.key() == key { &c } else { &m.chan };
                (chan.clone(), m.flags)
            })
            .collect();
        drop(table);
        let Some((first, _)) = members.first().cloned() else {
            return c;
        };
        let union = Arc::new(Union { key, members });
        let mut u = Chan::new(
            first.dev,
            first.devno,
            first.qid,
            c.path.clone(),
            first.aux.clone(),
        );
        u.union = Some(union);
        Arc::new(u)
    }

    /// Walks `elements` from `start`.
    pub fn walk(&self, start: Walked, elements: &[&str]) -> KResult<Walked> {
        let mut at = start;
        for &e in elements {
            match e {
                "" | "." => {}
                ".." => {
                    if let Some(parent) = at.parents.pop() {
                        at.chan = parent;
                    }
                }
                name => {
                    if at.parents.len() >= MAX_DEPTH {
                        return Err(ETOOLONG.into());
                    }
                    let next = walk1(&at.chan, name)?;
                    let next = self.resolve(Arc::new(next));
                    at.parents.push(core::mem::replace(&mut at.chan, next));
                }
            }
        }
        Ok(at)
    }

    /// Binds `new` at `old` (`MREPL`, `MBEFORE`, `MAFTER`, optionally `MCREATE`).
    pub fn bind(&self, new: Arc<Chan>, old: &Arc<Chan>, flags: u64) -> KResult<()> {
        if new.is_dir() != old.is_dir() {
            return Err(EMOUNT.into());
        }
        let key = mount_point(old);
        // A union that does not yet exist starts with the mount point itself, except for MREPL.
        // That member is kept without the device's state (`aux`): held in the table, it would
        // keep alive the very instance whose end purges the table entry (a tmpfs directory
        // with `bind -a` onto it). `resolve` puts the walked channel in its place.
        let original = match &old.union {
            Some(u) => u.members.first().map(|m| m.0.clone()),
            None => None,
        }
        .filter(|c| c.key() != key)
        .unwrap_or_else(|| {
            Arc::new(Chan::new(
                old.dev,
                old.devno,
                old.qid,
                old.path.clone(),
                None,
            ))
        });
        let mount = Mount { chan: new, flags };
        let replaced = {
            let mut table = self.table.lock();
            let head = table.entry(key).or_insert_with(|| Mhead {
                path: old.path.clone(),
                mounts: Vec::new(),
                seq: NEXT_SEQ.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            });
            if head.mounts.is_empty() && flags & MORDER != 0 {
                head.mounts.push(Mount {
                    chan: original,
                    flags: 0,
                });
            }
            match flags & MORDER {
                MBEFORE => {
                    head.mounts.insert(0, mount);
                    Vec::new()
                }
                MAFTER => {
                    head.mounts.push(mount);
                    Vec::new()
                }
                _ => core::mem::replace(&mut head.mounts, alloc::vec![mount]),
            }
        };
        // Dropped outside the lock: dropping channels may free a device instance, which purges
        // its mount points from every namespace.
        drop(replaced);
        Ok(())
    }

    /// Removes `new` (every member if `None`) from the union at `old`.
    pub fn unmount(&self, new: Option<&Arc<Chan>>, old: &Arc<Chan>) -> KResult<()> {
        let key = mount_point(old);
        let removed: Vec<Mount> = {
            let mut table = self.table.lock();
            let head = table.get_mut(&key).ok_or(ENOTMOUNTED)?;
            let mut removed = match new {
                None => core::mem::take(&mut head.mounts),
                Some(n) => {
                    let target = n
                        .union
                        .as_ref()
                        .and_then(|u| u.members.first().map(|m| m.0.key()))
                        .unwrap_or(n.key());
                    let (gone, kept): (Vec<Mount>, Vec<Mount>) = core::mem::take(&mut head.mounts)
                        .into_iter()
                        .partition(|m| m.chan.key() == target);
                    head.mounts = kept;
                    if gone.is_empty() {
                        return Err(ENOTMOUNTED.into());
                    }
                    gone
                }
            };
            // Only the mount point itself left: the entry goes.
            if head.mounts.iter().all(|m| m.chan.key() == key) {
                removed.extend(table.remove(&key).into_iter().flat_map(|h| h.mounts));
            }
            removed
        };
        drop(removed);
        Ok(())
    }

    /// The mount table as the commands that rebuild it (`#proc/N/ns`).
    pub fn describe(&self) -> String {
        use core::fmt::Write;
        let mut out = String::new();
        let table = self.table.lock();
        let mut heads: Vec<(&MountKey, &Mhead)> = table.iter().collect();
        heads.sort_by_key(|(_, h)| h.seq);
        for (key, head) in heads {
            for (i, m) in head.mounts.iter().enumerate() {
                if m.chan.key() == *key {
                    continue; // the mount point itself, kept as a union member
                }
                let order = if i == 0 && head.mounts.len() == 1 {
                    ""
                } else if i == 0 {
                    "-b "
                } else {
                    "-a "
                };
                let create = if m.flags & MCREATE != 0 { "-c " } else { "" };
                match crate::dev::mnt::source(&m.chan) {
                    Some(src) => {
                        let _ = writeln!(out, "mount {order}{create}'{src}' '{}'", head.path);
                    }
                    None => {
                        let _ =
                            writeln!(out, "bind {order}{create}'{}' '{}'", m.chan.path, head.path);
                    }
                }
            }
        }
        out
    }

    /// Drops every mount point on device instance (`dev`, `devno`), which is going away.
    fn purge(&self, dev: &str, devno: u64) -> Vec<Mhead> {
        let mut table = self.table.lock();
        let keys: Vec<MountKey> = table
            .keys()
            .filter(|k| k.dev == dev && k.devno == devno)
            .copied()
            .collect();
        keys.iter().filter_map(|k| table.remove(k)).collect()
    }

    /// Number of mount points (for tests and `#proc`).
    pub fn mount_points(&self) -> usize {
        self.table.lock().len()
    }
}

fn register(ns: &Arc<Namespace>) {
    let mut all = ALL.lock();
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(ns));
}

/// Removes mount points inside a device instance that no longer exists from every namespace.
/// The removed entries are dropped after the locks are released (dropping them may close
/// channels).
pub fn purge_instance(dev: &str, devno: u64) {
    let spaces: Vec<Arc<Namespace>> = ALL.lock().iter().filter_map(Weak::upgrade).collect();
    let removed: Vec<Mhead> = spaces.iter().flat_map(|ns| ns.purge(dev, devno)).collect();
    drop(removed);
}

/// The mount-table key of the file a (possibly union) channel stands at.
fn mount_point(c: &Chan) -> MountKey {
    c.union.as_ref().map_or(c.key(), |u| u.key)
}

/// Walks one element from `c`, trying each member of a union in order.
fn walk1(c: &Chan, name: &str) -> KResult<Chan> {
    if !c.is_dir() {
        return Err(ENOTDIR.into());
    }
    let Some(u) = &c.union else {
        let mut next = c.dev.walk(c, name)?;
        next.path = chan::join(&c.path, name);
        return Ok(next);
    };
    let mut last = None;
    for (member, _) in &u.members {
        match member.dev.walk(member, name) {
            Ok(mut next) => {
                next.path = chan::join(&c.path, name);
                return Ok(next);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ENOTEXIST.into()))
}

/// The directory to create files in for a (possibly union) directory channel.
pub fn create_target(dir: &Arc<Chan>) -> KResult<Arc<Chan>> {
    match &dir.union {
        None => Ok(dir.clone()),
        Some(u) => u
            .members
            .iter()
            .find(|(_, flags)| flags & MCREATE != 0)
            .map(|(c, _)| c.clone())
            .ok_or_else(|| ENOCREATE.into()),
    }
}

/// Splits a path into its elements (empty ones and `.` dropped later by `walk`).
pub fn elements(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|e| !e.is_empty() && *e != ".")
        .collect()
}

/// Evaluates `path` in `ns`: absolute paths from the root, `#name/...` from a new attach of the
/// device, anything else from the current directory `dot`.
pub fn lookup(ns: &Namespace, dot: &Walked, path: &str) -> KResult<Walked> {
    if path.len() > abi::sys::PATHMAX {
        return Err(ETOOLONG.into());
    }
    if let Some(rest) = path.strip_prefix('#') {
        let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let c = devtab::attach(name)?;
        let start = Walked {
            chan: ns.resolve(Arc::new(c)),
            parents: Vec::new(),
        };
        return ns.walk(start, &elements(tail));
    }
    let start = if path.starts_with('/') {
        ns.root()
    } else {
        dot.clone()
    };
    ns.walk(start, &elements(path))
}

/// Splits `path` into the directory to look up and the last element (for create and remove).
pub fn split_last(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", trimmed),
    };
    (!name.is_empty() && name != "." && name != ".." && !name.starts_with('#'))
        .then_some((dir, name))
}
