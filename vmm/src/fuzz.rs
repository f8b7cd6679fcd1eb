//! Fuzz targets that run on stable inside `cargo test`, each for a bounded number of cases
//! (DESIGN.md section 6: every parser a guest can drive). Inputs come from a seeded xorshift
//! generator, so a failure is reproducible from the printed case number. Each target asserts
//! "an error value, never a panic, never an access outside guest memory": the fake memory
//! itself refuses out-of-range accesses, so a buffer outside RAM that slipped through the
//! walker would show up as an error from a device, and the checks below look for it directly.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::bus::MmioDevice;
use crate::irq::FakeIrqLine;
use crate::layout::{GuestLayout, MIB};
use crate::linux::test_images::{bzimage, initramfs, vmlinux};
use crate::memory::{FakeGuestMemory, GuestMemory};
use crate::virtio::blk::Block;
use crate::virtio::blk::backend::MemStore;
use crate::virtio::fake_driver::{ARENA, FakeDriver};
use crate::virtio::mmio::{MmioTransport, reg};
use crate::virtio::queue::Queue;

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Mostly small or boundary values, sometimes anything.
    fn interesting(&mut self, max: u64) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => max,
            2 => max.wrapping_add(1),
            3 => self.next(),
            _ => self.below(max.saturating_add(1)),
        }
    }
}

const MEM: u64 = 0x2_0000;

#[test]
fn fuzz_virtqueue_walker() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..50_000u32 {
        let mem = FakeGuestMemory::with_size(MEM);
        // Random bytes over the ring area and an indirect area; structured values half the time.
        let size = 1u16 << rng.below(5);
        let mut q = Queue::new(16);
        q.size = size;
        q.desc_table = 0x1000;
        q.avail_ring = 0x2000;
        q.used_ring = 0x3000;
        q.activate(&mem, rng.below(2) == 0).unwrap();
        for i in 0..u64::from(size) {
            let d = 0x1000 + 16 * i;
            mem.write_u64(d, rng.interesting(MEM)).unwrap();
            mem.write_u32(d + 8, rng.interesting(0x400) as u32).unwrap();
            mem.write_u16(d + 12, rng.below(8) as u16).unwrap();
            mem.write_u16(d + 14, rng.interesting(u64::from(size)) as u16)
                .unwrap();
        }
        for i in 0..64u64 {
            mem.write_u64(0x8000 + 8 * i, rng.next()).unwrap();
        }
        for i in 0..u64::from(size) {
            mem.write_u16(0x2004 + 2 * i, rng.interesting(u64::from(size)) as u16)
                .unwrap();
        }
        mem.write_u16(0x2002, rng.interesting(u64::from(size)) as u16)
            .unwrap();
        for _ in 0..4 {
            match q.pop(&mem) {
                Ok(Some(c)) => {
                    for b in c.readable.iter().chain(&c.writable) {
                        assert!(
                            mem.check_range(b.addr, u64::from(b.len)).is_ok(),
                            "case {case}: buffer outside RAM"
                        );
                    }
                    assert!(
                        c.readable.len() + c.writable.len() <= usize::from(size),
                        "case {case}"
                    );
                    q.add_used(&mem, c.head, rng.below(0x1000) as u32).unwrap();
                    let _ = q.needs_interrupt(&mem);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn fuzz_mmio_register_file() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let offsets = [
        reg::STATUS,
        reg::QUEUE_SEL,
        reg::QUEUE_NUM,
        reg::QUEUE_READY,
        reg::QUEUE_NOTIFY,
        reg::QUEUE_DESC_LOW,
        reg::QUEUE_DRIVER_LOW,
        reg::QUEUE_DEVICE_LOW,
        reg::DRIVER_FEATURES,
        reg::DRIVER_FEATURES_SEL,
        reg::INTERRUPT_ACK,
        reg::CONFIG,
    ];
    for _case in 0..1000u32 {
        let mem = Arc::new(FakeGuestMemory::with_size(2 * MIB));
        let mut t = MmioTransport::new(
            Block::new(MemStore::new(8192), "fuzz"),
            mem.clone(),
            Arc::new(FakeIrqLine::default()),
        );
        if rng.below(2) == 0 {
            // Start from a live device half the time, so kicks reach the queue walker.
            let mut d = FakeDriver::new(mem.clone());
            d.bring_up(
                &mut t,
                crate::virtio::device_id::BLOCK,
                u64::MAX,
                1,
                1 << rng.below(8),
            );
        }
        for i in 0..0x800u64 {
            if rng.below(2) == 0 {
                mem.write_u64(ARENA + 8 * i, rng.next() & 0x0000_0000_001f_ffff)
                    .unwrap();
            }
        }
        for _ in 0..200 {
            let off = if rng.below(8) == 0 {
                rng.below(0x200)
            } else {
                offsets[rng.below(offsets.len() as u64) as usize]
            };
            let size =
                [1u8, 2, 4, 8][rng.below(4) as usize].max(if rng.below(4) == 0 { 1 } else { 4 });
            let value = match off {
                reg::STATUS => rng.below(256),
                reg::QUEUE_DESC_LOW | reg::QUEUE_DRIVER_LOW | reg::QUEUE_DEVICE_LOW => {
                    ARENA + rng.below(0x400) * 16
                }
                reg::QUEUE_NOTIFY => rng.below(2),
                reg::QUEUE_NUM => 1 << rng.below(9),
                _ => rng.interesting(16),
            };
            if rng.below(3) == 0 {
                t.read(off, size);
            } else {
                t.write(off, size, value);
            }
        }
    }
}

fn mutate(rng: &mut Rng, image: &mut Vec<u8>, hot: &[usize]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !image.is_empty() => {
                let i = rng.below(image.len() as u64) as usize;
                image[i] = rng.next() as u8;
            }
            1 => {
                // A header field: the places a loader reads.
                let at = hot[rng.below(hot.len() as u64) as usize];
                if at + 8 <= image.len() {
                    let v = rng.interesting(u64::from(u32::MAX));
                    let w = [1usize, 2, 4, 8][rng.below(4) as usize];
                    image[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
                }
            }
            2 => image.truncate(rng.below(image.len() as u64 + 1) as usize),
            _ => {}
        }
    }
}

#[test]
fn fuzz_kernel_loaders() {
    let layout = GuestLayout::new(32 * MIB).unwrap();
    let mem = FakeGuestMemory::new(&layout.ram_regions());
    let elf = vmlinux(&[0x90; 0x400], 0x1000);
    let bz = bzimage(&[0x90; 0x400], 0x2000);
    let elf_hot: Vec<usize> = (0..0x100)
        .step_by(4)
        .chain([crate::linux::test_images::vmlinux_note_desc_offset(&elf)])
        .collect();
    let bz_hot: Vec<usize> = (0x1f0..0x270).collect();
    let initrd = initramfs();
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut loaded = 0;
    for _case in 0..5000u32 {
        let (mut image, hot) = if rng.below(2) == 0 {
            (elf.clone(), &elf_hot)
        } else {
            (bz.clone(), &bz_hot)
        };
        mutate(&mut rng, &mut image, hot);
        let mut rd = initrd.clone();
        if rng.below(4) == 0 {
            mutate(&mut rng, &mut rd, &[0, 6, 54, 94, 110]);
        }
        if let Ok(k) = crate::linux::load(&mem, &layout, &image, Some(&rd), "console=hvc0") {
            loaded += 1;
            assert!(k.kernel.0 >= MIB && k.kernel.1 <= layout.low_ram_end());
            let (a, l) = k.initrd.unwrap();
            assert!(a >= k.kernel.1 && a + l <= layout.low_ram_end());
        }
    }
    assert!(
        loaded > 100,
        "the mutations should leave many images loadable ({loaded})"
    );
}

#[test]
fn fuzz_config_parsers() {
    let mut rng = Rng(42);
    let alphabet = b"port:tcpudp0123456789 =#\nnat_timeoutdhcpsnoop-x\xff";
    for _ in 0..5000 {
        let len = rng.below(60) as usize;
        let s: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let s = alloc::string::String::from_utf8_lossy(&s);
        let _ = crate::config::parse_nat_options(&s, "fuzz");
        let _ = crate::config::parse_size(&s);
        let _ = crate::config::parse_mac(&s);
    }
}
