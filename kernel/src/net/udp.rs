//! UDP conversations (RFC 768) in Plan 9's shape (ip(3)): `/net/udp/clone` makes one; its
//! `ctl` takes `connect ADDR!PORT` (datagrams go to and come only from there), `announce
//! ADDR!PORT` (datagrams come from anyone), `headers` and `hangup`. Each write of `data` is one
//! datagram, each read returns one (cut to the reader's buffer).
//!
//! With `headers`, every datagram read or written carries Plan 9's 52-byte header first: the
//! remote address, the local address and the interface's address (16 bytes each, IPv4 as
//! `::ffff:a.b.c.d`), then the remote and local ports (2 bytes each, big-endian). A server
//! replies by writing back the header it read, with its reply after it.

use super::addr::{self, Endpoint};
use super::conv::{Conv, Phase, endpoint};
use super::{Stack, wait_on_stack, with_stack};
use crate::error::{Error, KResult};
use alloc::format;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, Socket};
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

/// Datagrams each socket queues each way.
const PACKETS: usize = 64;
/// Bytes each socket queues each way.
const PAYLOAD: usize = 128 * 1024;
/// The size of the header of `headers` mode.
pub const HEADER: usize = 52;
/// IPv4 and UDP headers: what a datagram adds to its payload.
const IP_UDP_HEADERS: usize = 28;

/// A UDP conversation's sockets (one per interface it is bound on) and mode.
#[derive(Default)]
pub struct Udp {
    sockets: Vec<(usize, SocketHandle)>,
    /// Set by `connect`: datagrams go there, and only its datagrams are read.
    remote: Option<Endpoint>,
    /// Reads and writes carry the 52-byte header.
    headers: bool,
}

fn new_socket() -> Socket<'static> {
    let buffer = || {
        PacketBuffer::new(
            alloc::vec![PacketMetadata::EMPTY; PACKETS],
            alloc::vec![0u8; PAYLOAD],
        )
    };
    Socket::new(buffer(), buffer())
}

/// Writes an IPv4 address as Plan 9's 16-byte form.
fn put_addr(out: &mut [u8], a: Ipv4Addr) {
    out[..10].fill(0);
    out[10..12].fill(0xff);
    out[12..16].copy_from_slice(&a.octets());
}

/// Reads Plan 9's 16-byte form of an IPv4 address.
fn get_addr(b: &[u8]) -> Option<Ipv4Addr> {
    (b[..10].iter().all(|&x| x == 0) && b[10..12] == [0xff, 0xff])
        .then(|| Ipv4Addr::new(b[12], b[13], b[14], b[15]))
}

impl Stack {
    fn udp(&mut self, ifc: usize, h: SocketHandle) -> &mut Socket<'static> {
        self.ifcs[ifc].sockets.get_mut::<Socket>(h)
    }

    /// The conversation's UDP state, made on first use; an error once it is hung up.
    fn udp_state(&mut self, c: &Conv) -> KResult<&mut Udp> {
        let st = self.state_of(c)?;
        if matches!(st.phase, Phase::Idle) {
            st.phase = Phase::Udp(Udp::default());
        }
        match &mut st.phase {
            Phase::Udp(u) => Ok(u),
            _ => Err(format!("{}: hung up", c.name()).into()),
        }
    }

    /// Binds a socket for `c` on `ifc` at `at`.
    fn bind_udp(&mut self, c: &Conv, ifc: usize, at: IpListenEndpoint) -> KResult<()> {
        let mut s = new_socket();
        s.bind(at)
            .map_err(|e| Error::from(format!("{}: cannot bind port {}: {e}", c.name(), at.port)))?;
        let h = self.ifcs[ifc].sockets.add(s);
        self.udp_state(c)?.sockets.push((ifc, h));
        Ok(())
    }

    fn udp_connect(&mut self, c: &Conv, to: Endpoint) -> KResult<()> {
        if !self.udp_state(c)?.sockets.is_empty() {
            return Err(format!("{}: already in use; clone a new conversation", c.name()).into());
        }
        if to.addr.is_unspecified() || to.addr.is_multicast() {
            return Err(format!("cannot connect to {}", to.addr).into());
        }
        let ifc = self
            .route(to.addr)
            .ok_or_else(|| Error::from(format!("no route to {}", to.addr)))?;
        let port = self
            .ephemeral_port(super::conv::Proto::Udp)
            .ok_or_else(|| Error::from("no free local ports"))?;
        self.bind_udp(c, ifc, port.into())?;
        let src = self.ifcs[ifc]
            .iface
            .get_source_address_ipv4(&to.addr)
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        self.udp_state(c)?.remote = Some(to);
        let st = self.state_of(c)?;
        st.local = Some(Endpoint { addr: src, port });
        st.remote = Some(to);
        Ok(())
    }

    fn udp_announce(&mut self, c: &Conv, mut spec: addr::ListenSpec) -> KResult<()> {
        if !self.udp_state(c)?.sockets.is_empty() {
            return Err(format!("{}: already in use; clone a new conversation", c.name()).into());
        }
        let ifcs: Vec<usize> = (0..self.ifcs.len())
            .filter(|&i| spec.addr.is_none_or(|a| self.ifcs[i].owns(a)))
            .collect();
        if ifcs.is_empty() {
            return Err(format!(
                "cannot announce on {}: not an address of this machine",
                spec.addr.unwrap_or(Ipv4Addr::UNSPECIFIED)
            )
            .into());
        }
        if spec.port == 0 {
            spec.port = self
                .ephemeral_port(super::conv::Proto::Udp)
                .ok_or_else(|| Error::from("no free local ports"))?;
        } else if self.port_in_use(super::conv::Proto::Udp, spec.port) {
            return Err(format!("port {} is in use", spec.port).into());
        }
        for ifc in ifcs {
            let at = IpListenEndpoint {
                addr: spec.addr.map(Into::into),
                port: spec.port,
            };
            self.bind_udp(c, ifc, at)?;
        }
        self.state_of(c)?.local = Some(Endpoint {
            addr: spec.addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            port: spec.port,
        });
        Ok(())
    }

    /// Lets go of a UDP conversation's sockets.
    pub(super) fn drop_udp(&mut self, u: Udp) {
        for (ifc, h) in u.sockets {
            self.ifcs[ifc].sockets.remove(h);
        }
    }

    /// One attempt to read a datagram: `None` to wait.
    fn udp_try_read(&mut self, c: &Conv, buf: &mut [u8]) -> Option<KResult<usize>> {
        let (sockets, remote, headers) = match self.state_of(c).map(|st| &st.phase) {
            Ok(Phase::Udp(u)) => (u.sockets.clone(), u.remote, u.headers),
            Ok(Phase::Hungup) => return Some(Ok(0)),
            Ok(_) => {
                return Some(Err(format!(
                    "{}: neither connected nor announced",
                    c.name()
                )
                .into()));
            }
            Err(e) => return Some(Err(e)),
        };
        if headers && buf.len() < HEADER {
            return Some(Err(format!(
                "{}: a read with headers needs at least {HEADER} bytes",
                c.name()
            )
            .into()));
        }
        for (ifc, h) in sockets {
            let ifc_addr = self.ifcs[ifc].iface.ipv4_addr();
            let s = self.udp(ifc, h);
            let lport = s.endpoint().port;
            while let Ok((payload, meta)) = s.recv() {
                let from = endpoint(meta.endpoint);
                if !headers && remote.is_some_and(|r| r != from) {
                    continue;
                }
                let mut n = 0;
                if headers {
                    let local = meta
                        .local_address
                        .map(|a| {
                            let smoltcp::wire::IpAddress::Ipv4(a) = a;
                            a
                        })
                        .unwrap_or(Ipv4Addr::UNSPECIFIED);
                    put_addr(&mut buf[0..16], from.addr);
                    put_addr(&mut buf[16..32], local);
                    put_addr(&mut buf[32..48], ifc_addr.unwrap_or(local));
                    buf[48..50].copy_from_slice(&from.port.to_be_bytes());
                    buf[50..52].copy_from_slice(&lport.to_be_bytes());
                    n = HEADER;
                }
                let take = payload.len().min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&payload[..take]);
                return Some(Ok(n + take));
            }
        }
        None
    }

    /// Where a write goes and what it carries: (socket's interface, socket, destination,
    /// payload offset in the write).
    fn udp_target(
        &mut self,
        c: &Conv,
        buf: &[u8],
    ) -> KResult<(usize, SocketHandle, Endpoint, usize)> {
        let name = c.name();
        let (sockets, remote, headers) = match &self.state_of(c)?.phase {
            Phase::Udp(u) => (u.sockets.clone(), u.remote, u.headers),
            Phase::Hungup => return Err(abi::errors::EHUNGUP.into()),
            _ => return Err(format!("{name}: neither connected nor announced").into()),
        };
        let (to, skip) = if headers {
            if buf.len() < HEADER {
                return Err(
                    format!("{name}: a write with headers starts with {HEADER} bytes").into(),
                );
            }
            let addr = get_addr(&buf[0..16])
                .ok_or_else(|| Error::from(format!("{name}: the header's address is not IPv4")))?;
            let port = u16::from_be_bytes([buf[48], buf[49]]);
            (Endpoint { addr, port }, HEADER)
        } else {
            let to = remote.ok_or_else(|| {
                Error::from(format!(
                    "{name}: not connected; after announce, write with headers to reply"
                ))
            })?;
            (to, 0)
        };
        if to.port == 0 || to.addr.is_unspecified() {
            return Err(format!("{name}: cannot send to {to}").into());
        }
        let ifc = self
            .route(to.addr)
            .ok_or_else(|| Error::from(format!("no route to {}", to.addr)))?;
        let (_, h) = *sockets.iter().find(|(i, _)| *i == ifc).ok_or_else(|| {
            Error::from(format!("{name}: not bound where {} is reached", to.addr))
        })?;
        let room = self.ifcs[ifc]
            .ip_mtu()
            .saturating_sub(IP_UDP_HEADERS)
            .min(PAYLOAD);
        if buf.len() - skip > room {
            return Err(format!(
                "{name}: a datagram of {} bytes is larger than the {room} {} carries",
                buf.len() - skip,
                self.ifcs[ifc].name
            )
            .into());
        }
        Ok((ifc, h, to, skip))
    }
}

/// Carries out a `ctl` message of a UDP conversation.
pub fn ctl(c: &Conv, verb: &str, arg: Option<&str>, msg: &str) -> KResult<()> {
    match (verb, arg) {
        ("connect", Some(a)) => {
            let to = addr::parse_remote(a)?;
            with_stack(|s| s.udp_connect(c, to))?
        }
        ("announce", Some(a)) => {
            let spec = addr::parse_local(a)?;
            with_stack(|s| s.udp_announce(c, spec))?
        }
        ("headers", None) => with_stack(|s| s.udp_state(c).map(|u| u.headers = true))?,
        ("hangup", None) => with_stack(|s| {
            let st = s.state_of(c)?;
            let phase = core::mem::replace(&mut st.phase, Phase::Hungup);
            if let Phase::Udp(u) = phase {
                s.drop_udp(u);
            }
            Ok(())
        })?,
        _ => Err(format!(
            "bad ctl message '{}': expected connect ADDR!PORT, announce ADDR!PORT, headers or hangup",
            msg.trim()
        )
        .into()),
    }
}

/// Reads one datagram (waiting for one).
pub fn read(c: &Conv, buf: &mut [u8]) -> KResult<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    wait_on_stack(&c.queue, |s| s.udp_try_read(c, buf))?
}

/// Sends `buf` as one datagram (waiting for room in the socket's queue).
pub fn write(c: &Conv, buf: &[u8]) -> KResult<usize> {
    let sent = wait_on_stack(&c.queue, |s| {
        let (ifc, h, to, skip) = match s.udp_target(c, buf) {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let dest = IpEndpoint::new(to.addr.into(), to.port);
        match s.udp(ifc, h).send_slice(&buf[skip..], dest) {
            Ok(()) => Some(Ok(buf.len())),
            Err(udp::SendError::BufferFull) => None,
            Err(udp::SendError::Unaddressable) => {
                Some(Err(format!("no route to {}", to.addr).into()))
            }
        }
    })?;
    super::kick();
    sent
}

/// The state word of `status`.
pub fn status(u: &Udp) -> &'static str {
    match (u.remote.is_some(), u.sockets.is_empty()) {
        (_, true) => "Idle",
        (true, false) => "Connected",
        (false, false) => "Announced",
    }
}
