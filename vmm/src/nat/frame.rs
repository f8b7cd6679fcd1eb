//! The trust boundary for frames from the guest: each is parsed once, checked, and sorted into
//! "for the stack", "a DHCP request", or "dropped, and why" before smoltcp sees it. smoltcp
//! would drop most of the bad ones silently too; sorting them here is what lets the NAT count
//! every drop by reason, verify checksums once, and keep frames the NAT does not route (anything
//! but TCP beyond the router, and any address it must not reach) away from a stack that would
//! answer them: the stack runs with any-IP on for outbound flows.
//!
//! Formats: Ethernet II, ARP (RFC 826), IPv4 (RFC 791), TCP (RFC 9293), UDP (RFC 768) and the
//! BOOTP/DHCP ports (RFC 2131).

use core::fmt;
use core::net::Ipv4Addr;

use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol,
    Ipv4Packet, TcpPacket, UdpPacket,
};

use super::config::NatConfig;

/// UDP port of a DHCP server.
const DHCP_SERVER_PORT: u16 = 67;
/// UDP port of a DHCP client.
const DHCP_CLIENT_PORT: u16 = 68;

/// Why a frame from the guest was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the headers it announces.
    Truncated,
    /// Longer than the link's MTU allows ([`NatConfig::max_frame`]): the virtio-net device
    /// offers no segmentation offload, so a larger frame is a broken driver.
    Oversize,
    /// Ethernet destination neither the router's MAC nor broadcast.
    NotForRouter,
    /// An IPv6 frame (the guest network is IPv4 only).
    Ipv6,
    /// Neither ARP, IPv4 nor IPv6 (including VLAN-tagged frames).
    OtherEthertype,
    /// A header field the protocol does not allow.
    Malformed,
    /// An IPv4, TCP or UDP checksum that does not match.
    BadChecksum,
    /// An IPv4 fragment (the guest uses path MTU discovery; nothing legitimate fragments here).
    Fragment,
    /// IPv4 from a source other than the guest's address.
    WrongSource,
    /// IPv4 for an address other than the router's that the NAT does not route: outbound flows
    /// are off, the protocol is not TCP, or the address is on the guest's network, loopback,
    /// multicast, broadcast or unspecified.
    OtherDestination,
    /// IPv4 for the router in a protocol other than TCP (ICMP, UDP other than DHCP, ...).
    UnsupportedProtocol,
    /// An ARP packet about an address other than the router's.
    ArpNotForRouter,
    /// A DHCP request while DHCP is off, or one the server does not answer.
    DhcpIgnored,
    /// The queue from the guest to the stack was full.
    QueueFull,
    /// A frame for the guest was dropped because the queue to the guest was full.
    GuestQueueFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 15] = [
        DropReason::Truncated,
        DropReason::Oversize,
        DropReason::NotForRouter,
        DropReason::Ipv6,
        DropReason::OtherEthertype,
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::Fragment,
        DropReason::WrongSource,
        DropReason::OtherDestination,
        DropReason::UnsupportedProtocol,
        DropReason::ArpNotForRouter,
        DropReason::DhcpIgnored,
        DropReason::QueueFull,
        DropReason::GuestQueueFull,
    ];

    /// A short name for logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversize => "oversize",
            DropReason::NotForRouter => "not-for-router",
            DropReason::Ipv6 => "ipv6",
            DropReason::OtherEthertype => "other-ethertype",
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad-checksum",
            DropReason::Fragment => "fragment",
            DropReason::WrongSource => "wrong-source",
            DropReason::OtherDestination => "other-destination",
            DropReason::UnsupportedProtocol => "unsupported-protocol",
            DropReason::ArpNotForRouter => "arp-not-for-router",
            DropReason::DhcpIgnored => "dhcp-ignored",
            DropReason::QueueFull => "queue-full",
            DropReason::GuestQueueFull => "guest-queue-full",
        }
    }

    /// The counter index of this reason.
    pub(super) fn index(self) -> usize {
        DropReason::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The TCP facts the flow table needs from a segment the guest sent through the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TcpSegment {
    /// The destination: the router's address, or an outbound flow's.
    pub local_addr: Ipv4Addr,
    /// The destination port: the router's port of a forward, or an outbound flow's.
    pub local_port: u16,
    /// The guest's port.
    pub remote_port: u16,
    /// The RST flag.
    pub rst: bool,
    /// A SYN without ACK: the guest opens a connection.
    pub opens: bool,
}

/// What to do with a frame from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Hand it to the stack: ARP for the router, or TCP to the router or beyond it.
    Stack(Option<TcpSegment>),
    /// A DHCP request (UDP from port 68 to port 67), checked up to the UDP header.
    Dhcp,
    /// Drop it.
    Drop(DropReason),
}

/// Sorts one frame from the guest.
pub(super) fn classify(frame: &[u8], config: &NatConfig) -> Verdict {
    match classify_checked(frame, config) {
        Ok(v) => v,
        Err(reason) => Verdict::Drop(reason),
    }
}

fn classify_checked(frame: &[u8], config: &NatConfig) -> Result<Verdict, DropReason> {
    if frame.len() > config.max_frame() {
        return Err(DropReason::Oversize);
    }
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Truncated)?;
    let dst = eth.dst_addr();
    if dst != EthernetAddress(config.router_mac) && !dst.is_broadcast() {
        return Err(DropReason::NotForRouter);
    }
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let packet =
                ArpPacket::new_checked(eth.payload()).map_err(|_| DropReason::Truncated)?;
            match ArpRepr::parse(&packet) {
                Ok(ArpRepr::EthernetIpv4 {
                    target_protocol_addr,
                    ..
                }) if target_protocol_addr == config.router_ip => Ok(Verdict::Stack(None)),
                Ok(_) => Err(DropReason::ArpNotForRouter),
                Err(_) => Err(DropReason::Malformed),
            }
        }
        EthernetProtocol::Ipv4 => classify_ipv4(eth.payload(), config),
        EthernetProtocol::Ipv6 => Err(DropReason::Ipv6),
        _ => Err(DropReason::OtherEthertype),
    }
}

fn classify_ipv4(payload: &[u8], config: &NatConfig) -> Result<Verdict, DropReason> {
    let ip = Ipv4Packet::new_checked(payload).map_err(|_| DropReason::Truncated)?;
    if ip.version() != 4 {
        return Err(DropReason::Malformed);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::Fragment);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let (src_ip, dst_ip) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    if ip.next_header() == IpProtocol::Udp {
        let udp = UdpPacket::new_checked(ip.payload()).map_err(|_| DropReason::Truncated)?;
        if udp.src_port() == DHCP_CLIENT_PORT && udp.dst_port() == DHCP_SERVER_PORT {
            // A client without an address sends from 0.0.0.0 to the broadcast address.
            if !udp.verify_checksum(&src_ip, &dst_ip) {
                return Err(DropReason::BadChecksum);
            }
            return if config.dhcp {
                Ok(Verdict::Dhcp)
            } else {
                Err(DropReason::DhcpIgnored)
            };
        }
    }
    if src != config.guest_ip {
        return Err(DropReason::WrongSource);
    }
    let routed = config.outbound && ip.next_header() == IpProtocol::Tcp && routable(dst, config);
    if dst != config.router_ip && !routed {
        return Err(DropReason::OtherDestination);
    }
    match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| DropReason::Truncated)?;
            if !tcp.verify_checksum(&src_ip, &dst_ip) {
                return Err(DropReason::BadChecksum);
            }
            Ok(Verdict::Stack(Some(TcpSegment {
                local_addr: dst,
                local_port: tcp.dst_port(),
                remote_port: tcp.src_port(),
                rst: tcp.rst(),
                opens: tcp.syn() && !tcp.ack(),
            })))
        }
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

/// Whether an outbound flow may go to `dst`: a unicast address off the guest's network, and
/// not the VMM's own loopback (the guest reaches the host only through port forwards).
fn routable(dst: Ipv4Addr, config: &NatConfig) -> bool {
    let mask = u32::from(config.netmask());
    let on_link = u32::from(dst) & mask == u32::from(config.guest_ip) & mask;
    !(on_link
        || dst.is_unspecified()
        || dst.is_loopback()
        || dst.is_multicast()
        || dst.is_broadcast()
        || u32::from(dst) >> 24 == 0
        || u32::from(dst) >> 28 == 0xf)
}

/// Which way a frame went, for the snoop hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the guest.
    FromGuest,
    /// Sent to the guest.
    ToGuest,
}

/// A one-line description of a frame for the `snoop` log: addresses, ports, TCP flags and
/// lengths, or what kind of frame it is when it is not TCP/IPv4. Never fails on bad input.
pub struct Summary<'a>(pub &'a [u8]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.0.len();
        let Ok(eth) = EthernetFrame::new_checked(self.0) else {
            return write!(f, "{len} bytes: runt");
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => match ArpPacket::new_checked(eth.payload())
                .ok()
                .and_then(|p| ArpRepr::parse(&p).ok())
            {
                Some(ArpRepr::EthernetIpv4 {
                    operation,
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) => write!(
                    f,
                    "{len} bytes: ARP {operation:?} {source_protocol_addr} > {target_protocol_addr}"
                ),
                _ => write!(f, "{len} bytes: ARP (unparsed)"),
            },
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    return write!(f, "{len} bytes: IPv4 (unparsed)");
                };
                let (s, d) = (ip.src_addr(), ip.dst_addr());
                match ip.next_header() {
                    IpProtocol::Tcp => match TcpPacket::new_checked(ip.payload()) {
                        Ok(t) => {
                            let flags = [
                                (t.syn(), 'S'),
                                (t.fin(), 'F'),
                                (t.rst(), 'R'),
                                (t.psh(), 'P'),
                                (t.ack(), '.'),
                            ];
                            write!(
                                f,
                                "{len} bytes: TCP {s}:{} > {d}:{} [",
                                t.src_port(),
                                t.dst_port()
                            )?;
                            for (on, c) in flags {
                                if on {
                                    write!(f, "{c}")?;
                                }
                            }
                            write!(
                                f,
                                "] seq {} ack {} win {} len {}",
                                t.seq_number().0 as u32,
                                t.ack_number().0 as u32,
                                t.window_len(),
                                t.payload().len()
                            )
                        }
                        Err(_) => write!(f, "{len} bytes: TCP {s} > {d} (unparsed)"),
                    },
                    IpProtocol::Udp => match UdpPacket::new_checked(ip.payload()) {
                        Ok(u) => write!(
                            f,
                            "{len} bytes: UDP {s}:{} > {d}:{}",
                            u.src_port(),
                            u.dst_port()
                        ),
                        Err(_) => write!(f, "{len} bytes: UDP {s} > {d} (unparsed)"),
                    },
                    p => write!(f, "{len} bytes: IPv4 {s} > {d} protocol {p}"),
                }
            }
            t => write!(f, "{len} bytes: ethertype {t}"),
        }
    }
}
