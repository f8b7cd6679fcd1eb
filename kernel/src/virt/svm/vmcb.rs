//! The VMCB, typed (AMD APM Vol. 2, Appendix B, Tables B-1 "VMCB Layout, Control Area" and
//! B-2 "VMCB Layout, State Save Area"): one enum per width and access, whose discriminants are
//! byte offsets into the 4 KiB VMCB, so that every field is read and written at its own width
//! and the fields the processor writes on #VMEXIT have no `write`.
//!
//! Writes also keep the VMCB clean bits honest (APM §15.15.3): each writable field belongs to
//! a clean-bit group, and writing it marks the group dirty so that the next VMRUN reloads it.
//! The processor touches the VMCB only during VMRUN, which the run loop calls synchronously, so
//! plain volatile accesses from this thread are enough.

use crate::mm::frame::Frame;

/// The VMCB of one vCPU.
pub struct Vmcb {
    frame: Frame,
    /// Clean-bit groups written since the last VMRUN.
    dirty: u32,
}

macro_rules! fields {
    ($(#[$m:meta])* $name:ident: $ty:ty, $($access:ident)+ { $($(#[$fm:meta])* $f:ident = $off:expr => $clean:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u16)]
        pub enum $name {
            $($(#[$fm])* $f = $off,)*
        }
        impl $name {
            /// The clean-bit group of the field (`None`: always reloaded).
            #[allow(dead_code)]
            fn clean_group(self) -> Option<u32> {
                match self {
                    $($name::$f => $clean,)*
                }
            }
        }
        fields!(@impl $name, $ty, $($access)+);
    };
    (@impl $name:ident, $ty:ty, read) => {
        impl Readable for $name { type T = $ty; fn offset(self) -> usize { self as usize } }
    };
    (@impl $name:ident, $ty:ty, read write) => {
        impl Readable for $name { type T = $ty; fn offset(self) -> usize { self as usize } }
        impl Writable for $name { fn group(self) -> Option<u32> { self.clean_group() } }
    };
}

/// A field that can be read.
pub trait Readable: Copy {
    /// Its width.
    type T: Copy;
    /// Its byte offset in the VMCB.
    fn offset(self) -> usize;
}

/// A field that the hypervisor writes.
pub trait Writable: Readable {
    /// Its clean-bit group.
    fn group(self) -> Option<u32>;
}

/// Clean-bit groups (APM Table 15-9).
pub mod clean {
    /// Intercepts, TSC offset, pause filter.
    pub const INTERCEPTS: u32 = 1 << 0;
    /// IOPM and MSRPM base addresses.
    pub const IOPM: u32 = 1 << 1;
    /// ASID.
    pub const ASID: u32 = 1 << 2;
    /// V_TPR, V_IRQ and the rest of the virtual-interrupt control.
    pub const TPR: u32 = 1 << 3;
    /// Nested paging: NP_ENABLE, N_CR3, G_PAT.
    pub const NP: u32 = 1 << 4;
    /// CR0, CR3, CR4, EFER.
    pub const CRX: u32 = 1 << 5;
    /// DR6, DR7.
    pub const DRX: u32 = 1 << 6;
    /// GDTR, IDTR.
    pub const DT: u32 = 1 << 7;
    /// CS, DS, SS, ES, CPL.
    pub const SEG: u32 = 1 << 8;
    /// CR2.
    pub const CR2: u32 = 1 << 9;
    /// Every group this kernel uses (LBR and AVIC state are never written).
    pub const ALL: u32 = 0x3ff | 1 << 10 | 1 << 11;
}

fields! {
    /// 32-bit control fields (Table B-1).
    Ctl32: u32, read write {
        /// Intercepts of CR reads (bits 15:0) and writes (31:16).
        InterceptCr = 0x000 => Some(clean::INTERCEPTS),
        /// Intercepts of DR reads (15:0) and writes (31:16).
        InterceptDr = 0x004 => Some(clean::INTERCEPTS),
        /// Intercepted exception vectors.
        InterceptExceptions = 0x008 => Some(clean::INTERCEPTS),
        /// INTR, NMI, SMI, INIT, VINTR, ..., SHUTDOWN (bits 0-31 of word 3).
        InterceptMisc1 = 0x00c => Some(clean::INTERCEPTS),
        /// VMRUN, VMMCALL, ..., XSETBV (word 4).
        InterceptMisc2 = 0x010 => Some(clean::INTERCEPTS),
        /// Guest ASID.
        Asid = 0x058 => Some(clean::ASID),
        /// V_TPR (3:0), V_IRQ (8), V_INTR_PRIO (19:16), V_IGN_TPR (20), V_INTR_MASKING (24).
        IntCtl = 0x060 => Some(clean::TPR),
        /// Bit 0: the guest is in an interrupt shadow.
        IntState = 0x068 => None,
        /// Event to inject (§15.20).
        EventInj = 0x0a8 => None,
        /// Its error code.
        EventInjErr = 0x0ac => None,
        /// Clean bits for the next VMRUN.
        Clean = 0x0c0 => None,
    }
}

fields! {
    /// 8-bit control field (Table B-1).
    Ctl8: u8, read write {
        /// TLB control: 0 nothing, 1 flush all, 3 flush this ASID (§15.16.1).
        TlbControl = 0x05c => None,
    }
}

fields! {
    /// 64-bit control fields (Table B-1).
    Ctl64: u64, read write {
        /// Physical address of the I/O permissions map.
        IopmBase = 0x040 => Some(clean::IOPM),
        /// Physical address of the MSR permissions map.
        MsrpmBase = 0x048 => Some(clean::IOPM),
        /// TSC offset.
        TscOffset = 0x050 => Some(clean::INTERCEPTS),
        /// Bit 0: nested paging.
        NestedCtl = 0x090 => Some(clean::NP),
        /// Nested page-table root (nCR3).
        NestedCr3 = 0x0b0 => Some(clean::NP),
    }
}

fields! {
    /// 64-bit fields the processor writes on #VMEXIT (Table B-1).
    Exit64: u64, read {
        /// EXITCODE (Appendix C).
        ExitCode = 0x070 => None,
        /// EXITINFO1.
        ExitInfo1 = 0x078 => None,
        /// EXITINFO2.
        ExitInfo2 = 0x080 => None,
        /// nRIP: the next instruction's RIP (with NRIP save, §15.7.1).
        NextRip = 0x0c8 => None,
    }
}

fields! {
    /// 32-bit fields the processor writes on #VMEXIT (Table B-1).
    Exit32: u32, read {
        /// EXITINTINFO: an event whose delivery the exit interrupted (§15.7.2).
        ExitIntInfo = 0x088 => None,
        /// Its error code.
        ExitIntInfoErr = 0x08c => None,
    }
}

fields! {
    /// 8-bit field the processor writes on #VMEXIT (Table B-1).
    Exit8: u8, read {
        /// Number of instruction bytes fetched for a nested page fault (decode assists,
        /// §15.33.5); the bytes follow.
        InsnLen = 0x0d0 => None,
    }
}

fields! {
    /// 64-bit state-save fields (Table B-2, at 0x400).
    Save64: u64, read write {
        Efer = 0x4d0 => Some(clean::CRX),
        Cr4 = 0x548 => Some(clean::CRX),
        Cr3 = 0x550 => Some(clean::CRX),
        Cr0 = 0x558 => Some(clean::CRX),
        Dr7 = 0x560 => Some(clean::DRX),
        Dr6 = 0x568 => Some(clean::DRX),
        Rflags = 0x570 => None,
        Rip = 0x578 => None,
        Rsp = 0x5d8 => None,
        Rax = 0x5f8 => None,
        Star = 0x600 => None,
        Lstar = 0x608 => None,
        Cstar = 0x610 => None,
        Sfmask = 0x618 => None,
        KernelGsBase = 0x620 => None,
        SysenterCs = 0x628 => None,
        SysenterEsp = 0x630 => None,
        SysenterEip = 0x638 => None,
        Cr2 = 0x640 => Some(clean::CR2),
        GPat = 0x668 => Some(clean::NP),
    }
}

fields! {
    /// 8-bit state-save field (Table B-2).
    Save8: u8, read write {
        /// Current privilege level.
        Cpl = 0x4cb => Some(clean::SEG),
    }
}

/// A segment's slot in the state-save area (Table B-2): selector, attributes, limit, base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum SegSlot {
    Es = 0x400,
    Cs = 0x410,
    Ss = 0x420,
    Ds = 0x430,
    Fs = 0x440,
    Gs = 0x450,
    Gdtr = 0x460,
    Ldtr = 0x470,
    Idtr = 0x480,
    Tr = 0x490,
}

impl SegSlot {
    fn group(self) -> Option<u32> {
        match self {
            SegSlot::Es | SegSlot::Cs | SegSlot::Ss | SegSlot::Ds => Some(clean::SEG),
            SegSlot::Gdtr | SegSlot::Idtr => Some(clean::DT),
            // Loaded by VMLOAD, not VMRUN.
            SegSlot::Fs | SegSlot::Gs | SegSlot::Ldtr | SegSlot::Tr => None,
        }
    }
}

/// A segment as the VMCB holds it: attributes in the packed 12-bit form (APM §15.5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmcbSegment {
    /// Selector.
    pub selector: u16,
    /// Attributes: VMX access rights bits 7:0 and 15:12 packed into 11:0.
    pub attrib: u16,
    /// Limit in bytes.
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

impl Vmcb {
    /// The VMCB in `frame` (zeroed by the caller).
    pub fn new(frame: Frame) -> Vmcb {
        Vmcb {
            frame,
            dirty: clean::ALL,
        }
    }

    /// Its physical address.
    pub fn addr(&self) -> u64 {
        self.frame.addr()
    }

    /// The frame, for freeing.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    fn read<T: Copy>(&self, offset: usize) -> T {
        debug_assert!(offset + core::mem::size_of::<T>() <= 4096);
        // SAFETY: The offset is a field of the 4 KiB VMCB (the enums above), naturally aligned;
        // the processor does not write the VMCB outside VMRUN, which runs on this thread.
        unsafe { core::ptr::read_volatile(self.frame.as_mut_ptr().add(offset).cast::<T>()) }
    }

    fn write<T: Copy>(&mut self, offset: usize, value: T) {
        debug_assert!(offset + core::mem::size_of::<T>() <= 4096);
        // SAFETY: As in `read`; the VMCB is ours.
        unsafe { core::ptr::write_volatile(self.frame.as_mut_ptr().add(offset).cast::<T>(), value) }
    }

    /// Reads a field.
    pub fn get<F: Readable>(&self, field: F) -> F::T {
        self.read(field.offset())
    }

    /// Writes a field and marks its clean-bit group dirty.
    pub fn set<F: Writable>(&mut self, field: F, value: F::T) {
        self.write(field.offset(), value);
        if let Some(g) = field.group() {
            self.dirty |= g;
        }
    }

    /// Reads a segment.
    pub fn segment(&self, slot: SegSlot) -> VmcbSegment {
        let o = slot as usize;
        VmcbSegment {
            selector: self.read(o),
            attrib: self.read(o + 2),
            limit: self.read(o + 4),
            base: self.read(o + 8),
        }
    }

    /// Writes a segment.
    pub fn set_segment(&mut self, slot: SegSlot, s: VmcbSegment) {
        let o = slot as usize;
        self.write(o, s.selector);
        self.write(o + 2, s.attrib);
        self.write(o + 4, s.limit);
        self.write(o + 8, s.base);
        if let Some(g) = slot.group() {
            self.dirty |= g;
        }
    }

    /// The instruction bytes of the last nested page fault (decode assists).
    pub fn insn_bytes(&self) -> ([u8; 15], usize) {
        let n = usize::from(self.get(Exit8::InsnLen) & 0xf).min(15);
        let mut b = [0u8; 15];
        for (i, byte) in b.iter_mut().enumerate().take(n) {
            *byte = self.read(0x0d1 + i);
        }
        (b, n)
    }

    /// The clean bits for the next VMRUN (groups not written since the last one), and starts
    /// a new round.
    pub fn take_clean(&mut self) -> u32 {
        let clean = clean::ALL & !self.dirty;
        self.dirty = 0;
        clean
    }

    /// Marks everything dirty (first run, or moved to another ASID).
    pub fn all_dirty(&mut self) {
        self.dirty = clean::ALL;
    }
}
