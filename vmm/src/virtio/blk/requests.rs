//! virtio-blk request handling (virtio 1.2 §5.2.6): a 16-byte header (`type`, `reserved`,
//! `sector`), the data, and one status byte at the very end of the device-writable part.

use super::backend::{BlockStore, StoreError};
use super::{Block, ID_BYTES, MAX_DISCARD_SEGMENTS, SECTOR_SIZE};
use crate::memory::GuestMemory;
use crate::virtio::DeviceError;
use crate::virtio::queue::DescriptorChain;

/// Read.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Make previous writes durable.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Read the 20-byte device ID.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Discard ranges.
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
/// Success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Failure, including requests outside the disk.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Request type not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

const HEADER: u64 = 16;
const CHUNK: usize = 64 * 1024;

/// Carries out one request; returns the bytes written into the chain (data and status).
pub(super) fn handle<S: BlockStore>(
    dev: &mut Block<S>,
    mem: &impl GuestMemory,
    chain: &DescriptorChain,
) -> Result<u32, DeviceError> {
    let wlen = chain.writable_len();
    if wlen == 0 {
        return Err(DeviceError::Protocol(
            "virtio-blk request without a status byte".into(),
        ));
    }
    let mut hdr = [0u8; HEADER as usize];
    let (status, data) = if chain.read_at(mem, 0, &mut hdr)? < hdr.len() {
        log::warn!(
            "virtio-blk: request header of {} bytes",
            chain.readable_len()
        );
        (VIRTIO_BLK_S_IOERR, 0)
    } else {
        let kind = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or_default());
        execute(dev, mem, chain, kind, sector, wlen - 1)?
    };
    chain.write_at(mem, wlen - 1, &[status])?;
    Ok((data + 1) as u32)
}

/// The byte range `[sector * 512, + len)` if it lies on the disk and `len` is whole sectors.
fn disk_range<S: BlockStore>(dev: &Block<S>, sector: u64, len: u64) -> Option<u64> {
    let start = sector.checked_mul(SECTOR_SIZE)?;
    let end = start.checked_add(len)?;
    (len.is_multiple_of(SECTOR_SIZE) && end <= dev.sectors() * SECTOR_SIZE).then_some(start)
}

fn io_status(r: Result<(), StoreError>) -> u8 {
    match r {
        Ok(()) => VIRTIO_BLK_S_OK,
        Err(StoreError::Unsupported) => VIRTIO_BLK_S_UNSUPP,
        Err(StoreError::Io) => VIRTIO_BLK_S_IOERR,
    }
}

/// Returns the status and how many data bytes went into the chain.
fn execute<S: BlockStore>(
    dev: &mut Block<S>,
    mem: &impl GuestMemory,
    chain: &DescriptorChain,
    kind: u32,
    sector: u64,
    data_room: u64,
) -> Result<(u8, u64), DeviceError> {
    match kind {
        VIRTIO_BLK_T_IN => {
            let Some(start) = disk_range(dev, sector, data_room) else {
                log::info!(
                    "virtio-blk: read of {data_room} bytes at sector {sector} is off the disk"
                );
                return Ok((VIRTIO_BLK_S_IOERR, 0));
            };
            let mut buf = alloc::vec![0u8; CHUNK.min(data_room as usize)];
            let mut done = 0u64;
            while done < data_room {
                let n = ((data_room - done) as usize).min(CHUNK);
                if let Err(e) = dev.store.read_at(start + done, &mut buf[..n]) {
                    return Ok((io_status(Err(e)), done));
                }
                chain.write_at(mem, done, &buf[..n])?;
                done += n as u64;
            }
            Ok((VIRTIO_BLK_S_OK, done))
        }
        VIRTIO_BLK_T_OUT => {
            let len = chain.readable_len() - HEADER;
            if dev.store.read_only() {
                return Ok((VIRTIO_BLK_S_IOERR, 0));
            }
            let Some(start) = disk_range(dev, sector, len) else {
                log::info!("virtio-blk: write of {len} bytes at sector {sector} is off the disk");
                return Ok((VIRTIO_BLK_S_IOERR, 0));
            };
            let mut buf = alloc::vec![0u8; CHUNK.min(len as usize)];
            let mut done = 0u64;
            while done < len {
                let n = ((len - done) as usize).min(CHUNK);
                chain.read_at(mem, HEADER + done, &mut buf[..n])?;
                if let Err(e) = dev.store.write_at(start + done, &buf[..n]) {
                    return Ok((io_status(Err(e)), 0));
                }
                done += n as u64;
            }
            Ok((VIRTIO_BLK_S_OK, 0))
        }
        VIRTIO_BLK_T_FLUSH => Ok((io_status(dev.store.flush()), 0)),
        VIRTIO_BLK_T_GET_ID => {
            let n = chain.write_at(mem, 0, &dev.id[..ID_BYTES.min(data_room as usize)])?;
            Ok((VIRTIO_BLK_S_OK, n as u64))
        }
        VIRTIO_BLK_T_DISCARD if dev.store.supports_discard() => Ok((discard(dev, mem, chain)?, 0)),
        _ => {
            log::info!("virtio-blk: unsupported request type {kind}");
            Ok((VIRTIO_BLK_S_UNSUPP, 0))
        }
    }
}

/// DISCARD: an array of `virtio_blk_discard_write_zeroes` segments (sector, num_sectors, flags).
fn discard<S: BlockStore>(
    dev: &mut Block<S>,
    mem: &impl GuestMemory,
    chain: &DescriptorChain,
) -> Result<u8, DeviceError> {
    let len = chain.readable_len() - HEADER;
    if len == 0 || !len.is_multiple_of(16) || len / 16 > u64::from(MAX_DISCARD_SEGMENTS) {
        return Ok(VIRTIO_BLK_S_IOERR);
    }
    for i in 0..len / 16 {
        let mut seg = [0u8; 16];
        chain.read_at(mem, HEADER + 16 * i, &mut seg)?;
        let sector = u64::from_le_bytes(seg[0..8].try_into().unwrap_or_default());
        let num = u64::from(u32::from_le_bytes(
            seg[8..12].try_into().unwrap_or_default(),
        ));
        let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap_or_default());
        if flags != 0 {
            // The unmap bit is for WRITE_ZEROES only; other bits are reserved (§5.2.6.2).
            return Ok(VIRTIO_BLK_S_UNSUPP);
        }
        let Some(start) = num
            .checked_mul(SECTOR_SIZE)
            .and_then(|l| disk_range(dev, sector, l))
        else {
            return Ok(VIRTIO_BLK_S_IOERR);
        };
        let s = io_status(dev.store.discard(start, num * SECTOR_SIZE));
        if s != VIRTIO_BLK_S_OK {
            return Ok(s);
        }
    }
    Ok(VIRTIO_BLK_S_OK)
}
