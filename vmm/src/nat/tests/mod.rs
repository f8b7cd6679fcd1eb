//! The NAT against a fake guest (a second smoltcp stack, [`guest`]): forwards carrying data both
//! ways, many flows, half-closes, resets, refusals, timeouts, limits, ARP and DHCP, and the
//! frames it must drop. [`fuzz`] throws random and mutated frames at it.

mod craft;
mod fuzz;
mod guest;
mod outbound;

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, EthernetFrame, IpProtocol};

use super::*;
use craft::*;
use guest::{Card, Guest, NINEP, World};

/// Opens a forward to 564 and runs until it is established; returns it and the guest's socket.
fn connect(w: &mut World) -> (FlowId, SocketHandle) {
    let before = w.guest.accepted();
    let id = w.nat.open_forward(NINEP).expect("open");
    assert_eq!(w.nat.state(id), Ok(FlowState::Connecting));
    let ok = w.run_until(2_000, |w| w.nat.state(id) == Ok(FlowState::Established));
    assert!(
        ok,
        "{id}: {:?} {:?} {:?}",
        w.nat.debug_states(),
        w.nat.stats(),
        w.guest
            .listeners
            .iter()
            .map(|&h| w.guest.sockets.get::<tcp::Socket>(h).state())
            .collect::<Vec<_>>()
    );
    let h = w
        .guest
        .accepted()
        .into_iter()
        .find(|h| !before.contains(h))
        .expect("the guest accepted");
    (id, h)
}

/// Everything the host can read now; `true` at end of stream.
fn host_read(w: &mut World, id: FlowId, out: &mut Vec<u8>) -> Result<bool, FlowError> {
    let mut buf = [0u8; 4096];
    loop {
        match w.nat.recv(id, &mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(FlowError::WouldBlock) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Everything the guest application can read now.
fn guest_read(w: &mut World, h: SocketHandle, out: &mut Vec<u8>) {
    let s = w.guest.socket(h);
    while s.can_recv() {
        let _ = s.recv(|b| {
            out.extend_from_slice(b);
            (b.len(), ())
        });
    }
}

fn drain_events(w: &mut World) -> Vec<FlowEvent> {
    core::iter::from_fn(|| w.nat.next_event()).collect()
}

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

#[test]
fn arp_for_the_router_is_answered_and_others_are_not() {
    let mut w = World::fsvm(0);
    w.nat.frame_from_guest(&arp_request(DEFAULT_ROUTER_IP));
    w.nat.poll(0);
    let reply = w.nat.frame_for_guest().expect("an ARP reply");
    let eth = EthernetFrame::new_checked(&reply[..]).expect("eth");
    assert_eq!(eth.dst_addr().0, guest::GUEST_MAC);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).expect("arp")).expect("arp");
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = arp
    else {
        panic!("not ethernet/ipv4 ARP");
    };
    assert_eq!(operation, ArpOperation::Reply);
    assert_eq!(source_hardware_addr.0, DEFAULT_ROUTER_MAC);
    assert_eq!(source_protocol_addr, DEFAULT_ROUTER_IP);
    assert_eq!(target_protocol_addr, DEFAULT_GUEST_IP);
    assert!(w.nat.frame_for_guest().is_none());

    w.nat
        .frame_from_guest(&arp_request(Ipv4Addr::new(10, 0, 2, 3)));
    w.nat.poll(0);
    assert!(!w.nat.has_frames_for_guest());
    assert_eq!(w.nat.stats().dropped.get(DropReason::ArpNotForRouter), 1);
}

#[test]
fn forward_carries_data_both_ways_with_events() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    assert_eq!(w.nat.kind(id), Ok(FlowKind::Forward { guest_port: NINEP }));
    let ev = drain_events(&mut w);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].flow, id);
    assert_eq!(ev[0].state, FlowState::Established);
    assert!(ev[0].ready.writable && !ev[0].ready.readable);

    assert_eq!(w.nat.send(id, b"Tversion"), Ok(8));
    let mut got = Vec::new();
    assert!(w.run_until(1_000, |w| {
        guest_read(w, h, &mut got);
        got.len() == 8
    }));
    assert_eq!(got, b"Tversion");
    assert_eq!(w.nat.recv(id, &mut [0u8; 16]), Err(FlowError::WouldBlock));

    w.guest
        .socket(h)
        .send_slice(b"Rversion")
        .expect("guest send");
    assert!(w.run_until(1_000, |w| w.nat.readiness(id).is_ok_and(|r| r.readable)));
    let ev = drain_events(&mut w);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(ev[0].ready.readable);
    let mut back = Vec::new();
    assert_eq!(host_read(&mut w, id, &mut back), Ok(false));
    assert_eq!(back, b"Rversion");
    let s = w.nat.stats();
    assert_eq!(
        (s.bytes_to_guest, s.bytes_from_guest, s.flows_opened),
        (8, 8, 1)
    );
    assert_eq!(s.dropped.total(), 0);
}

#[test]
fn mebibytes_both_ways_at_once_arrive_intact() {
    both_ways(World::fsvm(1), 3 << 20);
}

#[test]
fn a_guest_with_the_large_mtu_sends_and_gets_large_frames() {
    let mut w = World::fsvm(1);
    w.guest = Guest::with_card(Card {
        max_frame: Some(DEFAULT_MTU as usize + ETHERNET_HEADER_LEN),
        ..Card::default()
    });
    w.guest.listen(NINEP, 1);
    w.capture = true;
    let biggest_to_guest = Arc::new(Mutex::new(0usize));
    let big = biggest_to_guest.clone();
    w.nat = Nat::new(NatConfig {
        snoop: true,
        ..NatConfig::default()
    })
    .expect("valid");
    w.nat.set_snoop_hook(Some(Box::new(move |d, f: &[u8]| {
        if d == Direction::ToGuest {
            let mut b = big.lock().expect("lock");
            *b = (*b).max(f.len());
        }
    })));
    let w = both_ways(w, 1 << 20);
    let biggest_from_guest = w.guest_frames.iter().map(Vec::len).max().unwrap_or(0);
    // The fake guest's 64 KiB socket buffers bound its segments below the MTU.
    assert!(biggest_from_guest > 16 * 1024, "{biggest_from_guest}");
    assert!(*biggest_to_guest.lock().expect("lock") > 16 * 1024);
}

/// Sends `n` bytes each way at once through a flow of `w` and checks both arrive intact.
fn both_ways(mut w: World, n: usize) -> World {
    let (id, h) = connect(&mut w);
    both_ways_on(w, id, h, n)
}

/// Sends `n` bytes each way at once through flow `id`, whose guest socket is `h`, closing both
/// directions after them; checks both arrive intact and the flow ends and goes.
fn both_ways_on(mut w: World, id: FlowId, h: SocketHandle, n: usize) -> World {
    let (to_guest, to_host) = (pattern(n, 1), pattern(n, 2));
    let (mut host_sent, mut guest_sent) = (0, 0);
    let (mut host_hash, mut guest_hash) = (Fnv::new(), Fnv::new());
    let (mut host_got, mut guest_got) = (0, 0);
    let (mut host_eof, mut guest_eof) = (false, false);
    let mut buf = vec![0u8; 32 * 1024];
    assert!(w.run_until(600_000, |w| {
        // The host: write until it blocks, close when done, read until it blocks.
        while host_sent < n {
            let end = n.min(host_sent + 48 * 1024);
            match w.nat.send(id, &to_guest[host_sent..end]) {
                Ok(n) => host_sent += n,
                Err(FlowError::WouldBlock) => break,
                Err(e) => panic!("host send: {e}"),
            }
        }
        if host_sent == n {
            w.nat.close(id).expect("close");
        }
        loop {
            match w.nat.recv(id, &mut buf) {
                Ok(0) => {
                    host_eof = true;
                    break;
                }
                Ok(n) => {
                    host_hash.update(&buf[..n]);
                    host_got += n;
                }
                Err(FlowError::WouldBlock) => break,
                Err(e) => panic!("host recv: {e}"),
            }
        }
        // The guest: the same on its socket.
        let s = w.guest.socket(h);
        while guest_sent < n && s.can_send() {
            guest_sent += s.send_slice(&to_host[guest_sent..]).expect("guest send");
        }
        if guest_sent == n {
            s.close();
        }
        while s.can_recv() {
            let _ = s.recv(|b| {
                guest_hash.update(b);
                guest_got += b.len();
                (b.len(), ())
            });
        }
        guest_eof |= !s.may_recv();
        host_eof && guest_eof
    }));
    let (mut want_host, mut want_guest) = (Fnv::new(), Fnv::new());
    want_host.update(&to_host);
    want_guest.update(&to_guest);
    assert_eq!((host_got, guest_got), (n, n));
    assert_eq!(host_hash.0, want_host.0);
    assert_eq!(guest_hash.0, want_guest.0);
    assert!(w.run_until(1_000, |w| w.nat.state(id) == Ok(FlowState::Closed)));
    let s = w.nat.stats();
    assert_eq!((s.bytes_to_guest, s.bytes_from_guest), (n as u64, n as u64));
    assert_eq!(s.dropped.total(), 0);
    w.nat.release(id).expect("release");
    assert!(w.run_until(1_000, |w| w.nat.flows() == 0));
    w
}

#[test]
fn many_flows_at_once_each_echoed() {
    const FLOWS: usize = 40;
    let mut w = World::new(NatConfig {
        max_flows: FLOWS,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, FLOWS);
    let ids: Vec<FlowId> = (0..FLOWS)
        .map(|_| w.nat.open_forward(NINEP).expect("open"))
        .collect();
    assert_eq!(
        w.nat.open_forward(NINEP),
        Err(NatError::TooManyFlows { limit: FLOWS })
    );
    let msgs: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| pattern(5000 + i * 97, i as u64 + 10))
        .collect();
    let mut sent = vec![0usize; FLOWS];
    let mut echoed: Vec<Vec<u8>> = vec![Vec::new(); FLOWS];
    let mut closed = [false; FLOWS];
    assert!(w.run_until(60_000, |w| {
        for (i, &id) in ids.iter().enumerate() {
            if sent[i] < msgs[i].len() {
                match w.nat.send(id, &msgs[i][sent[i]..]) {
                    Ok(n) => sent[i] += n,
                    Err(FlowError::WouldBlock) => {}
                    Err(e) => panic!("flow {i}: {e}"),
                }
            }
            if host_read(w, id, &mut echoed[i]).expect("read") {
                closed[i] = true;
            }
            if echoed[i].len() == msgs[i].len() && !closed[i] {
                w.nat.close(id).expect("close");
            }
        }
        // The guest echoes on every connection, and closes once the host has.
        for h in w.guest.accepted() {
            let s = w.guest.socket(h);
            let room = s.send_capacity() - s.send_queue();
            if room > 0 && s.can_recv() {
                let mut data = vec![0u8; room];
                let n = s.recv_slice(&mut data).expect("guest recv");
                assert_eq!(
                    s.send_slice(&data[..n]),
                    Ok(n),
                    "guest echo in {}",
                    s.state()
                );
            }
            if s.state() == tcp::State::CloseWait && s.send_queue() == 0 {
                s.close();
            }
        }
        closed.iter().all(|&c| c)
    }));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(echoed[i], msgs[i], "flow {i}");
        assert!(w.run_until(2_000, |w| w.nat.state(*id) == Ok(FlowState::Closed)));
        w.nat.release(*id).expect("release");
    }
    assert_eq!(w.nat.flows(), 0);
    assert_eq!(w.nat.state(ids[0]), Err(FlowError::NoSuchFlow));
}

#[test]
fn host_half_close_then_guest_replies_and_closes() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    w.nat.send(id, b"last request").expect("send");
    w.nat.close(id).expect("close");
    assert_eq!(w.nat.send(id, b"more"), Err(FlowError::Closed));
    assert_eq!(w.nat.state(id), Ok(FlowState::HostClosed));
    let mut got = Vec::new();
    assert!(w.run_until(1_000, |w| {
        guest_read(w, h, &mut got);
        !w.guest.socket(h).may_recv()
    }));
    assert_eq!(got, b"last request");
    w.guest.socket(h).send_slice(b"reply").expect("guest send");
    let mut back = Vec::new();
    assert!(w.run_until(1_000, |w| {
        host_read(w, id, &mut back).expect("read");
        back.len() == 5
    }));
    assert_eq!(back, b"reply");
    assert_eq!(w.nat.state(id), Ok(FlowState::HostClosed));
    w.guest.socket(h).close();
    assert!(w.run_until(1_000, |w| w.nat.state(id) == Ok(FlowState::Closed)));
    assert_eq!(host_read(&mut w, id, &mut back), Ok(true));
    assert!(
        drain_events(&mut w)
            .iter()
            .any(|e| e.state == FlowState::Closed)
    );
}

#[test]
fn guest_half_close_then_host_sends_and_closes() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    w.guest.socket(h).send_slice(b"goodbye").expect("send");
    w.guest.socket(h).close();
    assert!(w.run_until(1_000, |w| w.nat.state(id) == Ok(FlowState::GuestClosed)));
    let mut got = Vec::new();
    assert_eq!(host_read(&mut w, id, &mut got), Ok(true));
    assert_eq!(got, b"goodbye");
    assert_eq!(w.nat.recv(id, &mut [0u8; 8]), Ok(0), "end of stream stays");
    assert!(w.nat.readiness(id).expect("flow").readable);
    assert_eq!(w.nat.send(id, b"still here"), Ok(10));
    let mut at_guest = Vec::new();
    assert!(w.run_until(1_000, |w| {
        guest_read(w, h, &mut at_guest);
        at_guest.len() == 10
    }));
    assert_eq!(at_guest, b"still here");
    w.nat.close(id).expect("close");
    assert_eq!(w.nat.state(id), Ok(FlowState::Closed));
    assert!(w.run_until(1_000, |w| !w.guest.socket(h).is_open()));
    w.nat.release(id).expect("release");
    // The guest's ACK of the FIN may still be on its way: the flow lingers until it arrives.
    assert!(w.run_until(1_000, |w| w.nat.flows() == 0));
}

#[test]
fn guest_reset_ends_the_flow_with_a_reason() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    drain_events(&mut w);
    w.guest.socket(h).abort();
    let reset = FlowState::Reset(ResetReason::ResetByGuest);
    assert!(w.run_until(1_000, |w| w.nat.state(id) == Ok(reset)));
    let ev = drain_events(&mut w);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].state, reset);
    assert!(ev[0].ready.readable && ev[0].ready.writable);
    let e = FlowError::Reset(ResetReason::ResetByGuest);
    assert_eq!(w.nat.recv(id, &mut [0u8; 8]), Err(e));
    assert_eq!(w.nat.send(id, b"x"), Err(e));
    assert_eq!(e.to_string(), "nat: connection reset by the guest");
    assert_eq!(w.nat.stats().flows_reset, 1);
    w.nat.release(id).expect("release");
    assert_eq!(w.nat.flows(), 0);
}

#[test]
fn guest_not_listening_is_refused_quickly() {
    let mut w = World::fsvm(0);
    let id = w.nat.open_forward(NINEP).expect("open");
    let refused = FlowState::Reset(ResetReason::Refused);
    assert!(w.run_until(5_000, |w| w.nat.state(id) == Ok(refused)));
    assert!(w.now < 100, "refused after {} ms", w.now);
    assert_eq!(drain_events(&mut w)[0].state, refused);
    assert_eq!(
        w.nat.recv(id, &mut [0u8; 4]),
        Err(FlowError::Reset(ResetReason::Refused))
    );
    w.nat.release(id).expect("release");
    assert_eq!(w.nat.flows(), 0);
}

#[test]
fn silent_guest_times_out_connecting() {
    let mut w = World::fsvm(1);
    w.wire_up = false;
    let id = w.nat.open_forward(NINEP).expect("open");
    let timeout = FlowState::Reset(ResetReason::ConnectTimeout);
    assert!(w.run_until(60_000, |w| w.nat.state(id) == Ok(timeout)));
    assert!(
        (DEFAULT_CONNECT_TIMEOUT_MS..DEFAULT_CONNECT_TIMEOUT_MS + 100).contains(&w.now),
        "timed out at {} ms",
        w.now
    );
}

#[test]
fn idle_flows_live_on_keepalives_and_die_with_the_guest() {
    let mut w = World::new(NatConfig {
        idle_timeout_ms: 8_000,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, 1);
    let (id, _) = connect(&mut w);
    w.run_for(60_000);
    assert_eq!(w.nat.state(id), Ok(FlowState::Established));
    w.wire_up = false;
    let cut = w.now;
    let idle = FlowState::Reset(ResetReason::IdleTimeout);
    assert!(w.run_until(20_000, |w| w.nat.state(id) == Ok(idle)));
    assert!(
        w.now - cut <= 8_000,
        "reset {} ms after the guest died",
        w.now - cut
    );
}

#[test]
fn flow_limit_is_enforced_and_freed_by_release() {
    let mut w = World::new(NatConfig {
        max_flows: 2,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, 3);
    let (a, _) = connect(&mut w);
    let (b, _) = connect(&mut w);
    assert_eq!(
        w.nat.open_forward(NINEP),
        Err(NatError::TooManyFlows { limit: 2 })
    );
    assert_eq!(
        NatError::TooManyFlows { limit: 2 }.to_string(),
        "nat: too many connections to the guest (limit 2)"
    );
    w.nat.abort(a).expect("abort");
    assert_eq!(w.nat.state(a), Ok(FlowState::Reset(ResetReason::Aborted)));
    w.nat.release(a).expect("release");
    assert_eq!(w.nat.flows(), 2, "the RST is not out yet");
    w.run_for(5);
    assert_eq!(w.nat.flows(), 1);
    assert_eq!(w.nat.open_forward(0), Err(NatError::BadPort));
    let (c, _) = connect(&mut w);
    assert_ne!(a, c);
    assert_eq!(w.nat.send(a, b"stale"), Err(FlowError::NoSuchFlow));
    assert_eq!(w.nat.release(a), Err(FlowError::NoSuchFlow));
    assert!(w.nat.state(b).is_ok());
}

#[test]
fn abort_resets_the_guest() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    w.nat.send(id, b"unsent?").expect("send");
    w.nat.abort(id).expect("abort");
    w.nat.release(id).expect("release");
    assert!(w.run_until(1_000, |w| w.guest.socket(h).state() == tcp::State::Closed));
    assert_eq!(w.nat.flows(), 0);
}

#[test]
fn release_of_an_open_flow_closes_it_and_lingers() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    w.nat.release(id).expect("release");
    assert_eq!(w.nat.state(id), Err(FlowError::NoSuchFlow));
    assert_eq!(w.nat.flows(), 1);
    assert!(w.run_until(1_000, |w| !w.guest.socket(h).may_recv()));
    // The guest still talks; the NAT discards it, then the guest closes too.
    w.guest.socket(h).send_slice(&[7u8; 3000]).expect("send");
    w.run_for(100);
    w.guest.socket(h).close();
    assert!(w.run_until(1_000, |w| w.nat.flows() == 0));
    assert!(drain_events(&mut w).is_empty());
}

#[test]
fn released_flow_lingers_no_longer_than_the_idle_timeout() {
    let mut w = World::new(NatConfig {
        idle_timeout_ms: 5_000,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, 1);
    let (id, _) = connect(&mut w);
    w.nat.release(id).expect("release");
    // The guest never closes its side and keeps answering keep-alives.
    assert!(w.run_until(6_000, |w| w.nat.flows() == 0));
}

#[test]
fn close_while_connecting_sends_fin_after_the_handshake() {
    let mut w = World::fsvm(1);
    let id = w.nat.open_forward(NINEP).expect("open");
    assert_eq!(w.nat.send(id, b"early"), Err(FlowError::WouldBlock));
    w.nat.close(id).expect("close");
    assert!(w.run_until(1_000, |w| w.nat.state(id) == Ok(FlowState::HostClosed)));
    let h = w.guest.accepted()[0];
    assert!(w.run_until(1_000, |w| !w.guest.socket(h).may_recv()));
}

#[test]
fn back_pressure_then_a_writable_event() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    drain_events(&mut w);
    let chunk = [0x5au8; 8192];
    let mut accepted = 0;
    assert!(w.run_until(5_000, |w| match w.nat.send(id, &chunk) {
        Ok(n) => {
            accepted += n;
            false
        }
        Err(FlowError::WouldBlock) => true,
        Err(e) => panic!("{e}"),
    }));
    // One more round lets the guest's window close for good.
    w.run_for(50);
    while w.nat.send(id, &chunk).is_ok() {}
    assert!(!w.nat.readiness(id).expect("flow").writable);
    assert!(
        accepted >= DEFAULT_HOST_TO_GUEST_BUFFER,
        "accepted {accepted}"
    );
    drain_events(&mut w);
    let mut got = Vec::new();
    guest_read(&mut w, h, &mut got);
    assert!(w.run_until(1_000, |w| {
        w.nat
            .next_event()
            .is_some_and(|e| e.flow == id && e.ready.writable)
    }));
}

#[test]
fn readable_events_are_edges_rearmed_by_would_block() {
    let mut w = World::fsvm(1);
    let (id, h) = connect(&mut w);
    drain_events(&mut w);
    w.guest.socket(h).send_slice(b"one").expect("send");
    assert!(w.run_until(1_000, |w| w.nat.readiness(id).is_ok_and(|r| r.readable)));
    assert_eq!(drain_events(&mut w).len(), 1);
    w.guest.socket(h).send_slice(b"two").expect("send");
    w.run_for(100);
    assert!(
        drain_events(&mut w).is_empty(),
        "still readable: no new edge"
    );
    let mut got = Vec::new();
    assert_eq!(host_read(&mut w, id, &mut got), Ok(false));
    assert_eq!(got, b"onetwo");
    w.guest.socket(h).send_slice(b"three").expect("send");
    w.run_for(100);
    let ev = drain_events(&mut w);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].ready.readable);
}

#[test]
fn tcp_to_the_router_itself_is_refused() {
    let mut w = World::fsvm(0);
    let s = w.guest.connect(DEFAULT_ROUTER_IP, 80, 40000);
    assert!(w.run_until(1_000, |w| w.guest.socket(s).state() == tcp::State::Closed));
    assert_eq!(w.nat.flows(), 0);
    assert_eq!(w.nat.stats().dropped.total(), 0);
}

#[test]
fn frames_the_nat_must_drop_are_counted_and_unanswered() {
    let (g, r) = (DEFAULT_GUEST_IP, DEFAULT_ROUTER_IP);
    let to_router = |proto, payload: &[u8]| {
        ethernet(
            DEFAULT_ROUTER_MAC,
            ETHERTYPE_IPV4,
            &ipv4(g, r, proto, payload),
        )
    };
    let syn = tcp(g, r, 40000, 80, SYN, b"");
    let mut bad_ip_sum = to_router(IpProtocol::Tcp, &syn);
    bad_ip_sum[14 + 10] ^= 0xff;
    let mut bad_tcp_sum = to_router(IpProtocol::Tcp, &syn);
    bad_tcp_sum[14 + 20 + 16] ^= 0xff;
    let refill = |mut f: Vec<u8>, edit: fn(&mut [u8])| {
        edit(&mut f[14..]);
        let mut p = smoltcp::wire::Ipv4Packet::new_unchecked(&mut f[14..]);
        p.fill_checksum();
        f
    };
    let version6 = refill(to_router(IpProtocol::Tcp, &syn), |ip| ip[0] = 0x65);
    let fragment = refill(to_router(IpProtocol::Tcp, &syn), |ip| ip[6] |= 0x20);
    let long_total = refill(to_router(IpProtocol::Tcp, &syn), |ip| ip[3] = 200);
    // Outbound flows are TCP to unicast addresses off the guest's network only.
    let beyond = |dst: Ipv4Addr, proto: IpProtocol| {
        let payload = match proto {
            IpProtocol::Tcp => tcp(g, dst, 40000, 443, SYN, b""),
            _ => udp(g, dst, 40000, 53, b"query"),
        };
        ethernet(
            DEFAULT_ROUTER_MAC,
            ETHERTYPE_IPV4,
            &ipv4(g, dst, proto, &payload),
        )
    };
    let outbound_udp = beyond(Ipv4Addr::new(8, 8, 8, 8), IpProtocol::Udp);
    let on_link = beyond(Ipv4Addr::new(10, 0, 2, 3), IpProtocol::Tcp);
    let loopback = beyond(Ipv4Addr::new(127, 0, 0, 1), IpProtocol::Tcp);
    let multicast = beyond(Ipv4Addr::new(224, 0, 0, 1), IpProtocol::Tcp);
    let broadcast = beyond(Ipv4Addr::new(255, 255, 255, 255), IpProtocol::Tcp);
    let spoof = Ipv4Addr::new(10, 0, 2, 99);
    let spoofed = ethernet(
        DEFAULT_ROUTER_MAC,
        ETHERTYPE_IPV4,
        &ipv4(
            spoof,
            r,
            IpProtocol::Tcp,
            &tcp(spoof, r, 40000, 80, SYN, b""),
        ),
    );
    let mut bad_arp = arp_request(r);
    bad_arp[14 + 1] = 9; // hardware type 9
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![1, 2, 3], DropReason::Truncated),
        (vec![0u8; 13], DropReason::Truncated),
        (
            vec![0u8; DEFAULT_MTU as usize + ETHERNET_HEADER_LEN + 1],
            DropReason::Oversize,
        ),
        (
            ethernet(
                [0x52, 0x54, 0, 0, 0, 9],
                ETHERTYPE_IPV4,
                &ipv4(g, r, IpProtocol::Tcp, &syn),
            ),
            DropReason::NotForRouter,
        ),
        (
            ethernet([0x33, 0x33, 0, 0, 0, 1], ETHERTYPE_IPV6, &[0u8; 40]),
            DropReason::NotForRouter,
        ),
        (
            ethernet(DEFAULT_ROUTER_MAC, ETHERTYPE_IPV6, &[0x60u8; 40]),
            DropReason::Ipv6,
        ),
        (
            ethernet(DEFAULT_ROUTER_MAC, ETHERTYPE_VLAN, &[0u8; 46]),
            DropReason::OtherEthertype,
        ),
        (
            ethernet(DEFAULT_ROUTER_MAC, 0x88cc, &[0u8; 46]),
            DropReason::OtherEthertype,
        ),
        (
            ethernet(DEFAULT_ROUTER_MAC, ETHERTYPE_IPV4, &[0x45, 0, 0]),
            DropReason::Truncated,
        ),
        (bad_ip_sum, DropReason::BadChecksum),
        (bad_tcp_sum, DropReason::BadChecksum),
        (version6, DropReason::Malformed),
        (fragment, DropReason::Fragment),
        (long_total, DropReason::Truncated),
        (outbound_udp, DropReason::OtherDestination),
        (on_link, DropReason::OtherDestination),
        (loopback, DropReason::OtherDestination),
        (multicast, DropReason::OtherDestination),
        (broadcast, DropReason::OtherDestination),
        (spoofed, DropReason::WrongSource),
        (
            to_router(IpProtocol::Udp, &udp(g, r, 5000, 53, b"query")),
            DropReason::UnsupportedProtocol,
        ),
        (
            to_router(IpProtocol::Icmp, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]),
            DropReason::UnsupportedProtocol,
        ),
        (
            to_router(IpProtocol::Tcp, &syn[..10]),
            DropReason::Truncated,
        ),
        (
            arp_request(Ipv4Addr::new(10, 0, 2, 3)),
            DropReason::ArpNotForRouter,
        ),
        (bad_arp, DropReason::Malformed),
        (
            dhcp(DhcpMessageType::Discover, None, None),
            DropReason::DhcpIgnored,
        ),
    ];
    let mut w = World::fsvm(0);
    for (i, (frame, reason)) in cases.iter().enumerate() {
        let before = w.nat.stats().dropped.get(*reason);
        w.nat.frame_from_guest(frame);
        w.nat.poll(i as u64);
        assert_eq!(
            w.nat.stats().dropped.get(*reason),
            before + 1,
            "case {i}: {reason}"
        );
        assert!(!w.nat.has_frames_for_guest(), "case {i}: answered");
    }
    let s = w.nat.stats();
    assert_eq!(s.dropped.total(), cases.len() as u64);
    assert_eq!(s.frames_from_guest, cases.len() as u64);
    // A valid SYN to a closed port on the router is not dropped: it is refused with a RST.
    w.nat.frame_from_guest(&tcp_to_router(80, SYN));
    w.nat.poll(100);
    w.nat.frame_from_guest(&arp_request(r)); // (the reply to this teaches nothing: smoltcp ARPs on its own)
    w.nat.poll(100);
    assert!(w.nat.has_frames_for_guest());
    assert_eq!(w.nat.stats().dropped.total(), cases.len() as u64);
}

#[test]
fn dhcp_offers_acks_and_naks() {
    let mut w = World::new(NatConfig {
        dhcp: true,
        ..NatConfig::default()
    });
    let mask = Ipv4Addr::new(255, 255, 255, 0);
    w.nat
        .frame_from_guest(&dhcp(DhcpMessageType::Discover, None, None));
    let offer = parse_dhcp(&w.nat.frame_for_guest().expect("offer"));
    assert_eq!(
        offer,
        (
            DhcpMessageType::Offer,
            DEFAULT_GUEST_IP,
            Some(DEFAULT_ROUTER_IP),
            Some(mask),
            Some(DEFAULT_DHCP_LEASE_SECS)
        )
    );
    w.nat.frame_from_guest(&dhcp(
        DhcpMessageType::Request,
        Some(DEFAULT_GUEST_IP),
        Some(DEFAULT_ROUTER_IP),
    ));
    assert_eq!(
        parse_dhcp(&w.nat.frame_for_guest().expect("ack")).0,
        DhcpMessageType::Ack
    );
    w.nat.frame_from_guest(&dhcp(
        DhcpMessageType::Request,
        Some(Ipv4Addr::new(10, 0, 2, 77)),
        None,
    ));
    let nak = parse_dhcp(&w.nat.frame_for_guest().expect("nak"));
    assert_eq!(
        (nak.0, nak.1, nak.2),
        (DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED, None)
    );
    w.nat.frame_from_guest(&dhcp(
        DhcpMessageType::Request,
        Some(DEFAULT_GUEST_IP),
        Some(Ipv4Addr::new(10, 0, 2, 3)),
    ));
    w.nat
        .frame_from_guest(&dhcp(DhcpMessageType::Release, None, None));
    assert!(w.nat.frame_for_guest().is_none());
    let s = w.nat.stats();
    assert_eq!(
        (s.dhcp_replies, s.dropped.get(DropReason::DhcpIgnored)),
        (3, 2)
    );
}

#[test]
fn queues_to_and_from_the_guest_are_bounded() {
    let mut w = World::new(NatConfig {
        max_queued_frames: 8,
        ..NatConfig::default()
    });
    for _ in 0..20 {
        w.nat.frame_from_guest(&arp_request(DEFAULT_ROUTER_IP));
    }
    assert_eq!(w.nat.stats().dropped.get(DropReason::QueueFull), 12);
    w.nat.poll(0);
    for _ in 0..5 {
        w.nat.frame_from_guest(&arp_request(DEFAULT_ROUTER_IP));
    }
    w.nat.poll(1);
    let s = w.nat.stats();
    assert_eq!(s.dropped.get(DropReason::GuestQueueFull), 5);
    assert_eq!(core::iter::from_fn(|| w.nat.frame_for_guest()).count(), 8);

    // A flow with data for a guest that takes no frames: the stack waits, the timer backs off.
    w.guest.listen(NINEP, 1);
    let (id, _) = connect(&mut w);
    w.nat.send(id, &[1u8; 60_000]).expect("send");
    let delay = w.nat.poll(w.now);
    assert!(w.nat.has_frames_for_guest());
    assert!(delay.is_some_and(|d| d >= STALLED_POLL_MS), "{delay:?}");
    let queued = core::iter::from_fn(|| w.nat.frame_for_guest()).count();
    assert_eq!(queued, 8);
}

#[test]
fn snoop_hook_sees_both_directions() {
    let mut w = World::new(NatConfig {
        snoop: true,
        ..NatConfig::default()
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    w.nat.set_snoop_hook(Some(Box::new(move |d, f: &[u8]| {
        log.lock().expect("lock").push((d, f.len()));
    })));
    w.nat.frame_from_guest(&arp_request(DEFAULT_ROUTER_IP));
    w.nat.poll(0);
    let _ = w.nat.frame_for_guest();
    assert_eq!(
        *seen.lock().expect("lock"),
        [(Direction::FromGuest, 42), (Direction::ToGuest, 42)]
    );
    let line = alloc::format!("{}", Summary(&tcp_to_router(564, SYN | ACK)));
    assert_eq!(
        line,
        "54 bytes: TCP 10.0.2.15:40000 > 10.0.2.2:564 [S.] seq 1000 ack 0 win 8192 len 0"
    );
    let _ = RST;
}

#[test]
fn bad_configurations_are_refused_by_new() {
    let e = Nat::new(NatConfig {
        router_mac: [0xff; 6],
        ..NatConfig::default()
    })
    .err()
    .expect("multicast MAC");
    assert_eq!(
        e.to_string(),
        "nat: router_mac must be a unicast, non-zero MAC"
    );
}

/// The glue `vmrunkernel` will have: the NAT as the backend of a virtio-net card, driven by a
/// fake driver. An ARP request goes out through the transmit queue and its answer comes back
/// through the receive queue behind a `virtio_net_hdr`.
#[test]
fn through_the_virtio_net_card() {
    use crate::irq::FakeIrqLine;
    use crate::memory::{FakeGuestMemory, GuestMemory};
    use crate::virtio::device_id;
    use crate::virtio::fake_driver::FakeDriver;
    use crate::virtio::features::VIRTIO_F_VERSION_1;
    use crate::virtio::mmio::MmioTransport;
    use crate::virtio::net::{HEADER_LEN, Net, RECEIVEQ, TRANSMITQ, VIRTIO_NET_F_MAC};

    let mem = Arc::new(FakeGuestMemory::with_size(0x40_0000));
    let nat = Nat::new(NatConfig::default()).expect("nat");
    let mut t = MmioTransport::new(
        Net::new(nat, guest::GUEST_MAC, false),
        mem.clone(),
        Arc::new(FakeIrqLine::default()),
    );
    let mut d = FakeDriver::new(mem.clone());
    d.bring_up(
        &mut t,
        device_id::NET,
        VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC,
        2,
        64,
    );

    let arp = arp_request(DEFAULT_ROUTER_IP);
    let (h, f) = (d.alloc(HEADER_LEN as u64), d.alloc(arp.len() as u64));
    mem.write(f, &arp).expect("write");
    d.queues[1].add(
        &*mem,
        &[(h, HEADER_LEN as u32, false), (f, arp.len() as u32, false)],
    );
    d.notify(&mut t, TRANSMITQ as u32);
    // The vCPU thread's turn: poll the NAT after the queue, then deliver.
    let nat = t.device_mut().backend_mut();
    assert_eq!(nat.poll(0), None, "nothing timed is pending");
    assert!(nat.has_frames_for_guest());
    let rx = d.alloc(1526);
    d.queues[0].add(&*mem, &[(rx, 1526, true)]);
    d.notify(&mut t, RECEIVEQ as u32);
    let used = d.queues[0].take_used(&*mem);
    assert_eq!(used.len(), 1);
    let len = used[0].1 as usize;
    let mut got = vec![0u8; len];
    mem.read(rx, &mut got).expect("read");
    let eth = EthernetFrame::new_checked(&got[HEADER_LEN..]).expect("eth");
    assert_eq!(eth.src_addr().0, DEFAULT_ROUTER_MAC);
    assert_eq!(eth.dst_addr().0, guest::GUEST_MAC);
    let stats = t.device().backend().stats();
    assert_eq!((stats.frames_from_guest, stats.frames_to_guest), (1, 1));
}

#[test]
fn timeouts_fire_exactly_at_the_edge() {
    // Connect timeout: counted from the first poll after open_forward, not from the stale clock.
    let mut w = World::fsvm(1);
    w.nat.poll(5_000);
    w.wire_up = false;
    let id = w.nat.open_forward(NINEP).expect("open");
    w.nat.poll(7_000);
    w.nat.poll(7_000 + DEFAULT_CONNECT_TIMEOUT_MS - 1);
    assert_eq!(w.nat.state(id), Ok(FlowState::Connecting));
    w.nat.poll(7_000 + DEFAULT_CONNECT_TIMEOUT_MS);
    assert_eq!(
        w.nat.state(id),
        Ok(FlowState::Reset(ResetReason::ConnectTimeout))
    );

    // Idle timeout: counted from the last segment heard from the guest.
    let idle = 8_000;
    let mut w = World::new(NatConfig {
        idle_timeout_ms: idle,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, 1);
    let (id, h) = connect(&mut w);
    w.run_for(100);
    w.guest.socket(h).send_slice(b"x").expect("send");
    w.exchange();
    let heard = w.now;
    w.wire_up = false;
    for t in [heard + 1, heard + idle / 2, heard + idle - 1] {
        w.nat.poll(t);
        while w.nat.frame_for_guest().is_some() {}
        assert_eq!(
            w.nat.state(id),
            Ok(FlowState::Established),
            "at +{}",
            t - heard
        );
    }
    w.nat.poll(heard + idle);
    assert_eq!(
        w.nat.state(id),
        Ok(FlowState::Reset(ResetReason::IdleTimeout))
    );
}

#[test]
fn smallest_buffers_still_carry_data() {
    const N: usize = 200 * 1024;
    let mut w = World::new(NatConfig {
        guest_to_host_buffer: MIN_BUFFER,
        host_to_guest_buffer: MIN_BUFFER,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, 1);
    let (id, h) = connect(&mut w);
    let data = pattern(N, 7);
    let (mut sent, mut echoed, mut at_guest) = (0, Vec::new(), Vec::new());
    assert!(w.run_until(60_000, |w| {
        if sent < N
            && let Ok(n) = w.nat.send(id, &data[sent..])
        {
            assert!(n <= MIN_BUFFER);
            sent += n;
        }
        guest_read(w, h, &mut at_guest);
        let s = w.guest.socket(h);
        if !at_guest.is_empty() && s.can_send() {
            let n = s.send_slice(&at_guest).expect("echo");
            at_guest.drain(..n);
        }
        host_read(w, id, &mut echoed).expect("read");
        echoed.len() == N
    }));
    assert_eq!(echoed, data);
}
