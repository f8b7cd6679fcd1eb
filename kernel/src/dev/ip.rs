//! `#ip`: the network stack's files, in the shape of Plan 9's ip(3), bound at `/net`.
//!
//! - `tcp/clone`: opening it makes a conversation and gives its `ctl`, open; reading that
//!   gives the conversation's number N.
//! - `tcp/N/ctl`: `connect ADDR!PORT` (waits for the handshake), `announce ADDR!PORT` (`*` or
//!   `0` for any local address, port 0 for any port), `hangup` (resets the connection).
//! - `tcp/N/data`: the byte stream. Reads wait for bytes and return 0 once the peer has closed;
//!   writes wait for room; after a reset both fail.
//! - `tcp/N/listen`: opening it waits for a call to the announced N and gives the `ctl` of a new
//!   conversation for it.
//! - `tcp/N/local`, `tcp/N/remote`: `ADDR!PORT`; `tcp/N/status`: the TCP state.
//! - `udp/`: the same shape for UDP (`net::udp`): `connect`, `announce`, `headers`, `hangup`;
//!   each write of `data` is a datagram, each read returns one; no `listen`.
//! - `ipifc/N/status`: an interface's name, addresses, MTU and packet counts.
//!
//! A conversation lives while any of its `ctl` and `data` files is open (`net::conv`).

use crate::error::KResult;
use crate::net::conv::{self, Conv, Proto};
use crate::ns::chan::{Chan, Dev, check_io, check_open, dir_entry, read_dir_entries, read_slice};
use abi::errors::{EBADCTL, ENOTDIR, ENOTEXIST, EPERM};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ninep::{DMDIR, Dir, QTDIR, Qid};

/// The kinds of file, in the low byte of qid.path.
const QROOT: u64 = 0;
/// A protocol's directory (`tcp`, `udp`).
const QPROTO: u64 = 1;
const QCLONE: u64 = 2;
const QCONV: u64 = 3;
const QCTL: u64 = 4;
const QDATA: u64 = 5;
const QLISTEN: u64 = 6;
const QLOCAL: u64 = 7;
const QREMOTE: u64 = 8;
const QSTATUS: u64 = 9;
const QIPIFC: u64 = 10;
const QIFC: u64 = 11;
const QIFCSTATUS: u64 = 12;

/// The files of a conversation directory.
const CONV_FILES: [(&str, u64, u32); 6] = [
    ("ctl", QCTL, 0o666),
    ("data", QDATA, 0o666),
    ("listen", QLISTEN, 0o666),
    ("local", QLOCAL, 0o444),
    ("remote", QREMOTE, 0o444),
    ("status", QSTATUS, 0o444),
];

/// qid.path: the kind in bits 0-7, the protocol in bits 8-15, the conversation or interface
/// number from bit 16.
fn qpath(kind: u64, proto: Proto, num: u64) -> u64 {
    (num << 16) | ((proto as u64) << 8) | kind
}

fn kind(c: &Chan) -> u64 {
    c.qid.path & 0xff
}

fn proto(c: &Chan) -> Proto {
    Proto::ALL
        .get(((c.qid.path >> 8) & 0xff) as usize)
        .copied()
        .unwrap_or(Proto::Tcp)
}

fn num(c: &Chan) -> u64 {
    c.qid.path >> 16
}

fn is_dir_kind(kind: u64) -> bool {
    matches!(kind, QROOT | QPROTO | QCONV | QIPIFC | QIFC)
}

/// A qid; conversation files carry the conversation's generation as version, so a reused
/// number is a different file.
fn qid(kind: u64, proto: Proto, num: u64, generation: u64) -> Qid {
    Qid {
        ty: if is_dir_kind(kind) { QTDIR } else { 0 },
        version: generation as u32,
        path: qpath(kind, proto, num),
    }
}

/// The qid of a file that belongs to no protocol or conversation.
fn plain_qid(kind: u64, num: u64) -> Qid {
    qid(kind, Proto::Tcp, num, 0)
}

fn conv_qid(kind: u64, c: &Conv) -> Qid {
    qid(kind, c.proto, u64::from(c.num), c.generation())
}

fn conv_of(c: &Chan) -> KResult<Arc<Conv>> {
    c.aux::<Conv>().ok_or_else(|| ENOTEXIST.into())
}

/// `dir/N/ctl` for a conversation made from a file of `dir` (`clone`) or of `dir/M`
/// (`listen`).
fn ctl_path(from: &str, levels: usize, n: u32) -> String {
    let mut base = from;
    for _ in 0..levels {
        base = base.rsplit_once('/').map_or("", |(b, _)| b);
    }
    alloc::format!("{base}/{n}/ctl")
}

/// An open `ctl` channel of `conv` (already counted in its use).
fn ctl_chan(dev: &'static IpDev, conv: Arc<Conv>, path: String, mode: u64) -> Arc<Chan> {
    let mut c = Chan::new(dev, 0, conv_qid(QCTL, &conv), path, Some(conv));
    c.mode = Some(mode);
    Arc::new(c)
}

fn ifc_count() -> u64 {
    crate::net::ifc_status().len() as u64
}

/// The `#ip` device.
pub struct IpDev;

/// The one instance.
pub static IP: IpDev = IpDev;

impl IpDev {
    fn entries(&self, c: &Chan) -> KResult<Vec<Dir<'static>>> {
        let dir = |name: &str, q: Qid| dir_entry(name, q, DMDIR | 0o555, 0);
        Ok(match kind(c) {
            QROOT => {
                let mut v: Vec<Dir<'static>> = Proto::ALL
                    .iter()
                    .map(|&p| dir(p.name(), qid(QPROTO, p, 0, 0)))
                    .collect();
                v.push(dir("ipifc", plain_qid(QIPIFC, 0)));
                v
            }
            QPROTO => {
                let p = proto(c);
                let mut v = alloc::vec![dir_entry("clone", qid(QCLONE, p, 0, 0), 0o666, 0)];
                for n in conv::numbers(p) {
                    if let Some(conv) = conv::lookup(p, n) {
                        v.push(dir(&alloc::format!("{n}"), conv_qid(QCONV, &conv)));
                    }
                }
                v
            }
            QCONV => {
                let conv = conv_of(c)?;
                CONV_FILES
                    .iter()
                    .map(|(name, k, perm)| dir_entry(name, conv_qid(*k, &conv), *perm, 0))
                    .collect()
            }
            QIPIFC => (0..ifc_count())
                .map(|i| dir(&alloc::format!("{i}"), plain_qid(QIFC, i)))
                .collect(),
            QIFC => alloc::vec![dir_entry("status", plain_qid(QIFCSTATUS, num(c)), 0o444, 0)],
            _ => return Err(ENOTDIR.into()),
        })
    }

    fn text(&self, c: &Chan) -> KResult<String> {
        Ok(match kind(c) {
            QCTL => alloc::format!("{}", conv_of(c)?.num),
            QLOCAL => conv::local(conv_of(c)?.as_ref()),
            QREMOTE => conv::remote(conv_of(c)?.as_ref()),
            QSTATUS => conv::status(conv_of(c)?.as_ref()),
            QIFCSTATUS => crate::net::ifc_status()
                .get(num(c) as usize)
                .cloned()
                .ok_or(ENOTEXIST)?,
            _ => String::new(),
        })
    }
}

impl Dev for IpDev {
    fn name(&self) -> &'static str {
        "ip"
    }

    fn attach(&'static self, _spec: &str) -> KResult<Chan> {
        Ok(Chan::new(
            self,
            0,
            plain_qid(QROOT, 0),
            String::from("#ip"),
            None,
        ))
    }

    fn walk(&self, c: &Chan, name: &str) -> KResult<Chan> {
        match (kind(c), name) {
            (QROOT, "ipifc") => Ok(c.walked(plain_qid(QIPIFC, 0), name, None)),
            (QROOT, n) => {
                let p = Proto::ALL.iter().find(|p| p.name() == n).ok_or(ENOTEXIST)?;
                Ok(c.walked(qid(QPROTO, *p, 0, 0), name, None))
            }
            (QPROTO, "clone") => Ok(c.walked(qid(QCLONE, proto(c), 0, 0), name, None)),
            (QPROTO, n) => {
                let n: u32 = n.parse().map_err(|_| ENOTEXIST)?;
                let conv = conv::lookup(proto(c), n).ok_or(ENOTEXIST)?;
                Ok(c.walked(conv_qid(QCONV, &conv), name, Some(conv)))
            }
            (QCONV, n) => {
                let conv = conv_of(c)?;
                let (_, k, _) = CONV_FILES.iter().find(|f| f.0 == n).ok_or(ENOTEXIST)?;
                Ok(c.walked(conv_qid(*k, &conv), name, Some(conv)))
            }
            (QIPIFC, n) => {
                let i: u64 = n.parse().map_err(|_| ENOTEXIST)?;
                if i >= ifc_count() {
                    return Err(ENOTEXIST.into());
                }
                Ok(c.walked(plain_qid(QIFC, i), name, None))
            }
            (QIFC, "status") => Ok(c.walked(plain_qid(QIFCSTATUS, num(c)), name, None)),
            (k, _) if is_dir_kind(k) => Err(ENOTEXIST.into()),
            _ => Err(ENOTDIR.into()),
        }
    }

    fn stat(&self, c: &Chan) -> KResult<Dir<'static>> {
        let k = kind(c);
        let name = c.path.rsplit('/').next().unwrap_or("ip");
        if is_dir_kind(k) {
            return Ok(dir_entry(name, c.qid, DMDIR | 0o555, 0));
        }
        let (perm, len) = match k {
            QCLONE => (0o666, 0),
            QDATA => (0o666, conv::queued(conv_of(c)?.as_ref())),
            QIFCSTATUS => (0o444, 0),
            _ => {
                let (_, _, perm) = CONV_FILES.iter().find(|f| f.1 == k).ok_or(ENOTEXIST)?;
                (*perm, 0)
            }
        };
        Ok(dir_entry(name, c.qid, perm, len))
    }

    fn open(&self, c: &Chan, mode: u64) -> KResult<Arc<Chan>> {
        check_open(&self.stat(c)?, mode)?;
        match kind(c) {
            QCLONE => {
                let conv = conv::clone(proto(c))?;
                let path = ctl_path(&c.path, 1, conv.num);
                Ok(ctl_chan(&IP, conv, path, mode))
            }
            QLISTEN => {
                let new = conv::listen(conv_of(c)?.as_ref())?;
                let path = ctl_path(&c.path, 2, new.num);
                Ok(ctl_chan(&IP, new, path, mode))
            }
            QCTL | QDATA => {
                conv::open(conv_of(c)?.as_ref())?;
                Ok(Arc::new(c.opened(mode)))
            }
            _ => Ok(Arc::new(c.opened(mode))),
        }
    }

    fn read(&self, c: &Chan, buf: &mut [u8], offset: u64) -> KResult<usize> {
        if is_dir_kind(kind(c)) {
            return read_dir_entries(&self.entries(c)?, buf, offset);
        }
        check_io(c, false)?;
        match kind(c) {
            QDATA => conv::read(conv_of(c)?.as_ref(), buf),
            _ => Ok(read_slice(self.text(c)?.as_bytes(), buf, offset)),
        }
    }

    fn write(&self, c: &Chan, buf: &[u8], _offset: u64) -> KResult<usize> {
        check_io(c, true)?;
        match kind(c) {
            QDATA => conv::write(conv_of(c)?.as_ref(), buf),
            QCTL => {
                let msg = core::str::from_utf8(buf).map_err(|_| EBADCTL)?;
                conv::ctl(conv_of(c)?.as_ref(), msg)?;
                Ok(buf.len())
            }
            _ => Err(EPERM.into()),
        }
    }

    fn close(&self, c: &Chan) {
        if matches!(kind(c), QCTL | QDATA)
            && let Ok(conv) = conv_of(c)
        {
            conv::close(&conv);
        }
    }
}
