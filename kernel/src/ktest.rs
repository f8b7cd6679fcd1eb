//! In-kernel tests, run at boot when the command line says `ktest`. Each prints one line; the
//! run ends with a summary and, under the harness, an `isa-debug-exit` code (33 = all passed).

use crate::console::println;
use crate::mm::{PAGE_SIZE, frame, heap, kstack::KernelStack, paging};
use alloc::string::String;
use alloc::vec::Vec;

type TestResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($msg)*));
        }
    };
}

/// A named test.
type Test = (&'static str, fn() -> TestResult);

const TESTS: &[Test] = &[
    ("frame_alloc_free_reuses", frame_alloc_free_reuses),
    ("frame_contiguous_aligned", frame_contiguous_aligned),
    ("frame_distinct", frame_distinct),
    ("paging_map_translate_unmap", paging_map_translate_unmap),
    ("paging_direct_map_covers_ram", paging_direct_map_covers_ram),
    ("heap_grows_and_shrinks_use", heap_grows_and_shrinks_use),
    ("heap_many_small", heap_many_small),
    ("kstack_guard_unmapped", kstack_guard_unmapped),
    ("timer_ticks_advance", timer_ticks_advance),
    ("tsc_monotonic", tsc_monotonic),
    ("virt_lapic", crate::virt::selftest::lapic),
    ("virt_ioapic", crate::virt::selftest::ioapic),
    ("virt_mmio_decoder", crate::virt::selftest::mmio_decoder),
    ("virt_cpuid_view", crate::virt::selftest::cpuid_view),
];

/// Runs every test and reports.
pub fn run_all() {
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        match test() {
            Ok(()) => {
                passed += 1;
                println!("ktest {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("ktest {name} ... FAILED: {e}");
            }
        }
    }
    println!("ktest: {passed} passed, {failed} failed");
    crate::power::debug_exit(if failed == 0 {
        crate::power::EXIT_SUCCESS
    } else {
        crate::power::EXIT_FAILURE
    });
}

fn frame_alloc_free_reuses() -> TestResult {
    let before = frame::free_bytes();
    let f = frame::alloc().ok_or("out of frames")?;
    ensure!(
        f.addr() % PAGE_SIZE == 0,
        "frame {:#x} not page aligned",
        f.addr()
    );
    ensure!(
        f.addr() >= 1 << 20,
        "frame {:#x} in the first MiB",
        f.addr()
    );
    ensure!(
        frame::free_bytes() == before - PAGE_SIZE,
        "free count did not drop by a page"
    );
    frame::free(f);
    ensure!(frame::free_bytes() == before, "free count not restored");
    Ok(())
}

fn frame_contiguous_aligned() -> TestResult {
    let f = frame::alloc_contiguous(16, 64 * 1024).ok_or("no 64 KiB-aligned run of 16 frames")?;
    ensure!(
        f.addr() % (64 * 1024) == 0,
        "{:#x} not 64 KiB aligned",
        f.addr()
    );
    for i in 0..16 {
        let p = crate::mm::PhysAddr(f.addr() + i * PAGE_SIZE);
        // SAFETY: The run was just allocated to this test.
        unsafe { core::ptr::write_volatile(p.to_virt().cast::<u64>(), i) };
    }
    for i in 0..16 {
        let v: u64 = crate::mm::phys_read(crate::mm::PhysAddr(f.addr() + i * PAGE_SIZE));
        ensure!(v == i, "frame {i} of the run reads {v}");
    }
    frame::free_contiguous(f, 16);
    Ok(())
}

fn frame_distinct() -> TestResult {
    let frames: Vec<_> = (0..256).filter_map(|_| frame::alloc()).collect();
    ensure!(frames.len() == 256, "only {} frames", frames.len());
    let mut addrs: Vec<u64> = frames.iter().map(|f| f.addr()).collect();
    addrs.sort_unstable();
    addrs.dedup();
    ensure!(addrs.len() == 256, "a frame was handed out twice");
    frames.into_iter().for_each(frame::free);
    Ok(())
}

fn paging_map_translate_unmap() -> TestResult {
    // A page in the heap region far above anything the heap will reach during the tests.
    let virt = heap::HEAP_BASE + heap::HEAP_MAX - PAGE_SIZE;
    let f = frame::alloc_zeroed().ok_or("out of frames")?;
    paging::map_kernel_page(virt, f, true)?;
    ensure!(
        paging::translate(virt + 8) == Some(f.addr() + 8),
        "translate mismatch"
    );
    // SAFETY: The page was just mapped writable to this test.
    unsafe { core::ptr::write_volatile((virt + 8) as *mut u64, 0x1234_5678) };
    let through_direct_map: u64 = crate::mm::phys_read(crate::mm::PhysAddr(f.addr() + 8));
    ensure!(
        through_direct_map == 0x1234_5678,
        "the two mappings disagree"
    );
    ensure!(
        paging::map_kernel_page(virt, f, true).is_err(),
        "mapped the same page twice"
    );
    let back = paging::unmap_kernel_page(virt).ok_or("unmap failed")?;
    ensure!(back == f, "unmap returned another frame");
    ensure!(
        paging::translate(virt).is_none(),
        "page still mapped after unmap"
    );
    frame::free(f);
    Ok(())
}

fn paging_direct_map_covers_ram() -> TestResult {
    let top = frame::top_of_ram();
    for phys in [0x1000, 1 << 20, top - PAGE_SIZE] {
        let virt = crate::mm::PhysAddr(phys).to_virt() as u64;
        ensure!(
            paging::translate(virt) == Some(phys),
            "direct map misses {phys:#x}"
        );
    }
    Ok(())
}

fn heap_grows_and_shrinks_use() -> TestResult {
    let (mapped_before, used_before) = heap::usage();
    let big: Vec<u8> = alloc::vec![0xa5; 4 << 20];
    ensure!(big.iter().all(|&b| b == 0xa5), "heap memory corrupted");
    let (mapped, used) = heap::usage();
    ensure!(
        mapped >= mapped_before.max(4 << 20),
        "heap did not grow: {mapped} bytes mapped"
    );
    ensure!(used >= used_before + (4 << 20), "usage not counted");
    drop(big);
    ensure!(
        heap::usage().1 <= used_before,
        "memory not returned to the heap"
    );
    Ok(())
}

fn heap_many_small() -> TestResult {
    let boxes: Vec<alloc::boxed::Box<u64>> = (0..10_000).map(alloc::boxed::Box::new).collect();
    ensure!(
        boxes.iter().enumerate().all(|(i, b)| **b == i as u64),
        "small allocations corrupted"
    );
    Ok(())
}

fn kstack_guard_unmapped() -> TestResult {
    let stack = KernelStack::new().ok_or("no kernel stack")?;
    ensure!(
        paging::translate(stack.bottom()).is_some(),
        "stack bottom not mapped"
    );
    ensure!(
        paging::translate(stack.top() - 8).is_some(),
        "stack top not mapped"
    );
    ensure!(
        paging::translate(stack.bottom() - 8).is_none(),
        "guard page is mapped"
    );
    ensure!(
        crate::mm::kstack::guard_page_slot(stack.bottom() - 8).is_some(),
        "guard page not recognised"
    );
    let bottom = stack.bottom();
    drop(stack);
    ensure!(
        paging::translate(bottom).is_none(),
        "stack still mapped after drop"
    );
    Ok(())
}

fn timer_ticks_advance() -> TestResult {
    // Generous bounds: this checks the calibration is not wildly off, not the emulator's speed.
    let t0 = crate::time::ticks();
    crate::time::spin_ns(200_000_000);
    let n = crate::time::ticks() - t0;
    let expected = crate::time::HZ / 5;
    ensure!(
        n >= expected / 4 && n <= expected * 4,
        "{n} ticks in 200 ms (expected ~{expected})"
    );
    Ok(())
}

fn tsc_monotonic() -> TestResult {
    let mut last = crate::time::uptime_ns();
    for _ in 0..1000 {
        let now = crate::time::uptime_ns();
        ensure!(now >= last, "uptime went backwards: {last} -> {now}");
        last = now;
    }
    Ok(())
}
