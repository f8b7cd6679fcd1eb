//! The virtio-blk configuration space, `struct virtio_blk_config` (virtio 1.2 §5.2.4).

/// Offset of `capacity` (le64, in 512-byte sectors).
pub const CAPACITY: usize = 0;
/// Offset of `seg_max` (le32; valid with VIRTIO_BLK_F_SEG_MAX).
pub const SEG_MAX: usize = 12;
/// Offset of `blk_size` (le32; valid with VIRTIO_BLK_F_BLK_SIZE).
pub const BLK_SIZE: usize = 20;
/// Offset of `max_discard_sectors` (le32; valid with VIRTIO_BLK_F_DISCARD).
pub const MAX_DISCARD_SECTORS: usize = 36;
/// Offset of `max_discard_seg` (le32).
pub const MAX_DISCARD_SEG: usize = 40;
/// Offset of `discard_sector_alignment` (le32).
pub const DISCARD_SECTOR_ALIGNMENT: usize = 44;
/// Size of the structure up to the discard fields we fill.
pub const LEN: usize = 60;

/// The configuration space of a disk of `sectors`, with `seg_max` and discard limits.
pub fn encode(sectors: u64, seg_max: u32, discard: bool) -> [u8; LEN] {
    let mut c = [0u8; LEN];
    crate::wire::put_u64(&mut c, CAPACITY, sectors);
    crate::wire::put_u32(&mut c, SEG_MAX, seg_max);
    crate::wire::put_u32(&mut c, BLK_SIZE, 512);
    if discard {
        crate::wire::put_u32(&mut c, MAX_DISCARD_SECTORS, u32::MAX >> 9);
        crate::wire::put_u32(&mut c, MAX_DISCARD_SEG, super::MAX_DISCARD_SEGMENTS);
        crate::wire::put_u32(&mut c, DISCARD_SECTOR_ALIGNMENT, 1);
    }
    c
}
