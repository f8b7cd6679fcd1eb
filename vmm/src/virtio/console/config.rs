//! The virtio-console configuration space, `struct virtio_console_config` (virtio 1.2 §5.3.4):
//! `cols`, `rows` (VIRTIO_CONSOLE_F_SIZE), `max_nr_ports` (F_MULTIPORT), `emerg_wr`
//! (F_EMERG_WRITE). We offer none of those features, so all fields read as zero.

/// Size of the structure.
pub const LEN: usize = 12;

/// The configuration space.
pub fn encode() -> [u8; LEN] {
    [0; LEN]
}
