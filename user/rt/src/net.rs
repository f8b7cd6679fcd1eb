//! Network connections through `/net` (the kernel's `#ip`, Plan 9's ip(3)), named by dial
//! strings as in Plan 9's dial(2): `tcp!10.0.2.2!564`, `udp!10.0.2.2!53`. Addresses are
//! numeric IPv4; `net` as the protocol means `tcp`; an announcement may use `*` for any local
//! address and port 0 for any port.
//!
//! - [`dial`] connects and returns the fd of the connection's `data` file (for UDP, each write
//!   is a datagram to the dialled address and each read returns one from it).
//! - [`announce`] listens; [`Listener::accept`] waits for a TCP call and returns its `data`
//!   fd. A UDP server reads and writes the announcement's own [`Listener::data`] after
//!   [`Listener::ctl`]`("headers")`: each datagram then starts with [`UDP_HEADER`] bytes naming
//!   its sender, and a reply is written with the same header.
//!
//! Every error names the dial string it was about.

use crate::fs::{self, ORDWR};
use crate::io;
use crate::{Error, Result};
use alloc::format;
use alloc::string::String;

/// Where the kernel serves the network.
const NET: &str = "/net";

/// The size of the header a UDP conversation in `headers` mode puts before each datagram
/// (Plan 9's: remote, local and interface addresses in 16 bytes each, remote and local ports
/// in 2 bytes each, big-endian).
pub const UDP_HEADER: usize = 52;

/// A dial string taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialString<'a> {
    /// `tcp`.
    pub proto: &'a str,
    /// A numeric address, or `*` in an announcement.
    pub addr: &'a str,
    /// The port, as written.
    pub port: &'a str,
}

/// Splits `proto!addr!port`; the kernel judges the address and port themselves.
pub fn parse(dial: &str) -> Result<DialString<'_>> {
    let bad = || {
        Error(format!(
            "bad dial string '{dial}': expected proto!address!port, such as tcp!10.0.2.2!564"
        ))
    };
    let mut parts = dial.split('!');
    let (Some(proto), Some(addr), Some(port), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if proto.is_empty() || addr.is_empty() || port.is_empty() {
        return Err(bad());
    }
    let proto = if proto == "net" { "tcp" } else { proto };
    Ok(DialString { proto, addr, port })
}

/// Makes a conversation: opens `/net/PROTO/clone`; returns (its ctl fd, its directory).
fn clone(d: &DialString<'_>) -> Result<(u64, String)> {
    if !d.proto.bytes().all(|b| b.is_ascii_lowercase())
        || fs::stat(&format!("{NET}/{}", d.proto)).is_err()
    {
        return Err(Error(format!(
            "protocol {} is not supported (only tcp and udp are)",
            d.proto
        )));
    }
    let ctl = fs::open(&format!("{NET}/{}/clone", d.proto), ORDWR)?;
    let mut buf = [0u8; 32];
    let n = match io::read(ctl, &mut buf) {
        Ok(n) => n,
        Err(e) => {
            let _ = io::close(ctl);
            return Err(e);
        }
    };
    let num = String::from_utf8_lossy(&buf[..n]).trim().parse::<u32>();
    match num {
        Ok(num) => Ok((ctl, format!("{NET}/{}/{num}", d.proto))),
        Err(_) => {
            let _ = io::close(ctl);
            Err(Error::new("the clone file gave no conversation number"))
        }
    }
}

/// Writes a control message; on failure closes `ctl` (ending the conversation).
fn ctl_write(ctl: u64, msg: &str) -> Result<()> {
    match io::write(ctl, msg.as_bytes()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = io::close(ctl);
            Err(e)
        }
    }
}

/// Connects to `dial` (`tcp!ADDR!PORT`); returns the connection's `data` fd. Closing it
/// closes the connection.
pub fn dial(dial: &str) -> Result<u64> {
    let ctx = |e: Error| e.context(format!("dial {dial}"));
    let d = parse(dial).map_err(ctx)?;
    let (ctl, dir) = clone(&d).map_err(ctx)?;
    ctl_write(ctl, &format!("connect {}!{}", d.addr, d.port)).map_err(ctx)?;
    let data = fs::open(&format!("{dir}/data"), ORDWR);
    let _ = io::close(ctl);
    data.map_err(ctx)
}

/// A listening conversation. Dropping it stops the listening.
#[derive(Debug)]
pub struct Listener {
    ctl: u64,
    dir: String,
    proto: String,
}

/// Listens on `dial` (`tcp!*!PORT`, `tcp!127.0.0.1!PORT`; port 0 for any free port).
pub fn announce(dial: &str) -> Result<Listener> {
    let ctx = |e: Error| e.context(format!("announce {dial}"));
    let d = parse(dial).map_err(ctx)?;
    let (ctl, dir) = clone(&d).map_err(ctx)?;
    ctl_write(ctl, &format!("announce {}!{}", d.addr, d.port)).map_err(ctx)?;
    Ok(Listener {
        ctl,
        dir,
        proto: String::from(d.proto),
    })
}

fn read_text(path: &str) -> Result<String> {
    Ok(String::from(fs::read_to_string(path)?.trim()))
}

impl Listener {
    /// Waits for a call; returns its `data` fd and the caller's dial string.
    pub fn accept(&self) -> Result<(u64, String)> {
        let ctx = |e: Error| e.context(format!("accept on {}", self.dir));
        let ctl = fs::open(&format!("{}/listen", self.dir), ORDWR).map_err(ctx)?;
        let mut buf = [0u8; 32];
        let n = io::read(ctl, &mut buf);
        let num = n.ok().and_then(|n| {
            String::from_utf8_lossy(&buf[..n])
                .trim()
                .parse::<u32>()
                .ok()
        });
        let Some(num) = num else {
            let _ = io::close(ctl);
            return Err(ctx(Error::new("listen gave no conversation number")));
        };
        let dir = format!("{NET}/{}/{num}", self.proto);
        let data = fs::open(&format!("{dir}/data"), ORDWR);
        let remote = read_text(&format!("{dir}/remote"));
        let _ = io::close(ctl);
        let data = data.map_err(ctx)?;
        Ok((
            data,
            format!("{}!{}", self.proto, remote.unwrap_or_default()),
        ))
    }

    /// The announced address as a dial string (with the port the kernel chose, if it did).
    pub fn local(&self) -> Result<String> {
        Ok(format!(
            "{}!{}",
            self.proto,
            read_text(&format!("{}/local", self.dir))?
        ))
    }

    /// The port it listens on.
    pub fn port(&self) -> Result<u16> {
        let local = self.local()?;
        local
            .rsplit('!')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error(format!("{}/local: unexpected '{local}'", self.dir)))
    }

    /// The conversation's directory (`/net/tcp/N`).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Writes a control message (`headers` for UDP) to the conversation's `ctl`.
    pub fn ctl(&self, msg: &str) -> Result<()> {
        io::write(self.ctl, msg.as_bytes())
            .map(|_| ())
            .map_err(|e| e.context(format!("{}/ctl", self.dir)))
    }

    /// Opens the announcement's own `data` (for UDP servers).
    pub fn data(&self) -> Result<u64> {
        fs::open(&format!("{}/data", self.dir), ORDWR)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = io::close(self.ctl);
    }
}

/// The conversation directory of a `data` fd (`/net/tcp/N`).
pub fn conv_dir(data: u64) -> Result<String> {
    let path = fs::fd2path(data)?;
    match path.strip_suffix("/data") {
        Some(dir) => Ok(String::from(dir)),
        None => Err(Error(format!("{path}: not a network connection"))),
    }
}

/// The other end of the connection on `data`, as `ADDR!PORT`.
pub fn remote(data: u64) -> Result<String> {
    read_text(&format!("{}/remote", conv_dir(data)?))
}

/// This end of the connection on `data`, as `ADDR!PORT`.
pub fn local(data: u64) -> Result<String> {
    read_text(&format!("{}/local", conv_dir(data)?))
}

/// The TCP state of the connection on `data` (`Established`...).
pub fn status(data: u64) -> Result<String> {
    read_text(&format!("{}/status", conv_dir(data)?))
}

/// Resets the connection on `data` at once (writes `hangup` to its `ctl`).
pub fn hangup(data: u64) -> Result<()> {
    let ctl_path = format!("{}/ctl", conv_dir(data)?);
    let ctl = fs::open(&ctl_path, ORDWR)?;
    let r = io::write(ctl, b"hangup");
    let _ = io::close(ctl);
    r.map(|_| ()).map_err(|e| e.context(ctl_path))
}

/// Reads exactly `buf.len()` bytes; an error if the stream ends first.
pub fn read_exact(fd: u64, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match io::read(fd, &mut buf[done..])? {
            0 => {
                return Err(Error(format!(
                    "end of stream after {done} of {} bytes",
                    buf.len()
                )));
            }
            n => done += n,
        }
    }
    Ok(())
}

/// Writes all of `buf`.
pub fn write_all(fd: u64, buf: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match io::write(fd, &buf[done..])? {
            0 => return Err(Error::new("write made no progress")),
            n => done += n,
        }
    }
    Ok(())
}

/// Lists the interfaces: one status line each.
pub fn interfaces() -> Result<alloc::vec::Vec<String>> {
    let dir = format!("{NET}/ipifc");
    let mut lines = alloc::vec::Vec::new();
    for d in fs::read_dir(&dir)? {
        lines.push(read_text(&format!("{dir}/{}/status", d.name))?);
    }
    Ok(lines)
}
