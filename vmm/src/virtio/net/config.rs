//! The virtio-net configuration space, `struct virtio_net_config` (virtio 1.2 §5.1.4): `mac`
//! (VIRTIO_NET_F_MAC), `status` (VIRTIO_NET_F_STATUS), `max_virtqueue_pairs` (F_MQ, not
//! offered, reads 1) and `mtu` (F_MTU, not offered).

/// Offset of `mac`.
pub const MAC: usize = 0;
/// Offset of `status`.
pub const STATUS: usize = 6;
/// Offset of `max_virtqueue_pairs`.
pub const MAX_VIRTQUEUE_PAIRS: usize = 8;
/// Size of the structure up to `mtu`.
pub const LEN: usize = 12;
/// `status`: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// The configuration space of a card with `mac` whose link is up.
pub fn encode(mac: [u8; 6]) -> [u8; LEN] {
    let mut c = [0u8; LEN];
    crate::wire::put(&mut c, MAC, &mac);
    crate::wire::put_u16(&mut c, STATUS, VIRTIO_NET_S_LINK_UP);
    crate::wire::put_u16(&mut c, MAX_VIRTQUEUE_PAIRS, 1);
    c
}
