//! The virtio-net configuration space, `struct virtio_net_config` (virtio 1.2 §5.1.4): `mac`
//! (VIRTIO_NET_F_MAC), `status` (VIRTIO_NET_F_STATUS), `max_virtqueue_pairs` (F_MQ, not
//! offered, reads 1) and `mtu` (VIRTIO_NET_F_MTU, when the card has one).

/// Offset of `mac`.
pub const MAC: usize = 0;
/// Offset of `status`.
pub const STATUS: usize = 6;
/// Offset of `max_virtqueue_pairs`.
pub const MAX_VIRTQUEUE_PAIRS: usize = 8;
/// Offset of `mtu`.
pub const MTU: usize = 10;
/// Size of the structure up to and including `mtu`.
pub const LEN: usize = 12;
/// `status`: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// The configuration space of a card with `mac` and `mtu` (0 when not offered) whose link is up.
pub fn encode(mac: [u8; 6], mtu: u16) -> [u8; LEN] {
    let mut c = [0u8; LEN];
    crate::wire::put(&mut c, MAC, &mac);
    crate::wire::put_u16(&mut c, STATUS, VIRTIO_NET_S_LINK_UP);
    crate::wire::put_u16(&mut c, MAX_VIRTQUEUE_PAIRS, 1);
    crate::wire::put_u16(&mut c, MTU, mtu);
    c
}
