//! The network stack: smoltcp (TCP, RFC 9293; UDP, RFC 768; IPv4, RFC 791; ARP, RFC 826) under
//! Plan 9's conversation model (ip(3)), served to users by `#ip` (`dev/ip.rs`).
//!
//! This module owns the one `Stack`: the interfaces (`ifc`: loopback always, `eth0` when a
//! virtio-net device is present), the conversations (`conv` for TCP, `udp` for UDP) and the
//! TCP sockets closed by their users but still finishing their handshakes (orphans). One `IrqLock` guards it all, so
//! the conditions of wait queues (which run with interrupts off) can look at socket state.
//!
//! The stack moves packets whenever something happens: a process that sends, receives,
//! connects or closes "pumps" the interfaces itself (so loopback traffic costs no thread
//! switch), then wakes every conversation's waiters to recheck. A kernel thread, the poller,
//! pumps on smoltcp's timers (retransmission, TIME-WAIT) and polls the NIC: on every timer
//! tick, and continuously (yielding the CPU between polls) for a short while after the NIC
//! last carried a packet, so a request/reply exchange with a host server does not wait a
//! tick per packet.

pub mod addr;
pub mod conv;
mod ifc;
mod udp;

use crate::arch::x86_64::context::Start;
use crate::error::{Error, KResult};
use crate::proc::sched::{self, Thread};
use crate::proc::wait::WaitQueue;
use crate::sync::IrqLock;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use ifc::{Ifc, Step};
use smoltcp::iface::SocketHandle;
use smoltcp::time::Instant;

/// Packets an interface takes in before it gets to send (bounds the work of one round).
const MAX_BATCH: usize = 64;
/// Rounds of receive-then-send per pump: loopback replies arrive in the next round.
const MAX_ROUNDS: usize = 64;
/// How long the poller keeps polling the NIC continuously after its last packet.
const BUSY_POLL_NS: u64 = 200_000_000;
/// How often the poller looks at the NIC otherwise (about a timer tick).
const IDLE_POLL_NS: u64 = 1_000_000_000 / crate::time::HZ;
/// The longest the poller sleeps when nothing is pending.
const MAX_SLEEP_NS: u64 = 1_000_000_000;

/// A TCP socket whose conversation is gone, finishing its close.
struct Orphan {
    ifc: usize,
    handle: SocketHandle,
    /// Uptime (ns) after which it is aborted (then, after one more grace period, dropped).
    deadline: u64,
    aborted: bool,
}

/// Everything the network stack owns.
pub struct Stack {
    ifcs: Vec<Ifc>,
    convs: BTreeMap<(conv::Proto, u32), conv::ConvState>,
    orphans: Vec<Orphan>,
    /// The next ephemeral port to try (IANA's dynamic range, RFC 6335 §6).
    next_port: u16,
    /// Makes each conversation distinguishable from a later one with the same number.
    next_id: u64,
}

static STACK: IrqLock<Option<Stack>> = IrqLock::new(None);
/// The poller sleeps here; `kick_poller` cuts its sleep short.
static POLLER: WaitQueue = WaitQueue::new();
static POLLER_KICKED: AtomicBool = AtomicBool::new(false);

/// smoltcp's clock: uptime.
fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

/// Runs `f` on the stack.
fn with_stack<R>(f: impl FnOnce(&mut Stack) -> R) -> KResult<R> {
    let mut guard = STACK.lock();
    let stack = guard
        .as_mut()
        .ok_or_else(|| Error::from("network stack not initialised"))?;
    Ok(f(stack))
}

/// Waits on `queue` until `step`, run on the stack at each wake-up, has an answer (`Some`).
/// The outer error is the wait's own (a note); the inner one is the answer.
fn wait_on_stack<T>(
    queue: &WaitQueue,
    mut step: impl FnMut(&mut Stack) -> Option<KResult<T>>,
) -> Result<KResult<T>, &'static str> {
    let mut answer = None;
    loop {
        queue.wait_until(|| {
            answer = with_stack(&mut step).unwrap_or_else(|e| Some(Err(e)));
            answer.is_some()
        })?;
        if let Some(a) = answer.take() {
            return Ok(a);
        }
    }
}

/// Brings up the interfaces and starts the poller. Needs the scheduler (for the poller).
pub fn init() {
    let now = crate::time::uptime_ns();
    let seed = crate::arch::x86_64::rdtsc();
    let eth0 = ifc::probe_nic(instant(now), seed);
    let eth0_addr = eth0.as_ref().and_then(|e| e.iface.ipv4_addr());
    let mut ifcs = alloc::vec![ifc::loopback(instant(now), seed ^ 0x9e37_79b9, eth0_addr)];
    ifcs.extend(eth0);
    for i in &ifcs {
        log::info!("net: {}", i.status().trim_end());
    }
    *STACK.lock() = Some(Stack {
        ifcs,
        convs: BTreeMap::new(),
        orphans: Vec::new(),
        next_port: 49152 + (seed % 16384) as u16,
        next_id: 1,
    });
    match Thread::new(
        None,
        Some(Start::Kernel {
            entry: poller_main,
            arg: 0,
        }),
    ) {
        Some(t) => sched::spawn(t),
        None => log::error!("net: no memory for the poller thread; TCP timers will not run"),
    }
}

/// The interfaces' status lines, in order (`/net/ipifc/N/status`).
pub fn ifc_status() -> Vec<String> {
    with_stack(|s| s.ifcs.iter().map(Ifc::status).collect()).unwrap_or_default()
}

/// Moves packets until the interfaces are quiet, then wakes every conversation's waiters.
pub fn kick() {
    let woken = with_stack(|s| {
        s.pump();
        s.conv_handles()
    });
    for c in woken.unwrap_or_default() {
        c.queue.wake_all();
    }
}

/// Asks the poller to poll now (after a change it must time, such as a first SYN).
pub fn kick_poller() {
    POLLER_KICKED.store(true, Ordering::Release);
    POLLER.wake_all();
}

impl Stack {
    /// Receives and sends on every interface until nothing moves (bounded); looks after
    /// listeners and orphans. Returns whether any packet moved.
    fn pump(&mut self) -> bool {
        let now_ns = crate::time::uptime_ns();
        let now = instant(now_ns);
        let mut moved = false;
        for i in 0..self.ifcs.len() {
            for _ in 0..MAX_ROUNDS {
                let mut round = false;
                for _ in 0..MAX_BATCH {
                    if self.ifcs[i].ingress_one(now) == Step::Idle {
                        break;
                    }
                    round = true;
                    // A SYN may have taken a listening socket: put up another at once.
                    self.tend_listeners(Some(i));
                }
                for _ in 0..4096 {
                    if self.ifcs[i].egress(now) == Step::Idle {
                        break;
                    }
                    round = true;
                }
                if !round {
                    break;
                }
                moved = true;
                self.ifcs[i].last_packet_ns = now_ns;
            }
        }
        self.tend_listeners(None);
        self.reap_orphans(now_ns);
        moved
    }

    /// When the poller should run next (uptime ns), and whether it should poll continuously.
    fn next_poll(&mut self, now_ns: u64) -> (u64, bool) {
        let now = instant(now_ns);
        let mut next = now_ns + MAX_SLEEP_NS;
        let mut busy = false;
        for i in &mut self.ifcs {
            if let Some(at) = i.iface.poll_at(now, &i.sockets) {
                let at_ns = (at.total_micros().max(0) as u64).saturating_mul(1000);
                next = next.min(at_ns.max(now_ns));
            }
            if !i.is_loopback() {
                next = next.min(now_ns + IDLE_POLL_NS);
                busy |= now_ns.saturating_sub(i.last_packet_ns) < BUSY_POLL_NS;
            }
        }
        if !self.orphans.is_empty() {
            next = next.min(now_ns + IDLE_POLL_NS);
        }
        (next, busy)
    }

    /// Every conversation, for waking.
    fn conv_handles(&self) -> Vec<Arc<conv::Conv>> {
        self.convs.values().map(|c| c.conv.clone()).collect()
    }

    /// An unused local port of `proto` in the dynamic range.
    fn ephemeral_port(&mut self, proto: conv::Proto) -> Option<u16> {
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = if p == 65535 { 49152 } else { p + 1 };
            if !self.port_in_use(proto, p) {
                return Some(p);
            }
        }
        None
    }

    /// Whether a socket or an announcement of `proto` uses local port `port`.
    fn port_in_use(&self, proto: conv::Proto, port: u16) -> bool {
        use smoltcp::socket::{AnySocket, tcp, udp};
        let socket_uses = |s: &smoltcp::socket::Socket<'static>| match proto {
            conv::Proto::Tcp => tcp::Socket::downcast(s).is_some_and(|t| {
                t.listen_endpoint().port == port
                    || t.local_endpoint().is_some_and(|e| e.port == port)
            }),
            conv::Proto::Udp => udp::Socket::downcast(s).is_some_and(|u| u.endpoint().port == port),
        };
        (proto == conv::Proto::Tcp
            && self
                .convs
                .values()
                .any(|c| c.announced_port() == Some(port)))
            || self
                .ifcs
                .iter()
                .any(|i| i.sockets.iter().any(|(_, s)| socket_uses(s)))
    }

    /// Drops orphans that have finished closing; aborts those that take too long or that
    /// receive data nobody will read (as a closed socket would, RFC 9293 §3.10.7.4).
    fn reap_orphans(&mut self, now_ns: u64) {
        use smoltcp::socket::tcp::{Socket, State};
        let ifcs = &mut self.ifcs;
        self.orphans.retain_mut(|o| {
            let set = &mut ifcs[o.ifc].sockets;
            let s = set.get_mut::<Socket>(o.handle);
            let done = match s.state() {
                State::TimeWait => true,
                State::Closed => s.remote_endpoint().is_none(),
                _ => false,
            };
            if done || (o.aborted && now_ns >= o.deadline) {
                set.remove(o.handle);
                return false;
            }
            if !o.aborted && (now_ns >= o.deadline || s.can_recv()) {
                s.abort();
                o.aborted = true;
                o.deadline = now_ns + conv::LINGER_NS;
            }
            true
        });
    }

    /// Hands a socket whose conversation is gone to the orphan list, closing it gracefully.
    fn orphan(&mut self, ifc: usize, handle: SocketHandle) {
        use smoltcp::socket::tcp::{Socket, State};
        let s = self.ifcs[ifc].sockets.get_mut::<Socket>(handle);
        if s.state() == State::Closed && s.remote_endpoint().is_none() {
            self.ifcs[ifc].sockets.remove(handle);
            return;
        }
        s.close();
        self.orphans.push(Orphan {
            ifc,
            handle,
            deadline: crate::time::uptime_ns() + conv::LINGER_NS,
            aborted: false,
        });
    }
}

/// The poller: pumps on timers and polls the NIC, forever.
extern "C" fn poller_main(_arg: usize) -> ! {
    loop {
        let now = crate::time::uptime_ns();
        let step = with_stack(|s| {
            let moved = s.pump();
            let (next, busy) = s.next_poll(crate::time::uptime_ns());
            let woken = if moved { s.conv_handles() } else { Vec::new() };
            (next, busy || moved, woken)
        });
        let Ok((next, busy, woken)) = step else {
            sched::exit_current()
        };
        for c in woken {
            c.queue.wake_all();
        }
        if busy {
            // Give the CPU to whoever is ready, then look again.
            sched::schedule();
        } else {
            // Nothing moved: sleep even if smoltcp asks to be polled now (a socket holding
            // back its SYN-ACK does), so the kernel, which is not preempted, never spins here.
            let next = next.max(now + IDLE_POLL_NS);
            let _ =
                POLLER.wait_deadline(Some(next), || POLLER_KICKED.swap(false, Ordering::AcqRel));
        }
    }
}
