//! Intel VMX (SDM Vol. 3C, chapters 24-33): VMXON per CPU, a VMCS per vCPU, EPT, VPID where
//! present, unrestricted guest (so guests start in real mode), and the VMX-preemption timer
//! for LAPIC timer deadlines while the guest runs.
//!
//! Control policy, fixed at first use and checked against the capability MSRs (Appendix A):
//! - pin-based: external-interrupt and NMI exiting; the preemption timer where present;
//! - primary: HLT, MWAIT, MONITOR, RDPMC, MOV DR, CR8 load/store, unconditional I/O exiting,
//!   MSR bitmaps, secondary controls; interrupt-window exiting on demand; no CR3 exiting;
//! - secondary: EPT, unrestricted guest, VPID and INVPCID where present;
//! - exit: 64-bit host, save/load EFER and PAT, save debug controls;
//! - entry: load EFER and PAT, load debug controls, IA-32e mode guest as the guest's EFER.LMA.
//!
//! Not used (yet): the TPR shadow, virtual-interrupt delivery and posted interrupts. With one
//! CPU running guests, an interrupt for a vCPU is only ever raised while that vCPU is not in
//! guest mode, so posting buys nothing; virtual-interrupt delivery would save the EOI and
//! interrupt-window exits and is the next step where the CPU has it.
//!
//! The MSR bitmap lets the guest use, without exits, the MSRs that the VMCS switches (FS and
//! GS base, SYSENTER, PAT) and those the run loop switches around a guest context (STAR,
//! LSTAR, CSTAR, FMASK, KERNEL_GS_BASE; see `switch_msrs`). CR0.NE and CR4.VMXE, which VMX
//! forces on, are owned by the host through the guest/host masks and read shadows (§25.6.6).

mod entry;
mod instr;
mod vmcs;

use super::cregs::{self, CR0_NE, CR0_PE, CR0_PG, CR4_VMXE, EFER_LMA};
use super::hw::{
    Backend, Capabilities, Event, Exit, Fault, Gprs, HwMsr, HwVcpu, IoExit, Len, SegReg, gpr,
};
use super::msr;
use super::npt::Format;
use crate::error::KResult;
use crate::mm::frame::{self, Frame};
use abi::errors::ENOMEM;
use abi::vm::{DescriptorTable, Segment, Sregs};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vmcs::{
    Ctrl16, Ctrl32, Ctrl64, CtrlNatural, Current, Exit32, Exit64, ExitNatural, Guest16, Guest32,
    Guest64, GuestNatural, Host16, Host32, Host64, HostNatural,
};

// Capability MSRs (SDM Appendix A).
const IA32_VMX_BASIC: u32 = 0x480;
const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
const IA32_VMX_EXIT_CTLS: u32 = 0x483;
const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
const IA32_VMX_MISC: u32 = 0x485;
const IA32_VMX_CR0_FIXED0: u32 = 0x486;
const IA32_VMX_CR0_FIXED1: u32 = 0x487;
const IA32_VMX_CR4_FIXED0: u32 = 0x488;
const IA32_VMX_CR4_FIXED1: u32 = 0x489;
const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
const IA32_VMX_EPT_VPID_CAP: u32 = 0x48c;
const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48d;
const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48e;
const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48f;
const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;

// Pin-based controls (§25.6.1, Table 25-5).
const PIN_EXTERNAL_INTERRUPT: u32 = 1 << 0;
const PIN_NMI: u32 = 1 << 3;
const PIN_PREEMPTION_TIMER: u32 = 1 << 6;
// Primary processor-based controls (§25.6.2, Table 25-6).
const PROC_INTERRUPT_WINDOW: u32 = 1 << 2;
const PROC_HLT: u32 = 1 << 7;
const PROC_MWAIT: u32 = 1 << 10;
const PROC_RDPMC: u32 = 1 << 11;
const PROC_CR8_LOAD: u32 = 1 << 19;
const PROC_CR8_STORE: u32 = 1 << 20;
const PROC_MOV_DR: u32 = 1 << 23;
const PROC_UNCONDITIONAL_IO: u32 = 1 << 24;
const PROC_MSR_BITMAP: u32 = 1 << 28;
const PROC_MONITOR: u32 = 1 << 29;
const PROC_SECONDARY: u32 = 1 << 31;
// Secondary controls (§25.6.2, Table 25-7).
const PROC2_EPT: u32 = 1 << 1;
const PROC2_VPID: u32 = 1 << 5;
const PROC2_UNRESTRICTED: u32 = 1 << 7;
const PROC2_INVPCID: u32 = 1 << 12;
// VM-exit controls (§25.7.1, Table 25-13).
const EXIT_SAVE_DEBUG: u32 = 1 << 2;
const EXIT_HOST_64: u32 = 1 << 9;
const EXIT_SAVE_PAT: u32 = 1 << 18;
const EXIT_LOAD_PAT: u32 = 1 << 19;
const EXIT_SAVE_EFER: u32 = 1 << 20;
const EXIT_LOAD_EFER: u32 = 1 << 21;
// VM-entry controls (§25.8.1, Table 25-15).
const ENTRY_LOAD_DEBUG: u32 = 1 << 2;
const ENTRY_IA32E: u32 = 1 << 9;
const ENTRY_LOAD_PAT: u32 = 1 << 14;
const ENTRY_LOAD_EFER: u32 = 1 << 15;

/// The controls and limits chosen once for every VMCS.
struct Config {
    revision: u32,
    pin: u32,
    proc: u32,
    proc2: u32,
    exit: u32,
    entry: u32,
    cr0_fixed0: u64,
    cr0_fixed1: u64,
    cr4_fixed0: u64,
    cr4_fixed1: u64,
    vpid: bool,
    invept_single: bool,
    invvpid_single: bool,
    invvpid_all: bool,
    /// The preemption timer counts down every 2^rate TSC ticks (IA32_VMX_MISC bits 4:0).
    preemption_rate: Option<u32>,
    /// INS/OUTS report their segment and address size (IA32_VMX_BASIC bit 54).
    ins_outs_info: bool,
    msr_bitmap: Frame,
}

static CONFIG: spin::Once<Result<Config, &'static str>> = spin::Once::new();
/// VMXON done on this CPU (one CPU runs guests for now).
static ON: AtomicBool = AtomicBool::new(false);
/// The VMCS current on this CPU (physical address; 0 = none).
static CURRENT: AtomicU64 = AtomicU64::new(0);

/// Adjusts `want` (required) and `like` (taken if allowed) to a capability MSR: bits 31:0 are
/// the allowed-0 settings, bits 63:32 the allowed-1 settings (SDM Appendix A.3).
fn controls(cap_msr: u32, want: u32, like: u32, name: &str) -> Result<u32, &'static str> {
    let cap = msr::read_checked(cap_msr).unwrap_or(0);
    let (must, may) = (cap as u32, (cap >> 32) as u32);
    let value = (must | want | like) & may;
    if value & want != want {
        log::warn!(
            "vmx: {name} controls lack {:#x} (allowed {may:#x})",
            want & !value
        );
        return Err("the CPU's VMX lacks controls this kernel needs");
    }
    Ok(value | must)
}

fn configure() -> Result<Config, &'static str> {
    let basic = msr::read_checked(IA32_VMX_BASIC).ok_or("VMX capability MSRs are missing")?;
    let true_ctls = basic & (1 << 55) != 0;
    let pick = |plain: u32, truer: u32| if true_ctls { truer } else { plain };
    let proc2_cap = msr::read_checked(IA32_VMX_PROCBASED_CTLS2).unwrap_or(0) >> 32;
    let ept_cap = msr::read_checked(IA32_VMX_EPT_VPID_CAP).unwrap_or(0);
    let misc = msr::read_checked(IA32_VMX_MISC).unwrap_or(0);

    // EPT with 4-level walks and write-back tables (§29.3.3, Appendix A.10).
    if ept_cap & (1 << 6) == 0 || ept_cap & (1 << 14) == 0 {
        return Err("EPT lacks 4-level walks or write-back memory");
    }
    let vpid = proc2_cap & u64::from(PROC2_VPID) != 0 && ept_cap & (1 << 32) != 0;
    let pin = controls(
        pick(IA32_VMX_PINBASED_CTLS, IA32_VMX_TRUE_PINBASED_CTLS),
        PIN_EXTERNAL_INTERRUPT | PIN_NMI,
        PIN_PREEMPTION_TIMER,
        "pin-based",
    )?;
    let proc = controls(
        pick(IA32_VMX_PROCBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS),
        PROC_HLT
            | PROC_MWAIT
            | PROC_RDPMC
            | PROC_CR8_LOAD
            | PROC_CR8_STORE
            | PROC_MOV_DR
            | PROC_UNCONDITIONAL_IO
            | PROC_MSR_BITMAP
            | PROC_MONITOR
            | PROC_SECONDARY,
        0,
        "processor-based",
    )?;
    let proc2 = controls(
        IA32_VMX_PROCBASED_CTLS2,
        PROC2_EPT | PROC2_UNRESTRICTED,
        if vpid { PROC2_VPID } else { 0 } | PROC2_INVPCID,
        "secondary",
    )?;
    let exit = controls(
        pick(IA32_VMX_EXIT_CTLS, IA32_VMX_TRUE_EXIT_CTLS),
        EXIT_HOST_64 | EXIT_SAVE_PAT | EXIT_LOAD_PAT | EXIT_SAVE_EFER | EXIT_LOAD_EFER,
        EXIT_SAVE_DEBUG,
        "VM-exit",
    )?;
    let entry = controls(
        pick(IA32_VMX_ENTRY_CTLS, IA32_VMX_TRUE_ENTRY_CTLS),
        ENTRY_LOAD_PAT | ENTRY_LOAD_EFER,
        ENTRY_LOAD_DEBUG,
        "VM-entry",
    )?;
    if controls(
        pick(IA32_VMX_PROCBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS),
        PROC_INTERRUPT_WINDOW,
        0,
        "interrupt-window",
    )
    .is_err()
    {
        return Err("VMX lacks interrupt-window exiting");
    }

    let msr_bitmap = frame::alloc_zeroed().ok_or(ENOMEM)?;
    // SAFETY: A fresh frame of ours: all ones (every MSR access exits), then the pass-through
    // MSRs cleared below.
    unsafe { core::ptr::write_bytes(msr_bitmap.as_mut_ptr(), 0xff, 4096) };
    for m in [
        msr::IA32_SYSENTER_CS,
        msr::IA32_SYSENTER_ESP,
        msr::IA32_SYSENTER_EIP,
        msr::IA32_PAT,
        msr::IA32_STAR,
        msr::IA32_LSTAR,
        msr::IA32_CSTAR,
        msr::IA32_FMASK,
        msr::IA32_FS_BASE,
        msr::IA32_GS_BASE,
        msr::IA32_KERNEL_GS_BASE,
    ] {
        // Read bitmap for low MSRs at 0, high at 1024; write bitmaps 2048 later (§25.6.9).
        let (base, index) = if m >= 0xc000_0000 {
            (1024, m - 0xc000_0000)
        } else {
            (0, m)
        };
        for half in [0usize, 2048] {
            let byte = half + base + (index / 8) as usize;
            // SAFETY: Inside our 4 KiB bitmap frame.
            unsafe { *msr_bitmap.as_mut_ptr().add(byte) &= !(1 << (index % 8)) };
        }
    }

    Ok(Config {
        revision: basic as u32 & 0x7fff_ffff,
        pin,
        proc,
        proc2,
        exit,
        entry,
        cr0_fixed0: msr::read_checked(IA32_VMX_CR0_FIXED0).unwrap_or(0),
        cr0_fixed1: msr::read_checked(IA32_VMX_CR0_FIXED1).unwrap_or(u64::MAX),
        cr4_fixed0: msr::read_checked(IA32_VMX_CR4_FIXED0).unwrap_or(CR4_VMXE),
        cr4_fixed1: msr::read_checked(IA32_VMX_CR4_FIXED1).unwrap_or(u64::MAX),
        vpid: proc2 & PROC2_VPID != 0,
        invept_single: ept_cap & (1 << 25) != 0,
        invvpid_single: ept_cap & (1 << 41) != 0,
        invvpid_all: ept_cap & (1 << 42) != 0,
        preemption_rate: (pin & PIN_PREEMPTION_TIMER != 0).then_some(misc as u32 & 0x1f),
        ins_outs_info: basic & (1 << 54) != 0,
        msr_bitmap,
    })
}

fn config() -> &'static Config {
    match CONFIG.get() {
        Some(Ok(c)) => c,
        _ => unreachable!("the VMX backend exists only with a configuration"),
    }
}

/// The VMX backend.
pub struct Vmx;

/// The one instance.
pub static VMX: Vmx = Vmx;

/// Checks the CPU's VMX and chooses controls; `Err` says why VMX cannot be used.
pub fn probe() -> Result<&'static Vmx, &'static str> {
    CONFIG.call_once(configure).as_ref().map_err(|e| *e)?;
    Ok(&VMX)
}

/// VPIDs in use (bit n = VPID n; VPID 0 is the host's).
static VPIDS: crate::sync::IrqLock<[u64; 1024]> = crate::sync::IrqLock::new([0; 1024]);
/// VPIDs that were used before and need a flush when reused.
static VPIDS_DIRTY: crate::sync::IrqLock<[u64; 1024]> = crate::sync::IrqLock::new([0; 1024]);

fn alloc_vpid() -> Option<(u16, bool)> {
    let mut used = VPIDS.lock();
    let dirty = VPIDS_DIRTY.lock();
    for (w, word) in used.iter_mut().enumerate() {
        if *word != u64::MAX {
            let bit = (!*word).trailing_zeros() as usize;
            let vpid = w * 64 + bit;
            *word |= 1 << bit;
            if vpid == 0 {
                continue;
            }
            return Some((vpid as u16, dirty[w] & (1 << bit) != 0));
        }
    }
    None
}

fn free_vpid(vpid: u16) {
    let (w, b) = (usize::from(vpid) / 64, usize::from(vpid) % 64);
    VPIDS.lock()[w] &= !(1 << b);
    VPIDS_DIRTY.lock()[w] |= 1 << b;
}

fn eptp(root: u64) -> u64 {
    // Write-back paging structures, 4-level walk (§25.6.11, Table 25-9).
    root | 6 | 3 << 3
}

impl Backend for Vmx {
    fn name(&self) -> &'static str {
        "VMX"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            insn_len: true,
            insn_bytes: false,
            deadline: config().preemption_rate.is_some(),
            xsave: super::fpu::max_xcr0() != 0,
        }
    }

    fn enable_this_cpu(&self) -> KResult<()> {
        if ON.load(Ordering::Acquire) {
            return Ok(());
        }
        let c = config();
        // IA32_FEATURE_CONTROL: lock it with VMX outside SMX enabled if firmware left it
        // unlocked (SDM Vol. 3C §24.7).
        let fc = msr::read_checked(msr::IA32_FEATURE_CONTROL).unwrap_or(0);
        if fc & 1 == 0 {
            // SAFETY: Enabling VMXON outside SMX and locking the MSR affects nothing else.
            let _ = unsafe { msr::write_checked(msr::IA32_FEATURE_CONTROL, fc | 1 | 1 << 2) };
        } else if fc & (1 << 2) == 0 {
            return Err("VMX is disabled by the firmware (IA32_FEATURE_CONTROL)".into());
        }
        super::fpu::init_cpu();
        use x86_64::registers::control::{Cr0, Cr4, Cr4Flags};
        // SAFETY: CR4.VMXE only permits VMXON (§24.7).
        unsafe { Cr4::update(|f| f.insert(Cr4Flags::VIRTUAL_MACHINE_EXTENSIONS)) };
        let (cr0, cr4) = (Cr0::read_raw(), Cr4::read_raw());
        if cr0 & c.cr0_fixed0 != c.cr0_fixed0 || cr4 & c.cr4_fixed0 != c.cr4_fixed0 {
            return Err("CR0/CR4 do not meet VMX's fixed bits".into());
        }
        let region = frame::alloc_zeroed().ok_or(ENOMEM)?;
        // SAFETY: Our fresh frame: its first word is the revision identifier (§25.11.5).
        unsafe { region.as_mut_ptr().cast::<u32>().write(c.revision) };
        // SAFETY: CR4.VMXE is set, CR0/CR4 meet the fixed bits, and the region (leaked: VMX
        // stays on) is prepared as the instruction requires.
        unsafe { instr::vmxon(region.addr()) }.map_err(|_| "VMXON failed")?;
        // SAFETY: VMX is on; flush anything a previous owner of the CPU left cached. Failures
        // (a kind the CPU lacks) are harmless.
        unsafe {
            let _ = instr::invept(2, 0);
            if c.invvpid_all {
                let _ = instr::invvpid(2, 0);
            }
        }
        ON.store(true, Ordering::Release);
        log::info!("vmx: on (VMCS revision {:#x})", c.revision);
        Ok(())
    }

    fn npt_format(&self) -> Format {
        Format::Ept
    }

    fn new_vcpu(&self, npt_root: u64) -> KResult<Box<dyn HwVcpu>> {
        let c = config();
        let vmcs = frame::alloc_zeroed().ok_or(ENOMEM)?;
        // SAFETY: Our fresh frame; the revision identifier goes in its first word (§25.2).
        unsafe { vmcs.as_mut_ptr().cast::<u32>().write(c.revision) };
        let (vpid, flush_vpid) = if c.vpid {
            alloc_vpid().map_or((0, false), |(v, f)| (v, f))
        } else {
            (0, false)
        };
        let mut v = Box::new(VmxVcpu {
            vmcs,
            vpid,
            flush_vpid,
            launched: false,
            proc: c.proc,
            event_queued: false,
            host_cr3: 0,
            switched: [0; 5],
            host_switched: [0; 5],
            in_context: false,
        });
        // SAFETY: VMX is on (the VM enabled this CPU first) and the frame is a fresh VMCS.
        unsafe { instr::vmclear(v.vmcs.addr()) }.map_err(|_| "VMCLEAR failed")?;
        v.setup(npt_root);
        Ok(v)
    }

    fn flush_npt(&self, npt_root: u64) {
        let kind = if config().invept_single { 1 } else { 2 };
        // SAFETY: VMX is on whenever tables exist (they are made for a VM on an enabled CPU).
        let _ = unsafe { instr::invept(kind, eptp(npt_root)) };
    }
}

/// One vCPU's VMCS and the software state around it.
pub struct VmxVcpu {
    vmcs: Frame,
    vpid: u16,
    /// The VPID was used by an earlier vCPU: flush it before the first entry.
    flush_vpid: bool,
    launched: bool,
    /// The primary controls as last written (interrupt-window exiting changes).
    proc: u32,
    /// The VM-entry interruption-information field is valid.
    event_queued: bool,
    /// HOST_CR3 as last written.
    host_cr3: u64,
    /// The guest's values of the MSRs in [`SWITCHED`] while its context is not loaded.
    switched: [u64; 5],
    /// The host's values while the guest's are loaded.
    host_switched: [u64; 5],
    in_context: bool,
}

/// MSRs that neither the VMCS nor VMX switch and that the guest uses without exits (the MSR
/// bitmap passes them through): the run loop loads the guest's values around entries.
const SWITCHED: [u32; 5] = [
    msr::IA32_KERNEL_GS_BASE,
    msr::IA32_STAR,
    msr::IA32_LSTAR,
    msr::IA32_CSTAR,
    msr::IA32_FMASK,
];

fn switched_index(m: HwMsr) -> Option<usize> {
    match m {
        HwMsr::KernelGsBase => Some(0),
        HwMsr::Star => Some(1),
        HwMsr::Lstar => Some(2),
        HwMsr::Cstar => Some(3),
        HwMsr::Sfmask => Some(4),
        _ => None,
    }
}

impl VmxVcpu {
    /// Makes the VMCS current on this CPU and returns the token for its fields.
    fn cur(&mut self) -> Current<'static> {
        if CURRENT.load(Ordering::Relaxed) != self.vmcs.addr() {
            // SAFETY: VMX is on; the VMCS is ours and not active on another CPU (one CPU).
            if unsafe { instr::vmptrld(self.vmcs.addr()) }.is_err() {
                log::error!("vmx: VMPTRLD failed");
            }
            CURRENT.store(self.vmcs.addr(), Ordering::Relaxed);
        }
        // SAFETY: Just made current; the token is used only until the next VMPTRLD, which
        // only `cur` of another vCPU does, after this one's borrow ended.
        unsafe { Current::assume() }
    }

    /// Host state and controls (§25.5, §25.6-25.8), and the reset guest state.
    fn setup(&mut self, npt_root: u64) {
        let cfg = config();
        let c = self.cur();
        // Controls (§25.6-25.8).
        Ctrl32::PinBased.write(&c, cfg.pin);
        Ctrl32::ProcBased.write(&c, self.proc);
        Ctrl32::ProcBased2.write(&c, cfg.proc2);
        Ctrl32::ExitControls.write(&c, cfg.exit);
        Ctrl32::EntryControls.write(&c, cfg.entry);
        // #DB and #AC exit, so a guest cannot wedge the CPU delivering them forever
        // (CVE-2015-5307, CVE-2015-8104); the handler reflects them back (§25.6.3).
        Ctrl32::ExceptionBitmap.write(&c, 1 << 1 | 1 << 17);
        Ctrl32::Cr3TargetCount.write(&c, 0);
        Ctrl32::ExitMsrStoreCount.write(&c, 0);
        Ctrl32::ExitMsrLoadCount.write(&c, 0);
        Ctrl32::EntryMsrLoadCount.write(&c, 0);
        Ctrl32::EntryIntrInfo.write(&c, 0);
        Ctrl64::MsrBitmap.write(&c, cfg.msr_bitmap.addr());
        Ctrl64::TscOffset.write(&c, 0);
        Ctrl64::Eptp.write(&c, eptp(npt_root));
        if cfg.vpid {
            Ctrl16::Vpid.write(&c, self.vpid);
        }
        let cr0_owned = (cfg.cr0_fixed0 | !cfg.cr0_fixed1) & !(CR0_PE | CR0_PG) & 0xffff_ffff;
        CtrlNatural::Cr0Mask.write(&c, cr0_owned | CR0_NE);
        CtrlNatural::Cr4Mask.write(&c, (cfg.cr4_fixed0 | !cfg.cr4_fixed1) & 0xffff_ffff);

        // Host state (§25.5): this CPU's kernel context.
        use x86_64::instructions::tables::{sgdt, sidt};
        use x86_64::registers::control::Cr4;
        let gdt = sgdt();
        let idt = sidt();
        let tr: u16;
        // SAFETY: STR only reads the task register.
        unsafe { core::arch::asm!("str {0:x}", out(reg) tr, options(nomem, nostack)) };
        let desc = gdt.base.as_u64() + u64::from(tr & !7);
        let lo: u64 = crate::mm::phys_read(crate::mm::PhysAddr(
            crate::mm::paging::translate(desc).unwrap_or(0),
        ));
        let hi: u64 = crate::mm::phys_read(crate::mm::PhysAddr(
            crate::mm::paging::translate(desc + 8).unwrap_or(0),
        ));
        let tr_base = (lo >> 16 & 0xff_ffff) | (lo >> 56 & 0xff) << 24 | (hi & 0xffff_ffff) << 32;
        HostNatural::Cr0.write(&c, super::fpu::host_cr0_in_guest_context());
        HostNatural::Cr4.write(&c, Cr4::read_raw());
        Host16::Cs.write(&c, crate::arch::x86_64::gdt::KERNEL_CS);
        Host16::Ss.write(&c, crate::arch::x86_64::gdt::KERNEL_DS);
        Host16::Ds.write(&c, 0);
        Host16::Es.write(&c, 0);
        Host16::Fs.write(&c, 0);
        Host16::Gs.write(&c, 0);
        Host16::Tr.write(&c, tr);
        HostNatural::FsBase.write(&c, msr::read(msr::IA32_FS_BASE));
        HostNatural::GsBase.write(&c, msr::read(msr::IA32_GS_BASE));
        HostNatural::TrBase.write(&c, tr_base);
        HostNatural::GdtrBase.write(&c, gdt.base.as_u64());
        HostNatural::IdtrBase.write(&c, idt.base.as_u64());
        Host32::SysenterCs.write(&c, 0);
        HostNatural::SysenterEsp.write(&c, 0);
        HostNatural::SysenterEip.write(&c, 0);
        Host64::Pat.write(&c, msr::read(msr::IA32_PAT));
        Host64::Efer.write(&c, msr::read(msr::IA32_EFER));
        HostNatural::Rip.write(&c, entry::exit_address());

        // Guest state that the VMM never sets (§25.4.2).
        Guest64::LinkPointer.write(&c, u64::MAX);
        Guest64::DebugCtl.write(&c, 0);
        Guest64::Pat.write(&c, msr::PAT_DEFAULT);
        Guest32::ActivityState.write(&c, 0);
        Guest32::Interruptibility.write(&c, 0);
        GuestNatural::PendingDebug.write(&c, 0);
        GuestNatural::Dr7.write(&c, 0x400);
        Guest32::SysenterCs.write(&c, 0);
        GuestNatural::SysenterEsp.write(&c, 0);
        GuestNatural::SysenterEip.write(&c, 0);
        GuestNatural::Rsp.write(&c, 0);
        Guest64::Efer.write(&c, 0);
        let mut reset = abi::vm::VcpuState::real_mode(0xfff0).sregs;
        reset.cs = Segment::new(0xf000, 0xffff_0000, 0xffff, abi::vm::access::REAL_CODE);
        self.set_sregs(&reset);
        self.set_rflags(2);
        self.set_rip(0xfff0);
    }

    fn guest_cr0(&mut self) -> u64 {
        let c = self.cur();
        let mask = CtrlNatural::Cr0Mask.read(&c);
        GuestNatural::Cr0.read(&c) & !mask | CtrlNatural::Cr0Shadow.read(&c) & mask
    }

    fn guest_cr4(&mut self) -> u64 {
        let c = self.cur();
        let mask = CtrlNatural::Cr4Mask.read(&c);
        GuestNatural::Cr4.read(&c) & !mask | CtrlNatural::Cr4Shadow.read(&c) & mask
    }

    /// Writes CR0 as the guest sees it: the shadow, and the hardware value with the bits VMX
    /// forces (§25.6.6, Appendix A.7).
    fn put_cr0(&mut self, value: u64) {
        let cfg = config();
        let forced = cfg.cr0_fixed0 & !(CR0_PE | CR0_PG);
        let hw = (value | forced) & (cfg.cr0_fixed1 | CR0_PE | CR0_PG);
        let c = self.cur();
        GuestNatural::Cr0.write(&c, hw);
        CtrlNatural::Cr0Shadow.write(&c, value);
    }

    /// Writes CR4 as the guest sees it (Appendix A.8).
    fn put_cr4(&mut self, value: u64) {
        let cfg = config();
        let c = self.cur();
        GuestNatural::Cr4.write(&c, (value | cfg.cr4_fixed0) & cfg.cr4_fixed1);
        CtrlNatural::Cr4Shadow.write(&c, value);
    }

    /// Makes the IA-32e-mode-guest entry control follow EFER.LMA (§26.3.1.1). The control is
    /// read back rather than cached: a VM exit stores the guest's EFER.LMA into it (§28.2), so a
    /// guest that enters long mode by itself changes it.
    fn sync_ia32e(&mut self, efer: u64) {
        let c = self.cur();
        let entry = Ctrl32::EntryControls.read(&c);
        let want = if efer & EFER_LMA != 0 {
            entry | ENTRY_IA32E
        } else {
            entry & !ENTRY_IA32E
        };
        if want != entry {
            Ctrl32::EntryControls.write(&c, want);
        }
    }

    /// Turns the exit fields into our [`Exit`] (SDM §28.2, Appendix C).
    fn decode_exit(&mut self) -> Exit {
        let c = self.cur();
        let reason = Exit32::Reason.read(&c);
        let qual = ExitNatural::Qualification.read(&c);
        if reason & (1 << 31) != 0 {
            // VM-entry failure during or after loading guest state (§27.8).
            return Exit::EntryFailed {
                code: u64::from(reason),
                qualification: qual,
            };
        }
        // A VM exit clears the valid bit of the entry interruption information (§28.2): the
        // queued event, if any, was delivered, or is in the IDT-vectoring information.
        self.event_queued = false;
        let vectoring = Exit32::IdtVectoringInfo.read(&c);
        let len = Len::Known(Exit32::InstrLen.read(&c) as u8);
        let exit = match reason & 0xffff {
            0 => {
                let info = Exit32::IntrInfo.read(&c);
                let vector = info as u8;
                match (info >> 8) & 7 {
                    2 => Exit::Nmi,
                    _ => Exit::Exception {
                        vector,
                        error: (info & (1 << 11) != 0).then(|| Exit32::IntrError.read(&c)),
                    },
                }
            }
            1 => Exit::ExternalInterrupt,
            2 => Exit::TripleFault,
            7 => Exit::InterruptWindow,
            10 => Exit::Cpuid(len),
            12 => Exit::Hlt(len),
            13 | 40 | 54 => Exit::Skip(len),
            18 => Exit::Hypercall(len),
            11 | 15 | 19..=27 | 36 | 39 | 50 | 51 | 53 => Exit::Undefined,
            28 => {
                let cr = (qual & 0xf) as u8;
                let gpr = ((qual >> 8) & 0xf) as u8;
                match (qual >> 4) & 3 {
                    0 => Exit::CrWrite {
                        cr,
                        gpr: Some(gpr),
                        len,
                    },
                    1 => Exit::CrRead {
                        cr,
                        gpr: Some(gpr),
                        len,
                    },
                    2 => Exit::Clts(len),
                    _ => Exit::Lmsw {
                        value: (qual >> 16) as u16,
                        len,
                    },
                }
            }
            29 => Exit::DrAccess {
                dr: (qual & 7) as u8,
                gpr: Some(((qual >> 8) & 0xf) as u8),
                write: qual & (1 << 4) == 0,
                len,
            },
            30 => {
                let string = qual & (1 << 4) != 0;
                let info = Exit32::InstrInfo.read(&c);
                let info_valid = string && config().ins_outs_info;
                Exit::Io(IoExit {
                    port: (qual >> 16) as u16,
                    size: (qual & 7) as u8 + 1,
                    input: qual & (1 << 3) != 0,
                    string,
                    rep: qual & (1 << 5) != 0,
                    address_size: if info_valid {
                        2 << ((info >> 7) & 3)
                    } else {
                        0
                    },
                    segment: if info_valid {
                        SegReg::from_index(u64::from(info >> 15) & 7)
                    } else {
                        None
                    },
                    len,
                })
            }
            31 => Exit::Rdmsr(len),
            32 => Exit::Wrmsr(len),
            48 => Exit::NestedFault {
                gpa: Exit64::GuestPhysical.read(&c),
                write: qual & 2 != 0,
                fetch: qual & 4 != 0,
            },
            52 => Exit::TimerDeadline,
            55 => Exit::Xsetbv(len),
            other => Exit::Unhandled {
                code: u64::from(other),
                qualification: qual,
            },
        };
        // An event whose delivery the exit interrupted is delivered again (§28.2.4, §27.6.1).
        if vectoring & (1 << 31) != 0 && exit != Exit::TripleFault {
            Ctrl32::EntryIntrInfo.write(&c, vectoring & !(1 << 12));
            if vectoring & (1 << 11) != 0 {
                Ctrl32::EntryExceptionError.write(&c, Exit32::IdtVectoringError.read(&c));
            }
            Ctrl32::EntryInstrLen.write(&c, Exit32::InstrLen.read(&c));
            self.event_queued = true;
        }
        exit
    }

    fn segment_fields(seg: SegReg) -> (Guest16, GuestNatural, Guest32, Guest32) {
        use Guest16 as S;
        use Guest32 as L;
        use GuestNatural as B;
        match seg {
            SegReg::Es => (S::EsSelector, B::EsBase, L::EsLimit, L::EsAccess),
            SegReg::Cs => (S::CsSelector, B::CsBase, L::CsLimit, L::CsAccess),
            SegReg::Ss => (S::SsSelector, B::SsBase, L::SsLimit, L::SsAccess),
            SegReg::Ds => (S::DsSelector, B::DsBase, L::DsLimit, L::DsAccess),
            SegReg::Fs => (S::FsSelector, B::FsBase, L::FsLimit, L::FsAccess),
            SegReg::Gs => (S::GsSelector, B::GsBase, L::GsLimit, L::GsAccess),
        }
    }

    fn read_segment(c: &Current, f: (Guest16, GuestNatural, Guest32, Guest32)) -> Segment {
        Segment::new(f.0.read(c), f.1.read(c), f.2.read(c), f.3.read(c))
    }

    fn write_segment(c: &Current, f: (Guest16, GuestNatural, Guest32, Guest32), s: &Segment) {
        f.0.write(c, s.selector);
        f.1.write(c, s.base);
        f.2.write(c, s.limit);
        f.3.write(c, s.access & 0x1f0ff);
    }
}

impl Drop for VmxVcpu {
    fn drop(&mut self) {
        self.leave_context();
        // SAFETY: VMX is on; VMCLEAR makes the VMCS inactive before its frame is freed.
        let _ = unsafe { instr::vmclear(self.vmcs.addr()) };
        let _ = CURRENT.compare_exchange(self.vmcs.addr(), 0, Ordering::Relaxed, Ordering::Relaxed);
        if self.vpid != 0 {
            free_vpid(self.vpid);
        }
        frame::free(self.vmcs);
    }
}

impl HwVcpu for VmxVcpu {
    fn run(&mut self, gprs: &mut Gprs, deadline: Option<u64>) -> Exit {
        let cfg = config();
        if self.flush_vpid {
            let kind = if cfg.invvpid_single { 1 } else { 2 };
            // SAFETY: VMX is on and the CPU has INVVPID (VPIDs are used only then).
            let _ = unsafe { instr::invvpid(kind, self.vpid) };
            self.flush_vpid = false;
        }
        let host_cr3 = x86_64::registers::control::Cr3::read_raw()
            .0
            .start_address()
            .as_u64();
        let c = self.cur();
        if host_cr3 != self.host_cr3 {
            HostNatural::Cr3.write(&c, host_cr3);
            self.host_cr3 = host_cr3;
        }
        GuestNatural::Rsp.write(&c, gprs.r[gpr::RSP]);
        if let Some(rate) = cfg.preemption_rate {
            // Exit by the LAPIC deadline, and at least every scheduler tick: a guest must never
            // keep the CPU even if an external interrupt fails to cause an exit (Bochs 2.7 does
            // not exit for one while the guest has RFLAGS.IF clear).
            let now = crate::arch::x86_64::rdtsc();
            let slice = crate::time::tsc_hz() / crate::time::HZ;
            let until = deadline.map_or(slice, |d| d.saturating_sub(now).min(slice));
            Guest32::PreemptionTimer.write(&c, (until >> rate).min(u64::from(u32::MAX)) as u32);
        }
        // SAFETY: VMX is on, this VMCS is current and was set up by `setup` on this CPU (the
        // only CPU), and the run loop calls us with interrupts off.
        let result = unsafe { entry::enter(gprs, self.launched) };
        let c = self.cur();
        match result {
            entry::Entered::Exited => {
                gprs.r[gpr::RSP] = GuestNatural::Rsp.read(&c);
                let exit = self.decode_exit();
                if let Exit::EntryFailed { .. } = exit {
                    // Start again from a clear launch state (§27.8).
                    // SAFETY: VMX is on and the VMCS is ours.
                    let _ = unsafe { instr::vmclear(self.vmcs.addr()) };
                    CURRENT.store(0, Ordering::Relaxed);
                    self.launched = false;
                } else {
                    self.launched = true;
                }
                exit
            }
            entry::Entered::FailValid => Exit::EntryFailed {
                code: u64::from(Exit32::InstructionError.read(&c)),
                qualification: 0,
            },
            entry::Entered::FailInvalid => Exit::EntryFailed {
                code: u64::MAX - 1,
                qualification: 0,
            },
        }
    }

    fn sregs(&mut self) -> Sregs {
        let cr0 = self.guest_cr0();
        let cr4 = self.guest_cr4();
        let c = self.cur();
        let seg = |s| Self::read_segment(&c, Self::segment_fields(s));
        Sregs {
            cs: seg(SegReg::Cs),
            ds: seg(SegReg::Ds),
            es: seg(SegReg::Es),
            fs: seg(SegReg::Fs),
            gs: seg(SegReg::Gs),
            ss: seg(SegReg::Ss),
            tr: Self::read_segment(
                &c,
                (
                    Guest16::TrSelector,
                    GuestNatural::TrBase,
                    Guest32::TrLimit,
                    Guest32::TrAccess,
                ),
            ),
            ldtr: Self::read_segment(
                &c,
                (
                    Guest16::LdtrSelector,
                    GuestNatural::LdtrBase,
                    Guest32::LdtrLimit,
                    Guest32::LdtrAccess,
                ),
            ),
            gdtr: DescriptorTable::new(
                GuestNatural::GdtrBase.read(&c),
                Guest32::GdtrLimit.read(&c) as u16,
            ),
            idtr: DescriptorTable::new(
                GuestNatural::IdtrBase.read(&c),
                Guest32::IdtrLimit.read(&c) as u16,
            ),
            cr0,
            cr2: 0,
            cr3: GuestNatural::Cr3.read(&c),
            cr4,
            cr8: 0,
            efer: Guest64::Efer.read(&c),
            apic_base: 0,
        }
    }

    fn set_sregs(&mut self, s: &Sregs) {
        self.put_cr0(s.cr0);
        self.put_cr4(s.cr4);
        let c = self.cur();
        for (seg, value) in [
            (SegReg::Cs, &s.cs),
            (SegReg::Ds, &s.ds),
            (SegReg::Es, &s.es),
            (SegReg::Fs, &s.fs),
            (SegReg::Gs, &s.gs),
            (SegReg::Ss, &s.ss),
        ] {
            Self::write_segment(&c, Self::segment_fields(seg), value);
        }
        Self::write_segment(
            &c,
            (
                Guest16::TrSelector,
                GuestNatural::TrBase,
                Guest32::TrLimit,
                Guest32::TrAccess,
            ),
            &s.tr,
        );
        Self::write_segment(
            &c,
            (
                Guest16::LdtrSelector,
                GuestNatural::LdtrBase,
                Guest32::LdtrLimit,
                Guest32::LdtrAccess,
            ),
            &s.ldtr,
        );
        GuestNatural::GdtrBase.write(&c, s.gdtr.base);
        Guest32::GdtrLimit.write(&c, u32::from(s.gdtr.limit));
        GuestNatural::IdtrBase.write(&c, s.idtr.base);
        Guest32::IdtrLimit.write(&c, u32::from(s.idtr.limit));
        GuestNatural::Cr3.write(&c, s.cr3);
        Guest64::Efer.write(&c, s.efer);
        Guest32::Interruptibility.write(&c, 0);
        self.sync_ia32e(s.efer);
    }

    fn rip(&mut self) -> u64 {
        let c = self.cur();
        GuestNatural::Rip.read(&c)
    }

    fn set_rip(&mut self, rip: u64) {
        let c = self.cur();
        GuestNatural::Rip.write(&c, rip);
    }

    fn rflags(&mut self) -> u64 {
        let c = self.cur();
        GuestNatural::Rflags.read(&c)
    }

    fn set_rflags(&mut self, rflags: u64) {
        let c = self.cur();
        GuestNatural::Rflags.write(&c, rflags);
    }

    fn cr0(&mut self) -> u64 {
        self.guest_cr0()
    }

    fn cr3(&mut self) -> u64 {
        let c = self.cur();
        GuestNatural::Cr3.read(&c)
    }

    fn cr4(&mut self) -> u64 {
        self.guest_cr4()
    }

    fn efer(&mut self) -> u64 {
        let c = self.cur();
        Guest64::Efer.read(&c)
    }

    fn segment(&mut self, seg: SegReg) -> Segment {
        let c = self.cur();
        Self::read_segment(&c, Self::segment_fields(seg))
    }

    fn cpl(&mut self) -> u8 {
        // With unrestricted guest, CPL is SS.DPL (§27.3.1.5; 0 in real mode).
        let c = self.cur();
        ((Guest32::SsAccess.read(&c) >> 5) & 3) as u8
    }

    fn write_cr(&mut self, cr: u8, value: u64) -> Result<(), Fault> {
        match cr {
            0 => {
                let efer =
                    cregs::write_cr0(self.guest_cr0(), value, self.efer(), self.guest_cr4())?;
                self.put_cr0(value);
                if let Some(efer) = efer {
                    let c = self.cur();
                    Guest64::Efer.write(&c, efer);
                    self.sync_ia32e(efer);
                }
                Ok(())
            }
            3 => {
                let c = self.cur();
                GuestNatural::Cr3.write(&c, value);
                Ok(())
            }
            4 => {
                cregs::check_cr4(value, config().cr4_fixed1 & !CR4_VMXE, self.efer())?;
                self.put_cr4(value);
                Ok(())
            }
            _ => Err(Fault::UD),
        }
    }

    fn set_efer(&mut self, value: u64) -> Result<(), Fault> {
        let new = cregs::write_efer(self.efer(), value, self.guest_cr0())?;
        let c = self.cur();
        Guest64::Efer.write(&c, new);
        Ok(())
    }

    fn msr(&mut self, m: HwMsr) -> u64 {
        if let Some(i) = switched_index(m) {
            return if self.in_context {
                msr::read(SWITCHED[i])
            } else {
                self.switched[i]
            };
        }
        let c = self.cur();
        match m {
            HwMsr::Pat => Guest64::Pat.read(&c),
            HwMsr::SysenterCs => u64::from(Guest32::SysenterCs.read(&c)),
            HwMsr::SysenterEsp => GuestNatural::SysenterEsp.read(&c),
            HwMsr::SysenterEip => GuestNatural::SysenterEip.read(&c),
            HwMsr::FsBase => GuestNatural::FsBase.read(&c),
            HwMsr::GsBase => GuestNatural::GsBase.read(&c),
            HwMsr::KernelGsBase | HwMsr::Star | HwMsr::Lstar | HwMsr::Cstar | HwMsr::Sfmask => 0,
        }
    }

    fn set_msr(&mut self, m: HwMsr, value: u64) {
        if let Some(i) = switched_index(m) {
            if self.in_context {
                // SAFETY: The guest's context is loaded; the host's values come back in
                // `leave_context`. Callers pass canonical addresses (checked by the MSR
                // handler), which WRMSR accepts.
                unsafe { msr::write(SWITCHED[i], value) };
            } else {
                self.switched[i] = value;
            }
            return;
        }
        let c = self.cur();
        match m {
            HwMsr::Pat => Guest64::Pat.write(&c, value),
            HwMsr::SysenterCs => Guest32::SysenterCs.write(&c, value as u32),
            HwMsr::SysenterEsp => GuestNatural::SysenterEsp.write(&c, value),
            HwMsr::SysenterEip => GuestNatural::SysenterEip.write(&c, value),
            HwMsr::FsBase => GuestNatural::FsBase.write(&c, value),
            HwMsr::GsBase => GuestNatural::GsBase.write(&c, value),
            HwMsr::KernelGsBase | HwMsr::Star | HwMsr::Lstar | HwMsr::Cstar | HwMsr::Sfmask => {}
        }
    }

    fn interrupt_shadow(&mut self) -> bool {
        let c = self.cur();
        Guest32::Interruptibility.read(&c) & 3 != 0
    }

    fn clear_interrupt_shadow(&mut self) {
        let c = self.cur();
        let v = Guest32::Interruptibility.read(&c);
        if v & 3 != 0 {
            Guest32::Interruptibility.write(&c, v & !3);
        }
    }

    fn event_pending(&mut self) -> bool {
        self.event_queued
    }

    fn inject(&mut self, event: Event) {
        if self.event_queued {
            return;
        }
        let real_mode = self.guest_cr0() & CR0_PE == 0;
        let c = self.cur();
        // VM-entry event injection (§27.6, Table 25-17).
        let info = match event {
            Event::Interrupt(v) => u32::from(v) | 1 << 31,
            Event::Exception { vector, error } => {
                let mut info = u32::from(vector) | 3 << 8 | 1 << 31;
                // No error code is delivered in real mode (§27.2.1.3).
                if let (Some(e), false) = (error, real_mode) {
                    info |= 1 << 11;
                    Ctrl32::EntryExceptionError.write(&c, e);
                }
                info
            }
        };
        Ctrl32::EntryIntrInfo.write(&c, info);
        self.event_queued = true;
    }

    fn clear_events(&mut self) {
        let c = self.cur();
        Ctrl32::EntryIntrInfo.write(&c, 0);
        self.event_queued = false;
    }

    fn set_interrupt_window(&mut self, on: bool) {
        let want = if on {
            self.proc | PROC_INTERRUPT_WINDOW
        } else {
            self.proc & !PROC_INTERRUPT_WINDOW
        };
        if want != self.proc {
            self.proc = want;
            let c = self.cur();
            Ctrl32::ProcBased.write(&c, want);
        }
    }

    fn hw_tpr(&mut self) -> Option<u8> {
        None
    }

    fn set_hw_tpr(&mut self, _tpr: u8) {}

    fn fault_insn_bytes(&mut self) -> Option<([u8; 15], usize)> {
        None
    }

    fn enter_context(&mut self) {
        if self.in_context {
            return;
        }
        for (i, &m) in SWITCHED.iter().enumerate() {
            self.host_switched[i] = msr::read(m);
            // SAFETY: Guest values of MSRs that only matter in user mode or on SYSCALL, which
            // the host does not reach before `leave_context` restores its own; they were
            // accepted by WRMSR before (in the guest, or canonical-checked by us).
            unsafe { msr::write(m, self.switched[i]) };
        }
        self.in_context = true;
    }

    fn leave_context(&mut self) {
        if !self.in_context {
            return;
        }
        for (i, &m) in SWITCHED.iter().enumerate() {
            self.switched[i] = msr::read(m);
            // SAFETY: The host's own values, read in `enter_context`.
            unsafe { msr::write(m, self.host_switched[i]) };
        }
        self.in_context = false;
    }

    fn set_pdptes(&mut self, pdptes: [u64; 4]) {
        let c = self.cur();
        Guest64::Pdpte0.write(&c, pdptes[0]);
        Guest64::Pdpte1.write(&c, pdptes[1]);
        Guest64::Pdpte2.write(&c, pdptes[2]);
        Guest64::Pdpte3.write(&c, pdptes[3]);
    }
}
