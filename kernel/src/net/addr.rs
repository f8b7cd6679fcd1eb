//! Network addresses in Plan 9's text form (ip(3), dial(2)): `ADDR!PORT` in `ctl` messages and
//! in the `local` and `remote` files. Addresses are numeric IPv4 (RFC 791's dotted quad); `*`
//! (or `0`) stands for any local address where a command allows it. Ports are decimal,
//! 1-65535 (0 only where a command lets the kernel choose).

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::net::Ipv4Addr;

/// An IPv4 address and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub addr: Ipv4Addr,
    /// The port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}!{}", self.addr, self.port)
    }
}

/// Where an announcement listens: a port on every local address, or on one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    /// `None` for any local address (`*`).
    pub addr: Option<Ipv4Addr>,
    /// 0 lets the kernel choose.
    pub port: u16,
}

/// Parses a numeric IPv4 address.
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| format!("bad address '{s}': expected a numeric IPv4 address such as 10.0.2.2"))
}

/// Parses a port; `allow_zero` for commands where 0 means "choose one".
pub fn parse_port(s: &str, allow_zero: bool) -> Result<u16, String> {
    let low = if allow_zero { 0 } else { 1 };
    match s.parse::<u32>() {
        Ok(p) if p <= 65535 && p >= low => Ok(p as u16),
        _ => Err(format!(
            "bad port '{s}': expected a number from {low} to 65535"
        )),
    }
}

/// Parses the `ADDR!PORT` of `connect`.
pub fn parse_remote(s: &str) -> Result<Endpoint, String> {
    let (addr, port) = s
        .rsplit_once('!')
        .ok_or_else(|| format!("bad address '{s}': expected ADDR!PORT such as 10.0.2.2!564"))?;
    Ok(Endpoint {
        addr: parse_ipv4(addr)?,
        port: parse_port(port, false)?,
    })
}

/// Parses the `ADDR!PORT` (or bare `PORT`) of `announce`; `*`, `0` and `0.0.0.0` mean any
/// local address.
pub fn parse_local(s: &str) -> Result<ListenSpec, String> {
    let (addr, port) = match s.rsplit_once('!') {
        Some((a, p)) => (a, p),
        None => ("*", s),
    };
    let addr = match addr {
        "*" | "0" => None,
        a => Some(parse_ipv4(a)?).filter(|a| !a.is_unspecified()),
    };
    Ok(ListenSpec {
        addr,
        port: parse_port(port, true)?,
    })
}
