//! Hand-made frames from the guest, valid unless a test spoils them on purpose.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, UdpPacket,
};

use super::guest::GUEST_MAC;
use crate::nat::{DEFAULT_GUEST_IP, DEFAULT_ROUTER_IP, DEFAULT_ROUTER_MAC};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// An Ethernet frame from the guest to `dst`.
pub fn ethernet(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet with a correct header checksum.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut p, &ChecksumCapabilities::default());
    p.payload_mut().copy_from_slice(payload);
    buf
}

/// TCP flag bits.
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// A TCP segment with a correct checksum.
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..8].copy_from_slice(&1000u32.to_be_bytes());
    b[12] = 5 << 4;
    b[13] = flags;
    b[14..16].copy_from_slice(&8192u16.to_be_bytes());
    b.extend_from_slice(data);
    TcpPacket::new_unchecked(&mut b[..])
        .fill_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst));
    b
}

/// A UDP datagram with a correct checksum.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    b.extend_from_slice(data);
    UdpPacket::new_unchecked(&mut b[..])
        .fill_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst));
    b
}

/// A TCP frame from the guest to the router.
pub fn tcp_to_router(dport: u16, flags: u8) -> Vec<u8> {
    let (g, r) = (DEFAULT_GUEST_IP, DEFAULT_ROUTER_IP);
    let seg = tcp(g, r, 40000, dport, flags, b"");
    ethernet(
        DEFAULT_ROUTER_MAC,
        ETHERTYPE_IPV4,
        &ipv4(g, r, IpProtocol::Tcp, &seg),
    )
}

/// An ARP request from the guest asking who has `target`.
pub fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(GUEST_MAC),
        source_protocol_addr: DEFAULT_GUEST_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    ethernet([0xff; 6], ETHERTYPE_ARP, &b)
}

/// A DHCP message from a client without an address, broadcast.
pub fn dhcp(
    message_type: DhcpMessageType,
    requested: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
) -> Vec<u8> {
    let repr = DhcpRepr {
        message_type,
        transaction_id: 0x1234_5678,
        secs: 0,
        client_hardware_address: EthernetAddress(GUEST_MAC),
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: Ipv4Addr::UNSPECIFIED,
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: None,
        subnet_mask: None,
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: false,
        requested_ip: requested,
        client_identifier: Some(EthernetAddress(GUEST_MAC)),
        server_identifier: server,
        parameter_request_list: Some(&[1, 3, 6]),
        dns_servers: None,
        max_size: Some(1500),
        lease_duration: None,
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DhcpPacket::new_unchecked(&mut b[..]))
        .expect("emit");
    let (src, dst) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    let dgram = udp(src, dst, 68, 67, &b);
    ethernet(
        [0xff; 6],
        ETHERTYPE_IPV4,
        &ipv4(src, dst, IpProtocol::Udp, &dgram),
    )
}

/// Parses a DHCP reply frame from the NAT.
pub fn parse_dhcp(
    frame: &[u8],
) -> (
    DhcpMessageType,
    Ipv4Addr,
    Option<Ipv4Addr>,
    Option<Ipv4Addr>,
    Option<u32>,
) {
    let eth = smoltcp::wire::EthernetFrame::new_checked(frame).expect("eth");
    assert!(eth.dst_addr().is_broadcast());
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ip");
    assert!(ip.verify_checksum());
    let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
    assert!(udp.verify_checksum(
        &IpAddress::Ipv4(ip.src_addr()),
        &IpAddress::Ipv4(ip.dst_addr())
    ));
    assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
    assert!(udp.payload().len() >= 300);
    let p = DhcpPacket::new_checked(udp.payload()).expect("dhcp");
    let r = DhcpRepr::parse(&p).expect("dhcp repr");
    assert_eq!(r.transaction_id, 0x1234_5678);
    (
        r.message_type,
        r.your_ip,
        r.router,
        r.subnet_mask,
        r.lease_duration,
    )
}
