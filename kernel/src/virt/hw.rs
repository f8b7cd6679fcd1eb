//! The one trait behind which VMX and SVM sit: a backend brings a CPU into virtualization and
//! makes vCPU contexts; a vCPU context enters the guest and comes back with an [`Exit`] in our
//! own terms. Everything above this module (the run loop, the exit handlers, the LAPIC, the
//! `#vm` device) is vendor-neutral and safe.

use crate::error::KResult;
use abi::vm::{Segment, Sregs};
use alloc::boxed::Box;

/// The guest's general registers, indexed by their instruction encoding (RAX = 0 ... R15 = 15),
/// plus CR2, which neither VMX nor (for us) the run loop keeps elsewhere. The entry assembly of
/// each backend reads and writes this layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Gprs {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15.
    pub r: [u64; 16],
    /// CR2 (VMX only: loaded before entry, saved after exit by the entry assembly).
    pub cr2: u64,
}

/// Register numbers in [`Gprs::r`].
pub mod gpr {
    /// RAX.
    pub const RAX: usize = 0;
    /// RCX.
    pub const RCX: usize = 1;
    /// RDX.
    pub const RDX: usize = 2;
    /// RBX.
    pub const RBX: usize = 3;
    /// RSP.
    pub const RSP: usize = 4;
    /// RSI.
    pub const RSI: usize = 6;
    /// RDI.
    pub const RDI: usize = 7;
}

/// The length of the instruction that exited, when the hardware said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    /// The hardware reported it (VMX exit instruction length, SVM next RIP).
    Known(u8),
    /// The run loop must decode the instruction at RIP to learn it (SVM without NRIP save).
    Decode,
}

/// A port I/O exit, decoded from the exit information (never from opcode bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoExit {
    /// The port.
    pub port: u16,
    /// 1, 2 or 4.
    pub size: u8,
    /// IN or INS.
    pub input: bool,
    /// INS or OUTS.
    pub string: bool,
    /// With a REP prefix.
    pub rep: bool,
    /// Address size of a string instruction in bytes (2, 4 or 8).
    pub address_size: u8,
    /// Segment of a string instruction's source (OUTS), if the hardware said it.
    pub segment: Option<SegReg>,
    /// The instruction's length.
    pub len: Len,
}

/// A segment register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegReg {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

impl SegReg {
    /// From the 3-bit encoding used by VMX instruction information and SVM IOIO (ES=0 ... GS=5).
    pub fn from_index(i: u64) -> Option<SegReg> {
        Some(match i {
            0 => SegReg::Es,
            1 => SegReg::Cs,
            2 => SegReg::Ss,
            3 => SegReg::Ds,
            4 => SegReg::Fs,
            5 => SegReg::Gs,
            _ => return None,
        })
    }
}

/// A VM exit in our own terms; each variant has its handler in `virt::exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A host interrupt arrived while the guest ran; it is delivered once interrupts are on.
    ExternalInterrupt,
    /// A host NMI arrived while the guest ran.
    Nmi,
    /// The guest can take an interrupt now (requested with `set_interrupt_window`).
    InterruptWindow,
    /// The deadline passed to `run` arrived (VMX preemption timer).
    TimerDeadline,
    Cpuid(Len),
    Hlt(Len),
    Rdmsr(Len),
    Wrmsr(Len),
    Xsetbv(Len),
    /// VMCALL or VMMCALL.
    Hypercall(Len),
    /// PAUSE (a spinning guest) or another instruction that is simply skipped.
    Skip(Len),
    /// An instruction the guest may not use (VMX/SVM instructions, MONITOR/MWAIT, RDPMC,
    /// RDTSCP): it gets #UD.
    Undefined,
    /// MOV to CRn from a general register (`None`: decode the instruction to learn which).
    CrWrite {
        cr: u8,
        gpr: Option<u8>,
        len: Len,
    },
    /// MOV from CRn to a general register.
    CrRead {
        cr: u8,
        gpr: Option<u8>,
        len: Len,
    },
    /// CLTS.
    Clts(Len),
    /// LMSW with its 16-bit source.
    Lmsw {
        value: u16,
        len: Len,
    },
    /// MOV to or from DRn (`None`: decode the instruction to learn the register).
    DrAccess {
        dr: u8,
        gpr: Option<u8>,
        write: bool,
        len: Len,
    },
    Io(IoExit),
    /// A guest-physical access that the nested page tables do not map (EPT violation, NPF).
    NestedFault {
        gpa: u64,
        write: bool,
        fetch: bool,
    },
    /// The guest triple-faulted (VMX triple-fault exit, SVM shutdown intercept).
    TripleFault,
    /// An intercepted guest exception (#DB, #AC: intercepted so that a guest cannot hang the
    /// CPU delivering them in a loop).
    Exception {
        vector: u8,
        error: Option<u32>,
    },
    /// VM entry failed: the hardware's reason and detail.
    EntryFailed {
        code: u64,
        qualification: u64,
    },
    /// Anything else: the raw reason and detail.
    Unhandled {
        code: u64,
        qualification: u64,
    },
}

/// An event to inject at the next entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An external interrupt with this vector.
    Interrupt(u8),
    /// A hardware exception, with its error code if it has one.
    Exception { vector: u8, error: Option<u32> },
}

/// MSRs that live in the hardware context (VMCS fields, VMCB save area) or are switched with
/// the guest, rather than in the vCPU's software MSR state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwMsr {
    Pat,
    SysenterCs,
    SysenterEsp,
    SysenterEip,
    FsBase,
    GsBase,
    KernelGsBase,
    Star,
    Lstar,
    Cstar,
    Sfmask,
}

/// Why the guest's attempt to change a control register or EFER was refused: it gets this
/// exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault(pub Event);

impl Fault {
    /// #GP(0).
    pub const GP: Fault = Fault(Event::Exception {
        vector: 13,
        error: Some(0),
    });
    /// #UD.
    pub const UD: Fault = Fault(Event::Exception {
        vector: 6,
        error: None,
    });
}

/// What a backend can do beyond the minimum.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    /// Exits report instruction lengths (VMX always; SVM with NRIP save).
    pub insn_len: bool,
    /// Nested page faults carry the instruction bytes (SVM decode assists).
    pub insn_bytes: bool,
    /// `run` can exit at a deadline (VMX preemption timer).
    pub deadline: bool,
    /// XSAVE is available to guests.
    pub xsave: bool,
}

/// A vendor's hardware virtualization.
pub trait Backend: Sync {
    /// "VMX" or "SVM".
    fn name(&self) -> &'static str;

    /// What it offers beyond the minimum.
    fn capabilities(&self) -> Capabilities;

    /// Turns virtualization on for this CPU (VMXON, EFER.SVME); does nothing the second time.
    fn enable_this_cpu(&self) -> KResult<()>;

    /// Which nested page-table format it walks.
    fn npt_format(&self) -> crate::virt::npt::Format;

    /// A new vCPU context on the nested page tables rooted at `npt_root`, in the state of a CPU
    /// after reset.
    fn new_vcpu(&self, npt_root: u64) -> KResult<Box<dyn HwVcpu>>;

    /// Forgets cached translations of the nested page tables rooted at `npt_root` (before their
    /// pages are freed or reused).
    fn flush_npt(&self, npt_root: u64);
}

/// One vCPU's hardware context (a VMCS or a VMCB) and what the backend keeps beside it.
///
/// Values are as the guest sees them: CR0 and CR4 without the bits the hardware forces, EFER
/// without SVME. Methods may only be called from the thread that runs the vCPU or while it is
/// not running.
pub trait HwVcpu: Send {
    /// Enters the guest with `gprs` and returns at the next exit. Interrupts must be off. With
    /// `deadline` (a TSC value) the backend exits by then if it can ([`Capabilities::deadline`]).
    fn run(&mut self, gprs: &mut Gprs, deadline: Option<u64>) -> Exit;

    /// The segment, descriptor-table and control registers (CR8 and APIC base left zero).
    fn sregs(&mut self) -> Sregs;

    /// Sets them; an invalid state is reported by the next entry, not here.
    fn set_sregs(&mut self, s: &Sregs);

    fn rip(&mut self) -> u64;
    fn set_rip(&mut self, rip: u64);
    fn rflags(&mut self) -> u64;
    fn set_rflags(&mut self, rflags: u64);
    fn cr0(&mut self) -> u64;
    fn cr3(&mut self) -> u64;
    fn cr4(&mut self) -> u64;
    fn efer(&mut self) -> u64;
    fn segment(&mut self, seg: SegReg) -> Segment;
    /// The current privilege level.
    fn cpl(&mut self) -> u8;

    /// MOV to CR0, CR3 or CR4 (CR8 is the LAPIC's), with the architectural checks and mode
    /// switches.
    fn write_cr(&mut self, cr: u8, value: u64) -> Result<(), Fault>;

    /// WRMSR to IA32_EFER.
    fn set_efer(&mut self, value: u64) -> Result<(), Fault>;

    /// One of the MSRs the hardware context holds.
    fn msr(&mut self, msr: HwMsr) -> u64;
    fn set_msr(&mut self, msr: HwMsr, value: u64);

    /// Whether interrupts are blocked by STI or MOV SS for one instruction.
    fn interrupt_shadow(&mut self) -> bool;
    /// Ends that blocking (after the run loop skips an instruction).
    fn clear_interrupt_shadow(&mut self);

    /// Whether an event is already queued for the next entry (one the exit interrupted, or
    /// one injected since).
    fn event_pending(&mut self) -> bool;
    /// Queues an event for the next entry; it replaces nothing already queued.
    fn inject(&mut self, event: Event);
    /// Drops whatever is queued (the VMM set a new state).
    fn clear_events(&mut self);

    /// Asks for (or stops asking for) an exit as soon as the guest can take an interrupt.
    fn set_interrupt_window(&mut self, on: bool);

    /// The guest's TPR as the hardware virtualizes it (SVM's V_TPR, changed by guest CR8
    /// writes without exits), or `None` if the hardware leaves TPR to us.
    fn hw_tpr(&mut self) -> Option<u8>;
    /// Tells the hardware the TPR (bits 7:4 matter).
    fn set_hw_tpr(&mut self, tpr: u8);

    /// The instruction bytes the last nested fault reported (SVM decode assists).
    fn fault_insn_bytes(&mut self) -> Option<([u8; 15], usize)>;

    /// Loads what the guest context needs beyond the VMCS/VMCB before a series of entries
    /// (MSRs the hardware does not switch); interrupts may be on between the entries.
    fn enter_context(&mut self);
    /// Puts the host's values back before the thread leaves the run loop.
    fn leave_context(&mut self);

    /// PAE paging without long mode: the page-directory pointers the guest's CR3 names, which
    /// VMX with EPT loads from the VMCS on entry (SDM §27.3.2.4). SVM reads them itself.
    fn set_pdptes(&mut self, _pdptes: [u64; 4]) {}
}
