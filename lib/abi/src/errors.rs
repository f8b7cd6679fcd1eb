//! Error strings the kernel returns, in Plan 9's wording (see Plan 9's `port/error.h`), so that
//! programs can compare against them. Other errors (from a 9P server, for example) arrive as
//! the server's own text.

pub const ENOTEXIST: &str = "file does not exist";
pub const EPERM: &str = "permission denied";
pub const ENOTDIR: &str = "not a directory";
pub const EISDIR: &str = "file is a directory";
pub const EEXIST: &str = "file already exists";
pub const ENOATTACH: &str = "mount/attach disallowed";
pub const EBADFD: &str = "fd out of range or not open";
pub const EBADUSEFD: &str = "inappropriate use of fd";
pub const ENOFD: &str = "no free file descriptors";
pub const EBADARG: &str = "bad arg in system call";
pub const EBADADDR: &str = "bad address in system call";
pub const EBADSYSCALL: &str = "bad system call";
pub const ENOMEM: &str = "kernel allocate failed";
pub const ENOCHILD: &str = "no living children";
pub const ENOPROC: &str = "process does not exist";
pub const ETOOLONG: &str = "name too long";
pub const EBADEXEC: &str = "exec header invalid";
pub const EINTR: &str = "interrupted";
pub const EHUNGUP: &str = "i/o on hungup channel";
pub const EIO: &str = "i/o error";
pub const EBADOFFSET: &str = "bad offset";
pub const ENOCREATE: &str = "mounted directory forbids creation";
pub const ENOTEMPTY: &str = "directory not empty";
pub const EINUSE: &str = "device or object already in use";
pub const ENOTMOUNTED: &str = "not mounted";
pub const EMOUNT: &str = "inconsistent mount";
pub const EBADCTL: &str = "bad process or channel control request";
pub const ENOTIMPL: &str = "not implemented";
pub const ESHORTSTAT: &str = "stat buffer too small";
pub const EBADSTAT: &str = "malformed stat buffer";
pub const EMODE: &str = "wrong open mode";
pub const EFULL: &str = "file system full";
