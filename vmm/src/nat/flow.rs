//! Flows: one TCP connection through the NAT, as the host sees it. The public types name a
//! flow, say what state it is in and why it ended, and carry readiness events; the private
//! record ties a flow to its smoltcp socket and to the timers the NAT keeps for it.

use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

/// Names one flow. Ids are not reused: an id whose flow was released stays invalid
/// ([`FlowError::NoSuchFlow`]) even when its slot holds a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flow {}.{}", self.index, self.generation)
    }
}

/// What a flow connects. Both kinds have the same host-side interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    /// A static port forward: the router connects to the guest's `guest_port`.
    Forward {
        /// The port in the guest.
        guest_port: u16,
    },
    /// A connection the guest opened to `dst` beyond the router: the VMM dials `dst` and
    /// splices the two ([`super::Nat::next_outbound`]).
    Outbound {
        /// Where the guest connected to.
        dst: SocketAddrV4,
    },
}

/// An outbound flow as the guest's segments name it: destination address and port, guest port.
pub(super) type OutboundKey = (Ipv4Addr, u16, u16);

/// Why a flow ended abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The guest answered the SYN with a RST: nothing listens on the port.
    Refused,
    /// The guest reset an open connection.
    ResetByGuest,
    /// The guest did not answer the SYN within the connect timeout.
    ConnectTimeout,
    /// The guest sent nothing, not even a keep-alive answer, for `nat_timeout`.
    IdleTimeout,
    /// The host aborted the flow ([`super::Nat::abort`]).
    Aborted,
    /// The VMM could not reach an outbound flow's destination ([`super::Nat::dial_failed`]).
    Unreachable,
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResetReason::Refused => "connection refused by the guest",
            ResetReason::ResetByGuest => "connection reset by the guest",
            ResetReason::ConnectTimeout => "the guest did not answer the connection",
            ResetReason::IdleTimeout => "the guest was silent for longer than nat_timeout",
            ResetReason::Aborted => "connection aborted by the host",
            ResetReason::Unreachable => "the host could not reach the destination",
        })
    }
}

/// Where a flow is in its life (RFC 9293 §3.3.2, folded into what the host must act on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// The SYN is out; the guest has not answered yet. `send` would block.
    Connecting,
    /// Both directions are open.
    Established,
    /// The guest sent its FIN: `recv` returns what is left, then end of stream; `send` works.
    GuestClosed,
    /// The host closed its direction ([`super::Nat::close`]); `recv` works.
    HostClosed,
    /// Both directions finished in order; `recv` may still return the guest's last bytes.
    Closed,
    /// The connection is gone.
    Reset(ResetReason),
}

/// Why a flow operation did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowError {
    /// The id names no flow (never opened, or released).
    NoSuchFlow,
    /// Nothing to read or no room to write now; wait for an event on the flow.
    WouldBlock,
    /// `send` after the host closed its direction, or after the flow closed.
    Closed,
    /// The connection was reset.
    Reset(ResetReason),
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowError::NoSuchFlow => f.write_str("nat: no such flow"),
            FlowError::WouldBlock => f.write_str("nat: flow would block"),
            FlowError::Closed => f.write_str("nat: flow closed"),
            FlowError::Reset(r) => write!(f, "nat: {r}"),
        }
    }
}

/// Level readiness of a flow: whether `recv` and `send` would do something other than
/// [`FlowError::WouldBlock`] (data, end of stream or an error for `recv`; room or an error for
/// `send`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// `recv` would not block.
    pub readable: bool,
    /// `send` would not block.
    pub writable: bool,
}

/// Something happened on a flow since its last event: it became readable or writable, or its
/// state changed. The fields are the flow's readiness and state when the event is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// The flow.
    pub flow: FlowId,
    /// Readiness now.
    pub ready: Readiness,
    /// State now.
    pub state: FlowState,
}

/// The NAT's record of one flow.
pub(super) struct Flow {
    pub kind: FlowKind,
    pub handle: SocketHandle,
    /// The router's port for a forward (0 for an outbound flow).
    pub local_port: u16,
    /// How the guest's segments name an outbound flow (`None` for a forward).
    pub outbound: Option<OutboundKey>,
    /// An outbound flow's listener took the guest's SYN (it was reported to the host).
    pub accepted: bool,
    /// Times are the time of the first `poll` after the event: the NAT's clock is only as
    /// fresh as the last `poll`, which may be long ago when nothing was going on.
    pub opened_ms: u64,
    /// Opened since the last poll: `opened_ms` is still to be stamped.
    pub fresh: bool,
    /// Last time a segment of this flow arrived from the guest.
    pub last_heard_ms: u64,
    /// A segment arrived since the last poll: `last_heard_ms` is still to be stamped.
    pub heard: bool,
    /// The socket's state at the start of the current poll.
    pub last_state: tcp::State,
    /// The connection reached a synchronized state at least once.
    pub established: bool,
    /// The host called `close`.
    pub host_closed: bool,
    /// `close` came while connecting: send the FIN once the connection is up.
    pub close_deferred: bool,
    /// The guest sent a RST since the last poll.
    pub rst_seen: bool,
    /// How the flow ended; set once, then sticky.
    pub end: Option<FlowState>,
    /// The host released the flow; it lingers until its socket is done.
    pub released: bool,
    /// When it was released (stamped by the next poll).
    pub released_ms: Option<u64>,
    /// Bytes from the guest moved out of a TIME-WAIT socket, which smoltcp clears when the
    /// state times out; `recv` reads these first.
    pub tail: Vec<u8>,
    /// Readiness and state as last reported (edge detection).
    pub reported: Readiness,
    pub reported_state: FlowState,
    /// The flow's id is in the event queue.
    pub queued: bool,
}

/// A slot of the flow table: the generation makes ids of released flows stale.
#[derive(Default)]
pub(super) struct Slot {
    pub generation: u32,
    pub flow: Option<Flow>,
}
