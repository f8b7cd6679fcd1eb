//! The VMCS, typed: one enum per field width and access (SDM Vol. 3C Appendix B, "Field
//! Encoding in VMCS"), so that a field is read and written at its own width and read-only
//! fields have no `write`. Accessors need a [`Current`] token, which only exists while the
//! VMCS is current on this CPU: VMREAD and VMWRITE cannot then fault.
//!
//! Field uses elsewhere cite the SDM section that defines their meaning (chapter 25,
//! "Virtual-Machine Control Structures", of the SDM revision of December 2023).

use super::instr;
use core::marker::PhantomData;

/// Proof that a VMCS is current on this CPU and VMX is on.
pub struct Current<'a> {
    _vmcs: PhantomData<&'a mut ()>,
}

impl Current<'_> {
    /// The token.
    ///
    /// # Safety
    /// VMX must be on and a VMCS current on this CPU for the token's lifetime.
    pub unsafe fn assume() -> Current<'static> {
        Current { _vmcs: PhantomData }
    }
}

fn read_raw(field: u32) -> u64 {
    // SAFETY: A `Current` token exists (every caller takes one), so VMX is on with a current
    // VMCS; VMREAD then fails cleanly for an unsupported field instead of faulting.
    match unsafe { instr::vmread(field) } {
        Ok(v) => v,
        Err(e) => {
            log::error!("vmx: VMREAD {field:#x} failed ({e:?})");
            0
        }
    }
}

fn write_raw(field: u32, value: u64) {
    // SAFETY: As in `read_raw`; the VMX module is the only writer of the VMCS.
    if let Err(e) = unsafe { instr::vmwrite(field, value) } {
        log::error!("vmx: VMWRITE {field:#x} <- {value:#x} failed ({e:?})");
    }
}

macro_rules! fields {
    ($(#[$m:meta])* $name:ident: $ty:ty, $($access:ident)+ { $($(#[$fm:meta])* $f:ident = $enc:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        #[allow(clippy::enum_variant_names)]
        pub enum $name {
            $($(#[$fm])* $f = $enc,)*
        }
        fields!(@impl $name, $ty, $($access)+);
    };
    (@impl $name:ident, $ty:ty, read) => {
        impl $name {
            /// Reads the field.
            #[allow(dead_code)]
            pub fn read(self, _: &Current) -> $ty {
                read_raw(self as u32) as $ty
            }
        }
    };
    (@impl $name:ident, $ty:ty, read write) => {
        impl $name {
            /// Reads the field.
            #[allow(dead_code)]
            pub fn read(self, _: &Current) -> $ty {
                read_raw(self as u32) as $ty
            }
            /// Writes the field.
            pub fn write(self, _: &Current, value: $ty) {
                write_raw(self as u32, value as u64)
            }
        }
    };
}

fields! {
    /// 16-bit control fields (SDM Appendix B.1.1).
    Ctrl16: u16, read write {
        /// Virtual-processor identifier (§25.6.12).
        Vpid = 0x0000,
    }
}

fields! {
    /// 64-bit control fields (Appendix B.2.1).
    Ctrl64: u64, read write {
        /// Address of the MSR bitmaps (§25.6.9).
        MsrBitmap = 0x2004,
        /// TSC offset (§25.6.5).
        TscOffset = 0x2010,
        /// EPT pointer (§25.6.11).
        Eptp = 0x201a,
    }
}

fields! {
    /// 32-bit control fields (Appendix B.3.1).
    Ctrl32: u32, read write {
        /// Pin-based VM-execution controls (§25.6.1).
        PinBased = 0x4000,
        /// Primary processor-based VM-execution controls (§25.6.2).
        ProcBased = 0x4002,
        /// Exception bitmap (§25.6.3).
        ExceptionBitmap = 0x4004,
        /// CR3-target count (§25.6.7).
        Cr3TargetCount = 0x400a,
        /// VM-exit controls (§25.7.1).
        ExitControls = 0x400c,
        /// VM-exit MSR-store count (§25.7.2).
        ExitMsrStoreCount = 0x400e,
        /// VM-exit MSR-load count (§25.7.2).
        ExitMsrLoadCount = 0x4010,
        /// VM-entry controls (§25.8.1).
        EntryControls = 0x4012,
        /// VM-entry MSR-load count (§25.8.2).
        EntryMsrLoadCount = 0x4014,
        /// VM-entry interruption-information field (§25.8.3).
        EntryIntrInfo = 0x4016,
        /// VM-entry exception error code (§25.8.3).
        EntryExceptionError = 0x4018,
        /// VM-entry instruction length (§25.8.3).
        EntryInstrLen = 0x401a,
        /// Secondary processor-based VM-execution controls (§25.6.2).
        ProcBased2 = 0x401e,
    }
}

fields! {
    /// Natural-width control fields (Appendix B.4.1).
    CtrlNatural: u64, read write {
        /// CR0 guest/host mask (§25.6.6).
        Cr0Mask = 0x6000,
        /// CR4 guest/host mask (§25.6.6).
        Cr4Mask = 0x6002,
        /// CR0 read shadow (§25.6.6).
        Cr0Shadow = 0x6004,
        /// CR4 read shadow (§25.6.6).
        Cr4Shadow = 0x6006,
    }
}

fields! {
    /// 16-bit guest-state fields: segment selectors (Appendix B.1.2, §25.4.1).
    Guest16: u16, read write {
        EsSelector = 0x0800,
        CsSelector = 0x0802,
        SsSelector = 0x0804,
        DsSelector = 0x0806,
        FsSelector = 0x0808,
        GsSelector = 0x080a,
        LdtrSelector = 0x080c,
        TrSelector = 0x080e,
    }
}

fields! {
    /// 64-bit guest-state fields (Appendix B.2.3, §25.4.2).
    Guest64: u64, read write {
        /// VMCS link pointer: all ones without VMCS shadowing.
        LinkPointer = 0x2800,
        DebugCtl = 0x2802,
        Pat = 0x2804,
        Efer = 0x2806,
        Pdpte0 = 0x280a,
        Pdpte1 = 0x280c,
        Pdpte2 = 0x280e,
        Pdpte3 = 0x2810,
    }
}

fields! {
    /// 32-bit guest-state fields (Appendix B.3.3, §25.4).
    Guest32: u32, read write {
        EsLimit = 0x4800,
        CsLimit = 0x4802,
        SsLimit = 0x4804,
        DsLimit = 0x4806,
        FsLimit = 0x4808,
        GsLimit = 0x480a,
        LdtrLimit = 0x480c,
        TrLimit = 0x480e,
        GdtrLimit = 0x4810,
        IdtrLimit = 0x4812,
        EsAccess = 0x4814,
        CsAccess = 0x4816,
        SsAccess = 0x4818,
        DsAccess = 0x481a,
        FsAccess = 0x481c,
        GsAccess = 0x481e,
        LdtrAccess = 0x4820,
        TrAccess = 0x4822,
        /// Interruptibility state (§25.4.2, Table 25-3).
        Interruptibility = 0x4824,
        /// Activity state (§25.4.2).
        ActivityState = 0x4826,
        SysenterCs = 0x482a,
        /// VMX-preemption timer value (§25.4.2).
        PreemptionTimer = 0x482e,
    }
}

fields! {
    /// Natural-width guest-state fields (Appendix B.4.3, §25.4.1).
    GuestNatural: u64, read write {
        Cr0 = 0x6800,
        Cr3 = 0x6802,
        Cr4 = 0x6804,
        EsBase = 0x6806,
        CsBase = 0x6808,
        SsBase = 0x680a,
        DsBase = 0x680c,
        FsBase = 0x680e,
        GsBase = 0x6810,
        LdtrBase = 0x6812,
        TrBase = 0x6814,
        GdtrBase = 0x6816,
        IdtrBase = 0x6818,
        Dr7 = 0x681a,
        Rsp = 0x681c,
        Rip = 0x681e,
        Rflags = 0x6820,
        PendingDebug = 0x6822,
        SysenterEsp = 0x6824,
        SysenterEip = 0x6826,
    }
}

fields! {
    /// 16-bit host-state fields: selectors (Appendix B.1.3, §25.5).
    Host16: u16, read write {
        Es = 0x0c00,
        Cs = 0x0c02,
        Ss = 0x0c04,
        Ds = 0x0c06,
        Fs = 0x0c08,
        Gs = 0x0c0a,
        Tr = 0x0c0c,
    }
}

fields! {
    /// 64-bit host-state fields (Appendix B.2.4, §25.5).
    Host64: u64, read write {
        Pat = 0x2c00,
        Efer = 0x2c02,
    }
}

fields! {
    /// 32-bit host-state field (Appendix B.3.4, §25.5).
    Host32: u32, read write {
        SysenterCs = 0x4c00,
    }
}

fields! {
    /// Natural-width host-state fields (Appendix B.4.4, §25.5).
    HostNatural: u64, read write {
        Cr0 = 0x6c00,
        Cr3 = 0x6c02,
        Cr4 = 0x6c04,
        FsBase = 0x6c06,
        GsBase = 0x6c08,
        TrBase = 0x6c0a,
        GdtrBase = 0x6c0c,
        IdtrBase = 0x6c0e,
        SysenterEsp = 0x6c10,
        SysenterEip = 0x6c12,
        Rsp = 0x6c14,
        Rip = 0x6c16,
    }
}

fields! {
    /// 64-bit read-only data field (Appendix B.2.2, §25.9.1).
    Exit64: u64, read {
        /// Guest-physical address of an EPT violation (§28.2.1).
        GuestPhysical = 0x2400,
    }
}

fields! {
    /// 32-bit read-only data fields (Appendix B.3.2, §25.9).
    Exit32: u32, read {
        /// VM-instruction error (§25.9.5, §32.4).
        InstructionError = 0x4400,
        /// Exit reason (§25.9.1, Appendix C).
        Reason = 0x4402,
        /// VM-exit interruption information (§25.9.2).
        IntrInfo = 0x4404,
        /// VM-exit interruption error code (§25.9.2).
        IntrError = 0x4406,
        /// IDT-vectoring information (§25.9.3).
        IdtVectoringInfo = 0x4408,
        /// IDT-vectoring error code (§25.9.3).
        IdtVectoringError = 0x440a,
        /// VM-exit instruction length (§25.9.4).
        InstrLen = 0x440c,
        /// VM-exit instruction information (§25.9.4, §28.2.5).
        InstrInfo = 0x440e,
    }
}

fields! {
    /// Natural-width read-only data fields (Appendix B.4.2, §25.9.1).
    ExitNatural: u64, read {
        /// Exit qualification (§28.2.1).
        Qualification = 0x6400,
    }
}
