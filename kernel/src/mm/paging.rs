//! The kernel's page tables: the direct map of physical memory, the kernel image mapped with the
//! permissions of its sections, and helpers to map and unmap kernel pages.
//!
//! Every PML4 entry of the kernel half (256..512) points to a PDPT allocated here at boot and
//! never replaced, so address spaces created later can share the kernel half by copying those
//! 256 entries.

use super::frame::{self, Frame};
use super::{KERNEL_BASE, PAGE_SIZE, PHYS_OFFSET, PhysAddr};
use crate::sync::IrqLock;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags as F,
    PhysFrame, Size1GiB, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr as XPhys, VirtAddr};

static KERNEL_PT: IrqLock<Option<OffsetPageTable<'static>>> = IrqLock::new(None);
static NX: AtomicBool = AtomicBool::new(false);
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);

/// Hands frames to the `x86_64` crate's mapper for new page-table pages.
struct TableFrames;

/// Frames holding the kernel half's page tables. They are never freed: a table made to map a
/// stack or heap page stays for the next one, so this grows only with the regions' high-water
/// marks (and `/dev/memory` reports it so that leak checks can tell it apart from a leak).
static KERNEL_TABLE_FRAMES: AtomicU64 = AtomicU64::new(0);

// SAFETY: Frames come from our allocator, which hands each frame out once until it is freed.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let f = frame::alloc_zeroed()?;
        KERNEL_TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
        Some(PhysFrame::containing_address(XPhys::new(f.addr())))
    }
}

/// Bytes of frames holding kernel page tables.
pub fn kernel_table_bytes() -> u64 {
    KERNEL_TABLE_FRAMES.load(Ordering::Relaxed) * super::PAGE_SIZE
}

unsafe extern "C" {
    static __text_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

/// The no-execute bit, where the CPU has it (the boot code enabled EFER.NXE then).
pub fn nx() -> F {
    if NX.load(Ordering::Relaxed) {
        F::NO_EXECUTE
    } else {
        F::empty()
    }
}

/// Builds the kernel page tables and switches to them.
pub fn init() {
    let cpu = raw_cpuid::CpuId::new();
    let ext = cpu.get_extended_processor_and_feature_identifiers();
    NX.store(
        ext.as_ref().is_some_and(|e| e.has_execute_disable()),
        Ordering::Relaxed,
    );
    let huge_1g = ext.as_ref().is_some_and(|e| e.has_1gib_pages());

    let pml4_frame = frame::alloc_zeroed().expect("out of memory for the kernel PML4");
    // SAFETY: The frame is fresh, zeroed, 4 KiB aligned and reachable through the direct map;
    // from now on the page table is only reached through KERNEL_PT.
    let pml4: &'static mut PageTable = unsafe { &mut *pml4_frame.as_mut_ptr().cast() };
    for entry in pml4.iter_mut().skip(256) {
        let pdpt = frame::alloc_zeroed().expect("out of memory for kernel PDPTs");
        entry.set_addr(XPhys::new(pdpt.addr()), F::PRESENT | F::WRITABLE);
    }
    // SAFETY: The direct map at PHYS_OFFSET covers every frame these tables will use (the early
    // map covers the first 4 GiB, where the tables come from until the switch below).
    let mut pt = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(PHYS_OFFSET)) };

    let data = F::PRESENT | F::WRITABLE | F::GLOBAL | nx();
    let top = frame::top_of_ram().max(1 << 32);
    super::mmio::DIRECT_MAP_END.store(top, Ordering::Relaxed);
    if huge_1g {
        map_range::<Size1GiB>(&mut pt, PHYS_OFFSET, 0, top, data);
    } else {
        map_range::<Size2MiB>(&mut pt, PHYS_OFFSET, 0, top, data);
    }

    let addr = |s: &u8| s as *const u8 as u64;
    // SAFETY: Linker-script symbols; only their addresses are taken.
    let (text, rodata, rw, end) = unsafe {
        (
            addr(&__text_start),
            addr(&__rodata_start),
            addr(&__data_start),
            addr(&__kernel_end),
        )
    };
    let image = |pt: &mut OffsetPageTable, from: u64, to: u64, flags: F| {
        map_range::<Size4KiB>(pt, from, from - KERNEL_BASE, to - from, flags | F::GLOBAL);
    };
    image(&mut pt, text, rodata, F::PRESENT);
    image(&mut pt, rodata, rw, F::PRESENT | nx());
    image(&mut pt, rw, end, F::PRESENT | F::WRITABLE | nx());

    // SAFETY: Enabling global pages only affects TLB retention of entries marked GLOBAL.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL)) };
    let pml4_phys = pml4_frame.addr();
    // SAFETY: The new tables map the kernel image at the addresses it runs at (code, the boot
    // stack in .bss) and the direct map, which is all the kernel uses from here on.
    unsafe {
        Cr3::write(
            PhysFrame::containing_address(XPhys::new(pml4_phys)),
            Cr3Flags::empty(),
        );
    }
    KERNEL_PML4.store(pml4_phys, Ordering::Relaxed);
    *KERNEL_PT.lock() = Some(pt);
}

/// Physical address of the kernel's PML4: the template for every address space, and the
/// tables kernel threads run on.
pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}

fn map_range<S: PageSize>(pt: &mut OffsetPageTable, virt: u64, phys: u64, len: u64, flags: F)
where
    for<'a> OffsetPageTable<'a>: Mapper<S>,
{
    let flags = if S::SIZE > PAGE_SIZE {
        flags | F::HUGE_PAGE
    } else {
        flags
    };
    let mut off = 0;
    while off < len {
        let page = Page::<S>::containing_address(VirtAddr::new(virt + off));
        let frame = PhysFrame::<S>::containing_address(XPhys::new(phys + off));
        // SAFETY: Boot-time mappings of the direct map and of the kernel image onto the frames
        // the image was loaded at; nothing is mapped there yet.
        let result = unsafe { pt.map_to(page, frame, flags, &mut TableFrames) };
        match result {
            Ok(flush) => flush.ignore(),
            Err(_) => panic!("cannot map {:#x} at boot", virt + off),
        }
        off += S::SIZE;
    }
}

/// Maps one kernel page at `virt` onto `frame`.
pub fn map_kernel_page(virt: u64, frame: Frame, writable: bool) -> Result<(), &'static str> {
    let mut flags = F::PRESENT | F::GLOBAL | nx();
    if writable {
        flags |= F::WRITABLE;
    }
    let mut guard = KERNEL_PT.lock();
    let pt = guard.as_mut().ok_or("paging is not initialised")?;
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let phys = PhysFrame::containing_address(XPhys::new(frame.addr()));
    // SAFETY: Callers map fresh frames into kernel regions they own (heap, stacks); the kernel
    // half's PDPTs are shared by all address spaces, so the mapping is visible everywhere.
    match unsafe { pt.map_to(page, phys, flags, &mut TableFrames) } {
        Ok(flush) => {
            flush.flush();
            Ok(())
        }
        Err(MapToError::PageAlreadyMapped(_)) => Err("page already mapped"),
        Err(MapToError::ParentEntryHugePage) => Err("inside a huge page"),
        Err(MapToError::FrameAllocationFailed) => Err("out of memory for page tables"),
    }
}

/// Maps one page of device registers, uncached, at `virt`.
pub fn map_mmio_page(virt: u64, frame: Frame) -> Result<(), &'static str> {
    let flags = F::PRESENT | F::WRITABLE | F::NO_CACHE | F::WRITE_THROUGH | F::GLOBAL | nx();
    let mut guard = KERNEL_PT.lock();
    let pt = guard.as_mut().ok_or("paging is not initialised")?;
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let phys = PhysFrame::containing_address(XPhys::new(frame.addr()));
    // SAFETY: `virt` is in the MMIO window, which only `mmio::map` hands out, once per range.
    match unsafe { pt.map_to(page, phys, flags, &mut TableFrames) } {
        Ok(flush) => {
            flush.flush();
            Ok(())
        }
        Err(_) => Err("cannot map device memory"),
    }
}

/// Unmaps one kernel page and returns the frame it mapped.
pub fn unmap_kernel_page(virt: u64) -> Option<Frame> {
    let mut guard = KERNEL_PT.lock();
    let pt = guard.as_mut()?;
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    let (frame, flush) = pt.unmap(page).ok()?;
    flush.flush();
    Some(Frame(PhysAddr(frame.start_address().as_u64())))
}

/// The physical address `virt` maps to in the current address space, if it is mapped. Walks the
/// tables from CR3 without taking any lock, so the panic path can use it.
pub fn translate(virt: u64) -> Option<u64> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let (pml4, _) = Cr3::read_raw();
    let mut table = pml4.start_address().as_u64();
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let entry: u64 = super::phys_read(PhysAddr(table + ((virt >> shift) & 0x1ff) * 8));
        if entry & F::PRESENT.bits() == 0 {
            return None;
        }
        let is_leaf = level == 1 || (level < 4 && entry & F::HUGE_PAGE.bits() != 0);
        if is_leaf {
            let size = 1u64 << shift;
            return Some((entry & ADDR & !(size - 1)) + (virt & (size - 1)));
        }
        table = entry & ADDR;
    }
    None
}
