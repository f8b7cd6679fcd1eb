use super::*;
use crate::memory::FakeGuestMemory;
use crate::virtio::fake_driver::DriverQueue;

const MEM: u64 = 0x40_0000;

fn setup(size: u16, event_idx: bool) -> (FakeGuestMemory, Queue, DriverQueue) {
    let mem = FakeGuestMemory::with_size(MEM);
    let dq = DriverQueue::new(0, size, 0x1000);
    let mut q = Queue::new(size);
    q.desc_table = dq.desc;
    q.avail_ring = dq.avail;
    q.used_ring = dq.used;
    q.activate(&mem, event_idx).unwrap();
    (mem, q, dq)
}

#[test]
fn chain_of_readable_and_writable_buffers_streams_across_them() {
    let (mem, mut q, mut dq) = setup(8, false);
    mem.write(0x10000, b"hello ").unwrap();
    mem.write(0x20000, b"world").unwrap();
    let head = dq.add(
        &mem,
        &[
            (0x10000, 6, false),
            (0x20000, 5, false),
            (0x30000, 3, true),
            (0x31000, 4, true),
        ],
    );
    let c = q.pop(&mem).unwrap().unwrap();
    assert_eq!(c.head, head);
    assert_eq!((c.readable_len(), c.writable_len()), (11, 7));
    assert_eq!(c.read_all(&mem, 100).unwrap(), b"hello world");
    let mut part = [0u8; 4];
    assert_eq!(c.read_at(&mem, 4, &mut part).unwrap(), 4);
    assert_eq!(&part, b"o wo");
    assert_eq!(c.write_at(&mem, 1, b"ABCDEFGH").unwrap(), 6);
    let mut out = [0u8; 4];
    mem.read(0x31000, &mut out).unwrap();
    assert_eq!(&out, b"CDEF");
    assert_eq!(q.pop(&mem).unwrap(), None);
    q.add_used(&mem, c.head, 7).unwrap();
    assert_eq!(dq.take_used(&mem), [(head, 7)]);
}

#[test]
fn indirect_table_is_followed() {
    let (mem, mut q, mut dq) = setup(4, false);
    dq.add_indirect(
        &mem,
        0x50000,
        &[
            (0x10000, 16, false),
            (0x11000, 512, true),
            (0x12000, 1, true),
        ],
    );
    let c = q.pop(&mem).unwrap().unwrap();
    assert_eq!(
        c.readable,
        [Buffer {
            addr: 0x10000,
            len: 16
        }]
    );
    assert_eq!(c.writable.len(), 2);
}

#[test]
fn zero_length_buffers_are_accepted() {
    let (mem, mut q, mut dq) = setup(4, false);
    dq.add(&mem, &[(0x10000, 0, false), (0, 0, true)]);
    let c = q.pop(&mem).unwrap().unwrap();
    assert_eq!((c.readable_len(), c.writable_len()), (0, 0));
    assert_eq!(c.read_all(&mem, 10).unwrap(), b"");
}

fn bad_chain(size: u16, build: impl FnOnce(&FakeGuestMemory, &DriverQueue)) -> QueueError {
    let (mem, mut q, mut dq) = setup(size, false);
    build(&mem, &dq);
    dq.publish(&mem, 0);
    q.pop(&mem).unwrap_err()
}

#[test]
fn loops_are_caught() {
    let e = bad_chain(8, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x10000, 1, VIRTQ_DESC_F_NEXT, 0)
    });
    assert_eq!(e, QueueError::ChainTooLong);
    let e = bad_chain(8, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x10000, 1, VIRTQ_DESC_F_NEXT, 1);
        DriverQueue::write_desc(m, dq.desc, 1, 0x10000, 1, VIRTQ_DESC_F_NEXT, 0);
    });
    assert_eq!(e, QueueError::ChainTooLong);
    // A loop inside an indirect table.
    let e = bad_chain(8, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x50000, 32, VIRTQ_DESC_F_INDIRECT, 0);
        DriverQueue::write_desc(m, 0x50000, 0, 0x10000, 1, VIRTQ_DESC_F_NEXT, 1);
        DriverQueue::write_desc(m, 0x50000, 1, 0x10000, 1, VIRTQ_DESC_F_NEXT, 0);
    });
    assert_eq!(e, QueueError::ChainTooLong);
}

#[test]
fn chain_as_long_as_the_queue_is_fine_and_one_more_is_not() {
    let (mem, q, _) = setup(4, false);
    for i in 0..4u16 {
        let flags = if i < 3 { VIRTQ_DESC_F_NEXT } else { 0 };
        DriverQueue::write_desc(&mem, q.desc_table, i, 0x10000, 8, flags, i + 1);
    }
    assert_eq!(q.walk(&mem, 0).unwrap().readable.len(), 4);
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x50000, 16 * 5, VIRTQ_DESC_F_INDIRECT, 0);
        for i in 0..5u16 {
            DriverQueue::write_desc(
                m,
                0x50000,
                i,
                0x10000,
                8,
                if i < 4 { VIRTQ_DESC_F_NEXT } else { 0 },
                i + 1,
            );
        }
    });
    assert_eq!(e, QueueError::ChainTooLong);
}

#[test]
fn out_of_range_indices_and_buffers_are_caught() {
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x10000, 1, VIRTQ_DESC_F_NEXT, 4)
    });
    assert_eq!(e, QueueError::DescriptorOutOfRange(4));
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, MEM - 4, 8, 0, 0)
    });
    assert_eq!(
        e,
        QueueError::Memory(MemoryError {
            addr: MEM - 4,
            len: 8
        })
    );
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, u64::MAX, 2, 0, 0)
    });
    assert!(matches!(e, QueueError::Memory(_)));
    let (mem, mut q, mut dq) = setup(4, false);
    dq.publish(&mem, 9);
    assert_eq!(q.pop(&mem), Err(QueueError::DescriptorOutOfRange(9)));
}

#[test]
fn indirect_misuse_is_caught() {
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x50000, 16, VIRTQ_DESC_F_INDIRECT, 0);
        DriverQueue::write_desc(m, 0x50000, 0, 0x60000, 16, VIRTQ_DESC_F_INDIRECT, 0);
    });
    assert_eq!(e, QueueError::NestedIndirect);
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(
            m,
            dq.desc,
            0,
            0x50000,
            16,
            VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT,
            1,
        )
    });
    assert_eq!(e, QueueError::IndirectWithNext);
    for len in [0, 15, 17] {
        let e = bad_chain(4, |m, dq| {
            DriverQueue::write_desc(m, dq.desc, 0, 0x50000, len, VIRTQ_DESC_F_INDIRECT, 0)
        });
        assert_eq!(e, QueueError::BadIndirectLength(len));
    }
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, 0x50008, 16, VIRTQ_DESC_F_INDIRECT, 0)
    });
    assert!(matches!(e, QueueError::Misaligned { .. }));
    let e = bad_chain(4, |m, dq| {
        DriverQueue::write_desc(m, dq.desc, 0, MEM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0)
    });
    assert!(matches!(e, QueueError::Memory(_)));
}

#[test]
fn readable_after_writable_is_caught() {
    let (mem, mut q, mut dq) = setup(4, false);
    dq.add(&mem, &[(0x10000, 4, true), (0x11000, 4, false)]);
    assert_eq!(q.pop(&mem), Err(QueueError::ReadableAfterWritable));
}

#[test]
fn avail_index_running_too_far_ahead_is_caught() {
    let (mem, mut q, mut dq) = setup(4, false);
    dq.set_avail_idx(&mem, 5);
    assert_eq!(
        q.pop(&mem),
        Err(QueueError::AvailIndexTooFar {
            avail_idx: 5,
            next: 0
        })
    );
}

#[test]
fn activation_checks_size_alignment_and_range() {
    let mem = FakeGuestMemory::with_size(MEM);
    let mut q = Queue::new(256);
    q.desc_table = 0x1000;
    q.avail_ring = 0x2000;
    q.used_ring = 0x3000;
    for bad in [0, 3, 512] {
        q.size = bad;
        assert_eq!(q.activate(&mem, false), Err(QueueError::BadSize(bad)));
    }
    q.size = 256;
    q.desc_table = 0x1008;
    assert!(matches!(
        q.activate(&mem, false),
        Err(QueueError::Misaligned { .. })
    ));
    q.desc_table = 0x1000;
    q.used_ring = 0x3002;
    assert!(matches!(
        q.activate(&mem, false),
        Err(QueueError::Misaligned { .. })
    ));
    q.used_ring = MEM - 8;
    assert!(matches!(
        q.activate(&mem, false),
        Err(QueueError::Memory(_))
    ));
    q.used_ring = 0x3000;
    assert!(q.activate(&mem, false).is_ok());
}

#[test]
fn no_interrupt_flag_suppresses_interrupts_without_event_idx() {
    let (mem, mut q, mut dq) = setup(4, false);
    dq.add(&mem, &[(0x10000, 4, true)]);
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 0).unwrap();
    assert!(q.needs_interrupt(&mem).unwrap());
    assert!(
        !q.needs_interrupt(&mem).unwrap(),
        "nothing new since the last interrupt"
    );
    dq.set_avail_flags(&mem, VIRTQ_AVAIL_F_NO_INTERRUPT);
    dq.take_used(&mem);
    dq.add(&mem, &[(0x10000, 4, true)]);
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 0).unwrap();
    assert!(!q.needs_interrupt(&mem).unwrap());
}

#[test]
fn event_idx_interrupts_only_when_used_event_is_passed() {
    let (mem, mut q, mut dq) = setup(8, true);
    dq.set_used_event(&mem, 0);
    for _ in 0..3 {
        dq.add(&mem, &[(0x10000, 4, true)]);
    }
    // First completion: used idx goes 0 -> 1, passing used_event 0.
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 0).unwrap();
    assert!(q.needs_interrupt(&mem).unwrap());
    // The driver wants to hear only after the third: used_event = 2.
    dq.set_used_event(&mem, 2);
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 0).unwrap();
    assert!(!q.needs_interrupt(&mem).unwrap());
    let c = q.pop(&mem).unwrap().unwrap();
    q.add_used(&mem, c.head, 0).unwrap();
    assert!(q.needs_interrupt(&mem).unwrap());
    // With the ring drained, the device asks for a kick at the next buffer.
    assert_eq!(q.pop(&mem).unwrap(), None);
    assert_eq!(dq.avail_event(&mem), 3);
}

#[test]
fn indices_wrap_around() {
    let (mem, mut q, mut dq) = setup(2, false);
    for i in 0..70000u32 {
        dq.add(&mem, &[(0x10000, 4, true)]);
        let c = q.pop(&mem).unwrap().unwrap();
        q.add_used(&mem, c.head, i).unwrap();
        assert_eq!(dq.take_used(&mem).len(), 1);
    }
    assert_eq!(q.next_used(), (70000u32 % 65536) as u16);
}
