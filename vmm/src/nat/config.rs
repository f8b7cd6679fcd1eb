//! The NAT's configuration: addresses, limits and timeouts, with defaults that match the fsvm
//! guest (QEMU's user-mode network: guest 10.0.2.15/24 behind a router 10.0.2.2), and the
//! conversion from the `vmrunkernel` net options file ([`NatOptions`], DESIGN.md section 4).

use alloc::format;
use core::net::Ipv4Addr;

use super::NatError;
use crate::config::{ConfigError, NatOptions, Protocol};

/// The router's MAC when none is configured: locally administered, and spelling 10.0.2.2 the
/// way QEMU's user-mode network does, so guest scripts written for QEMU see familiar values.
pub const DEFAULT_ROUTER_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
/// The router (the host as the guest sees it).
pub const DEFAULT_ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The guest's address.
pub const DEFAULT_GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The guest network's prefix length (a /24).
pub const DEFAULT_PREFIX_LEN: u8 = 24;
/// `nat_timeout` when the options file gives none or 0 (Akaros' default, reference/akaros.md §4.8).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u32 = 200;
/// How long a forwarded connection may wait for the guest's SYN-ACK.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Flows open at once (forwards and outbound flows, including closed ones not yet released).
pub const DEFAULT_MAX_FLOWS: usize = 64;
/// The largest `max_flows`: one local port per flow, from the IANA dynamic range.
pub const MAX_FLOWS_LIMIT: usize =
    (*super::EPHEMERAL_PORTS.end() - *super::EPHEMERAL_PORTS.start()) as usize + 1;
/// Per-flow buffer of bytes from the guest not yet taken by the host (9P replies: the read path).
pub const DEFAULT_GUEST_TO_HOST_BUFFER: usize = 128 * 1024;
/// Per-flow buffer of bytes from the host not yet acknowledged by the guest.
pub const DEFAULT_HOST_TO_GUEST_BUFFER: usize = 64 * 1024;
/// Smallest per-flow buffer: two full segments.
pub const MIN_BUFFER: usize = 4096;
/// Largest per-flow buffer (TCP window scaling reaches 1 GiB; this keeps a VMM's memory sane).
pub const MAX_BUFFER: usize = 16 * 1024 * 1024;
/// Frames queued in each direction between the guest and the NAT's stack.
pub const DEFAULT_MAX_QUEUED_FRAMES: usize = 256;
/// DHCP lease time offered to the guest.
pub const DEFAULT_DHCP_LEASE_SECS: u32 = 86_400;
/// The guest link's MTU when none is configured: as large as an Ethernet frame of
/// [`crate::virtio::net::MAX_FRAME`] bytes allows. The card announces it (VIRTIO_NET_F_MTU), so
/// the guest sends a 64 KiB 9P reply in one or two frames instead of 45: per-frame work (the
/// guest's TCP, queue notifications, the NAT's stack, ACKs and interrupts) is what limits
/// throughput under emulation.
pub const DEFAULT_MTU: u16 = 65520;
/// The smallest MTU IPv4 allows (RFC 791).
pub const MIN_MTU: u16 = 68;
/// The largest MTU: an Ethernet frame of it is [`crate::virtio::net::MAX_FRAME`] bytes.
pub const MAX_MTU: u16 = (crate::virtio::net::MAX_FRAME - ETHERNET_HEADER_LEN) as u16;
/// Bytes of an Ethernet II header before the IP packet.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Everything the NAT needs to know. Build one with [`NatConfig::default`] or
/// [`NatConfig::from_options`], adjust fields, and hand it to [`super::Nat::new`], which checks
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// The router's MAC: the address the NAT answers ARP with (RFC 826). The guest's own MAC is
    /// learnt by ARP like a real router would, so it need not be configured here.
    pub router_mac: [u8; 6],
    /// The router's address: the source of forwarded connections, and the guest's gateway.
    pub router_ip: Ipv4Addr,
    /// The guest's address: where forwarded connections go, and what DHCP hands out.
    pub guest_ip: Ipv4Addr,
    /// Prefix length of the guest network (1 to 30).
    pub prefix_len: u8,
    /// Answer the guest's DHCP requests (RFC 2131).
    pub dhcp: bool,
    /// Trace every frame (see [`super::Nat::set_snoop_hook`]).
    pub snoop: bool,
    /// A flow on which the guest has sent nothing for this long is reset. The NAT sends TCP
    /// keep-alives on idle flows every quarter of it, so a live guest never hits it.
    pub idle_timeout_ms: u64,
    /// A forwarded connection the guest has not answered after this long is reset.
    pub connect_timeout_ms: u64,
    /// Flows open at once (1 to [`MAX_FLOWS_LIMIT`]).
    pub max_flows: usize,
    /// Per-flow receive buffer (guest to host), [`MIN_BUFFER`] to [`MAX_BUFFER`] bytes.
    pub guest_to_host_buffer: usize,
    /// Per-flow send buffer (host to guest), [`MIN_BUFFER`] to [`MAX_BUFFER`] bytes.
    pub host_to_guest_buffer: usize,
    /// Frames queued in each direction between the guest and the stack (at least 8); beyond it
    /// frames are dropped and counted, and TCP retransmits.
    pub max_queued_frames: usize,
    /// DHCP lease time, in seconds.
    pub dhcp_lease_secs: u32,
    /// The guest link's MTU ([`MIN_MTU`] to [`MAX_MTU`]): the largest IP packet either side
    /// sends. Frames from the guest longer than it plus the Ethernet header are dropped; the
    /// network card must announce the same value to the guest.
    pub mtu: u16,
    /// Seed for TCP initial sequence numbers; vary it per run where that is possible.
    pub random_seed: u64,
    /// Accept the guest's TCP connections to addresses beyond the router and report them as
    /// outbound flows for the VMM to dial ([`super::Nat::next_outbound`]). When off, such
    /// frames are dropped as [`super::DropReason::OtherDestination`].
    pub outbound: bool,
}

impl Default for NatConfig {
    fn default() -> NatConfig {
        NatConfig {
            router_mac: DEFAULT_ROUTER_MAC,
            router_ip: DEFAULT_ROUTER_IP,
            guest_ip: DEFAULT_GUEST_IP,
            prefix_len: DEFAULT_PREFIX_LEN,
            dhcp: false,
            snoop: false,
            idle_timeout_ms: u64::from(DEFAULT_IDLE_TIMEOUT_SECS) * 1000,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            max_flows: DEFAULT_MAX_FLOWS,
            guest_to_host_buffer: DEFAULT_GUEST_TO_HOST_BUFFER,
            host_to_guest_buffer: DEFAULT_HOST_TO_GUEST_BUFFER,
            max_queued_frames: DEFAULT_MAX_QUEUED_FRAMES,
            dhcp_lease_secs: DEFAULT_DHCP_LEASE_SECS,
            mtu: DEFAULT_MTU,
            random_seed: 0x6e61_7430_0000_0001,
            outbound: true,
        }
    }
}

impl NatConfig {
    /// The defaults with the options file's `dhcp`, `snoop`, `no_outbound` and `nat_timeout`
    /// applied. UDP
    /// forwards are refused here, so the user hears about it before the VM boots. (The TCP
    /// forwards themselves are the caller's: it listens on each host port and calls
    /// [`super::Nat::open_forward`] per accepted connection.)
    pub fn from_options(options: &NatOptions) -> Result<NatConfig, ConfigError> {
        if let Some(f) = options
            .forwards
            .iter()
            .find(|f| f.protocol == Protocol::Udp)
        {
            return Err(ConfigError {
                option: format!("port:udp:{}:{}", f.host_port, f.guest_port),
                message: "the NAT forwards TCP only".into(),
            });
        }
        let secs = match options.timeout_secs {
            0 => DEFAULT_IDLE_TIMEOUT_SECS,
            s => s,
        };
        Ok(NatConfig {
            dhcp: options.dhcp,
            snoop: options.snoop,
            outbound: !options.no_outbound,
            idle_timeout_ms: u64::from(secs) * 1000,
            ..NatConfig::default()
        })
    }

    /// The interval of TCP keep-alives on idle flows: a quarter of the idle timeout, at least 1 s.
    pub fn keep_alive_ms(&self) -> u64 {
        (self.idle_timeout_ms / 4).max(1000)
    }

    /// The largest Ethernet frame on the guest link: the MTU and the Ethernet header.
    pub fn max_frame(&self) -> usize {
        usize::from(self.mtu) + ETHERNET_HEADER_LEN
    }

    /// The guest network's mask, as DHCP hands it out.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// Checks every field; the message names the field and the rule it breaks.
    pub fn validate(&self) -> Result<(), NatError> {
        let bad = |m: &'static str| Err(NatError::BadConfig(m));
        let mac = self.router_mac;
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return bad("router_mac must be a unicast, non-zero MAC");
        }
        if !(1..=30).contains(&self.prefix_len) {
            return bad("prefix_len must be from 1 to 30");
        }
        let mask = u32::from(self.netmask());
        let (r, g) = (u32::from(self.router_ip), u32::from(self.guest_ip));
        let host_bits = |a: u32| a & !mask;
        if r & mask != g & mask {
            return bad("router_ip and guest_ip must be on the same network");
        }
        if r == g
            || [r, g]
                .iter()
                .any(|&a| host_bits(a) == 0 || host_bits(a) == !mask)
        {
            return bad("router_ip and guest_ip must be distinct host addresses");
        }
        if self.idle_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("timeouts must be positive");
        }
        if !(1..=MAX_FLOWS_LIMIT).contains(&self.max_flows) {
            return bad("max_flows must be from 1 to 16384");
        }
        let buffers = MIN_BUFFER..=MAX_BUFFER;
        if !buffers.contains(&self.guest_to_host_buffer)
            || !buffers.contains(&self.host_to_guest_buffer)
        {
            return bad("flow buffers must be from 4 KiB to 16 MiB");
        }
        if self.max_queued_frames < 8 {
            return bad("max_queued_frames must be at least 8");
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return bad("mtu must be from 68 to 65521");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortForward, parse_nat_options};

    #[test]
    fn options_file_sets_dhcp_snoop_and_timeout() {
        let o = parse_nat_options("dhcp\nsnoop\nnat_timeout = 30\nport:tcp:5640:564\n", "f")
            .expect("valid options");
        let c = NatConfig::from_options(&o).expect("tcp forwards are fine");
        assert!(c.dhcp && c.snoop && c.outbound);
        assert_eq!(c.idle_timeout_ms, 30_000);
        let off = parse_nat_options("no_outbound\n", "f").expect("valid options");
        assert!(!NatConfig::from_options(&off).expect("valid").outbound);
        assert_eq!(c.keep_alive_ms(), 7_500);
        c.validate().expect("valid");
        let d = NatConfig::from_options(&NatOptions::default()).expect("empty options");
        assert_eq!(d, NatConfig::default());
        assert_eq!(d.idle_timeout_ms, 200_000);
    }

    #[test]
    fn udp_forwards_are_refused_by_name() {
        let o = NatOptions {
            forwards: alloc::vec![PortForward {
                protocol: Protocol::Udp,
                host_port: 53,
                guest_port: 5353,
            }],
            ..NatOptions::default()
        };
        let e = NatConfig::from_options(&o).expect_err("udp");
        assert_eq!(
            e.to_string(),
            "vmrunkernel: port:udp:53:5353: the NAT forwards TCP only"
        );
    }

    #[test]
    fn validation_limits_at_the_edge() {
        let ok = NatConfig::default();
        assert_eq!(ok.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        type Edit = fn(&mut NatConfig);
        let cases: [(Edit, bool); 20] = [
            (|c| c.mtu = MIN_MTU - 1, false),
            (|c| c.mtu = MIN_MTU, true),
            (|c| c.mtu = MAX_MTU, true),
            (|c| c.mtu = MAX_MTU + 1, false),
            (|c| c.max_flows = 0, false),
            (|c| c.max_flows = 1, true),
            (|c| c.max_flows = MAX_FLOWS_LIMIT, true),
            (|c| c.max_flows = MAX_FLOWS_LIMIT + 1, false),
            (|c| c.guest_to_host_buffer = MIN_BUFFER - 1, false),
            (|c| c.host_to_guest_buffer = MAX_BUFFER, true),
            (|c| c.host_to_guest_buffer = MAX_BUFFER + 1, false),
            (|c| c.max_queued_frames = 7, false),
            (|c| c.idle_timeout_ms = 0, false),
            (|c| c.router_mac = [1, 0, 0, 0, 0, 1], false),
            (|c| c.router_mac = [0; 6], false),
            (|c| c.prefix_len = 31, false),
            (|c| c.guest_ip = Ipv4Addr::new(10, 0, 3, 15), false),
            (|c| c.guest_ip = c.router_ip, false),
            (|c| c.guest_ip = Ipv4Addr::new(10, 0, 2, 255), false),
            (|c| c.prefix_len = 30, false), // 10.0.2.15 is then not beside 10.0.2.2
        ];
        for (i, (edit, valid)) in cases.into_iter().enumerate() {
            let mut c = ok.clone();
            edit(&mut c);
            assert_eq!(c.validate().is_ok(), valid, "case {i}: {c:?}");
        }
    }
}
