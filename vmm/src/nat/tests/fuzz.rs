//! A fuzz target that runs on stable inside `cargo test` (DESIGN.md section 6): random frames
//! and mutations of real ones (captured from a session with the fake guest, plus hand-made ARP,
//! DHCP and TCP frames), half of them with their checksums repaired so they get past the
//! checks and into smoltcp, thrown at a NAT with live flows. Seeded, bounded, reproducible from
//! the printed case number. The assertions: no panic, and afterwards the NAT still forwards.

use alloc::format;
use alloc::vec::Vec;

use smoltcp::wire::{DhcpMessageType, IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

use super::craft::{SYN, arp_request, dhcp, tcp_to_router};
use super::guest::{NINEP, World};
use super::{connect, guest_read, host_read};
use crate::nat::{
    DEFAULT_GUEST_IP, DEFAULT_ROUTER_IP, DEFAULT_ROUTER_MAC, FlowError, NatConfig, Summary,
};

const CASES: u32 = 30_000;

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut f = base.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(6) {
            0 => {
                for _ in 0..=rng.below(8) {
                    if !f.is_empty() {
                        let i = rng.below(f.len());
                        f[i] ^= 1 << rng.below(8);
                    }
                }
            }
            1 => f.truncate(rng.below(f.len() + 1)),
            2 => {
                for _ in 0..rng.below(64) {
                    f.push(rng.byte());
                }
            }
            3 => {
                // A header field (mostly within Ethernet, IPv4 and TCP/UDP) to a boundary value.
                if f.len() >= 2 {
                    let i = rng.below(f.len().min(80) - 1);
                    let v: u16 = [0, 1, 0x7fff, 0x8000, 0xffff][rng.below(5)];
                    f[i..i + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
            4 => {
                if !f.is_empty() {
                    let i = rng.below(f.len());
                    f[i] = rng.byte();
                }
            }
            _ => {
                // Splice the tail of the frame onto itself.
                let cut = rng.below(f.len() + 1);
                let tail = f[cut..].to_vec();
                f.extend_from_slice(&tail);
            }
        }
    }
    f
}

/// Makes the IPv4 header checksum and the TCP/UDP checksum right again, when the frame parses
/// that far.
fn repair_checksums(f: &mut [u8]) {
    if f.len() < 14 || f[12..14] != [0x08, 0x00] {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut f[14..]) else {
        return;
    };
    ip.fill_checksum();
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    match ip.next_header() {
        IpProtocol::Tcp => {
            if let Ok(mut t) = TcpPacket::new_checked(ip.payload_mut()) {
                t.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut u) = UdpPacket::new_checked(ip.payload_mut()) {
                u.fill_checksum(&src, &dst);
            }
        }
        _ => {}
    }
}

#[test]
fn fuzz_frames_from_the_guest() {
    let mut w = World::new(NatConfig {
        dhcp: true,
        max_queued_frames: 64,
        ..NatConfig::default()
    });
    w.guest.listen(NINEP, 8);

    // A corpus of real frames: a handshake, data both ways, a half-close, keep-alives.
    w.capture = true;
    let (id, h) = connect(&mut w);
    let mut sink = Vec::new();
    for round in 1..=5 {
        w.nat.send(id, &[0x11; 1000]).expect("send");
        w.guest
            .socket(h)
            .send_slice(&[0x22; 700])
            .expect("guest send");
        w.run_until(1_000, |w| {
            guest_read(w, h, &mut sink);
            let _ = host_read(w, id, &mut sink);
            sink.len() == round * 1700
        });
        w.run_for(50);
    }
    w.guest.socket(h).close();
    w.run_for(500);
    w.capture = false;
    let mut corpus = core::mem::take(&mut w.guest_frames);
    corpus.extend([
        arp_request(DEFAULT_ROUTER_IP),
        dhcp(DhcpMessageType::Discover, None, None),
        dhcp(
            DhcpMessageType::Request,
            Some(DEFAULT_GUEST_IP),
            Some(DEFAULT_ROUTER_IP),
        ),
        tcp_to_router(NINEP, SYN),
    ]);
    assert!(corpus.len() >= 15, "corpus of {}", corpus.len());

    let flows: Vec<_> = (0..3)
        .filter_map(|_| w.nat.open_forward(NINEP).ok())
        .collect();
    let mut rng = Rng(0x5eed_f4a7_0000_0001);
    let mut buf = [0u8; 2048];
    for case in 0..CASES {
        let mut frame = if rng.below(4) == 0 {
            let mut f: Vec<u8> = (0..rng.below(1600)).map(|_| rng.byte()).collect();
            if f.len() >= 14 && rng.below(2) == 0 {
                f[..6].copy_from_slice(&DEFAULT_ROUTER_MAC);
                f[12..14].copy_from_slice(&[[0x08, 0x00], [0x08, 0x06]][rng.below(2)]);
            }
            f
        } else {
            let base = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, base)
        };
        if rng.below(2) == 0 {
            repair_checksums(&mut frame);
        }
        if case % 16 == 0 {
            let _ = format!("{}", Summary(&frame));
        }
        w.nat.frame_from_guest(&frame);
        if case % 4 == 0 {
            w.now += rng.below(40) as u64;
            w.exchange();
            for &f in &flows {
                match w.nat.send(f, &buf[..rng.below(600)]) {
                    Ok(_)
                    | Err(FlowError::WouldBlock | FlowError::Closed | FlowError::Reset(_)) => {}
                    Err(e) => panic!("case {case}: send: {e}"),
                }
                let _ = w.nat.recv(f, &mut buf);
                let _ = w.nat.state(f);
            }
        }
    }
    // The storm reached every layer: some frames were dropped, some went into the stack, some
    // were DHCP requests that got answers.
    let s = w.nat.stats();
    assert!(
        s.dropped.total() > 0 && s.dropped.total() < s.frames_from_guest,
        "{s:?}"
    );
    assert!(s.dhcp_replies > 0, "{s:?}");
    for f in flows {
        w.nat.release(f).expect("release");
    }
    w.nat.release(id).expect("release");

    // Still a working NAT: a fresh forward carries data.
    let (id, h) = connect(&mut w);
    assert_eq!(w.nat.send(id, b"after the storm"), Ok(15));
    let mut got = Vec::new();
    assert!(w.run_until(2_000, |w| {
        guest_read(w, h, &mut got);
        got.len() == 15
    }));
    assert_eq!(got, b"after the storm");
}
