//! TCP conversations, in Plan 9's model (ip(3)): a conversation is made by opening `clone`,
//! is told what to be through its `ctl` (`connect ADDR!PORT`, `announce ADDR!PORT`,
//! `hangup`), carries bytes through `data`, and takes calls through `listen`. It lives while
//! any of its `ctl` or `data` files is open; the last close ends the connection gracefully
//! (FIN, RFC 9293 §3.6) and frees its number for reuse.
//!
//! An announcement keeps a small pool of listening smoltcp sockets per interface (smoltcp has
//! no backlog: one socket takes one SYN). A socket that gets a SYN becomes an embryo; once
//! established it waits as an incoming call until `listen` turns it into a conversation of
//! its own; a fresh listening socket replaces it at once.
//!
//! Errors say what went wrong in words a user can act on, and name the address when there
//! is one ("connection refused", "tcp!127.0.0.1!5640: connection reset by peer").

use super::addr::{self, Endpoint, ListenSpec};
use super::{Stack, wait_on_stack, with_stack};
use crate::error::{Error, KResult};
use crate::proc::wait::{WaitQueue, Woken};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, Socket, State};

/// Receive and send buffer of each TCP socket (window scaling, RFC 7323, makes use of it).
const BUFFER: usize = 128 * 1024;
/// Listening sockets kept ready per interface per announcement.
const LISTEN_POOL: usize = 2;
/// Calls an announcement lets complete before `listen` takes them.
const BACKLOG: usize = 32;
/// Callers an announcement keeps waiting beyond that; more are refused.
const MAX_PAUSED: usize = 32;
/// How long `connect` waits for the other side.
const CONNECT_TIMEOUT_NS: u64 = 30_000_000_000;
/// How long a closed connection may take to finish its handshake before it is reset.
pub const LINGER_NS: u64 = 30_000_000_000;
/// Conversations per protocol.
const MAX_CONVS: u32 = 1024;
/// TCP sockets in all (each holds `2 * BUFFER` bytes of kernel memory).
const MAX_SOCKETS: usize = 512;

/// A transport protocol: a directory of `/net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (RFC 9293): `/net/tcp`.
    Tcp,
    /// UDP (RFC 768): `/net/udp`.
    Udp,
}

impl Proto {
    /// Every protocol, in `/net`'s order.
    pub const ALL: [Proto; 2] = [Proto::Tcp, Proto::Udp];

    /// Its directory name.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A conversation's identity, held by its channels; its state lives in the stack.
pub struct Conv {
    /// Its protocol.
    pub proto: Proto,
    /// Its number: the directory `/net/PROTO/N`.
    pub num: u32,
    id: u64,
    /// Its readers, writers, listeners and connecters wait here.
    pub queue: WaitQueue,
}

impl Conv {
    /// `tcp/N`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.proto.name(), self.num)
    }

    /// Tells this conversation from earlier ones with the same number (for qid versions).
    pub fn generation(&self) -> u64 {
        self.id
    }
}

/// A connection's socket.
pub(super) struct Tcp {
    ifc: usize,
    handle: SocketHandle,
    /// The peer's FIN has been read (end of file was seen).
    eof_seen: bool,
}

/// A listening socket or a call that has not been taken yet.
#[derive(Clone, Copy)]
struct Pending {
    ifc: usize,
    handle: SocketHandle,
    /// Its SYN-ACK is held back until the announcement has room.
    paused: bool,
}

/// An announcement's listening sockets and calls.
pub(super) struct Announce {
    spec: ListenSpec,
    /// Interfaces it listens on.
    ifcs: Vec<usize>,
    listening: Vec<Pending>,
    /// Sockets past their SYN, not yet established.
    embryos: Vec<Pending>,
    /// Established calls waiting for `listen`.
    incoming: VecDeque<Pending>,
}

/// What a conversation is doing.
pub(super) enum Phase {
    /// Fresh from `clone`.
    Idle,
    /// `connect` is waiting for the handshake.
    Connecting(Tcp),
    /// A connection (made by `connect` or taken by `listen`).
    Connected(Tcp),
    /// Listening after `announce`.
    Announced(Announce),
    /// A UDP conversation after `connect` or `announce`.
    Udp(super::udp::Udp),
    /// Ended by `hangup`.
    Hungup,
}

/// A conversation's state in the stack.
pub struct ConvState {
    pub(super) conv: Arc<Conv>,
    /// Open `ctl` and `data` channels.
    inuse: usize,
    pub(super) phase: Phase,
    pub(super) local: Option<Endpoint>,
    pub(super) remote: Option<Endpoint>,
}

impl ConvState {
    /// The port it announced, if it did.
    pub(super) fn announced_port(&self) -> Option<u16> {
        match &self.phase {
            Phase::Announced(a) if self.conv.proto == Proto::Tcp => Some(a.spec.port),
            _ => None,
        }
    }
}

fn new_socket() -> Socket<'static> {
    let mut s = Socket::new(
        tcp::SocketBuffer::new(alloc::vec![0u8; BUFFER]),
        tcp::SocketBuffer::new(alloc::vec![0u8; BUFFER]),
    );
    // Requests and replies (9P) must not wait for more bytes or for an ACK timer.
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s
}

pub(super) fn endpoint(e: smoltcp::wire::IpEndpoint) -> Endpoint {
    let smoltcp::wire::IpAddress::Ipv4(addr) = e.addr;
    Endpoint { addr, port: e.port }
}

/// Plan 9's names for TCP states.
fn state_name(s: State) -> &'static str {
    match s {
        State::Closed => "Closed",
        State::Listen => "Listen",
        State::SynSent => "Syn_sent",
        State::SynReceived => "Syn_received",
        State::Established => "Established",
        State::FinWait1 => "Finwait1",
        State::FinWait2 => "Finwait2",
        State::CloseWait => "Close_wait",
        State::Closing => "Closing",
        State::LastAck => "Last_ack",
        State::TimeWait => "Time_wait",
    }
}

impl Stack {
    fn socket(&mut self, ifc: usize, handle: SocketHandle) -> &mut Socket<'static> {
        self.ifcs[ifc].sockets.get_mut::<Socket>(handle)
    }

    /// Sockets that may still be made before `MAX_SOCKETS`.
    fn socket_room(&self) -> usize {
        let used: usize = self.ifcs.iter().map(|i| i.sockets.iter().count()).sum();
        MAX_SOCKETS.saturating_sub(used)
    }

    pub(super) fn state_of(&mut self, c: &Conv) -> KResult<&mut ConvState> {
        self.convs
            .get_mut(&(c.proto, c.num))
            .filter(|s| s.conv.id == c.id)
            .ok_or_else(|| format!("{}: conversation closed", c.name()).into())
    }

    fn new_conv(&mut self, proto: Proto, phase: Phase) -> KResult<Arc<Conv>> {
        let num = (0..MAX_CONVS)
            .find(|n| !self.convs.contains_key(&(proto, *n)))
            .ok_or_else(|| Error::from(format!("{}: no free conversations", proto.name())))?;
        let conv = Arc::new(Conv {
            proto,
            num,
            id: self.next_id,
            queue: WaitQueue::new(),
        });
        self.next_id += 1;
        self.convs.insert(
            (proto, num),
            ConvState {
                conv: conv.clone(),
                inuse: 1,
                phase,
                local: None,
                remote: None,
            },
        );
        Ok(conv)
    }

    /// The interface that routes to `addr`: the loopback for its own addresses.
    pub(super) fn route(&self, addr: Ipv4Addr) -> Option<usize> {
        if let Some(lo) = self
            .ifcs
            .iter()
            .position(|i| i.is_loopback() && i.owns(addr))
        {
            return Some(lo);
        }
        if addr.is_loopback() {
            return self.ifcs.iter().position(|i| i.is_loopback());
        }
        self.ifcs
            .iter()
            .position(|i| !i.is_loopback() && i.reaches(addr))
    }

    /// Starts connecting `c` to `to`.
    fn start_connect(&mut self, c: &Conv, to: Endpoint) -> KResult<()> {
        if !matches!(self.state_of(c)?.phase, Phase::Idle) {
            return Err(format!("tcp/{}: already in use; clone a new conversation", c.num).into());
        }
        if to.addr.is_unspecified() || to.addr.is_broadcast() || to.addr.is_multicast() {
            return Err(format!("cannot connect to {}", to.addr).into());
        }
        let ifc = self
            .route(to.addr)
            .ok_or_else(|| Error::from(format!("no route to {}", to.addr)))?;
        if self.socket_room() == 0 {
            return Err(format!("tcp: all {MAX_SOCKETS} sockets are in use").into());
        }
        let port = self
            .ephemeral_port(Proto::Tcp)
            .ok_or_else(|| Error::from("no free local ports"))?;
        let mut socket = new_socket();
        let cx = self.ifcs[ifc].iface.context();
        socket
            .connect(cx, (to.addr, to.port), port)
            .map_err(|e| Error::from(format!("cannot connect to {to}: {e}")))?;
        let local = socket.local_endpoint().map(endpoint);
        let handle = self.ifcs[ifc].sockets.add(socket);
        let st = self.state_of(c)?;
        st.phase = Phase::Connecting(Tcp {
            ifc,
            handle,
            eof_seen: false,
        });
        st.local = local;
        st.remote = Some(to);
        Ok(())
    }

    /// Whether `connect` is over: `Some(Ok)` once established, `Some(Err)` if refused.
    fn connect_done(&mut self, c: &Conv) -> Option<KResult<()>> {
        let (ifc, handle) = match self.state_of(c).map(|st| &st.phase) {
            Ok(Phase::Connecting(t)) => (t.ifc, t.handle),
            Ok(_) => {
                return Some(Err(
                    format!("tcp/{}: hung up while connecting", c.num).into()
                ));
            }
            Err(e) => return Some(Err(e)),
        };
        match self.socket(ifc, handle).state() {
            State::SynSent | State::SynReceived => None,
            State::Closed => {
                self.abandon_connect(c);
                Some(Err("connection refused".into()))
            }
            _ => {
                let local = self.socket(ifc, handle).local_endpoint().map(endpoint);
                if let Ok(st) = self.state_of(c) {
                    let Phase::Connecting(t) = core::mem::replace(&mut st.phase, Phase::Idle)
                    else {
                        unreachable!("checked above")
                    };
                    st.phase = Phase::Connected(t);
                    st.local = local.or(st.local);
                }
                Some(Ok(()))
            }
        }
    }

    /// Gives up a connect: resets the half-open connection, back to idle.
    fn abandon_connect(&mut self, c: &Conv) {
        let Ok(st) = self.state_of(c) else { return };
        if let Phase::Connecting(t) = core::mem::replace(&mut st.phase, Phase::Idle) {
            st.local = None;
            st.remote = None;
            self.socket(t.ifc, t.handle).abort();
            self.orphan(t.ifc, t.handle);
        }
    }

    /// Announces `c` on `spec`.
    fn announce(&mut self, c: &Conv, mut spec: ListenSpec) -> KResult<()> {
        if !matches!(self.state_of(c)?.phase, Phase::Idle) {
            return Err(format!("tcp/{}: already in use; clone a new conversation", c.num).into());
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
                .ephemeral_port(Proto::Tcp)
                .ok_or_else(|| Error::from("no free local ports"))?;
        } else if self.port_in_use(Proto::Tcp, spec.port) {
            return Err(format!("port {} is in use", spec.port).into());
        }
        let local = Endpoint {
            addr: spec.addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            port: spec.port,
        };
        let st = self.state_of(c)?;
        st.phase = Phase::Announced(Announce {
            spec,
            ifcs,
            listening: Vec::new(),
            embryos: Vec::new(),
            incoming: VecDeque::new(),
        });
        st.local = Some(local);
        self.tend_listeners(None);
        Ok(())
    }

    /// Moves announcements' sockets along: listening sockets that took a SYN become embryos,
    /// embryos that are established become incoming calls, dead ones are dropped, and the
    /// pools are refilled. With `BACKLOG` calls already held, a new embryo is paused (its
    /// SYN-ACK held back, the caller waiting) until `listen` makes room, as a full accept
    /// queue makes callers wait elsewhere rather than be refused. `only` limits the work to
    /// one interface.
    pub(super) fn tend_listeners(&mut self, only: Option<usize>) {
        let mut room = self.socket_room();
        let ifcs = &mut self.ifcs;
        for st in self.convs.values_mut() {
            let Phase::Announced(a) = &mut st.phase else {
                continue;
            };
            let mine = |p: &Pending| only.is_none_or(|i| p.ifc == i);
            let mut i = 0;
            while i < a.listening.len() {
                let p = a.listening[i];
                if mine(&p) && !ifcs[p.ifc].sockets.get::<Socket>(p.handle).is_listening() {
                    a.listening.swap_remove(i);
                    a.embryos.push(p);
                } else {
                    i += 1;
                }
            }
            let mut i = 0;
            while i < a.embryos.len() {
                let p = a.embryos[i];
                if !mine(&p) {
                    i += 1;
                    continue;
                }
                let s = ifcs[p.ifc].sockets.get_mut::<Socket>(p.handle);
                match s.state() {
                    State::SynReceived => i += 1,
                    // A reset in SYN-RECEIVED puts the socket back to listening.
                    State::Listen => {
                        s.pause_synack(false);
                        a.embryos.swap_remove(i);
                        a.listening.push(Pending { paused: false, ..p });
                    }
                    State::Closed | State::TimeWait => {
                        a.embryos.swap_remove(i);
                        ifcs[p.ifc].sockets.remove(p.handle);
                    }
                    _ => {
                        a.embryos.swap_remove(i);
                        a.incoming.push_back(p);
                    }
                }
            }
            // Let embryos answer while there is room, in arrival order; hold back the rest.
            let mut held = a.incoming.len();
            for p in &mut a.embryos {
                let pause = held >= BACKLOG;
                if p.paused != pause {
                    p.paused = pause;
                    ifcs[p.ifc]
                        .sockets
                        .get_mut::<Socket>(p.handle)
                        .pause_synack(pause);
                }
                held += usize::from(!pause);
            }
            let paused = a.embryos.iter().filter(|p| p.paused).count();
            for &ifc in &a.ifcs {
                if only.is_some_and(|o| o != ifc) {
                    continue;
                }
                while paused < MAX_PAUSED
                    && room > 0
                    && a.listening.iter().filter(|p| p.ifc == ifc).count() < LISTEN_POOL
                {
                    let mut s = new_socket();
                    let at = smoltcp::wire::IpListenEndpoint {
                        addr: a.spec.addr.map(Into::into),
                        port: a.spec.port,
                    };
                    if let Err(e) = s.listen(at) {
                        log::warn!("tcp: cannot listen on port {}: {e}", a.spec.port);
                        break;
                    }
                    let handle = ifcs[ifc].sockets.add(s);
                    room -= 1;
                    a.listening.push(Pending {
                        ifc,
                        handle,
                        paused: false,
                    });
                }
            }
        }
    }

    /// Takes an incoming call of the announcement `c`, as a new conversation.
    fn take_call(&mut self, c: &Conv) -> Option<KResult<Arc<Conv>>> {
        let st = match self.state_of(c) {
            Ok(st) => st,
            Err(e) => return Some(Err(e)),
        };
        let Phase::Announced(a) = &mut st.phase else {
            return Some(Err(format!("tcp/{}: not announced", c.num).into()));
        };
        let p = a.incoming.pop_front()?;
        let s = self.socket(p.ifc, p.handle);
        let (local, remote) = (
            s.local_endpoint().map(endpoint),
            s.remote_endpoint().map(endpoint),
        );
        let tcp = Tcp {
            ifc: p.ifc,
            handle: p.handle,
            eof_seen: false,
        };
        match self.new_conv(Proto::Tcp, Phase::Connected(tcp)) {
            Ok(new) => {
                if let Some(st) = self.convs.get_mut(&(Proto::Tcp, new.num)) {
                    st.local = local;
                    st.remote = remote;
                }
                Some(Ok(new))
            }
            Err(e) => {
                self.socket(p.ifc, p.handle).abort();
                self.orphan(p.ifc, p.handle);
                Some(Err(e))
            }
        }
    }

    /// The connection's error once its socket has closed without our asking.
    fn closed_error(st: &ConvState) -> Error {
        match st.remote {
            Some(r) => format!("tcp!{r}: connection reset by peer").into(),
            None => "connection reset by peer".into(),
        }
    }

    /// One attempt to read: `None` to wait.
    fn try_read(&mut self, c: &Conv, buf: &mut [u8]) -> Option<KResult<usize>> {
        let st = match self.state_of(c) {
            Ok(st) => st,
            Err(e) => return Some(Err(e)),
        };
        let (ifc, handle) = match &st.phase {
            Phase::Connected(t) => (t.ifc, t.handle),
            Phase::Connecting(_) => return None,
            Phase::Hungup => return Some(Ok(0)),
            Phase::Idle | Phase::Announced(_) | Phase::Udp(_) => {
                return Some(Err(format!("tcp/{}: not connected", c.num).into()));
            }
        };
        let r = self.socket(ifc, handle).recv_slice(buf);
        let st = self.state_of(c).ok()?;
        let Phase::Connected(t) = &mut st.phase else {
            return None;
        };
        match r {
            Ok(0) => None,
            Ok(n) => Some(Ok(n)),
            Err(tcp::RecvError::Finished) => {
                t.eof_seen = true;
                Some(Ok(0))
            }
            Err(tcp::RecvError::InvalidState) if t.eof_seen => Some(Ok(0)),
            Err(tcp::RecvError::InvalidState) => Some(Err(Self::closed_error(st))),
        }
    }

    /// One attempt to write: `None` to wait for room.
    fn try_write(&mut self, c: &Conv, buf: &[u8]) -> Option<KResult<usize>> {
        let st = match self.state_of(c) {
            Ok(st) => st,
            Err(e) => return Some(Err(e)),
        };
        let (ifc, handle) = match &st.phase {
            Phase::Connected(t) => (t.ifc, t.handle),
            Phase::Connecting(_) => return None,
            Phase::Hungup => return Some(Err(abi::errors::EHUNGUP.into())),
            Phase::Idle | Phase::Announced(_) | Phase::Udp(_) => {
                return Some(Err(format!("tcp/{}: not connected", c.num).into()));
            }
        };
        let s = self.socket(ifc, handle);
        let state = s.state();
        let r = s.send_slice(buf);
        match r {
            Ok(0) if state == State::Established || state == State::CloseWait => None,
            Ok(n) if n > 0 => Some(Ok(n)),
            _ => {
                let st = self.state_of(c).ok()?;
                Some(Err(Self::closed_error(st)))
            }
        }
    }

    /// Ends what `c` is doing: resets its connection or stops its listening.
    fn hangup(&mut self, c: &Conv) -> KResult<()> {
        let st = self.state_of(c)?;
        let phase = core::mem::replace(&mut st.phase, Phase::Hungup);
        self.drop_phase(phase, true);
        Ok(())
    }

    /// Lets go of a phase's sockets: connections are reset (`abort`) or closed gracefully.
    fn drop_phase(&mut self, phase: Phase, abort: bool) {
        match phase {
            Phase::Connecting(t) => {
                self.socket(t.ifc, t.handle).abort();
                self.orphan(t.ifc, t.handle);
            }
            Phase::Connected(t) => {
                if abort {
                    self.socket(t.ifc, t.handle).abort();
                }
                self.orphan(t.ifc, t.handle);
            }
            Phase::Announced(a) => {
                for p in a.listening {
                    self.ifcs[p.ifc].sockets.remove(p.handle);
                }
                for p in a.embryos.into_iter().chain(a.incoming) {
                    self.socket(p.ifc, p.handle).abort();
                    self.orphan(p.ifc, p.handle);
                }
            }
            Phase::Udp(u) => self.drop_udp(u),
            Phase::Idle | Phase::Hungup => {}
        }
    }
}

/// Makes a conversation (opening `clone`); it starts with one open channel, its `ctl`.
pub fn clone(proto: Proto) -> KResult<Arc<Conv>> {
    with_stack(|s| s.new_conv(proto, Phase::Idle))?
}

/// The live conversation `proto/num`.
pub fn lookup(proto: Proto, num: u32) -> Option<Arc<Conv>> {
    with_stack(|s| s.convs.get(&(proto, num)).map(|st| st.conv.clone())).ok()?
}

/// The numbers of the live conversations of `proto`.
pub fn numbers(proto: Proto) -> Vec<u32> {
    with_stack(|s| {
        s.convs
            .keys()
            .filter(|k| k.0 == proto)
            .map(|k| k.1)
            .collect()
    })
    .unwrap_or_default()
}

/// Counts an open of `c`'s `ctl` or `data`.
pub fn open(c: &Conv) -> KResult<()> {
    with_stack(|s| {
        s.state_of(c)?.inuse += 1;
        Ok(())
    })?
}

/// Counts a close of `c`'s `ctl` or `data`; the last one ends the conversation.
pub fn close(c: &Conv) {
    let _ = with_stack(|s| {
        let Ok(st) = s.state_of(c) else { return };
        st.inuse = st.inuse.saturating_sub(1);
        if st.inuse > 0 {
            return;
        }
        if let Some(st) = s.convs.remove(&(c.proto, c.num)) {
            s.drop_phase(st.phase, false);
        }
    });
    super::kick();
    // Waiters on a conversation that is gone (a `listen`) see it closed.
    c.queue.wake_all();
}

/// Carries out a `ctl` message.
pub fn ctl(c: &Conv, msg: &str) -> KResult<()> {
    let mut words = msg.split_whitespace();
    let verb = words.next().unwrap_or("");
    let arg = words.next();
    if words.next().is_some() {
        return Err(format!("bad ctl message '{}': too many words", msg.trim()).into());
    }
    if c.proto == Proto::Udp {
        super::udp::ctl(c, verb, arg, msg)?;
        super::kick();
        c.queue.wake_all();
        return Ok(());
    }
    match (verb, arg) {
        ("connect", Some(a)) => connect(c, addr::parse_remote(a)?),
        ("announce", Some(a)) => {
            let spec = addr::parse_local(a)?;
            with_stack(|s| s.announce(c, spec))??;
            super::kick();
            Ok(())
        }
        ("hangup", None) => {
            with_stack(|s| s.hangup(c))??;
            super::kick();
            c.queue.wake_all();
            Ok(())
        }
        _ => Err(format!(
            "bad ctl message '{}': expected connect ADDR!PORT, announce ADDR!PORT or hangup",
            msg.trim()
        )
        .into()),
    }
}

/// `connect`: waits for the handshake (or a refusal, a timeout or a note).
fn connect(c: &Conv, to: Endpoint) -> KResult<()> {
    with_stack(|s| s.start_connect(c, to))??;
    super::kick();
    super::kick_poller();
    let deadline = crate::time::uptime_ns() + CONNECT_TIMEOUT_NS;
    let mut result = None;
    let waited = c.queue.wait_deadline(Some(deadline), || {
        result = with_stack(|s| s.connect_done(c)).ok().flatten();
        result.is_some()
    });
    let give_up = |why: Error| -> KResult<()> {
        let _ = with_stack(|s| s.abandon_connect(c));
        super::kick();
        Err(why)
    };
    match waited {
        Err(e) => give_up(e.into()),
        Ok(Woken::TimedOut) => give_up("connection timed out".into()),
        Ok(Woken::Ready) => result.unwrap_or_else(|| Err("connection refused".into())),
    }
}

/// Waits for a call to the announcement `c` and makes it a conversation (opening `listen`).
pub fn listen(c: &Conv) -> KResult<Arc<Conv>> {
    if c.proto == Proto::Udp {
        return Err(format!(
            "{}: UDP has no calls to listen for; read the announced conversation's data",
            c.name()
        )
        .into());
    }
    wait_on_stack(&c.queue, |s| s.take_call(c))?
}

/// Reads from the connection: waits for bytes; 0 at end of file.
pub fn read(c: &Conv, buf: &mut [u8]) -> KResult<usize> {
    if c.proto == Proto::Udp {
        return super::udp::read(c, buf);
    }
    if buf.is_empty() {
        return Ok(0);
    }
    let n = wait_on_stack(&c.queue, |s| s.try_read(c, buf))?;
    // The window opened: tell the peer.
    super::kick();
    n
}

/// Writes all of `buf` to the connection, waiting for room as needed.
pub fn write(c: &Conv, buf: &[u8]) -> KResult<usize> {
    if c.proto == Proto::Udp {
        return super::udp::write(c, buf);
    }
    let mut done = 0;
    while done < buf.len() {
        // Bytes already written are reported; the error comes on the next call.
        match wait_on_stack(&c.queue, |s| s.try_write(c, &buf[done..])) {
            Ok(Ok(n)) => done += n,
            Ok(Err(e)) if done == 0 => return Err(e),
            Err(e) if done == 0 => return Err(e.into()),
            Ok(Err(_)) | Err(_) => return Ok(done),
        }
        super::kick();
    }
    Ok(done)
}

/// `local`: `ADDR!PORT` or empty.
pub fn local(c: &Conv) -> String {
    with_stack(|s| {
        s.state_of(c)
            .ok()
            .and_then(|st| st.local)
            .map(|e| format!("{e}\n"))
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| String::from("0.0.0.0!0\n"))
}

/// `remote`: `ADDR!PORT` or empty.
pub fn remote(c: &Conv) -> String {
    with_stack(|s| {
        s.state_of(c)
            .ok()
            .and_then(|st| st.remote)
            .map(|e| format!("{e}\n"))
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| String::from("0.0.0.0!0\n"))
}

/// `status`: the TCP state and the bytes queued each way.
pub fn status(c: &Conv) -> String {
    with_stack(|s| {
        let Ok(st) = s.state_of(c) else {
            return String::from("Closed\n");
        };
        let sock = match &st.phase {
            Phase::Connecting(t) | Phase::Connected(t) => Some((t.ifc, t.handle)),
            Phase::Announced(a) => {
                return format!("Listen calls {}\n", a.incoming.len());
            }
            Phase::Udp(u) => return format!("{}\n", super::udp::status(u)),
            Phase::Idle | Phase::Hungup => None,
        };
        match sock {
            Some((ifc, handle)) => {
                let name = s.ifcs[ifc].name;
                let sock = s.socket(ifc, handle);
                format!(
                    "{} qin {} qout {} ifc {name}\n",
                    state_name(sock.state()),
                    sock.recv_queue(),
                    sock.send_queue()
                )
            }
            None => String::from("Closed\n"),
        }
    })
    .unwrap_or_default()
}

/// Bytes waiting to be read (the length of `data`).
pub fn queued(c: &Conv) -> u64 {
    with_stack(|s| {
        let (ifc, handle) = match &s.state_of(c).ok()?.phase {
            Phase::Connected(t) => (t.ifc, t.handle),
            _ => return None,
        };
        Some(s.socket(ifc, handle).recv_queue() as u64)
    })
    .ok()
    .flatten()
    .unwrap_or(0)
}
