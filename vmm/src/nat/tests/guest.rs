//! The fake guest: a second smoltcp stack at 10.0.2.15 (its gateway 10.0.2.2), wired to the NAT
//! by handing frames across in memory, on a simulated millisecond clock. [`World::run_until`]
//! moves frames both ways until a condition holds, jumping the clock to the next deadline of
//! either side whenever the wire is quiet, so timeouts of minutes take microseconds.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use crate::nat::{DEFAULT_GUEST_IP, DEFAULT_ROUTER_IP, Nat, NatConfig};

/// The fake guest's MAC.
pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// The port the fake guest's server listens on (9P).
pub const NINEP: u16 = 564;
/// Socket buffers of the fake guest.
const GUEST_BUFFER: usize = 64 * 1024;

/// The guest's network card: frames in and out.
#[derive(Default)]
pub struct Card {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: VecDeque<Vec<u8>>,
    /// The largest frame, when not a 1500-byte MTU's (see [`Guest::with_card`]).
    pub max_frame: Option<usize>,
}

pub struct CardRx(Vec<u8>);

impl phy::RxToken for CardRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

pub struct CardTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for CardTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

impl phy::Device for Card {
    type RxToken<'a> = CardRx;
    type TxToken<'a> = CardTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(CardRx, CardTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((CardRx(f), CardTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<CardTx<'_>> {
        Some(CardTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.max_frame.unwrap_or(1514);
        caps
    }
}

/// A Linux stand-in: one interface, TCP sockets.
pub struct Guest {
    pub iface: Interface,
    pub card: Card,
    pub sockets: SocketSet<'static>,
    /// Sockets listening on (or accepted from) [`NINEP`], in creation order.
    pub listeners: Vec<SocketHandle>,
}

impl Guest {
    pub fn new() -> Guest {
        Guest::with_card(Card::default())
    }

    /// A guest on `card` (whose capabilities the interface reads once, here).
    pub fn with_card(mut card: Card) -> Guest {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(GUEST_MAC)));
        config.random_seed = 0x1234_5678;
        let mut iface = Interface::new(config, &mut card, Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(DEFAULT_GUEST_IP), 24))
                .expect("room for one address");
        });
        iface
            .routes_mut()
            .add_default_ipv4_route(DEFAULT_ROUTER_IP)
            .expect("room for one route");
        Guest {
            iface,
            card,
            sockets: SocketSet::new(Vec::new()),
            listeners: Vec::new(),
        }
    }

    /// Adds `n` sockets listening on `port` (smoltcp accepts one connection per socket).
    pub fn listen(&mut self, port: u16, n: usize) {
        for _ in 0..n {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0u8; GUEST_BUFFER]),
                tcp::SocketBuffer::new(vec![0u8; GUEST_BUFFER]),
            );
            s.listen(port).expect("listen");
            let h = self.sockets.add(s);
            self.listeners.push(h);
        }
    }

    pub fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// The listener sockets that hold a connection, in creation order.
    pub fn accepted(&mut self) -> Vec<SocketHandle> {
        let hs = self.listeners.clone();
        hs.into_iter()
            .filter(|&h| {
                let s = self.sockets.get::<tcp::Socket>(h);
                !matches!(s.state(), tcp::State::Listen)
            })
            .collect()
    }

    /// A client socket connecting to `addr:port` from `local_port`.
    pub fn connect(&mut self, addr: Ipv4Addr, port: u16, local_port: u16) -> SocketHandle {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; GUEST_BUFFER]),
            tcp::SocketBuffer::new(vec![0u8; GUEST_BUFFER]),
        );
        s.connect(
            self.iface.context(),
            (IpAddress::Ipv4(addr), port),
            local_port,
        )
        .expect("connect");
        self.sockets.add(s)
    }
}

/// The NAT, the fake guest and the clock.
pub struct World {
    pub nat: Nat,
    pub guest: Guest,
    pub now: u64,
    /// When false, frames between the two are lost (a dead or wedged guest).
    pub wire_up: bool,
    /// Frames the guest sent since the world began.
    pub guest_frames: Vec<Vec<u8>>,
    /// Keep a copy of every frame the guest sends in `guest_frames`.
    pub capture: bool,
}

impl World {
    pub fn new(config: NatConfig) -> World {
        World {
            nat: Nat::new(config).expect("valid config"),
            guest: Guest::new(),
            now: 0,
            wire_up: true,
            guest_frames: Vec::new(),
            capture: false,
        }
    }

    /// The default NAT and a guest with `listeners` sockets on 564.
    pub fn fsvm(listeners: usize) -> World {
        let mut w = World::new(NatConfig::default());
        w.guest.listen(NINEP, listeners);
        w
    }

    /// One round: the guest runs, its frames go to the NAT, the NAT runs, its frames go to the
    /// guest, the guest runs again. Returns the frames moved and the NAT's poll delay.
    pub fn exchange(&mut self) -> (usize, Option<u64>) {
        let t = Instant::from_millis(self.now as i64);
        self.guest
            .iface
            .poll(t, &mut self.guest.card, &mut self.guest.sockets);
        let mut moved = 0;
        while let Some(f) = self.guest.card.tx.pop_front() {
            moved += 1;
            if self.capture {
                self.guest_frames.push(f.clone());
            }
            if self.wire_up {
                self.nat.frame_from_guest(&f);
            }
        }
        let delay = self.nat.poll(self.now);
        while let Some(f) = self.nat.frame_for_guest() {
            moved += 1;
            if self.wire_up {
                self.guest.card.rx.push_back(f);
            }
        }
        self.guest
            .iface
            .poll(t, &mut self.guest.card, &mut self.guest.sockets);
        (moved, delay)
    }

    /// Runs until `done` holds (true) or `limit_ms` of simulated time pass (false). `done` is
    /// where tests play the host and the guest applications.
    pub fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now + limit_ms;
        let mut rounds_now = 0;
        loop {
            if done(self) {
                return true;
            }
            let (moved, nat_delay) = self.exchange();
            rounds_now += 1;
            if moved > 0 && rounds_now < 10_000 {
                continue;
            }
            rounds_now = 0;
            if done(self) {
                return true;
            }
            // Quiet: jump to the earliest deadline of either side.
            let t = Instant::from_millis(self.now as i64);
            let guest_delay = self
                .guest
                .iface
                .poll_delay(t, &self.guest.sockets)
                .map(|d| d.total_millis());
            let step = [nat_delay, guest_delay]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(1000)
                .clamp(1, end.saturating_sub(self.now).max(1));
            self.now += step;
            if self.now > end {
                return false;
            }
        }
    }

    /// Runs for `ms` of simulated time.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        self.run_until(ms + 1, |w| w.now >= end);
    }
}
