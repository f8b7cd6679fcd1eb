//! Guest FPU, SSE and AVX state.
//!
//! The invariant: the kernel and every user program are built soft-float and never touch the
//! x87/SSE/AVX registers, so those registers belong to guests alone. They hold the state of
//! one vCPU at a time, the "owner"; switching to another vCPU saves the owner's state into its
//! save area and loads the new one's (XSAVE/XRSTOR where the CPU has them, else FXSAVE/FXRSTOR;
//! SDM Vol. 1 §13.8, Vol. 3A §13.4). A vCPU that keeps running pays nothing.
//!
//! So that no program can read a guest's registers, CR0.TS is set whenever no guest context is
//! loaded on the CPU: any x87/SSE/AVX instruction in user mode then raises #NM (SDM Vol. 3A
//! §2.5), which kills the program. XCR0 is the "all components guests may use" value outside a
//! guest context, so that saves and restores cover every component whichever guest owned them,
//! and the guest's own XCR0 while its context is loaded.

use crate::mm::frame::{self, Frame};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// XCR0 components a guest may enable: x87, SSE, AVX, and the three AVX-512 components
/// (SDM Vol. 1 §13.1). MPX, PKRU and AMX stay hidden.
const GUEST_XCR0_MASK: u64 = 0b1110_0111;

/// The vCPU whose state is in the registers (0: none). One CPU runs guests for now; with SMP
/// this becomes a per-CPU value.
static OWNER: AtomicU64 = AtomicU64::new(0);
/// The owner's save area (a direct-map address).
static OWNER_AREA: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// XCR0 outside guest contexts (0 without XSAVE).
static MAX_XCR0: AtomicU64 = AtomicU64::new(0);
/// Bytes of an XSAVE area for `MAX_XCR0` (512 for FXSAVE).
static AREA_BYTES: AtomicU64 = AtomicU64::new(512);

/// Offset of MXCSR in the legacy FXSAVE/XSAVE region (SDM Vol. 1 Table 10-2).
const MXCSR_OFFSET: usize = 24;

/// Prepares this CPU: CR4.OSFXSR (and OSXSAVE with the largest guest XCR0 where XSAVE
/// exists), CR0.NE and CR0.TS.
pub fn init_cpu() {
    let cpuid = raw_cpuid::CpuId::new();
    let xsave = cpuid.get_feature_info().is_some_and(|f| f.has_xsave());
    // SAFETY: OSFXSR and OSXMMEXCPT only enable SSE instructions and their exceptions, which
    // nothing in the kernel executes; OSXSAVE (checked present) enables XSETBV/XGETBV.
    unsafe {
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            if xsave {
                f.insert(Cr4Flags::OSXSAVE);
            }
        });
    }
    if xsave {
        let leaf = raw_cpuid::cpuid!(0xd, 0);
        let supported = u64::from(leaf.eax) | u64::from(leaf.edx) << 32;
        let mut max = supported & GUEST_XCR0_MASK;
        // AVX-512 needs all three of its components, and AVX.
        if max & 0xe0 != 0xe0 || max & 4 == 0 {
            max &= !0xe0;
        }
        MAX_XCR0.store(max, Ordering::Relaxed);
        set_xcr0(max);
        // With XCR0 = max, EBX is the size of an area for it.
        let sized = raw_cpuid::cpuid!(0xd, 0);
        AREA_BYTES.store(u64::from(sized.ebx).max(576), Ordering::Relaxed);
    }
    // SAFETY: NE selects native x87 error reporting (required by VMX); TS makes FPU
    // instructions fault, which only guests may use (see the module comment).
    unsafe { Cr0::update(|f| f.insert(Cr0Flags::NUMERIC_ERROR | Cr0Flags::TASK_SWITCHED)) };
    log::debug!(
        "virt: guest FPU state by {} ({} bytes, XCR0 up to {:#x})",
        if xsave { "XSAVE" } else { "FXSAVE" },
        AREA_BYTES.load(Ordering::Relaxed),
        max_xcr0()
    );
}

/// The largest XCR0 a guest may set (0 without XSAVE).
pub fn max_xcr0() -> u64 {
    MAX_XCR0.load(Ordering::Relaxed)
}

fn set_xcr0(value: u64) {
    // SAFETY: XSETBV with ECX = 0 writes XCR0; `value` is a subset of the components CPUID
    // reports, includes x87, and includes SSE whenever it includes AVX (checked by callers), so
    // it cannot fault. CR4.OSXSAVE is set by `init_cpu`.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags));
    }
}

/// The value CR0 has while a guest context is loaded (TS clear), for VMX's host-state CR0.
pub fn host_cr0_in_guest_context() -> u64 {
    Cr0::read_raw() & !Cr0Flags::TASK_SWITCHED.bits()
}

/// One vCPU's FPU state and XCR0.
pub struct GuestFpu {
    id: u64,
    area: Frame,
    pages: usize,
    /// The guest's XCR0 (x87 only after reset).
    pub xcr0: u64,
}

impl GuestFpu {
    /// The state after reset (SDM Vol. 3A §9.1.2: FCW 0x37F, MXCSR 0x1F80, all else zero).
    pub fn new() -> Option<GuestFpu> {
        let bytes = AREA_BYTES.load(Ordering::Relaxed);
        let pages = bytes.div_ceil(4096) as usize;
        let area = frame::alloc_contiguous(pages, 4096)?;
        let p = area.as_mut_ptr();
        // SAFETY: The frames are fresh and ours; the writes stay inside the first 32 bytes.
        unsafe {
            core::ptr::write_bytes(p, 0, pages * 4096);
            p.cast::<u16>().write(0x37f);
            p.add(MXCSR_OFFSET).cast::<u32>().write(0x1f80);
        }
        Some(GuestFpu {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            area,
            pages,
            xcr0: 1,
        })
    }

    /// Loads this vCPU's context onto the CPU: TS clear, its registers (saving the previous
    /// owner's), its XCR0. Interrupts must be off.
    pub fn enter(&mut self) {
        // SAFETY: CLTS only lets FPU instructions run; see the module comment.
        unsafe { core::arch::asm!("clts", options(nostack, preserves_flags)) };
        let xsave = max_xcr0() != 0;
        if OWNER.load(Ordering::Relaxed) != self.id {
            let prev = OWNER_AREA.load(Ordering::Relaxed);
            if prev != 0 {
                // SAFETY: `prev` is the live save area of the owner (its Drop clears OWNER
                // before freeing it), 64-byte aligned and large enough for XCR0 = max, which
                // is XCR0 now (outside any guest context).
                unsafe { save(prev as *mut u8, xsave) };
            }
            // SAFETY: Our own area, initialised by `new` or a previous save.
            unsafe { restore(self.area.as_mut_ptr(), xsave) };
            OWNER.store(self.id, Ordering::Relaxed);
            OWNER_AREA.store(self.area.as_mut_ptr() as u64, Ordering::Relaxed);
        }
        if xsave && self.xcr0 != max_xcr0() {
            set_xcr0(self.xcr0);
        }
    }

    /// Unloads the context: XCR0 back to the maximum, TS set. The registers keep the state.
    pub fn leave(&mut self) {
        if max_xcr0() != 0 && self.xcr0 != max_xcr0() {
            set_xcr0(max_xcr0());
        }
        // SAFETY: Sets TS again (see the module comment); nothing else in CR0 changes.
        unsafe { Cr0::update(|f| f.insert(Cr0Flags::TASK_SWITCHED)) };
    }

    /// XSETBV by the guest (inside its context): checks `value` and loads it.
    pub fn set_guest_xcr0(&mut self, value: u64) -> bool {
        let ok = value & 1 != 0
            && value & !max_xcr0() == 0
            && (value & 4 == 0 || value & 2 != 0)
            && (value & 0xe0 == 0 || value & 0xe0 == 0xe0 && value & 4 != 0);
        if ok {
            self.xcr0 = value;
            set_xcr0(value);
        }
        ok
    }
}

impl Drop for GuestFpu {
    fn drop(&mut self) {
        if OWNER.load(Ordering::Relaxed) == self.id {
            OWNER.store(0, Ordering::Relaxed);
            OWNER_AREA.store(0, Ordering::Relaxed);
        }
        frame::free_contiguous(self.area, self.pages);
    }
}

/// Saves the registers into `area`.
///
/// # Safety
/// `area` must be a 64-byte-aligned writable area of `AREA_BYTES` bytes; CR0.TS must be clear.
unsafe fn save(area: *mut u8, xsave: bool) {
    // SAFETY: Forwarded from the caller; XSAVE with EDX:EAX all ones saves the components of
    // XCR0.
    unsafe {
        if xsave {
            core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX,
                options(nostack, preserves_flags));
        } else {
            core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags));
        }
    }
}

/// Loads the registers from `area`.
///
/// # Safety
/// As for `save`, and `area` must hold a valid image (from `save`, or `GuestFpu::new`'s).
unsafe fn restore(area: *const u8, xsave: bool) {
    // SAFETY: Forwarded from the caller.
    unsafe {
        if xsave {
            core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX,
                options(nostack, preserves_flags));
        } else {
            core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack, preserves_flags));
        }
    }
}
