//! The system call interface between the kernel and user programs.
//!
//! Calling convention (the SYSCALL instruction, SDM Vol. 2B): the number in RAX, arguments in
//! RDI, RSI, RDX, R10, R8, R9; the result in RAX. RCX and R11 are clobbered. A result of
//! [`ERROR`] means failure; the thread's error string (at most [`ERRMAX`] bytes) then says why
//! and is fetched with [`Sys::Errstr`], as in Plan 9. Strings are passed as (pointer, length)
//! pairs, never NUL-terminated; lists of strings as pointers to arrays of [`StrRef`].

/// The value a failed system call returns.
pub const ERROR: u64 = u64::MAX;
/// Longest error string, exit string or note.
pub const ERRMAX: usize = 128;
/// Longest path the kernel accepts.
pub const PATHMAX: usize = 1024;
/// Most arguments plus environment strings `exec` accepts.
pub const MAXARGS: usize = 1024;
/// Most bytes of arguments plus environment `exec` accepts.
pub const MAXARGBYTES: usize = 256 * 1024;

/// System call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sys {
    /// Does nothing (for measuring the cost of a system call).
    Nop = 0,
    /// `exits(msg, len)`: ends the process with an exit string (empty = success).
    Exits = 1,
    /// `errstr(buf, len) -> n`: copies the thread's last error string into `buf`.
    Errstr = 2,
    /// `rfork(flags) -> pid`: see [`rfork`]; returns 0 in the child.
    Rfork = 3,
    /// `exec(path, len, argv, argc, envp, envc)`: replaces the program; `argv`/`envp` point to
    /// arrays of [`StrRef`]. Does not return on success.
    Exec = 4,
    /// `await(msg) -> pid`: waits for a child to exit and fills a [`WaitMsg`].
    Await = 5,
    /// `sleep(ms)`: sleeps; interrupted by a note.
    Sleep = 6,
    /// `brk(addr) -> end`: moves the end of the data segment to `addr` (0 queries it).
    Brk = 7,
    /// `notify(handler)`: registers a note handler (0 removes it); see [`notes`].
    Notify = 8,
    /// `noted(how)`: returns from a note handler ([`notes::NCONT`] or [`notes::NDFLT`]).
    Noted = 9,
    /// `postnote(pid, msg, len)`: posts a note to a process.
    Postnote = 10,
    /// `semacquire(addr, block) -> 1 | 0`: decrements the semaphore at `addr` when positive.
    Semacquire = 11,
    /// `semrelease(addr, count) -> n`: adds `count` to the semaphore and wakes waiters.
    Semrelease = 12,
    /// `getpid() -> pid`.
    Getpid = 13,
    /// `open(path, len, mode) -> fd`.
    Open = 14,
    /// `close(fd)`.
    Close = 15,
    /// `read(fd, buf, len) -> n` at the fd's offset.
    Read = 16,
    /// `write(fd, buf, len) -> n` at the fd's offset.
    Write = 17,
    /// `pread(fd, buf, len, offset) -> n`.
    Pread = 18,
    /// `pwrite(fd, buf, len, offset) -> n`.
    Pwrite = 19,
    /// `seek(fd, offset, whence) -> new offset`; whence 0 = set, 1 = current, 2 = end.
    Seek = 20,
    /// `dup(old, new) -> fd`; `new` = `u64::MAX` picks the lowest free fd.
    Dup = 21,
    /// `create(path, len, mode, perm) -> fd`.
    Create = 22,
    /// `remove(path, len)`.
    Remove = 23,
    /// `stat(path, len, buf, buflen) -> n`: the `Dir` in 9P stat format.
    Stat = 24,
    /// `fstat(fd, buf, buflen) -> n`.
    Fstat = 25,
    /// `wstat(path, len, buf, buflen)`.
    Wstat = 26,
    /// `fwstat(fd, buf, buflen)`.
    Fwstat = 27,
    /// `chdir(path, len)`.
    Chdir = 28,
    /// `fd2path(fd, buf, len) -> n`.
    Fd2path = 29,
    /// `pipe(fds)`: writes two fds to the `[u64; 2]` at `fds`.
    Pipe = 30,
    /// `bind(new, newlen, old, oldlen, flags)`.
    Bind = 31,
    /// `mount(fd, old, oldlen, flags, aname, anamelen)`.
    Mount = 32,
    /// `unmount(new, newlen, old, oldlen)`; `new` may be null (unmount all).
    Unmount = 33,
    /// `nsec() -> ns`: nanoseconds since boot.
    Nsec = 34,
    /// `exitthread()`: ends the calling thread only; the process ends with its last thread.
    ExitThread = 35,
}

impl Sys {
    /// Decodes a system call number.
    pub fn from_raw(nr: u64) -> Option<Sys> {
        use Sys::*;
        const ALL: [Sys; 36] = [
            Nop, Exits, Errstr, Rfork, Exec, Await, Sleep, Brk, Notify, Noted, Postnote,
            Semacquire, Semrelease, Getpid, Open, Close, Read, Write, Pread, Pwrite, Seek, Dup,
            Create, Remove, Stat, Fstat, Wstat, Fwstat, Chdir, Fd2path, Pipe, Bind, Mount, Unmount,
            Nsec, ExitThread,
        ];
        ALL.get(usize::try_from(nr).ok()?).copied()
    }
}

/// A string argument: pointer and length in the caller's memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StrRef {
    pub ptr: u64,
    pub len: u64,
}

/// `rfork` flags (Plan 9 values, rfork(2)).
pub mod rfork {
    /// Copy the namespace.
    pub const RFNAMEG: u64 = 1 << 0;
    /// Copy the environment (kept for compatibility; environments travel with `exec`).
    pub const RFENVG: u64 = 1 << 1;
    /// Copy the file descriptor table.
    pub const RFFDG: u64 = 1 << 2;
    /// Start a new note group.
    pub const RFNOTEG: u64 = 1 << 3;
    /// Create a new process (otherwise the flags change the caller).
    pub const RFPROC: u64 = 1 << 4;
    /// Share the address space (a thread).
    pub const RFMEM: u64 = 1 << 5;
    /// The child is not waited for by the parent.
    pub const RFNOWAIT: u64 = 1 << 6;
    /// Start with a clean namespace.
    pub const RFCNAMEG: u64 = 1 << 10;
    /// Start with an empty environment.
    pub const RFCENVG: u64 = 1 << 11;
    /// Start with no file descriptors.
    pub const RFCFDG: u64 = 1 << 12;
    /// Every flag the kernel understands.
    pub const ALL: u64 = RFNAMEG
        | RFENVG
        | RFFDG
        | RFNOTEG
        | RFPROC
        | RFMEM
        | RFNOWAIT
        | RFCNAMEG
        | RFCENVG
        | RFCFDG;
}

/// Notes (Plan 9 notify(2)).
///
/// A note handler is called as `handler(ureg: *mut Ureg, note: *const u8)` with the note as a
/// NUL-terminated string, on the interrupted thread's stack below the saved registers. It must
/// end with `noted(NCONT)` (resume with the possibly edited `Ureg`) or `noted(NDFLT)` (the
/// default action: the process exits with the note as its exit string). The note `kill` cannot
/// be caught. A system call interrupted by a note fails with [`INTERRUPTED`].
pub mod notes {
    /// Resume the interrupted code.
    pub const NCONT: u64 = 0;
    /// Take the default action (exit).
    pub const NDFLT: u64 = 1;
    /// The note that cannot be caught.
    pub const KILL: &str = "kill";
    /// The note ^C posts.
    pub const INTERRUPT: &str = "interrupt";
    /// The error string of a system call a note interrupted.
    pub const INTERRUPTED: &str = "interrupted";
    /// Most notes queued for one process; later ones are dropped.
    pub const MAX_PENDING: usize = 16;
}

/// The user registers saved when a note is delivered, in the kernel's trap frame order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Ureg {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Trap vector, or `SYSCALL_TRAP` for a system call.
    pub trap: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// The `trap` value of a `Ureg` saved at a system call.
pub const SYSCALL_TRAP: u64 = 0x100;

/// What `await` reports about an exited child.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WaitMsg {
    pub pid: u64,
    /// Milliseconds of user time, system time and real time the child (and its threads) used.
    pub utime_ms: u64,
    pub stime_ms: u64,
    pub real_ms: u64,
    /// Length of the exit string in `msg`.
    pub msg_len: u64,
    /// The exit string (empty for success).
    pub msg: [u8; ERRMAX],
}

impl Default for WaitMsg {
    fn default() -> Self {
        WaitMsg {
            pid: 0,
            utime_ms: 0,
            stime_ms: 0,
            real_ms: 0,
            msg_len: 0,
            msg: [0; ERRMAX],
        }
    }
}

impl WaitMsg {
    /// The exit string.
    pub fn msg(&self) -> &str {
        let len = (self.msg_len as usize).min(ERRMAX);
        core::str::from_utf8(&self.msg[..len]).unwrap_or("(exit string is not UTF-8)")
    }
}

/// Open modes (Plan 9 open(2)).
pub mod mode {
    pub const OREAD: u64 = 0;
    pub const OWRITE: u64 = 1;
    pub const ORDWR: u64 = 2;
    pub const OEXEC: u64 = 3;
    /// Truncate on open.
    pub const OTRUNC: u64 = 0x10;
    /// Close on exec.
    pub const OCEXEC: u64 = 0x20;
    /// Remove on close.
    pub const ORCLOSE: u64 = 0x40;
    /// With `create`: fail if the file exists.
    pub const OEXCL: u64 = 0x1000;
}

/// `bind`/`mount` flags (Plan 9 bind(2)).
pub mod bind {
    /// Replace what is at the mount point.
    pub const MREPL: u64 = 0x0000;
    /// Add before the existing members of the union.
    pub const MBEFORE: u64 = 0x0001;
    /// Add after the existing members of the union.
    pub const MAFTER: u64 = 0x0002;
    /// Files created in the union go here.
    pub const MCREATE: u64 = 0x0004;
    /// Mask of the order bits.
    pub const MORDER: u64 = 0x0003;
    /// `mount` only: the msize to ask the server for sits in the flags' high 32 bits
    /// (0: the kernel's default, 64 KiB of data per message).
    pub const MSIZE_SHIFT: u64 = 32;

    /// The flags of a mount that asks for `msize`.
    pub const fn with_msize(flags: u64, msize: u32) -> u64 {
        flags | ((msize as u64) << MSIZE_SHIFT)
    }
}

/// Addresses of the user half of every address space.
pub mod layout {
    /// Lowest address a program may be loaded at.
    pub const USER_MIN: u64 = 0x10_0000;
    /// One past the highest user address (the canonical lower half, less a guard page).
    pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
    /// Top of the initial stack.
    pub const STACK_TOP: u64 = 0x0000_7fff_ff00_0000;
    /// Most bytes the stack may grow to.
    pub const STACK_MAX: u64 = 8 << 20;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in 0..64 {
            if let Some(s) = Sys::from_raw(n) {
                assert_eq!(s as u64, n);
            }
        }
        assert_eq!(Sys::from_raw(34), Some(Sys::Nsec));
        assert_eq!(Sys::from_raw(35), Some(Sys::ExitThread));
        assert_eq!(Sys::from_raw(36), None);
        assert_eq!(Sys::from_raw(u64::MAX), None);
    }

    #[test]
    fn ureg_matches_the_trap_frame_size() {
        assert_eq!(core::mem::size_of::<Ureg>(), 22 * 8);
    }
}
