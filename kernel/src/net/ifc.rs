//! Network interfaces: each is a smoltcp `Interface` over one link, with the sockets that use
//! it (a socket set per interface, so a socket is only ever polled by the interface that
//! routes it).
//!
//! - `lo`: a loopback link (packets sent are received, in order) carrying IP without a link
//!   header; it owns 127.0.0.1/8 and also the NIC's address, so a dial of the machine's own
//!   address stays inside the kernel.
//! - `eth0`: the first virtio-net PCI function (virtio 1.2 §5.1) through `virtio-drivers`, with
//!   Ethernet and ARP (RFC 826) done by smoltcp. Its address is static: QEMU's user network
//!   (10.0.2.15/24, router 10.0.2.2) unless the command line says `ip=A.B.C.D/N` and
//!   `gateway=A.B.C.D`.

use crate::drivers::pci;
use crate::drivers::virtio::{KernelHal, PortCam};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};

/// The loopback MTU: large segments make loopback TCP cheap.
const LOOPBACK_MTU: usize = 65535;
/// Descriptors in each virtio-net queue.
const NIC_QUEUE: usize = 32;
/// Bytes per receive buffer: a full Ethernet frame and the virtio-net header.
const NIC_RX_BUF: usize = 2048;
/// An Ethernet frame without FCS.
const ETHERNET_MTU: usize = 1514;

/// Packet counters of one link.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Packets received.
    pub rx: u64,
    /// Packets sent.
    pub tx: u64,
    /// Packets the link could not send.
    pub tx_errors: u64,
}

/// A queue of IP packets that come back out in order.
#[derive(Default)]
pub struct LoopbackLink {
    queue: VecDeque<Vec<u8>>,
    counters: Counters,
}

/// A packet handed to smoltcp by value.
pub struct OwnedRx(Vec<u8>);

impl phy::RxToken for OwnedRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Sends one packet into the loopback queue.
pub struct LoopbackTx<'a>(&'a mut LoopbackLink);

impl phy::TxToken for LoopbackTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = alloc::vec![0u8; len];
        let r = f(&mut packet);
        self.0.counters.tx += 1;
        self.0.queue.push_back(packet);
        r
    }
}

impl Device for LoopbackLink {
    type RxToken<'a> = OwnedRx;
    type TxToken<'a> = LoopbackTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(OwnedRx, LoopbackTx<'_>)> {
        let packet = self.queue.pop_front()?;
        self.counters.rx += 1;
        Some((OwnedRx(packet), LoopbackTx(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<LoopbackTx<'_>> {
        Some(LoopbackTx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = LOOPBACK_MTU;
        // Nothing corrupts a packet in memory: skip computing and checking checksums.
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }
}

/// A virtio-net PCI function.
pub struct NicLink {
    net: VirtIONet<KernelHal, PciTransport, NIC_QUEUE>,
    bdf: pci::Bdf,
    counters: Counters,
}

/// Sends one frame through the NIC.
pub struct NicTx<'a>(&'a mut NicLink);

impl phy::TxToken for NicTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = self.0.net.new_tx_buffer(len);
        let r = f(buf.packet_mut());
        match self.0.net.send(buf) {
            Ok(()) => self.0.counters.tx += 1,
            Err(e) => {
                self.0.counters.tx_errors += 1;
                log::warn!("eth0: send: {e}");
            }
        }
        r
    }
}

impl Device for NicLink {
    type RxToken<'a> = OwnedRx;
    type TxToken<'a> = NicTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(OwnedRx, NicTx<'_>)> {
        let buf = self.net.receive().ok()?;
        // Copy the frame out so the buffer goes straight back to the device.
        let frame = buf.packet().to_vec();
        if let Err(e) = self.net.recycle_rx_buffer(buf) {
            log::warn!("eth0: recycling a receive buffer: {e}");
        }
        self.counters.rx += 1;
        Some((OwnedRx(frame), NicTx(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<NicTx<'_>> {
        self.net.can_send().then_some(NicTx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ETHERNET_MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// The link under an interface.
pub enum Link {
    /// `lo`.
    Loopback(LoopbackLink),
    /// `eth0`.
    Nic(alloc::boxed::Box<NicLink>),
}

impl Link {
    fn counters(&self) -> Counters {
        match self {
            Link::Loopback(l) => l.counters,
            Link::Nic(n) => n.counters,
        }
    }

    fn mtu(&self) -> usize {
        match self {
            Link::Loopback(_) => LOOPBACK_MTU,
            Link::Nic(_) => ETHERNET_MTU - 14,
        }
    }
}

/// One interface: its name, smoltcp state, link and sockets.
pub struct Ifc {
    /// `lo` or `eth0`.
    pub name: &'static str,
    /// smoltcp's interface state (addresses, routes, ARP cache).
    pub iface: Interface,
    /// The link it sends and receives on.
    pub link: Link,
    /// The TCP sockets routed through it.
    pub sockets: SocketSet<'static>,
    /// Uptime (ns) at which a packet last went through the link.
    pub last_packet_ns: u64,
}

/// What one step of an interface did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing was waiting.
    Idle,
    /// A packet was received or sent.
    Busy,
}

impl Ifc {
    /// Processes one received packet, if there is one.
    pub fn ingress_one(&mut self, now: Instant) -> Step {
        let r = match &mut self.link {
            Link::Loopback(l) => self.iface.poll_ingress_single(now, l, &mut self.sockets),
            Link::Nic(n) => self
                .iface
                .poll_ingress_single(now, &mut **n, &mut self.sockets),
        };
        match r {
            PollIngressSingleResult::None => Step::Idle,
            _ => Step::Busy,
        }
    }

    /// Sends what the sockets have to send (at most a packet per socket).
    pub fn egress(&mut self, now: Instant) -> Step {
        let r = match &mut self.link {
            Link::Loopback(l) => self.iface.poll_egress(now, l, &mut self.sockets),
            Link::Nic(n) => self.iface.poll_egress(now, &mut **n, &mut self.sockets),
        };
        match r {
            PollResult::None => Step::Idle,
            PollResult::SocketStateChanged => Step::Busy,
        }
    }

    /// The largest IP packet its link carries.
    pub fn ip_mtu(&self) -> usize {
        self.link.mtu()
    }

    /// Whether this interface is the loopback.
    pub fn is_loopback(&self) -> bool {
        matches!(self.link, Link::Loopback(_))
    }

    /// Whether `addr` is one of its addresses.
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        self.iface.has_ip_addr(addr)
    }

    /// Whether it can reach `addr`: on one of its subnets, or through its default route.
    pub fn reaches(&self, addr: Ipv4Addr) -> bool {
        self.iface
            .ip_addrs()
            .iter()
            .any(|c| c.contains_addr(&addr.into()))
            || (!self.is_loopback() && self.iface.routes().get_default_ipv4_route().is_some())
    }

    /// Its status line for `/net/ipifc/N/status`.
    pub fn status(&self) -> String {
        let addrs: Vec<String> = self
            .iface
            .ip_addrs()
            .iter()
            .map(|c| alloc::format!("{c}"))
            .collect();
        let c = self.link.counters();
        let mut s = alloc::format!(
            "{} addr {} mtu {} rx {} tx {} txerr {}",
            self.name,
            addrs.join(" "),
            self.link.mtu(),
            c.rx,
            c.tx,
            c.tx_errors
        );
        if let Some(r) = self.iface.routes().get_default_ipv4_route() {
            s.push_str(&alloc::format!(" gateway {}", r.via_router));
        }
        match &self.link {
            Link::Nic(n) => s.push_str(&alloc::format!(
                " ether {} pci {}\n",
                self.iface.hardware_addr(),
                n.bdf
            )),
            Link::Loopback(_) => s.push('\n'),
        }
        s
    }
}

/// Builds `lo`, holding 127.0.0.1/8 and `also` (the NIC's address) if any.
pub fn loopback(now: Instant, seed: u64, also: Option<Ipv4Addr>) -> Ifc {
    let mut link = LoopbackLink::default();
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = seed;
    let mut iface = Interface::new(config, &mut link, now);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Addr::new(127, 0, 0, 1), 8)));
        if let Some(a) = also {
            let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(a, 32)));
        }
    });
    Ifc {
        name: "lo",
        iface,
        link: Link::Loopback(link),
        sockets: SocketSet::new(Vec::new()),
        last_packet_ns: 0,
    }
}

/// The static configuration of `eth0`: QEMU's user network unless the command line says.
fn eth0_config() -> (Ipv4Cidr, Option<Ipv4Addr>) {
    let default = (
        Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24),
        Some(Ipv4Addr::new(10, 0, 2, 2)),
    );
    let cidr = match crate::cmdline_value("ip") {
        None => return default,
        Some(v) => match v.parse::<Ipv4Cidr>() {
            Ok(c) => c,
            Err(_) => {
                log::warn!("ip={v}: expected A.B.C.D/N; using {}", default.0);
                return default;
            }
        },
    };
    let gateway = crate::cmdline_value("gateway").and_then(|g| g.parse::<Ipv4Addr>().ok());
    (cidr, gateway)
}

/// Finds the first virtio-net PCI function and builds `eth0` on it.
pub fn probe_nic(now: Instant, seed: u64) -> Option<Ifc> {
    let mut root = PciRoot::new(PortCam);
    for d in pci::devices() {
        // Transitional (0x1000) and modern (0x1041) virtio-net.
        if d.vendor != 0x1af4 || !(d.device == 0x1000 || d.device == 0x1041) {
            continue;
        }
        let f = DeviceFunction {
            bus: d.bdf.bus,
            device: d.bdf.dev,
            function: d.bdf.func,
        };
        root.set_command(f, Command::MEMORY_SPACE | Command::BUS_MASTER);
        let net = PciTransport::new::<KernelHal, _>(&mut root, f)
            .map_err(|e| alloc::format!("{e}"))
            .and_then(|t| {
                VirtIONet::<KernelHal, _, NIC_QUEUE>::new(t, NIC_RX_BUF)
                    .map_err(|e| alloc::format!("{e}"))
            });
        let net = match net {
            Ok(n) => n,
            Err(e) => {
                log::warn!("virtio-net at {}: {e}", d.bdf);
                continue;
            }
        };
        let mut link = NicLink {
            net,
            bdf: d.bdf,
            counters: Counters::default(),
        };
        let mac = EthernetAddress(link.net.mac_address());
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut link, now);
        let (cidr, gateway) = eth0_config();
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        if let Some(g) = gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(g);
        }
        return Some(Ifc {
            name: "eth0",
            iface,
            link: Link::Nic(alloc::boxed::Box::new(link)),
            sockets: SocketSet::new(Vec::new()),
            last_packet_ns: 0,
        });
    }
    None
}
