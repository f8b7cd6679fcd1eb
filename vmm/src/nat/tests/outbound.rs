//! Outbound flows: the fake guest connects beyond the router, the test plays the VMM (takes the
//! flow from `next_outbound`, "dials", and relays), and checks data, half-close, a failed dial,
//! the flow limit, several connections to one destination, and that the switch turns it off.

use super::*;

/// The destination the guest dials (example.com's old address; nothing is really dialled).
const REMOTE: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
const HTTP: u16 = 80;

/// The guest connects from `local_port` to `dst:port`; runs until the NAT reports the flow
/// and both sides are established. Returns the flow and the guest's socket.
fn dial_out(w: &mut World, dst: Ipv4Addr, port: u16, local_port: u16) -> (FlowId, SocketHandle) {
    let h = w.guest.connect(dst, port, local_port);
    let mut got = None;
    let ok = w.run_until(2_000, |w| {
        if got.is_none() {
            got = w.nat.next_outbound();
        }
        got.is_some_and(|(id, _)| w.nat.state(id) == Ok(FlowState::Established))
            && w.guest.socket(h).state() == tcp::State::Established
    });
    assert!(ok, "{:?} {:?}", w.nat.debug_states(), w.nat.stats());
    let (id, addr) = got.expect("an outbound flow");
    assert_eq!(addr, SocketAddrV4::new(dst, port));
    assert_eq!(
        w.nat.kind(id),
        Ok(FlowKind::Outbound {
            dst: SocketAddrV4::new(dst, port)
        })
    );
    (id, h)
}

#[test]
fn outbound_flow_carries_mebibytes_both_ways() {
    let mut w = World::fsvm(0);
    let (id, h) = dial_out(&mut w, REMOTE, HTTP, 40000);
    assert_eq!(w.nat.state(id), Ok(FlowState::Established));
    assert!(w.nat.next_outbound().is_none(), "reported once");
    let w = both_ways_on(w, id, h, 3 << 19);
    let s = w.nat.stats();
    assert_eq!(
        (s.outbound_opened, s.flows_opened, s.flows_reset),
        (1, 1, 0)
    );
}

#[test]
fn guest_bytes_wait_for_the_dial_and_half_close_works() {
    let mut w = World::fsvm(0);
    let (id, h) = dial_out(&mut w, REMOTE, HTTP, 40000);
    // The guest sends its request and closes its direction before the VMM has dialled.
    let request = b"GET / HTTP/1.0\r\n\r\n";
    w.guest.socket(h).send_slice(request).expect("guest send");
    w.guest.socket(h).close();
    w.run_for(500);
    // Dialled: the VMM reads the request, then end of stream, then answers and closes.
    let mut got = Vec::new();
    assert_eq!(host_read(&mut w, id, &mut got), Ok(true));
    assert_eq!(got, request);
    assert_eq!(w.nat.state(id), Ok(FlowState::GuestClosed));
    let reply = pattern(100_000, 7);
    let mut sent = 0;
    let mut back = Vec::new();
    assert!(w.run_until(10_000, |w| {
        while sent < reply.len() {
            match w.nat.send(id, &reply[sent..]) {
                Ok(n) => sent += n,
                Err(FlowError::WouldBlock) => break,
                Err(e) => panic!("host send: {e}"),
            }
        }
        if sent == reply.len() {
            w.nat.close(id).expect("close");
        }
        guest_read(w, h, &mut back);
        !w.guest.socket(h).may_recv()
    }));
    assert_eq!(back, reply);
    assert!(w.run_until(1_000, |w| w.nat.state(id) == Ok(FlowState::Closed)));
    w.nat.release(id).expect("release");
    assert!(w.run_until(1_000, |w| w.nat.flows() == 0));
}

#[test]
fn a_failed_dial_resets_the_guest_with_a_reason() {
    let mut w = World::fsvm(0);
    let (id, h) = dial_out(&mut w, REMOTE, 81, 40000);
    drain_events(&mut w);
    w.nat.dial_failed(id).expect("dial failed");
    let reset = FlowState::Reset(ResetReason::Unreachable);
    assert_eq!(w.nat.state(id), Ok(reset));
    assert_eq!(
        w.nat.recv(id, &mut [0u8; 8]),
        Err(FlowError::Reset(ResetReason::Unreachable))
    );
    assert!(w.run_until(1_000, |w| w.guest.socket(h).state() == tcp::State::Closed));
    assert_eq!(
        ResetReason::Unreachable.to_string(),
        "the host could not reach the destination"
    );
    w.nat.release(id).expect("release");
    w.run_for(5);
    assert_eq!(w.nat.flows(), 0);
    assert_eq!(w.nat.stats().flows_reset, 1);
}

#[test]
fn the_flow_limit_refuses_further_guest_connections() {
    let mut w = World::new(NatConfig {
        max_flows: 2,
        ..NatConfig::default()
    });
    let (a, _) = dial_out(&mut w, REMOTE, HTTP, 40000);
    let (_b, _) = dial_out(&mut w, Ipv4Addr::new(1, 1, 1, 1), 443, 40001);
    let c = w.guest.connect(REMOTE, HTTP, 40002);
    assert!(w.run_until(1_000, |w| w.guest.socket(c).state() == tcp::State::Closed));
    assert!(w.now < 100, "refused after {} ms", w.now);
    assert!(w.nat.next_outbound().is_none());
    assert_eq!(w.nat.flows(), 2);
    assert_eq!(w.nat.stats().outbound_refused, 1);
    // Releasing one makes room.
    w.nat.abort(a).expect("abort");
    w.nat.release(a).expect("release");
    w.run_for(5);
    assert_eq!(w.nat.flows(), 1);
    let (d, _) = dial_out(&mut w, REMOTE, HTTP, 40003);
    assert_ne!(a, d);
}

#[test]
fn connections_to_one_destination_keep_their_own_bytes() {
    let mut w = World::fsvm(0);
    // A flow in the first socket slot, reset and released between the guest's next two SYNs:
    // the second SYN's listener then takes the first slot and, in the stack's socket order,
    // the first SYN.
    let (x, _) = dial_out(&mut w, REMOTE, HTTP, 40000);
    w.nat.abort(x).expect("abort");
    w.run_for(5);
    let t = smoltcp::time::Instant::from_millis(w.now as i64);
    let c = w.guest.connect(REMOTE, HTTP, 40001);
    w.guest
        .iface
        .poll(t, &mut w.guest.card, &mut w.guest.sockets);
    while let Some(f) = w.guest.card.tx.pop_front() {
        w.nat.frame_from_guest(&f);
    }
    w.nat.release(x).expect("release");
    let d = w.guest.connect(REMOTE, HTTP, 40002);
    w.guest
        .iface
        .poll(t, &mut w.guest.card, &mut w.guest.sockets);
    while let Some(f) = w.guest.card.tx.pop_front() {
        w.nat.frame_from_guest(&f);
    }
    let mut flows = Vec::new();
    assert!(w.run_until(2_000, |w| {
        flows.extend(core::iter::from_fn(|| w.nat.next_outbound()));
        [c, d]
            .iter()
            .all(|&h| w.guest.socket(h).state() == tcp::State::Established)
    }));
    assert_eq!(flows.len(), 2, "{flows:?}");
    w.guest.socket(c).send_slice(b"from c").expect("send");
    w.guest
        .socket(d)
        .send_slice(b"from d, longer")
        .expect("send");
    w.run_for(100);
    // Each flow echoes what it got; each guest socket must get its own bytes back.
    for &(id, _) in &flows {
        let mut got = Vec::new();
        host_read(&mut w, id, &mut got).expect("read");
        assert_eq!(w.nat.send(id, &got), Ok(got.len()));
    }
    w.run_for(100);
    let (mut gc, mut gd) = (Vec::new(), Vec::new());
    guest_read(&mut w, c, &mut gc);
    guest_read(&mut w, d, &mut gd);
    assert_eq!((&gc[..], &gd[..]), (&b"from c"[..], &b"from d, longer"[..]));
    assert_eq!(w.nat.stats().dropped.total(), 0);
}

#[test]
fn the_router_itself_is_still_refused() {
    let mut w = World::fsvm(0);
    let s = w.guest.connect(DEFAULT_ROUTER_IP, 80, 40000);
    assert!(w.run_until(1_000, |w| w.guest.socket(s).state() == tcp::State::Closed));
    assert!(w.nat.next_outbound().is_none());
    assert_eq!(w.nat.flows(), 0);
}

#[test]
fn outbound_off_drops_the_guests_syns() {
    let mut w = World::new(NatConfig {
        outbound: false,
        ..NatConfig::default()
    });
    let s = w.guest.connect(REMOTE, HTTP, 40000);
    w.run_for(3_000);
    assert_eq!(w.guest.socket(s).state(), tcp::State::SynSent);
    assert!(w.nat.next_outbound().is_none());
    assert_eq!(w.nat.flows(), 0);
    assert!(w.nat.stats().dropped.get(DropReason::OtherDestination) >= 2);
}
