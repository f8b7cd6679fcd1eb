use super::backend::MemStore;
use super::*;
use crate::bus::MmioDevice;
use crate::irq::FakeIrqLine;
use crate::memory::FakeGuestMemory;
use crate::virtio::fake_driver::FakeDriver;
use crate::virtio::mmio::MmioTransport;
use crate::virtio::status::DEVICE_NEEDS_RESET;
use alloc::sync::Arc;
use alloc::vec::Vec;

type T = MmioTransport<Block<MemStore>, Arc<FakeGuestMemory>, Arc<FakeIrqLine>>;

const LINUX_FEATURES: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_F_INDIRECT_DESC
    | VIRTIO_F_EVENT_IDX
    | VIRTIO_BLK_F_SEG_MAX
    | VIRTIO_BLK_F_BLK_SIZE
    | VIRTIO_BLK_F_FLUSH
    | VIRTIO_BLK_F_RO
    | VIRTIO_BLK_F_DISCARD;

fn disk(store: MemStore) -> (T, FakeDriver) {
    let mem = Arc::new(FakeGuestMemory::with_size(0x80_0000));
    let t = MmioTransport::new(
        Block::new(store, "tern-disk-0"),
        mem.clone(),
        Arc::new(FakeIrqLine::default()),
    );
    let mut d = FakeDriver::new(mem);
    let mut t = t;
    d.bring_up(&mut t, device_id::BLOCK, LINUX_FEATURES, 1, 128);
    (t, d)
}

/// Sends one request the way Linux's virtio_blk does (header, data segments, status), directly
/// or through an indirect table; returns (status, used length).
fn request(
    t: &mut T,
    d: &mut FakeDriver,
    kind: u32,
    sector: u64,
    data: &[(u64, u32, bool)],
    indirect: bool,
) -> (u8, u32) {
    let hdr = d.alloc(16);
    let st = d.alloc(1);
    let mem = d.mem.clone();
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write(hdr, &h).unwrap();
    mem.write(st, &[0xee]).unwrap();
    let mut bufs = alloc::vec![(hdr, 16, false)];
    bufs.extend_from_slice(data);
    bufs.push((st, 1, true));
    if indirect {
        let table = d.alloc(16 * bufs.len() as u64);
        d.queues[0].add_indirect(&*mem, table, &bufs);
    } else {
        d.queues[0].add(&*mem, &bufs);
    }
    d.notify(t, 0);
    assert!(d.vring_interrupt(t));
    let used = d.queues[0].take_used(&*mem);
    assert_eq!(used.len(), 1);
    let mut s = [0u8];
    mem.read(st, &mut s).unwrap();
    (s[0], used[0].1)
}

#[test]
fn config_space_reports_capacity_and_limits() {
    let (mut t, d) = disk(MemStore::new(1 << 20));
    assert_eq!(d.config(&mut t, 0, 8), (2048u64).to_le_bytes());
    assert_eq!(d.config(&mut t, 12, 4), 254u32.to_le_bytes());
    assert_eq!(d.config(&mut t, 20, 4), 512u32.to_le_bytes());
    assert_eq!(
        d.features & VIRTIO_BLK_F_DISCARD,
        0,
        "not offered by a store without discard"
    );
    assert_eq!(t.read(0x100 + 0x800, 4), 0, "past the end reads zero");
}

#[test]
fn write_then_read_back_across_many_segments() {
    for indirect in [false, true] {
        let (mut t, mut d) = disk(MemStore::new(1 << 20));
        let mem = d.mem.clone();
        // Eight 512-byte segments scattered in guest memory.
        let segs: Vec<u64> = (0..8).map(|_| d.alloc(512)).collect();
        for (i, &a) in segs.iter().enumerate() {
            mem.write(a, &[i as u8 + 1; 512]).unwrap();
        }
        let out: Vec<_> = segs.iter().map(|&a| (a, 512, false)).collect();
        assert_eq!(
            request(&mut t, &mut d, VIRTIO_BLK_T_OUT, 10, &out, indirect),
            (VIRTIO_BLK_S_OK, 1)
        );
        assert_eq!(t.device().store().data[10 * 512 + 3 * 512], 4);
        let back = d.alloc(4096);
        let (s, len) = request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_IN,
            10,
            &[(back, 1024, true), (back + 2048, 2048, true)],
            indirect,
        );
        assert_eq!((s, len), (VIRTIO_BLK_S_OK, 3073));
        let mut b = [0u8; 4];
        mem.read(back + 1023, &mut b[..1]).unwrap();
        mem.read(back + 2048 + 2047, &mut b[1..2]).unwrap();
        assert_eq!(&b[..2], &[2, 6]);
    }
}

#[test]
fn flush_reaches_the_store() {
    let (mut t, mut d) = disk(MemStore::new(1 << 16));
    let a = d.alloc(512);
    request(
        &mut t,
        &mut d,
        VIRTIO_BLK_T_OUT,
        0,
        &[(a, 512, false)],
        false,
    );
    assert_eq!(t.device().store().unflushed_writes, 1);
    assert_eq!(
        request(&mut t, &mut d, VIRTIO_BLK_T_FLUSH, 0, &[], false),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert_eq!(
        (
            t.device().store().flushes,
            t.device().store().unflushed_writes
        ),
        (1, 0)
    );
}

#[test]
fn get_id_and_unsupported_requests() {
    let (mut t, mut d) = disk(MemStore::new(1 << 16));
    let a = d.alloc(20);
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_GET_ID,
            0,
            &[(a, 20, true)],
            false
        ),
        (VIRTIO_BLK_S_OK, 21)
    );
    let mut id = [0u8; 20];
    d.mem.read(a, &mut id).unwrap();
    assert_eq!(&id[..11], b"tern-disk-0");
    for kind in [VIRTIO_BLK_T_DISCARD, 13, 14, 99, u32::MAX] {
        assert_eq!(
            request(&mut t, &mut d, kind, 0, &[], false).0,
            VIRTIO_BLK_S_UNSUPP,
            "type {kind}"
        );
    }
    assert_eq!(t.status() & DEVICE_NEEDS_RESET, 0);
}

#[test]
fn requests_off_the_disk_or_of_partial_sectors_fail_cleanly() {
    let (mut t, mut d) = disk(MemStore::new(1 << 16)); // 128 sectors
    let a = d.alloc(1024);
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_IN,
            127,
            &[(a, 1024, true)],
            false
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_OUT,
            128,
            &[(a, 512, false)],
            false
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_IN,
            u64::MAX / 2,
            &[(a, 512, true)],
            false
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        request(&mut t, &mut d, VIRTIO_BLK_T_IN, 0, &[(a, 100, true)], false).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_IN,
            127,
            &[(a, 512, true)],
            false
        )
        .0,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(t.violations(), 0);
}

#[test]
fn read_only_and_failing_stores() {
    let (mut t, mut d) = disk(MemStore {
        read_only: true,
        ..MemStore::new(4096)
    });
    assert_ne!(d.features & VIRTIO_BLK_F_RO, 0);
    let a = d.alloc(512);
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_OUT,
            0,
            &[(a, 512, false)],
            false
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    t.device_mut().store_mut().failing = true;
    assert_eq!(
        request(&mut t, &mut d, VIRTIO_BLK_T_IN, 0, &[(a, 512, true)], false).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        request(&mut t, &mut d, VIRTIO_BLK_T_FLUSH, 0, &[], false).0,
        VIRTIO_BLK_S_IOERR
    );
}

#[test]
fn discard_when_the_store_supports_it() {
    let mut store = MemStore {
        discard: true,
        ..MemStore::new(8192)
    };
    store.data.fill(0xaa);
    let (mut t, mut d) = disk(store);
    assert_ne!(d.features & VIRTIO_BLK_F_DISCARD, 0);
    let seg = d.alloc(32);
    let mut s = [0u8; 32];
    s[0..8].copy_from_slice(&2u64.to_le_bytes());
    s[8..12].copy_from_slice(&3u32.to_le_bytes());
    s[16..24].copy_from_slice(&15u64.to_le_bytes());
    s[24..28].copy_from_slice(&1u32.to_le_bytes());
    d.mem.write(seg, &s).unwrap();
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_DISCARD,
            0,
            &[(seg, 32, false)],
            false
        )
        .0,
        VIRTIO_BLK_S_OK
    );
    let data = &t.device().store().data;
    assert_eq!(
        (data[1023], data[1024], data[5 * 512 - 1], data[5 * 512]),
        (0xaa, 0, 0, 0xaa)
    );
    // A segment running off the disk, and a malformed segment array.
    s[16..24].copy_from_slice(&16u64.to_le_bytes());
    d.mem.write(seg, &s).unwrap();
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_DISCARD,
            0,
            &[(seg, 32, false)],
            false
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        request(
            &mut t,
            &mut d,
            VIRTIO_BLK_T_DISCARD,
            0,
            &[(seg, 20, false)],
            false
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
}

#[test]
fn malformed_requests() {
    let (mut t, mut d) = disk(MemStore::new(4096));
    let mem = d.mem.clone();
    // A short header still gets a status.
    let (h, st) = (d.alloc(8), d.alloc(1));
    d.queues[0].add(&*mem, &[(h, 8, false), (st, 1, true)]);
    d.notify(&mut t, 0);
    let mut s = [9u8];
    mem.read(st, &mut s).unwrap();
    assert_eq!(s[0], VIRTIO_BLK_S_IOERR);
    // A request with no writable byte at all cannot be answered: the device needs a reset.
    d.queues[0].add(&*mem, &[(h, 16, false)]);
    d.notify(&mut t, 0);
    assert_ne!(t.status() & DEVICE_NEEDS_RESET, 0);
    // And the driver can reset and use the disk again.
    d.remove(&mut t);
    d.bring_up(&mut t, device_id::BLOCK, LINUX_FEATURES, 1, 128);
    assert_eq!(
        request(&mut t, &mut d, VIRTIO_BLK_T_FLUSH, 0, &[], false).0,
        VIRTIO_BLK_S_OK
    );
}

#[test]
fn a_large_request_is_chunked() {
    let (mut t, mut d) = disk(MemStore::new(1 << 20));
    for (i, b) in t.device_mut().store_mut().data.iter_mut().enumerate() {
        *b = (i / 512) as u8;
    }
    let a = d.alloc(300 * 1024);
    let (s, len) = request(
        &mut t,
        &mut d,
        VIRTIO_BLK_T_IN,
        0,
        &[(a, 300 * 1024, true)],
        false,
    );
    assert_eq!((s, len), (VIRTIO_BLK_S_OK, 300 * 1024 + 1));
    let mut b = [0u8];
    d.mem.read(a + 299 * 1024, &mut b).unwrap();
    assert_eq!(b[0], (299 * 2) as u8);
}
