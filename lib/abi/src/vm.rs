//! The binary interface of the kernel's `#vm` device, shared by the kernel and every VMM.
//!
//! A VM is a directory `#vm/N` holding `ctl`, `stats` and one `vcpuK` file per vCPU. Opening
//! `#vm/clone` makes a new VM and gives back its `ctl`, whose read returns the VM's number.
//! `ctl` takes text commands, one per write:
//!
//! - `mem GPA LEN VA`: guest-physical `[GPA, GPA+LEN)` is the VMM's memory at `VA` (all three
//!   page-aligned; the VA range must be writable memory of the VMM). The guest and the VMM then
//!   share those pages (zero copy); the VMM cannot shrink its heap below them while the VM lives.
//! - `vcpu N`: creates vCPU `N` (0 <= N < [`MAX_VCPUS`]) and its file `vcpuN`. vCPU 0 starts
//!   in the reset state; the others wait (a read blocks) for an INIT/SIPI from another vCPU's
//!   LAPIC, or for a [`SetState`].
//! - `irq LINE LEVEL`: drives IOAPIC input `LINE` (0 <= LINE < [`IOAPIC_PINS`]) to `LEVEL` (0 or 1).
//!   Edge-triggered pins interrupt on each rising edge.
//! - `destroy`: stops every vCPU and frees the VM's memory mappings and hardware state now.
//!
//! Numbers are decimal or `0x` hexadecimal.
//!
//! A `vcpuK` file is the vCPU:
//!
//! - `read` (of at least `size_of::<Exit>()` bytes) runs the vCPU until an exit that needs the VMM
//!   and returns one [`Exit`]. Only threads of the process that made the VM may run it, one
//!   thread at a time per vCPU. The kernel handles the rest itself (CPUID, MSRs, control
//!   registers, HLT, the LAPIC and IOAPIC, interrupt windows, faults on registered memory). A note
//!   interrupts the read (error `interrupted`); the guest's state is kept, and the next read
//!   resumes it.
//! - `write` of one command record: [`SetRegs`], [`SetState`] or [`Complete`]. A PIO read, a MMIO
//!   load and a hypercall are completed when the vCPU next runs: with the value of a
//!   [`Complete`] written since the exit, or else with all ones (PIO, MMIO) or
//!   [`crate::hv::HYPERCALL_UNKNOWN`] (hypercall). A [`SetRegs`] or [`SetState`] written instead
//!   drops the pending completion: the VMM then owns RIP and the registers.
//!
//! Every record here is `#[repr(C)]`, made of integers only, without padding; [`Record`] turns
//! one into bytes and back.

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: u32 = 16;
/// Inputs of the in-kernel IOAPIC.
pub const IOAPIC_PINS: u32 = 24;
/// Guest-physical address of the in-kernel IOAPIC's registers.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Guest-physical address of the in-kernel LAPIC's registers (xAPIC mode) after reset; the guest
/// may move it with IA32_APIC_BASE.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// Frequency of the in-kernel LAPIC timer's input clock, before its divider.
pub const APIC_BUS_HZ: u64 = 100_000_000;
/// CPUID leaf with the guest's clocks: EAX = TSC frequency in kHz, EBX = [`APIC_BUS_HZ`] in kHz.
pub const CPUID_TIMING_LEAF: u32 = 0x4000_0001;
/// Most bytes of string port I/O that one [`Exit`] or [`Complete`] carries.
pub const IO_DATA_MAX: usize = 256;

/// A record that crosses the `#vm` interface as its raw bytes.
///
/// # Safety
/// Implementors are `#[repr(C)]`, contain only integers and arrays of integers (so every bit
/// pattern is a valid value), and have no padding bytes.
pub unsafe trait Record: Copy {
    /// The record's bytes.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: The trait's contract: plain integers without padding, so every byte of the
        // value is initialised; the slice covers exactly the value and borrows it.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// The record in `bytes`, which must be exactly its size.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != core::mem::size_of::<Self>() {
            return None;
        }
        // SAFETY: The length matches, any bit pattern is a valid value (the trait's contract),
        // and `read_unaligned` has no alignment requirement.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

/// The general registers, RIP and RFLAGS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// Access-rights bits of a [`Segment`], in the layout of the VMX guest-state area (SDM Vol. 3C
/// §25.4.1, Table 25-2); the kernel converts them for SVM's VMCB.
pub mod access {
    /// Segment type (bits 3:0): for code, 0b1011 is execute/read, accessed.
    pub const TYPE_MASK: u32 = 0xf;
    /// Accessed (type bit 0).
    pub const ACCESSED: u32 = 1;
    /// S: code or data (not a system segment).
    pub const S: u32 = 1 << 4;
    /// Descriptor privilege level (bits 6:5).
    pub const DPL_SHIFT: u32 = 5;
    /// Present.
    pub const P: u32 = 1 << 7;
    /// Available for software.
    pub const AVL: u32 = 1 << 12;
    /// 64-bit code segment.
    pub const L: u32 = 1 << 13;
    /// Default operation size 32-bit (D/B).
    pub const DB: u32 = 1 << 14;
    /// Granularity: the limit counts 4 KiB units.
    pub const G: u32 = 1 << 15;
    /// The segment register is unusable (a null selector was loaded).
    pub const UNUSABLE: u32 = 1 << 16;
    /// Flat 16-bit real-mode code: present, execute/read, accessed.
    pub const REAL_CODE: u32 = P | S | 0xb;
    /// Real-mode data: present, read/write, accessed.
    pub const REAL_DATA: u32 = P | S | 0x3;
    /// 32-bit code, 4 KiB granularity.
    pub const CODE32: u32 = G | DB | P | S | 0xb;
    /// 64-bit code, 4 KiB granularity.
    pub const CODE64: u32 = G | L | P | S | 0xb;
    /// 32-bit data, 4 KiB granularity.
    pub const DATA32: u32 = G | DB | P | S | 0x3;
    /// A busy 32-bit or 64-bit TSS.
    pub const TSS_BUSY: u32 = P | 0xb;
    /// An LDT.
    pub const LDT: u32 = P | 0x2;
}

/// A segment register with its hidden part.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Base address.
    pub base: u64,
    /// Limit in bytes (already scaled by the granularity).
    pub limit: u32,
    /// Access rights, see [`access`].
    pub access: u32,
    /// The visible selector.
    pub selector: u16,
    pub _pad: [u16; 3],
}

impl Segment {
    /// A segment with these fields.
    pub const fn new(selector: u16, base: u64, limit: u32, access: u32) -> Segment {
        Segment {
            base,
            limit,
            access,
            selector,
            _pad: [0; 3],
        }
    }

    /// A real-mode segment for `selector` (base = selector * 16, limit 64 KiB).
    pub const fn real(selector: u16, access: u32) -> Segment {
        Segment::new(selector, (selector as u64) << 4, 0xffff, access)
    }

    /// An unusable segment register (as after loading a null selector).
    pub const fn unusable() -> Segment {
        Segment::new(0, 0, 0, access::UNUSABLE)
    }
}

/// The base and limit of the GDTR or IDTR.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    /// Base address.
    pub base: u64,
    /// Limit (size minus one).
    pub limit: u16,
    pub _pad: [u16; 3],
}

impl DescriptorTable {
    /// A table register with this base and limit.
    pub const fn new(base: u64, limit: u16) -> DescriptorTable {
        DescriptorTable {
            base,
            limit,
            _pad: [0; 3],
        }
    }
}

/// Segment, descriptor-table and control registers, and IA32_EFER.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sregs {
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub ss: Segment,
    pub tr: Segment,
    pub ldtr: Segment,
    pub gdtr: DescriptorTable,
    pub idtr: DescriptorTable,
    /// CR0 as the guest sees it.
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    /// CR4 as the guest sees it.
    pub cr4: u64,
    /// The task-priority register (CR8 = TPR bits 7:4).
    pub cr8: u64,
    /// IA32_EFER as the guest sees it (LMA included).
    pub efer: u64,
    /// IA32_APIC_BASE (read only here; the guest changes it with WRMSR).
    pub apic_base: u64,
}

/// Everything the VMM may read and set of a vCPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuState {
    pub regs: Regs,
    pub sregs: Sregs,
}

impl VcpuState {
    /// The state of an x86 CPU after reset, except that execution starts at `cs:ip` = 0:`ip`
    /// in real mode (SDM Vol. 3A §9.1.1, Table 9-1).
    pub fn real_mode(ip: u16) -> VcpuState {
        let data = Segment::real(0, access::REAL_DATA);
        VcpuState {
            regs: Regs {
                rip: u64::from(ip),
                rflags: 2,
                ..Regs::default()
            },
            sregs: Sregs {
                cs: Segment::real(0, access::REAL_CODE),
                ds: data,
                es: data,
                fs: data,
                gs: data,
                ss: data,
                tr: Segment::new(0, 0, 0xffff, access::TSS_BUSY),
                ldtr: Segment::new(0, 0, 0xffff, access::LDT),
                gdtr: DescriptorTable::new(0, 0xffff),
                idtr: DescriptorTable::new(0, 0xffff),
                cr0: 0x10,
                ..Sregs::default()
            },
        }
    }
}

/// Why a read of a `vcpuK` file returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitReason {
    /// Port I/O: `port`, `size`, `write`; a write's value in `value`. String forms (INS/OUTS,
    /// with or without REP) carry `count` elements in `data` (an OUTS's bytes; an INS wants
    /// `count` elements back in [`Complete::data`]).
    Pio = 1,
    /// A load or store of `size` bytes at guest-physical `gpa`, which no `mem` region backs
    /// and no in-kernel device claims; a store's value in `value`.
    Mmio = 2,
    /// VMCALL or VMMCALL, at any privilege level: the number in `value` (RAX), the arguments in
    /// `state.regs` (RBX, RCX, RDX, RSI). [`Complete::value`] goes to RAX; to return more
    /// registers, write [`SetRegs`] instead, with RIP past the instruction (3 bytes).
    Hypercall = 3,
    /// The guest triple-faulted: a shutdown condition. It cannot run on unless the VMM sets
    /// a new state.
    TripleFault = 4,
    /// VM entry failed: the guest state is invalid. `code` is the hardware's reason (VMX: the
    /// VM-instruction error, or the exit reason with bit 31 set; SVM: `0xffff_ffff_ffff_ffff`,
    /// VMEXIT_INVALID) and `qualification` its detail (SVM: 1 if the kernel's own check of
    /// APM §15.5.1 refused the state before VMRUN). The VMM may set a new state and retry.
    EntryFailed = 5,
    /// HLT with interrupts disabled: nothing can wake the vCPU.
    Halted = 6,
    /// The kernel could not emulate an access to unbacked memory at `gpa`: the instruction's
    /// bytes are in `data` (`count` of them), `code` says why (see [`emulation`]).
    EmulationFailed = 7,
    /// An exit the kernel does not handle: `code` is the hardware's exit reason (VMX basic
    /// exit reason, SVM exit code), `qualification` its detail.
    Unhandled = 8,
}

impl ExitReason {
    /// Decodes a raw reason.
    pub fn from_raw(raw: u32) -> Option<ExitReason> {
        Some(match raw {
            1 => ExitReason::Pio,
            2 => ExitReason::Mmio,
            3 => ExitReason::Hypercall,
            4 => ExitReason::TripleFault,
            5 => ExitReason::EntryFailed,
            6 => ExitReason::Halted,
            7 => ExitReason::EmulationFailed,
            8 => ExitReason::Unhandled,
            _ => return None,
        })
    }

    /// A short name, as `stats` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Pio => "pio",
            ExitReason::Mmio => "mmio",
            ExitReason::Hypercall => "hypercall",
            ExitReason::TripleFault => "triple-fault",
            ExitReason::EntryFailed => "entry-failed",
            ExitReason::Halted => "halted",
            ExitReason::EmulationFailed => "emulation-failed",
            ExitReason::Unhandled => "unhandled",
        }
    }
}

/// Values of [`Exit::code`] for [`ExitReason::EmulationFailed`].
pub mod emulation {
    /// The instruction could not be read from guest memory.
    pub const FETCH: u64 = 1;
    /// The instruction is not a load or store the kernel can split into one access.
    pub const UNSUPPORTED: u64 = 2;
    /// The guest executed code from unbacked memory.
    pub const EXECUTE: u64 = 3;
    /// The access straddles a page of RAM and a page of unbacked memory.
    pub const STRADDLES: u64 = 4;
}

/// [`Exit::flags`]: a string instruction (INS/OUTS).
pub const EXIT_STRING: u32 = 1;
/// [`Exit::flags`]: with a REP prefix.
pub const EXIT_REP: u32 = 2;

/// One exit for the VMM, as a read of `vcpuK` returns it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// An [`ExitReason`].
    pub reason: u32,
    /// [`EXIT_STRING`], [`EXIT_REP`].
    pub flags: u32,
    /// PIO: the port.
    pub port: u16,
    /// PIO, MMIO: the access size in bytes (1, 2, 4 or 8).
    pub size: u8,
    /// PIO, MMIO: 1 for a write (OUT, store), 0 for a read.
    pub write: u8,
    /// PIO strings: elements in `data`; [`ExitReason::EmulationFailed`]: instruction bytes.
    pub count: u32,
    /// MMIO, EmulationFailed: the guest-physical address.
    pub gpa: u64,
    /// PIO/MMIO write: the value; hypercall: the number (RAX).
    pub value: u64,
    /// EntryFailed, EmulationFailed, Unhandled: the reason (see [`ExitReason`]).
    pub code: u64,
    /// EntryFailed, Unhandled: the hardware's detail.
    pub qualification: u64,
    /// The vCPU's state at the exit; RIP is that of the exiting instruction.
    pub state: VcpuState,
    /// String PIO data, or instruction bytes.
    pub data: [u8; IO_DATA_MAX],
}

impl Default for Exit {
    fn default() -> Exit {
        Exit {
            reason: 0,
            flags: 0,
            port: 0,
            size: 0,
            write: 0,
            count: 0,
            gpa: 0,
            value: 0,
            code: 0,
            qualification: 0,
            state: VcpuState::default(),
            data: [0; IO_DATA_MAX],
        }
    }
}

impl Exit {
    /// The reason, if known.
    pub fn kind(&self) -> Option<ExitReason> {
        ExitReason::from_raw(self.reason)
    }

    /// The bytes in `data` that count (string PIO data, instruction bytes).
    pub fn data(&self) -> &[u8] {
        let n = match self.kind() {
            Some(ExitReason::Pio) => self.count as usize * usize::from(self.size),
            Some(ExitReason::EmulationFailed) => self.count as usize,
            _ => 0,
        };
        &self.data[..n.min(IO_DATA_MAX)]
    }
}

/// Command tag of [`SetRegs`].
pub const CMD_SET_REGS: u32 = 1;
/// Command tag of [`SetState`].
pub const CMD_SET_STATE: u32 = 2;
/// Command tag of [`Complete`].
pub const CMD_COMPLETE: u32 = 3;

/// Sets the general registers, RIP and RFLAGS (RFLAGS bit 1 is forced on).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetRegs {
    /// [`CMD_SET_REGS`].
    pub cmd: u32,
    pub _pad: u32,
    pub regs: Regs,
}

/// Sets the whole state; the vCPU becomes runnable (a triple fault or a failed entry is over).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetState {
    /// [`CMD_SET_STATE`].
    pub cmd: u32,
    pub _pad: u32,
    pub state: VcpuState,
}

/// The result of the last exit: a PIO or MMIO read's value, a hypercall's result, or an INS's
/// data.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Complete {
    /// [`CMD_COMPLETE`].
    pub cmd: u32,
    /// INS: elements in `data` (at most the exit's `count`; fewer ends the string early).
    pub count: u32,
    /// The value read, or the hypercall's result.
    pub value: u64,
    /// INS data.
    pub data: [u8; IO_DATA_MAX],
}

impl SetRegs {
    /// The command for `regs`.
    pub fn new(regs: Regs) -> SetRegs {
        SetRegs {
            cmd: CMD_SET_REGS,
            _pad: 0,
            regs,
        }
    }
}

impl SetState {
    /// The command for `state`.
    pub fn new(state: VcpuState) -> SetState {
        SetState {
            cmd: CMD_SET_STATE,
            _pad: 0,
            state,
        }
    }
}

impl Complete {
    /// The completion of a read or hypercall with `value`.
    pub fn value(value: u64) -> Complete {
        Complete {
            cmd: CMD_COMPLETE,
            count: 0,
            value,
            data: [0; IO_DATA_MAX],
        }
    }

    /// The completion of an INS with `data`, which holds whole elements (at most
    /// [`IO_DATA_MAX`] bytes are kept).
    pub fn data(size: u8, data: &[u8]) -> Complete {
        let n = data.len().min(IO_DATA_MAX);
        let mut c = Complete::value(0);
        c.data[..n].copy_from_slice(&data[..n]);
        c.count = (n / usize::from(size.max(1))) as u32;
        c
    }
}

/// Which command a write carries, from its first four bytes.
pub fn command_of(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

// SAFETY: #[repr(C)], u64 fields only.
unsafe impl Record for Regs {}
// SAFETY: #[repr(C)], integers with explicit padding fields; the layout is checked below.
unsafe impl Record for Segment {}
// SAFETY: As for Segment.
unsafe impl Record for DescriptorTable {}
// SAFETY: #[repr(C)] of Records and u64s, whose sizes are multiples of 8 (checked below).
unsafe impl Record for Sregs {}
// SAFETY: As for Sregs.
unsafe impl Record for VcpuState {}
// SAFETY: #[repr(C)], integers laid out without gaps (checked below).
unsafe impl Record for Exit {}
// SAFETY: As for Exit.
unsafe impl Record for SetRegs {}
// SAFETY: As for Exit.
unsafe impl Record for SetState {}
// SAFETY: As for Exit.
unsafe impl Record for Complete {}

// The layouts have no padding: each size is the sum of its fields.
const _: () = assert!(core::mem::size_of::<Regs>() == 18 * 8);
const _: () = assert!(core::mem::size_of::<Segment>() == 24);
const _: () = assert!(core::mem::size_of::<DescriptorTable>() == 16);
const _: () = assert!(core::mem::size_of::<Sregs>() == 8 * 24 + 2 * 16 + 7 * 8);
const _: () = assert!(core::mem::size_of::<VcpuState>() == 144 + 280);
const _: () = assert!(core::mem::size_of::<Exit>() == 8 + 8 + 4 * 8 + 424 + IO_DATA_MAX);
const _: () = assert!(core::mem::size_of::<SetRegs>() == 8 + 144);
const _: () = assert!(core::mem::size_of::<SetState>() == 8 + 424);
const _: () = assert!(core::mem::size_of::<Complete>() == 16 + IO_DATA_MAX);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_bytes() {
        let mut s = VcpuState::real_mode(0x1000);
        s.regs.rax = 0x1122_3344_5566_7788;
        s.sregs.gdtr = DescriptorTable::new(0x500, 0x2f);
        let cmd = SetState::new(s);
        let bytes = cmd.as_bytes();
        assert_eq!(command_of(bytes), Some(CMD_SET_STATE));
        assert_eq!(SetState::from_bytes(bytes), Some(cmd));
        assert_eq!(SetState::from_bytes(&bytes[1..]), None);
    }

    #[test]
    fn exit_data_is_bounded_by_its_reason() {
        let mut e = Exit {
            reason: ExitReason::Pio as u32,
            size: 2,
            count: 3,
            ..Exit::default()
        };
        assert_eq!(e.data().len(), 6);
        e.count = 1000;
        assert_eq!(e.data().len(), IO_DATA_MAX);
        e.reason = ExitReason::Hypercall as u32;
        assert!(e.data().is_empty());
        assert_eq!(ExitReason::from_raw(99), None);
    }

    #[test]
    fn completion_counts_whole_elements() {
        let c = Complete::data(4, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!((c.count, c.data[8]), (2, 9));
    }
}
