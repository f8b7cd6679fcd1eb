//! The NAT between the guest's virtio-net card and the host (DESIGN.md section 4): a sans-I/O
//! model of the network the guest lives on. Frames the guest sends go in through
//! [`NetBackend::send`], frames for it come out of [`NetBackend::receive`], and host
//! connections that a port forward accepted, and connections the guest opens beyond the
//! router, become flows, read and written with [`Nat::send`] and [`Nat::recv`]. Time comes in only through [`Nat::poll`]; nothing here
//! blocks, sleeps or does I/O.
//!
//! Inside, a smoltcp interface plays the router 10.0.2.2 on the guest's 10.0.2.0/24: it
//! answers ARP for the router (RFC 826), optionally DHCP (RFC 2131, [`dhcp`]), and runs one
//! TCP connection (RFC 9293) from the router to the guest per forwarded host connection. A
//! forward `port:tcp:HOST:GUEST` is therefore not address rewriting as in Akaros
//! (reference/akaros.md §4.7) but two TCP connections spliced by the VMM: the host's stack
//! terminates the client's connection, and this NAT opens a fresh one to the guest. That
//! avoids Akaros' pitfalls by construction: no checksum patching, no maps keyed by guest port
//! alone, no MTU mismatch with the host's loopback (segments are sized for the guest's link).
//!
//! Guest-initiated (outbound) TCP connections are the other [`FlowKind`], with the same
//! send/recv/close interface: with any-IP on (`Interface::set_any_ip`), a guest SYN to an
//! address beyond the router gets a listener bound to that address and port, which accepts
//! it; [`Nat::poll`] then reports the flow through [`Nat::next_outbound`], the VMM dials the
//! destination (on the host, a `#ip` conversation) and splices it like a forward, or calls
//! [`Nat::dial_failed`], which resets the guest's connection. The guest's handshake completes
//! before the dial: its first bytes wait in the flow's buffer.
//!
//! Supported: TCP port forwards (host to guest), outbound TCP flows (guest to anywhere but
//! the router itself, its own network, loopback, multicast and broadcast; on by default,
//! [`NatConfig::outbound`]), ARP, DHCP, per-flow half-close, resets with a reason, idle and
//! connect timeouts, limits on flows (shared by both kinds; a guest SYN past the limit is
//! refused with a RST), buffers and queues. Not supported: UDP in either direction (UDP
//! forwards are refused by [`NatConfig::from_options`], the guest's UDP beyond DHCP is
//! dropped, so no DNS relay), ICMP, IPv6 and IP fragments. The guest's frames for anything
//! the NAT does not serve are dropped and counted by reason ([`DropReason`]); its TCP
//! connections to the router itself are refused with a RST.
//!
//! # Driving it
//!
//! The NAT is one value the VMM keeps behind a mutex (it is `Send`), normally inside the
//! virtio-net device as `Net<Nat>`. Every call is quick and non-blocking. The rule: **after any
//! batch of calls into the NAT, call [`Nat::poll`]**, then deliver frames to the guest if
//! [`Nat::has_frames_for_guest`], then take the flow events with [`Nat::next_event`] and wake
//! the threads they name; and call `poll` again when the delay it returned has passed. Calls
//! into the NAT are frames through the card (either virtio-net queue), `open_forward`, `send`,
//! `recv`, `close`, `abort`, `dial_failed` and `release`: each only queues work, and `poll` does it.
//!
//! - The vCPU thread, on a virtio-net queue notification: lock, `process_queue`, `poll`,
//!   deliver, dispatch events, unlock.
//! - One thread per host connection (accepted on a forward's host port): `open_forward`, then
//!   loop: `send` what the host sent and `recv` what the guest sent; on
//!   [`FlowError::WouldBlock`] wait on the flow's condition variable (with the same mutex, so
//!   a wake-up between the call and the wait cannot be lost). On host EOF `close`, on a host
//!   error `abort`; when `recv` gives end of stream or an error, shut the host side; when both
//!   directions are done, `release`.
//! - For an outbound flow taken from [`Nat::next_outbound`] (when dispatching events): a thread
//!   dials the destination and then runs the loop above, or calls `dial_failed` and `release`.
//! - A timer thread: sleep for the delay the last `poll` returned (or until woken because a
//!   call shortened it), then lock, `poll`, deliver, dispatch events.
//!
//! Events are edge-triggered and re-armed by blocking: a flow is reported when it becomes
//! readable or writable or changes state, and becomes reportable again once `recv` or `send`
//! on it returns `WouldBlock` or drains/fills its buffer. So a flow thread loops on `recv` and
//! `send` until they block before it waits, as with `EPOLLET`.

mod config;
mod dhcp;
mod flow;
mod frame;
mod link;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddrV4;
use core::ops::RangeInclusive;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint};

pub use config::{
    DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_DHCP_LEASE_SECS, DEFAULT_GUEST_IP,
    DEFAULT_GUEST_TO_HOST_BUFFER, DEFAULT_HOST_TO_GUEST_BUFFER, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_MAX_FLOWS, DEFAULT_MAX_QUEUED_FRAMES, DEFAULT_MTU, DEFAULT_PREFIX_LEN,
    DEFAULT_ROUTER_IP, DEFAULT_ROUTER_MAC, ETHERNET_HEADER_LEN, MAX_BUFFER, MAX_FLOWS_LIMIT,
    MAX_MTU, MIN_BUFFER, MIN_MTU, NatConfig,
};
pub use flow::{FlowError, FlowEvent, FlowId, FlowKind, FlowState, Readiness, ResetReason};
pub use frame::{Direction, DropReason, Summary};

use crate::virtio::net::backend::NetBackend;
use flow::{Flow, OutboundKey, Slot};
use frame::{TcpSegment, Verdict};
use link::Link;

/// The router's ports for forwarded connections: the IANA dynamic range (RFC 6335).
pub const EPHEMERAL_PORTS: RangeInclusive<u16> = 49152..=65535;
/// When the queue to the guest is full, the stack cannot make progress until the guest takes
/// frames (which the caller follows with a `poll`); until then `poll` asks to be called no
/// sooner than this, instead of "now", so a stalled guest cannot make the timer thread spin.
pub const STALLED_POLL_MS: u64 = 50;

/// Why the NAT could not be built or a flow opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatError {
    /// A configuration field breaks a rule (the message says which).
    BadConfig(&'static str),
    /// `max_flows` flows are open (including closed ones not yet released).
    TooManyFlows {
        /// The limit.
        limit: usize,
    },
    /// Port 0 cannot be forwarded.
    BadPort,
    /// Every port of [`EPHEMERAL_PORTS`] is in use.
    NoFreePort,
}

impl fmt::Display for NatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatError::BadConfig(m) => write!(f, "nat: {m}"),
            NatError::TooManyFlows { limit } => {
                write!(f, "nat: too many connections to the guest (limit {limit})")
            }
            NatError::BadPort => f.write_str("nat: guest port 0 cannot be forwarded"),
            NatError::NoFreePort => f.write_str("nat: no free port for a new connection"),
        }
    }
}

/// Frames dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::ALL.len()]);

impl DropCounts {
    /// Frames dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// Frames dropped for any reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Counters, for `snoop`, diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Frames the guest sent.
    pub frames_from_guest: u64,
    /// Frames handed to the guest.
    pub frames_to_guest: u64,
    /// Frames dropped, by reason.
    pub dropped: DropCounts,
    /// DHCP replies sent.
    pub dhcp_replies: u64,
    /// Flows opened.
    pub flows_opened: u64,
    /// Flows that ended in a reset, for any reason.
    pub flows_reset: u64,
    /// Bytes the host handed to flows.
    pub bytes_to_guest: u64,
    /// Bytes flows handed to the host.
    pub bytes_from_guest: u64,
    /// Outbound connections the guest opened that the NAT accepted.
    pub outbound_opened: u64,
    /// Outbound connections refused with a RST because `max_flows` flows were open.
    pub outbound_refused: u64,
}

/// The `snoop` hook: sees every frame in both directions.
pub type SnoopHook = Box<dyn FnMut(Direction, &[u8]) + Send>;

/// The NAT. See the module header for what it does and how to drive it.
pub struct Nat {
    config: NatConfig,
    iface: Interface,
    link: Link,
    sockets: SocketSet<'static>,
    slots: Vec<Slot>,
    /// Forwards by the router's port, for segments from the guest.
    by_port: BTreeMap<u16, usize>,
    /// Outbound flows by how the guest's segments name them.
    by_outbound: BTreeMap<OutboundKey, usize>,
    /// Outbound flows accepted and not yet taken by [`Nat::next_outbound`].
    outbound: VecDeque<FlowId>,
    next_port: u16,
    live: usize,
    events: VecDeque<FlowId>,
    now_ms: u64,
    stats: NatStats,
    snoop: Option<SnoopHook>,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Nat>();
};

impl Nat {
    /// A NAT with `config`, after checking it.
    pub fn new(config: NatConfig) -> Result<Nat, NatError> {
        config.validate()?;
        let mut link = Link::new(config.max_queued_frames, config.max_frame());
        let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(
            config.router_mac,
        )));
        iface_config.random_seed = config.random_seed;
        let mut iface = Interface::new(iface_config, &mut link, Instant::from_millis(0));
        let (router, prefix) = (config.router_ip, config.prefix_len);
        iface.update_ip_addrs(|addrs| {
            // One address into an empty list of capacity >= 1: cannot fail.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(router), prefix));
        });
        // Outbound flows: a listener bound to the destination takes the guest's SYN. With
        // any-IP the stack would also answer ARP for every address; `frame::classify` lets
        // through only ARP for the router and TCP the NAT routes.
        iface.set_any_ip(config.outbound);
        Ok(Nat {
            config,
            iface,
            link,
            sockets: SocketSet::new(Vec::new()),
            slots: Vec::new(),
            by_port: BTreeMap::new(),
            by_outbound: BTreeMap::new(),
            outbound: VecDeque::new(),
            next_port: *EPHEMERAL_PORTS.start(),
            live: 0,
            events: VecDeque::new(),
            now_ms: 0,
            stats: NatStats::default(),
            snoop: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &NatConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> NatStats {
        let mut s = self.stats;
        s.dropped.0[DropReason::GuestQueueFull.index()] += self.link.dropped_to_guest;
        s
    }

    /// Each flow's socket state, end and whether its socket still has a peer (test failures).
    #[cfg(test)]
    pub(crate) fn debug_states(&self) -> Vec<(State, Option<FlowState>, bool)> {
        self.slots
            .iter()
            .filter_map(|s| s.flow.as_ref())
            .map(|f| {
                let s = self.sockets.get::<tcp::Socket>(f.handle);
                (s.state(), f.end, s.remote_endpoint().is_some())
            })
            .collect()
    }

    /// Flows holding a slot (open, closed but not released, or released and still closing).
    pub fn flows(&self) -> usize {
        self.live
    }

    /// With `snoop` on, hands every frame to `hook` instead of logging a one-line summary of
    /// it ([`Summary`]); `None` goes back to logging.
    pub fn set_snoop_hook(&mut self, hook: Option<SnoopHook>) {
        self.snoop = hook;
    }

    /// Frames are waiting for the guest: run the virtio-net receive queue.
    pub fn has_frames_for_guest(&self) -> bool {
        !self.link.to_guest.is_empty()
    }

    /// Opens a connection from the router to the guest's `guest_port`, for a host connection
    /// accepted on a forward's host port. The flow starts [`FlowState::Connecting`]; an event
    /// reports when it is established, refused or timed out.
    pub fn open_forward(&mut self, guest_port: u16) -> Result<FlowId, NatError> {
        if guest_port == 0 {
            return Err(NatError::BadPort);
        }
        if self.live >= self.config.max_flows {
            return Err(NatError::TooManyFlows {
                limit: self.config.max_flows,
            });
        }
        let local_port = self.free_port().ok_or(NatError::NoFreePort)?;
        let mut socket = self.new_socket();
        let remote = (IpAddress::Ipv4(self.config.guest_ip), guest_port);
        // A fresh socket, non-zero ports and an address of ours: connect cannot fail.
        socket
            .connect(self.iface.context(), remote, local_port)
            .map_err(|_| NatError::BadConfig("the stack refused to connect to the guest"))?;
        let id = self.add_flow(FlowKind::Forward { guest_port }, socket, local_port, None);
        self.by_port.insert(local_port, id.index as usize);
        Ok(id)
    }

    /// A socket for a flow, with the NAT's buffers and options.
    fn new_socket(&self) -> tcp::Socket<'static> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; self.config.guest_to_host_buffer]),
            tcp::SocketBuffer::new(vec![0u8; self.config.host_to_guest_buffer]),
        );
        // The host side already coalesces writes; Nagle would only delay 9P requests.
        socket.set_nagle_enabled(false);
        // Set before connecting, so the first probe comes an interval after the handshake.
        socket.set_keep_alive(Some(Duration::from_millis(self.config.keep_alive_ms())));
        socket
    }

    /// Puts a new flow on `socket` into a free slot.
    fn add_flow(
        &mut self,
        kind: FlowKind,
        socket: tcp::Socket<'static>,
        local_port: u16,
        outbound: Option<OutboundKey>,
    ) -> FlowId {
        let handle = self.sockets.add(socket);
        let index = match self.slots.iter().position(|s| s.flow.is_none()) {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let state = FlowState::Connecting;
        self.slots[index].flow = Some(Flow {
            kind,
            handle,
            local_port,
            outbound,
            accepted: false,
            opened_ms: self.now_ms,
            fresh: true,
            last_heard_ms: self.now_ms,
            heard: false,
            last_state: State::SynSent,
            established: false,
            host_closed: false,
            close_deferred: false,
            rst_seen: false,
            end: None,
            released: false,
            released_ms: None,
            tail: Vec::new(),
            reported: Readiness::default(),
            reported_state: state,
            queued: false,
        });
        self.live += 1;
        self.stats.flows_opened += 1;
        FlowId {
            index: index as u32,
            generation: self.slots[index].generation,
        }
    }

    /// The guest opens a connection beyond the router that no flow has yet: a listener bound
    /// to the destination takes its SYN in the next `poll`, which then reports the flow
    /// ([`Nat::next_outbound`]). Past `max_flows` no listener is made and the stack refuses
    /// the SYN with a RST.
    fn open_outbound(&mut self, key: OutboundKey) {
        if self.live >= self.config.max_flows {
            self.stats.outbound_refused += 1;
            return;
        }
        let (addr, port, _) = key;
        let mut socket = self.new_socket();
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(addr)),
            port,
        };
        // A fresh socket and a non-zero port (`classify` passed the segment): cannot fail.
        if socket.listen(endpoint).is_err() {
            return;
        }
        let kind = FlowKind::Outbound {
            dst: SocketAddrV4::new(addr, port),
        };
        let id = self.add_flow(kind, socket, 0, Some(key));
        self.by_outbound.insert(key, id.index as usize);
    }

    /// The next connection the guest opened beyond the router, oldest first, and where it
    /// goes: the VMM dials the destination, then drives the flow like a forward's (`send`,
    /// `recv`, `close`, `release`), or calls [`Nat::dial_failed`] if the dial fails. The guest's
    /// connection is already established and its bytes wait in the flow's buffer meanwhile.
    /// Outbound flows are produced by [`Nat::poll`].
    pub fn next_outbound(&mut self) -> Option<(FlowId, SocketAddrV4)> {
        while let Some(id) = self.outbound.pop_front() {
            if let Ok(flow) = self.flow(id)
                && let FlowKind::Outbound { dst } = flow.kind
            {
                return Some((id, dst));
            }
        }
        None
    }

    /// The VMM could not reach an outbound flow's destination: the guest's connection is reset
    /// and the flow ends with [`ResetReason::Unreachable`]. The host still releases it.
    pub fn dial_failed(&mut self, id: FlowId) -> Result<(), FlowError> {
        let (flow, socket) = self.flow_socket(id)?;
        if flow.end.is_none() {
            socket.abort();
            flow.end = Some(FlowState::Reset(ResetReason::Unreachable));
            self.stats.flows_reset += 1;
        }
        Ok(())
    }

    /// Queues host bytes for the guest: returns how many were taken (fewer than offered when
    /// the flow's buffer fills: wait for a writable event for the rest), or `WouldBlock` when
    /// none were (full buffer, or still connecting). An empty `data` takes nothing and
    /// returns `Ok(0)`.
    pub fn send(&mut self, id: FlowId, data: &[u8]) -> Result<usize, FlowError> {
        let (flow, socket) = self.flow_socket(id)?;
        match flow.end {
            Some(FlowState::Reset(r)) => return Err(FlowError::Reset(r)),
            Some(_) => return Err(FlowError::Closed),
            None if flow.host_closed => return Err(FlowError::Closed),
            None => {}
        }
        if data.is_empty() {
            return Ok(0);
        }
        match socket.send_slice(data) {
            Ok(n) if n > 0 => {
                if !socket.can_send() {
                    flow.reported.writable = false;
                }
                self.stats.bytes_to_guest += n as u64;
                Ok(n)
            }
            // Full, or not yet established (SYN-SENT refuses data): wait for an event.
            _ => {
                flow.reported.writable = false;
                Err(FlowError::WouldBlock)
            }
        }
    }

    /// Takes guest bytes for the host: `Ok(n)` with `n > 0` bytes, `Ok(0)` at end of stream
    /// (the guest closed its direction and everything before its FIN was read), `WouldBlock`
    /// when nothing is there yet, or the reset that ended the flow once the bytes that came
    /// before it are read. An empty `buf` reads nothing and returns `Ok(0)`.
    pub fn recv(&mut self, id: FlowId, buf: &mut [u8]) -> Result<usize, FlowError> {
        let (flow, socket) = self.flow_socket(id)?;
        if buf.is_empty() {
            return Ok(0);
        }
        if !flow.tail.is_empty() {
            let n = buf.len().min(flow.tail.len());
            buf[..n].copy_from_slice(&flow.tail[..n]);
            flow.tail.drain(..n);
            self.stats.bytes_from_guest += n as u64;
            return Ok(n);
        }
        match socket.recv_slice(buf) {
            Ok(0) => {
                flow.reported.readable = false;
                Err(FlowError::WouldBlock)
            }
            Ok(n) => {
                if !socket.can_recv() && socket.may_recv() {
                    flow.reported.readable = false;
                }
                self.stats.bytes_from_guest += n as u64;
                Ok(n)
            }
            Err(RecvError::Finished) => Ok(0),
            Err(_) => match flow.end {
                Some(FlowState::Reset(r)) => Err(FlowError::Reset(r)),
                Some(_) => Ok(0),
                None => {
                    flow.reported.readable = false;
                    Err(FlowError::WouldBlock)
                }
            },
        }
    }

    /// Closes the host's direction: the guest gets a FIN after the bytes already sent (once
    /// the connection is up, if it is still connecting). `recv` keeps working.
    pub fn close(&mut self, id: FlowId) -> Result<(), FlowError> {
        let (flow, socket) = self.flow_socket(id)?;
        flow.host_closed = true;
        if flow.end.is_none() {
            if matches!(socket.state(), State::SynSent | State::SynReceived) {
                flow.close_deferred = true;
            } else {
                socket.close();
            }
        }
        Ok(())
    }

    /// Resets the flow: the guest gets a RST, unsent bytes are dropped, and the flow ends with
    /// [`ResetReason::Aborted`].
    pub fn abort(&mut self, id: FlowId) -> Result<(), FlowError> {
        let (flow, socket) = self.flow_socket(id)?;
        if flow.end.is_none() {
            socket.abort();
            flow.end = Some(FlowState::Reset(ResetReason::Aborted));
            self.stats.flows_reset += 1;
        }
        Ok(())
    }

    /// The host is done with the flow: its id becomes invalid. A flow that is still open is
    /// closed in order (FIN, with anything the guest still sends discarded) and keeps its slot
    /// until the guest finishes or `nat_timeout` passes; use [`Nat::abort`] first to reset it
    /// instead.
    pub fn release(&mut self, id: FlowId) -> Result<(), FlowError> {
        let (flow, socket) = self.flow_socket(id)?;
        flow.released = true;
        flow.queued = false;
        if flow.end.is_none() && !flow.host_closed {
            flow.host_closed = true;
            if matches!(socket.state(), State::SynSent | State::SynReceived) {
                flow.close_deferred = true;
            } else {
                socket.close();
            }
        }
        self.reap(id.index as usize);
        Ok(())
    }

    /// The flow's state.
    pub fn state(&self, id: FlowId) -> Result<FlowState, FlowError> {
        let flow = self.flow(id)?;
        Ok(public_state(
            flow,
            self.sockets.get::<tcp::Socket>(flow.handle),
        ))
    }

    /// The flow's readiness now (level, not edge).
    pub fn readiness(&self, id: FlowId) -> Result<Readiness, FlowError> {
        let flow = self.flow(id)?;
        Ok(readiness(
            flow,
            self.sockets.get::<tcp::Socket>(flow.handle),
        ))
    }

    /// What the flow connects.
    pub fn kind(&self, id: FlowId) -> Result<FlowKind, FlowError> {
        Ok(self.flow(id)?.kind)
    }

    /// Events are waiting for [`Nat::next_event`] (some may turn out stale: released flows).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next flow that became readable or writable or changed state, oldest first; `None`
    /// when there is none. Events are produced by [`Nat::poll`].
    pub fn next_event(&mut self) -> Option<FlowEvent> {
        while let Some(id) = self.events.pop_front() {
            let Some(flow) = self
                .slots
                .get_mut(id.index as usize)
                .filter(|s| s.generation == id.generation)
                .and_then(|s| s.flow.as_mut())
            else {
                continue;
            };
            if !flow.queued || flow.released {
                continue;
            }
            flow.queued = false;
            let socket = self.sockets.get::<tcp::Socket>(flow.handle);
            return Some(FlowEvent {
                flow: id,
                ready: readiness(flow, socket),
                state: public_state(flow, socket),
            });
        }
        None
    }

    /// Does the queued work: frames from the guest into the stack, bytes from flows into
    /// frames for the guest, timers (retransmission, keep-alive, connect and idle timeouts),
    /// and flow events. `now_ms` is a monotonic clock in milliseconds (a value earlier than a
    /// previous one counts as that one). Returns the delay in milliseconds after which `poll`
    /// must be called again if nothing else happens first, or `None` when only a new call into
    /// the NAT can create work.
    pub fn poll(&mut self, now_ms: u64) -> Option<u64> {
        self.now_ms = self.now_ms.max(now_ms);
        let now = instant(self.now_ms);
        for _ in 0..2 {
            self.before_stack();
            self.iface.poll(now, &mut self.link, &mut self.sockets);
            if !self.after_stack() {
                break;
            }
            // A deferred FIN or a drained window is waiting: send it in this call.
        }
        self.queue_events();
        self.next_poll_delay()
    }

    /// A frame from the guest ([`NetBackend::send`]): checked and queued for the next
    /// [`Nat::poll`], answered at once (DHCP), or dropped and counted.
    pub fn frame_from_guest(&mut self, frame: &[u8]) {
        self.take_frame_from_guest(frame.to_vec());
    }

    /// [`Nat::frame_from_guest`] for a frame the caller gives away (no copy).
    pub fn take_frame_from_guest(&mut self, frame: Vec<u8>) {
        self.stats.frames_from_guest += 1;
        self.trace(Direction::FromGuest, &frame);
        match frame::classify(&frame, &self.config) {
            Verdict::Drop(reason) => self.count_drop(reason),
            Verdict::Dhcp => match dhcp::answer(&frame, &self.config) {
                Some(reply) if !self.link.to_guest_full() => {
                    self.link.to_guest.push_back(reply);
                    self.stats.dhcp_replies += 1;
                }
                Some(_) => self.count_drop(DropReason::GuestQueueFull),
                None => self.count_drop(DropReason::DhcpIgnored),
            },
            Verdict::Stack(segment) => {
                if self.link.from_guest.len() >= self.link.limit {
                    self.count_drop(DropReason::QueueFull);
                    return;
                }
                if let Some(s) = segment
                    && !self.note_segment(s)
                    && s.local_addr != self.config.router_ip
                    && s.opens
                {
                    self.open_outbound((s.local_addr, s.local_port, s.remote_port));
                }
                self.link.from_guest.push_back(frame);
            }
        }
    }

    /// The next frame for the guest ([`NetBackend::receive`]).
    pub fn frame_for_guest(&mut self) -> Option<Vec<u8>> {
        let frame = self.link.to_guest.pop_front()?;
        self.stats.frames_to_guest += 1;
        self.trace(Direction::ToGuest, &frame);
        Some(frame)
    }

    // ---- inside poll ----

    /// Timers and deferred work that must reach the stack before it runs.
    fn before_stack(&mut self) {
        let now = self.now_ms;
        let (connect_ms, idle_ms) = (self.config.connect_timeout_ms, self.config.idle_timeout_ms);
        for slot in &mut self.slots {
            let Some(flow) = slot.flow.as_mut() else {
                continue;
            };
            if core::mem::take(&mut flow.fresh) {
                flow.opened_ms = now;
                flow.last_heard_ms = now;
            }
            if core::mem::take(&mut flow.heard) {
                flow.last_heard_ms = now;
            }
            if flow.released && flow.released_ms.is_none() {
                flow.released_ms = Some(now);
            }
            let socket = self.sockets.get_mut::<tcp::Socket>(flow.handle);
            flow.last_state = socket.state();
            if flow.end.is_some() || !socket.is_open() {
                continue;
            }
            let connecting = matches!(
                flow.last_state,
                State::Listen | State::SynSent | State::SynReceived
            );
            let timeout = if connecting {
                (now >= flow.opened_ms.saturating_add(connect_ms))
                    .then_some(ResetReason::ConnectTimeout)
            } else {
                (now >= idle_deadline(flow, idle_ms)).then_some(ResetReason::IdleTimeout)
            };
            if let Some(reason) = timeout {
                socket.abort();
                flow.end = Some(FlowState::Reset(reason));
                self.stats.flows_reset += 1;
                continue;
            }
            if flow.close_deferred && !connecting {
                socket.close();
                flow.close_deferred = false;
            }
            if flow.released {
                discard(socket);
            }
        }
    }

    /// Reads the stack's results: flows that came up, closed or were reset. Returns whether
    /// something now waits to be sent.
    fn after_stack(&mut self) -> bool {
        let mut again = false;
        let mut rekeyed = Vec::new();
        for index in 0..self.slots.len() {
            let generation = self.slots[index].generation;
            let Some(flow) = self.slots[index].flow.as_mut() else {
                continue;
            };
            let socket = self.sockets.get_mut::<tcp::Socket>(flow.handle);
            if let Some(key) = flow.outbound {
                match (socket.state(), socket.remote_endpoint()) {
                    // Its SYN did not reach it (the stack dropped it): never reported, so
                    // it goes at once.
                    (State::Listen, _) if !flow.accepted => {
                        socket.abort();
                        flow.released = true;
                        flow.end = Some(FlowState::Closed);
                        self.reap(index);
                        continue;
                    }
                    // A passive open that the guest reset falls back to LISTEN (RFC 9293
                    // §3.10.7.4): the connection is gone.
                    (State::Listen, _) if flow.end.is_none() => {
                        socket.abort();
                        flow.end = Some(FlowState::Reset(ResetReason::ResetByGuest));
                        self.stats.flows_reset += 1;
                    }
                    (_, Some(remote)) => {
                        if !flow.accepted {
                            flow.accepted = true;
                            self.stats.outbound_opened += 1;
                            self.outbound.push_back(FlowId {
                                index: index as u32,
                                generation,
                            });
                        }
                        // Listeners for one destination take SYNs in socket order, not in
                        // the order they were made: name the flow by the guest port it got.
                        if remote.port != key.2 {
                            let actual = (key.0, key.1, remote.port);
                            rekeyed.push((key, actual, index));
                            flow.outbound = Some(actual);
                        }
                    }
                    _ => {}
                }
            }
            let state = socket.state();
            if !flow.established
                && !matches!(
                    state,
                    State::Listen | State::SynSent | State::SynReceived | State::Closed
                )
            {
                flow.established = true;
                flow.last_heard_ms = self.now_ms;
                if flow.close_deferred {
                    socket.close();
                    flow.close_deferred = false;
                    again = true;
                }
            }
            if flow.end.is_none() {
                flow.end = match state {
                    State::TimeWait => Some(FlowState::Closed),
                    State::Closed => {
                        let orderly = !flow.rst_seen
                            && matches!(
                                flow.last_state,
                                State::Closing | State::LastAck | State::TimeWait
                            );
                        if orderly {
                            Some(FlowState::Closed)
                        } else {
                            self.stats.flows_reset += 1;
                            Some(FlowState::Reset(if flow.established {
                                ResetReason::ResetByGuest
                            } else {
                                ResetReason::Refused
                            }))
                        }
                    }
                    _ => None,
                };
            }
            flow.rst_seen = false;
            if state == State::TimeWait && socket.can_recv() && !flow.released {
                // smoltcp clears the buffer when TIME-WAIT ends; keep what the host has not read.
                let mut rest = vec![0u8; socket.recv_queue()];
                let n = socket.recv_slice(&mut rest).unwrap_or(0);
                rest.truncate(n);
                flow.tail.extend_from_slice(&rest);
            }
            if flow.released {
                again |= discard(socket);
                self.reap(index);
            }
        }
        for (old, _, index) in &rekeyed {
            if self.by_outbound.get(old) == Some(index) {
                self.by_outbound.remove(old);
            }
        }
        for (_, new, index) in rekeyed {
            self.by_outbound.insert(new, index);
        }
        again
    }

    /// Queues an event for every unreleased flow whose readiness rose or whose state changed.
    fn queue_events(&mut self) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(flow) = slot.flow.as_mut() else {
                continue;
            };
            if flow.released {
                continue;
            }
            let socket = self.sockets.get::<tcp::Socket>(flow.handle);
            let (ready, state) = (readiness(flow, socket), public_state(flow, socket));
            let rose = (ready.readable && !flow.reported.readable)
                || (ready.writable && !flow.reported.writable);
            if (rose || state != flow.reported_state) && !flow.queued {
                flow.queued = true;
                self.events.push_back(FlowId {
                    index: index as u32,
                    generation: slot.generation,
                });
            }
            flow.reported = ready;
            flow.reported_state = state;
        }
    }

    /// The stack's next deadline and the NAT's own timers, as a delay from now.
    fn next_poll_delay(&mut self) -> Option<u64> {
        let now = self.now_ms;
        let mut delay = self
            .iface
            .poll_delay(instant(now), &self.sockets)
            .map(|d| d.total_millis());
        if self.link.to_guest_full() {
            delay = delay.map(|d| d.max(STALLED_POLL_MS));
        }
        for flow in self.slots.iter().filter_map(|s| s.flow.as_ref()) {
            let socket = self.sockets.get::<tcp::Socket>(flow.handle);
            if flow.end.is_some() || !socket.is_open() {
                continue;
            }
            let deadline = if flow.established {
                idle_deadline(flow, self.config.idle_timeout_ms)
            } else {
                flow.opened_ms
                    .saturating_add(self.config.connect_timeout_ms)
            };
            let d = deadline.saturating_sub(now);
            delay = Some(delay.map_or(d, |x| x.min(d)));
        }
        delay
    }

    // ---- helpers ----

    /// Frees a released flow whose socket has nothing more to do.
    fn reap(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(flow) = slot.flow.as_ref() else {
            return;
        };
        if !flow.released {
            return;
        }
        let socket = self.sockets.get::<tcp::Socket>(flow.handle);
        // A closed socket with an endpoint still has its RST to send.
        let done = socket.state() == State::TimeWait
            || (socket.state() == State::Closed && socket.remote_endpoint().is_none());
        if done {
            self.sockets.remove(flow.handle);
            match flow.outbound {
                Some(key) => {
                    if self.by_outbound.get(&key) == Some(&index) {
                        self.by_outbound.remove(&key);
                    }
                }
                None => {
                    self.by_port.remove(&flow.local_port);
                }
            }
            slot.flow = None;
            slot.generation = slot.generation.wrapping_add(1);
            self.live -= 1;
        }
    }

    fn free_port(&mut self) -> Option<u16> {
        let (first, last) = (*EPHEMERAL_PORTS.start(), *EPHEMERAL_PORTS.end());
        for _ in EPHEMERAL_PORTS {
            let port = self.next_port;
            self.next_port = if port >= last { first } else { port + 1 };
            if !self.by_port.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    fn flow(&self, id: FlowId) -> Result<&Flow, FlowError> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.flow.as_ref())
            .filter(|f| !f.released)
            .ok_or(FlowError::NoSuchFlow)
    }

    fn flow_socket(
        &mut self,
        id: FlowId,
    ) -> Result<(&mut Flow, &mut tcp::Socket<'static>), FlowError> {
        let flow = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.flow.as_mut())
            .filter(|f| !f.released)
            .ok_or(FlowError::NoSuchFlow)?;
        let socket = self.sockets.get_mut::<tcp::Socket>(flow.handle);
        Ok((flow, socket))
    }

    /// Notes a segment from the guest on its flow: the guest is alive, and maybe resetting.
    /// Returns whether a flow has the segment.
    fn note_segment(&mut self, segment: TcpSegment) -> bool {
        let index = if segment.local_addr == self.config.router_ip {
            self.by_port.get(&segment.local_port)
        } else {
            let key = (segment.local_addr, segment.local_port, segment.remote_port);
            self.by_outbound.get(&key)
        };
        let Some(flow) = index.and_then(|&i| self.slots.get_mut(i)?.flow.as_mut()) else {
            return false;
        };
        let ours = match flow.kind {
            FlowKind::Forward { guest_port } => guest_port == segment.remote_port,
            FlowKind::Outbound { .. } => true,
        };
        if ours {
            flow.heard = true;
            flow.rst_seen |= segment.rst;
        }
        ours
    }

    fn count_drop(&mut self, reason: DropReason) {
        self.stats.dropped.0[reason.index()] += 1;
        if self.config.snoop {
            log::info!("nat: dropped a frame from the guest: {reason}");
        }
    }

    fn trace(&mut self, direction: Direction, frame: &[u8]) {
        if !self.config.snoop {
            return;
        }
        match self.snoop.as_mut() {
            Some(hook) => hook(direction, frame),
            None => {
                let arrow = match direction {
                    Direction::FromGuest => "guest >",
                    Direction::ToGuest => "guest <",
                };
                log::info!("nat: {arrow} {}", Summary(frame));
            }
        }
    }
}

impl NetBackend for Nat {
    fn send(&mut self, frame: Vec<u8>) {
        self.take_frame_from_guest(frame);
    }

    fn receive(&mut self) -> Option<Vec<u8>> {
        self.frame_for_guest()
    }
}

/// Discards whatever a released flow's guest still sends; true if something was discarded
/// (the window reopened, which the guest should hear about).
fn discard(socket: &mut tcp::Socket<'_>) -> bool {
    let mut any = false;
    while let Ok(n) = socket.recv(|b| (b.len(), b.len())) {
        if n == 0 {
            break;
        }
        any = true;
    }
    any
}

/// When an open flow is reset for idleness: `idle_ms` after the guest last sent anything, or
/// after the host released it (a released flow lingers no longer than that).
fn idle_deadline(flow: &Flow, idle_ms: u64) -> u64 {
    let heard = flow.last_heard_ms.saturating_add(idle_ms);
    match flow.released_ms {
        Some(r) => heard.min(r.saturating_add(idle_ms)),
        None => heard,
    }
}

fn instant(ms: u64) -> Instant {
    Instant::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn public_state(flow: &Flow, socket: &tcp::Socket<'_>) -> FlowState {
    if let Some(end) = flow.end {
        return end;
    }
    match socket.state() {
        State::Closed | State::Listen | State::SynSent | State::SynReceived => {
            FlowState::Connecting
        }
        State::Established if flow.host_closed => FlowState::HostClosed,
        State::Established => FlowState::Established,
        State::FinWait1 | State::FinWait2 => FlowState::HostClosed,
        State::CloseWait if flow.host_closed => FlowState::Closed,
        State::CloseWait => FlowState::GuestClosed,
        State::Closing | State::LastAck | State::TimeWait => FlowState::Closed,
    }
}

fn readiness(flow: &Flow, socket: &tcp::Socket<'_>) -> Readiness {
    let ended = flow.end.is_some();
    let eof = flow.established && !socket.may_recv();
    Readiness {
        readable: ended || eof || !flow.tail.is_empty() || socket.can_recv(),
        writable: ended || (!flow.host_closed && socket.can_send()),
    }
}
