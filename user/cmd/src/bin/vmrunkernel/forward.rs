//! The NAT's flows on the host side. Port forwards: for each `port:tcp:HOST:GUEST` a thread
//! listens on the host's `tcp!*!HOST` (the kernel's `#ip`) and, for every connection, opens a
//! NAT flow to the guest's GUEST port and runs two relay threads, one per direction. Outbound
//! flows (the guest connecting beyond the router): a thread dials `tcp!ADDR!PORT` through
//! `#ip` and runs the same two relays; if the dial fails the guest's connection is reset.
//!
//! The NAT is driven as `vmm::nat` prescribes: after every batch of calls, `poll`, wake the
//! relays its events name, and let the network card take frames for the guest; a timer thread
//! polls again when the NAT asks to be. Lock order: the device bus, then the NAT (the card's
//! backend locks the NAT while the bus is held), so nothing here takes the bus with the NAT
//! locked.

use super::Machine;
use super::backends::SharedNat;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use core::net::SocketAddrV4;
use core::sync::atomic::{AtomicU64, Ordering};
use rt::sync::{Mutex, Semaphore};
use rt::{Error, Result, format, io, net, process, thread};
use vmm::config::{NatOptions, Protocol};
use vmm::nat::{FlowError, FlowId, Nat, ResetReason};

/// The semaphores of one flow's relays: released when the flow becomes readable (for the
/// guest-to-host relay) or writable (host-to-guest), or changes state (both).
struct Wakers {
    readable: Semaphore,
    writable: Semaphore,
}

static FLOWS: Mutex<BTreeMap<FlowId, Arc<Wakers>>> = Mutex::new(BTreeMap::new());
/// Outbound flows the NAT reported, waiting for the dialer thread; one `DIALS` unit each.
static OUTBOUND: Mutex<VecDeque<(FlowId, SocketAddrV4)>> = Mutex::new(VecDeque::new());
static DIALS: Semaphore = Semaphore::new(0);
/// When (ms of uptime) the NAT next wants to be polled.
static NEXT_POLL: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    rt::sys::nsec() / 1_000_000
}

/// What follows every batch of calls into the NAT (the caller holds it): poll, hand new
/// outbound flows to the dialer thread, then wake the relays of the flows with events.
pub fn after_calls(nat: &mut Nat) {
    let now = now_ms();
    let delay = nat.poll(now).unwrap_or(1000);
    NEXT_POLL.store(now + delay, Ordering::Release);
    let mut flows = FLOWS.lock();
    while let Some((flow, dst)) = nat.next_outbound() {
        // Registered now, so no event of the flow is lost before its relays run.
        flows.insert(flow, Arc::new(Wakers::new()));
        OUTBOUND.lock().push_back((flow, dst));
        DIALS.release();
    }
    while let Some(ev) = nat.next_event() {
        if let Some(w) = flows.get(&ev.flow) {
            w.readable.release();
            w.writable.release();
        }
    }
}

/// Polls the NAT and hands the card what the guest should receive.
fn drive(machine: &Machine, nat: &SharedNat) {
    let frames = {
        let mut n = nat.0.lock();
        after_calls(&mut n);
        n.has_frames_for_guest()
    };
    if frames {
        machine.poll_devices();
    }
}

/// Starts a listener per forward, the dialer of outbound flows and the NAT's timer thread.
pub fn start(machine: Arc<Machine>, nat: SharedNat, options: &NatOptions) -> Result<()> {
    for f in options
        .forwards
        .iter()
        .filter(|f| f.protocol == Protocol::Tcp)
    {
        let listener = net::announce(&format!("tcp!*!{}", f.host_port))
            .map_err(|e| e.context(format!("port forward {}", f.host_port)))?;
        let (machine, nat, guest_port) = (machine.clone(), nat.clone(), f.guest_port);
        thread::spawn(move || {
            loop {
                match listener.accept() {
                    Ok((fd, _remote)) => {
                        if let Err(e) = connection(&machine, &nat, fd, guest_port) {
                            rt::eprintln!("vmrunkernel: forward to guest port {guest_port}: {e}");
                            let _ = io::close(fd);
                        }
                    }
                    Err(e) if e.msg() == rt::notes::INTERRUPTED => {}
                    Err(e) => {
                        rt::eprintln!("vmrunkernel: port forward listener: {e}");
                        return;
                    }
                }
            }
        })?;
    }
    {
        let (machine, nat) = (machine.clone(), nat.clone());
        thread::spawn(move || {
            loop {
                if DIALS.acquire().is_err() {
                    continue;
                }
                let Some((flow, dst)) = OUTBOUND.lock().pop_front() else {
                    continue;
                };
                let (m, n) = (machine.clone(), nat.clone());
                if let Err(e) = thread::spawn(move || outbound(&m, &n, flow, dst)) {
                    rt::eprintln!("vmrunkernel: guest connection to {dst}: {e}");
                    dial_failed(&machine, &nat, flow);
                }
            }
        })?;
    }
    let (machine, nat) = (machine.clone(), nat.clone());
    thread::spawn(move || {
        loop {
            let wait = NEXT_POLL
                .load(Ordering::Acquire)
                .saturating_sub(now_ms())
                .clamp(10, 200);
            let _ = process::sleep(wait);
            drive(&machine, &nat);
        }
    })?;
    Ok(())
}

impl Wakers {
    fn new() -> Wakers {
        Wakers {
            readable: Semaphore::new(0),
            writable: Semaphore::new(0),
        }
    }
}

/// One accepted host connection: a flow to the guest and a relay thread per direction.
fn connection(machine: &Arc<Machine>, nat: &SharedNat, fd: u64, guest_port: u16) -> Result<()> {
    let flow = nat
        .0
        .lock()
        .open_forward(guest_port)
        .map_err(|e| Error::new(format!("{e}")))?;
    let wakers = Arc::new(Wakers::new());
    FLOWS.lock().insert(flow, wakers.clone());
    drive(machine, nat);
    splice(machine, nat, flow, fd, wakers)
}

/// One outbound flow: dial its destination through `#ip`, then relay as for a forward; a
/// failed dial resets the guest's connection.
fn outbound(machine: &Arc<Machine>, nat: &SharedNat, flow: FlowId, dst: SocketAddrV4) {
    let Some(wakers) = FLOWS.lock().get(&flow).cloned() else {
        return;
    };
    let fd = match net::dial(&format!("tcp!{}!{}", dst.ip(), dst.port())) {
        Ok(fd) => fd,
        Err(e) => {
            rt::eprintln!("vmrunkernel: guest connection to {dst}: {e}");
            dial_failed(machine, nat, flow);
            return;
        }
    };
    if let Err(e) = splice(machine, nat, flow, fd, wakers) {
        rt::eprintln!("vmrunkernel: guest connection to {dst}: {e}");
        let _ = net::hangup(fd);
        let _ = io::close(fd);
        dial_failed(machine, nat, flow);
    }
}

/// Resets an outbound flow that has no host connection, and forgets it.
fn dial_failed(machine: &Machine, nat: &SharedNat, flow: FlowId) {
    {
        let mut n = nat.0.lock();
        let _ = n.dial_failed(flow);
        let _ = n.release(flow);
    }
    FLOWS.lock().remove(&flow);
    drive(machine, nat);
}

/// Splices flow `flow` and the host connection `fd` with a relay thread per direction; the
/// second releases the flow and closes `fd` when both are done.
fn splice(
    machine: &Arc<Machine>,
    nat: &SharedNat,
    flow: FlowId,
    fd: u64,
    wakers: Arc<Wakers>,
) -> Result<()> {
    let done = Arc::new(Semaphore::new(0));
    {
        let (machine, nat, wakers, done) =
            (machine.clone(), nat.clone(), wakers.clone(), done.clone());
        thread::spawn(move || {
            host_to_guest(&machine, &nat, &wakers, flow, fd);
            done.release();
        })?;
    }
    let (machine, nat) = (machine.clone(), nat.clone());
    thread::spawn(move || {
        let clean = guest_to_host(&machine, &nat, &wakers, flow, fd);
        hang_up(fd, clean);
        while done.acquire().is_err() {}
        let _ = nat.0.lock().release(flow);
        FLOWS.lock().remove(&flow);
        let _ = io::close(fd);
    })?;
    Ok(())
}

fn host_to_guest(machine: &Machine, nat: &SharedNat, w: &Wakers, flow: FlowId, fd: u64) {
    let mut buf = alloc::vec![0u8; 64 * 1024];
    loop {
        let n = match io::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) if e.msg() == rt::notes::INTERRUPTED => continue,
            Err(_) => {
                let _ = nat.0.lock().abort(flow);
                drive(machine, nat);
                return;
            }
        };
        if n == 0 {
            let _ = nat.0.lock().close(flow);
            drive(machine, nat);
            return;
        }
        let mut sent = 0;
        while sent < n {
            let r = nat.0.lock().send(flow, &buf[sent..n]);
            drive(machine, nat);
            match r {
                Ok(k) => sent += k,
                Err(FlowError::WouldBlock) => {
                    let _ = w.writable.acquire();
                }
                // The flow ended; the other relay reports how.
                Err(_) => return,
            }
        }
    }
}

/// The guest's side of a connection ended (`clean`: closed rather than reset): let what we
/// wrote reach the host's client (for a few seconds at most), then reset the host connection,
/// which also ends the other relay's read. Plan 9's interface has no half-close.
fn hang_up(fd: u64, clean: bool) {
    if clean {
        for _ in 0..300 {
            match net::status(fd) {
                Ok(s) if !s.contains(" qout 0 ") => {
                    let _ = process::sleep(10);
                }
                _ => break,
            }
        }
    }
    let _ = net::hangup(fd);
}

/// Relays the guest's bytes to the host; true if the guest closed its direction, false if the
/// flow was reset or the host connection failed.
fn guest_to_host(machine: &Machine, nat: &SharedNat, w: &Wakers, flow: FlowId, fd: u64) -> bool {
    let mut buf = alloc::vec![0u8; 64 * 1024];
    loop {
        let r = nat.0.lock().recv(flow, &mut buf);
        drive(machine, nat);
        match r {
            Ok(0) => return true, // the guest closed its direction
            Ok(n) => {
                let mut done = 0;
                while done < n {
                    match io::write(fd, &buf[done..n]) {
                        Ok(k) => done += k,
                        Err(e) if e.msg() == rt::notes::INTERRUPTED => {}
                        Err(_) => {
                            let _ = nat.0.lock().abort(flow);
                            return false;
                        }
                    }
                }
            }
            Err(FlowError::WouldBlock) => {
                let _ = w.readable.acquire();
            }
            Err(FlowError::Reset(ResetReason::Refused)) => return false, // not listening yet
            Err(e) => {
                rt::eprintln!("vmrunkernel: {flow}: {e}");
                return false;
            }
        }
    }
}
