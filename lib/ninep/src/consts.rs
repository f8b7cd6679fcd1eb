//! Protocol constants of 9P2000: `intro(5)`, `version(5)`, `open(5)`, `stat(5)`, `walk(5)`.
//!
//! Values are the ones in Plan 9's `<fcall.h>` and `<libc.h>`; the 9P2000.u additions are marked.

/// The tag of a `Tversion`/`Rversion` pair, which is not multiplexed (`version(5)`).
pub const NOTAG: u16 = 0xFFFF;
/// "No fid": the `afid` of a `Tattach` without authentication (`attach(5)`).
pub const NOFID: u32 = 0xFFFF_FFFF;
/// 9P2000.u: "no numeric user id" in `Tattach`/`Tauth` and in `Dir`.
pub const NONUNAME: u32 = 0xFFFF_FFFF;
/// The most path elements one `Twalk` may carry, and the most qids an `Rwalk` may return
/// (`walk(5)`).
pub const MAXWELEM: usize = 16;
/// The bytes of a `Twrite`/`Rread` frame that are not data, rounded up: a client reads or writes
/// at most `msize - IOHDRSZ` bytes per message (Plan 9 `<fcall.h>`).
pub const IOHDRSZ: u32 = 24;
/// The smallest msize that can carry a useful message; Plan 9's devmnt refuses less.
pub const MIN_MSIZE: u32 = 256;
/// The version string of plain 9P2000 (`version(5)`).
pub const VERSION_9P2000: &str = "9P2000";
/// The version string of the 9P2000.u (Unix) extension.
pub const VERSION_9P2000_U: &str = "9P2000.u";
/// What a server answers in `Rversion` when it speaks no version the client offered.
pub const VERSION_UNKNOWN: &str = "unknown";

/// Open mode (`open(5)`): read access.
pub const OREAD: u8 = 0;
/// Open mode: write access.
pub const OWRITE: u8 = 1;
/// Open mode: read and write access.
pub const ORDWR: u8 = 2;
/// Open mode: execute access (checked like read by most servers).
pub const OEXEC: u8 = 3;
/// The bits of an open mode that select the access (`OREAD`..`OEXEC`).
pub const OACCMODE: u8 = 3;
/// Open flag: truncate the file first.
pub const OTRUNC: u8 = 0x10;
/// Open flag: close on exec (meaningful to the client's kernel only).
pub const OCEXEC: u8 = 0x20;
/// Open flag: remove the file when the fid is clunked.
pub const ORCLOSE: u8 = 0x40;

/// Qid type bit (`intro(5)`): a directory.
pub const QTDIR: u8 = 0x80;
/// Qid type bit: an append-only file.
pub const QTAPPEND: u8 = 0x40;
/// Qid type bit: an exclusive-use file.
pub const QTEXCL: u8 = 0x20;
/// Qid type bit: a mounted channel.
pub const QTMOUNT: u8 = 0x10;
/// Qid type bit: an authentication file.
pub const QTAUTH: u8 = 0x08;
/// Qid type bit: a temporary file (not backed up).
pub const QTTMP: u8 = 0x04;
/// Qid type bit, 9P2000.u: a symbolic link.
pub const QTSYMLINK: u8 = 0x02;
/// Qid type: a plain file (no bits set).
pub const QTFILE: u8 = 0x00;

/// Dir mode bit (`stat(5)`): a directory.
pub const DMDIR: u32 = 0x8000_0000;
/// Dir mode bit: append only.
pub const DMAPPEND: u32 = 0x4000_0000;
/// Dir mode bit: exclusive use.
pub const DMEXCL: u32 = 0x2000_0000;
/// Dir mode bit: a mounted channel.
pub const DMMOUNT: u32 = 0x1000_0000;
/// Dir mode bit: an authentication file.
pub const DMAUTH: u32 = 0x0800_0000;
/// Dir mode bit: a temporary file.
pub const DMTMP: u32 = 0x0400_0000;
/// Dir mode bit, 9P2000.u: a symbolic link.
pub const DMSYMLINK: u32 = 0x0200_0000;
/// Dir mode bit, 9P2000.u: a device file.
pub const DMDEVICE: u32 = 0x0080_0000;
/// Dir mode bit, 9P2000.u: a named pipe.
pub const DMNAMEDPIPE: u32 = 0x0020_0000;
/// Dir mode bit, 9P2000.u: a socket.
pub const DMSOCKET: u32 = 0x0010_0000;
/// Dir mode bit, 9P2000.u: set-user-id on execution.
pub const DMSETUID: u32 = 0x0008_0000;
/// Dir mode bit, 9P2000.u: set-group-id on execution.
pub const DMSETGID: u32 = 0x0004_0000;
/// Permission bit: read (shifted by 6, 3, 0 for owner, group, others).
pub const DMREAD: u32 = 0x4;
/// Permission bit: write.
pub const DMWRITE: u32 = 0x2;
/// Permission bit: execute (search, for a directory).
pub const DMEXEC: u32 = 0x1;
/// The permission bits of a mode.
pub const DMPERM: u32 = 0o777;
