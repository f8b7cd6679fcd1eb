//! The agent's system calls: every `unsafe` in the agent lives here, behind safe functions.
//!
//! Mounts, sync and reboot; the ioctls that configure network interfaces and routes
//! (`netdevice(7)`, `route(8)`'s `SIOCADDRT`); terminal modes for the control channel
//! (`termios(3)`); the boot clock; and the power-off hypercall of our VMM ([`abi::hv`]).

use fsvm_agent::power::HypercallInsn;
use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(2)` with no data string.
pub fn mount(source: &str, target: &str, fstype: &str, flags: libc::c_ulong) -> io::Result<()> {
    let (source, target, fstype) = (cstring(source)?, cstring(target)?, cstring(fstype)?);
    // SAFETY: the three strings are NUL-terminated and outlive the call; a null `data` is allowed.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    })
}

/// Remounts `target` read-only (which also writes back the ext4 journal), for when an unmount
/// keeps failing.
pub fn remount_read_only(target: &str) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: as in `mount`; a remount ignores the source and type, which may be null.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_RDONLY,
            std::ptr::null(),
        )
    })
}

/// `umount2(2)` without flags.
pub fn unmount(target: &str) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: the string is NUL-terminated and outlives the call.
    check(unsafe { libc::umount2(target.as_ptr(), 0) })
}

/// `sync(2)`: writes back every dirty buffer of every file system.
pub fn sync() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// `reboot(2)` with `RB_AUTOBOOT`. With `reboot=t` on the command line Linux resets by a triple
/// fault, which QEMU's `-no-reboot` turns into an exit. Returns only on failure.
pub fn reboot() -> io::Error {
    // SAFETY: reboot takes a command constant; it returns only on failure.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    io::Error::last_os_error()
}

/// Time since boot (`CLOCK_MONOTONIC`, the clock of the kernel's printk timestamps).
pub fn since_boot() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Puts a terminal into the control channel's mode: whole lines in (canonical), no echo, no
/// signals or flow-control characters, output bytes unchanged. The host side is a program or a
/// terminal that echoes locally.
pub fn set_control_mode(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: termios is plain old data; all-zero is a valid value, overwritten by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the duration of the call and `t` is writable.
    check(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) })?;
    t.c_lflag &= !(libc::ECHO
        | libc::ECHOE
        | libc::ECHOK
        | libc::ECHONL
        | libc::ECHOCTL
        | libc::ECHOKE
        | libc::ISIG
        | libc::IEXTEN);
    t.c_lflag |= libc::ICANON;
    t.c_iflag &= !(libc::IXON | libc::IXOFF);
    t.c_iflag |= libc::ICRNL;
    t.c_oflag &= !libc::OPOST;
    // SAFETY: `fd` is open and `t` is a valid termios.
    check(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) })
}

/// `tcdrain(3)`: waits until everything written to a terminal has been sent.
pub fn drain(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is open for the duration of the call.
    check(unsafe { libc::tcdrain(fd.as_raw_fd()) })
}

/// A socket for the interface ioctls of `netdevice(7)`.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket has no pointer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A `sockaddr` holding an IPv4 address (the layout of `sockaddr_in`, port 0).
fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let mut data = [0 as libc::c_char; 14];
    for (d, o) in data[2..6].iter_mut().zip(ip.octets()) {
        *d = o as libc::c_char;
    }
    libc::sockaddr {
        sa_family: libc::AF_INET as libc::sa_family_t,
        sa_data: data,
    }
}

/// An `ifreq` naming `name`, its union zeroed.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data (a name and a union of integers and sockaddrs); all-zero
    // is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, b) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = b as libc::c_char;
    }
    Ok(req)
}

/// Runs one interface ioctl on `req`.
fn interface_ioctl(
    sock: &OwnedFd,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> io::Result<()> {
    // SAFETY: `req` is a valid, writable ifreq for every SIOC[GS]IF* request used here, which
    // read or write only that struct; the socket is open.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut libc::ifreq) })
}

/// Sets an interface's IPv4 address and netmask (when given) and brings it up.
pub fn configure_interface(name: &str, addr: Option<(Ipv4Addr, Ipv4Addr)>) -> io::Result<()> {
    let sock = ioctl_socket()?;
    if let Some((ip, mask)) = addr {
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_addr = sockaddr(ip);
        interface_ioctl(&sock, libc::SIOCSIFADDR as _, &mut req)?;
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_netmask = sockaddr(mask);
        interface_ioctl(&sock, libc::SIOCSIFNETMASK as _, &mut req)?;
    }
    let mut req = ifreq(name)?;
    interface_ioctl(&sock, libc::SIOCGIFFLAGS as _, &mut req)?;
    // SAFETY: SIOCGIFFLAGS just filled in the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    interface_ioctl(&sock, libc::SIOCSIFFLAGS as _, &mut req)
}

/// Adds a default route through `gateway` (`SIOCADDRT`); an existing one is left alone.
pub fn add_default_route(gateway: Ipv4Addr) -> io::Result<()> {
    let sock = ioctl_socket()?;
    // SAFETY: rtentry is plain old data (integers, sockaddrs and a nullable device pointer);
    // all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT reads one rtentry, which `rt` is; its device pointer is null.
    let ret = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCADDRT as _,
            &mut rt as *mut libc::rtentry,
        )
    };
    match check(ret) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// The CPU's vendor string (CPUID leaf 0: EBX, EDX, ECX).
fn cpu_vendor() -> [u8; 12] {
    let r = core::arch::x86_64::__cpuid(0);
    let mut v = [0; 12];
    v[..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..].copy_from_slice(&r.ecx.to_le_bytes());
    v
}

/// Whether we run under our own VMM ([`fsvm_agent::power::is_our_vmm`] on this CPU's CPUID).
/// Only then may the agent use hypercalls; elsewhere VMCALL and VMMCALL raise #UD.
pub fn under_our_vmm() -> bool {
    use core::arch::x86_64::__cpuid;
    let s = __cpuid(abi::hv::CPUID_SIGNATURE_LEAF);
    fsvm_agent::power::is_our_vmm(__cpuid(1).ecx, (s.eax, s.ebx, s.ecx, s.edx))
}

/// Asks our VMM to power the VM off with `status` ([`abi::hv::Hypercall::PowerOff`]): VMMCALL on
/// AMD and Hygon CPUs, VMCALL elsewhere. Returns only if the VMM did not stop the VM.
///
/// Call only when [`under_our_vmm`] is true.
pub fn power_off_hypercall(status: abi::hv::PowerOffStatus) {
    let nr = abi::hv::Hypercall::PowerOff as u64;
    let status = status as u64;
    let amd = fsvm_agent::power::hypercall_insn(&cpu_vendor()) == HypercallInsn::Vmmcall;
    // RBX cannot be named as an asm operand (LLVM reserves it), so the status is swapped into
    // it around the instruction.
    if amd {
        // SAFETY: `under_our_vmm` established that our VMM intercepts VMMCALL (from any CPL); it
        // reads RAX and RBX and either stops the VM or returns with RAX set. No memory is touched.
        unsafe {
            core::arch::asm!(
                "xchg {s}, rbx", "vmmcall", "xchg {s}, rbx",
                s = inout(reg) status => _, inout("rax") nr => _, options(nostack)
            )
        }
    } else {
        // SAFETY: as above, for VMCALL on Intel (VMX exits on VMCALL at any CPL).
        unsafe {
            core::arch::asm!(
                "xchg {s}, rbx", "vmcall", "xchg {s}, rbx",
                s = inout(reg) status => _, inout("rax") nr => _, options(nostack)
            )
        }
    }
}
