//! A DHCP server for one client (RFC 2131): whoever asks gets the guest's address, the router
//! as gateway and server, and the configured lease. DISCOVER is answered with OFFER; REQUEST
//! with ACK when it asks for the guest's address (or for nothing in particular) and with NAK
//! otherwise; a REQUEST naming another server, and every other message, is ignored. Replies go
//! to the broadcast addresses (RFC 2131 §4.1), which every client accepts before it is
//! configured. No DNS server is offered: the NAT has no outbound flows to reach one.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use super::config::NatConfig;

/// BOOTP's minimum message (RFC 951 / RFC 2131 §2): some clients drop shorter replies.
const MIN_DHCP_LEN: usize = 300;
const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// The reply frame to a DHCP request frame that `frame::classify` accepted, or `None` when the
/// request gets no answer.
pub(super) fn answer(frame: &[u8], config: &NatConfig) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let packet = DhcpPacket::new_checked(udp.payload()).ok()?;
    let request = DhcpRepr::parse(&packet).ok()?;
    let offered = config.guest_ip;
    let message_type = match request.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => {
            if request
                .server_identifier
                .is_some_and(|s| s != config.router_ip)
            {
                return None; // the client took another server's offer
            }
            let asked = request.requested_ip.unwrap_or(request.client_ip);
            if asked == offered || asked.is_unspecified() {
                DhcpMessageType::Ack
            } else {
                DhcpMessageType::Nak
            }
        }
        _ => return None,
    };
    let nak = message_type == DhcpMessageType::Nak;
    let reply = DhcpRepr {
        message_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: if nak { Ipv4Addr::UNSPECIFIED } else { offered },
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: (!nak).then_some(config.router_ip),
        subnet_mask: (!nak).then(|| config.netmask()),
        relay_agent_ip: request.relay_agent_ip,
        broadcast: request.broadcast,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(config.router_ip),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: (!nak).then_some(config.dhcp_lease_secs),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    build(&reply, config)
}

fn build(reply: &DhcpRepr<'_>, config: &NatConfig) -> Option<Vec<u8>> {
    let dhcp_len = reply.buffer_len().max(MIN_DHCP_LEN);
    let udp = UdpRepr {
        src_port: SERVER_PORT,
        dst_port: CLIENT_PORT,
    };
    let ip = Ipv4Repr {
        src_addr: config.router_ip,
        dst_addr: Ipv4Addr::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + dhcp_len,
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(config.router_mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut eth_frame);
    let mut ip_packet = Ipv4Packet::new_unchecked(eth_frame.payload_mut());
    ip.emit(&mut ip_packet, &caps);
    let mut udp_packet = UdpPacket::new_unchecked(ip_packet.payload_mut());
    let mut result = Ok(());
    udp.emit(
        &mut udp_packet,
        &IpAddress::Ipv4(ip.src_addr),
        &IpAddress::Ipv4(ip.dst_addr),
        dhcp_len,
        |payload| result = reply.emit(&mut DhcpPacket::new_unchecked(payload)),
        &caps,
    );
    result.ok().map(|()| frame)
}
