//! AMD SVM (APM Vol. 2, chapter 15): EFER.SVME and a host save area per CPU, a VMCB per vCPU,
//! nested paging, an ASID per vCPU. It works with the minimum the emulators offer (QEMU TCG:
//! no NRIP save, no decode assists, no VMCB clean bits, no flush-by-ASID) and uses those
//! features where the CPU has them: NRIP save gives instruction lengths, decode assists give
//! the bytes of a faulting instruction and the operands of CR/DR moves, clean bits spare
//! reloads, flush-by-ASID spares whole-TLB flushes.
//!
//! Intercepts (§15.9-15.14): INTR, NMI, SMI, INIT, CPUID, HLT, INVD, RDPMC, INVLPGA, I/O and MSR
//! accesses through all-ones permission maps (except the MSRs VMLOAD/VMSAVE switch), SHUTDOWN,
//! every SVM instruction, VMMCALL, RDTSCP, WBINVD, MONITOR/MWAIT, XSETBV, CR8 writes, all DR
//! accesses, and the #DB, #DF and #AC exceptions. V_INTR_MASKING is on: guest CR8 and RFLAGS.IF
//! never mask host interrupts (§15.21.1).

mod entry;
mod vmcb;

use super::cregs::{
    self, CR0_CD, CR0_NW, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE,
};
use super::hw::{
    Backend, Capabilities, Event, Exit, Fault, Gprs, HwMsr, HwVcpu, IoExit, Len, SegReg, gpr,
};
use super::msr;
use super::npt::Format;
use crate::arch::x86_64::cpuid::SvmFeatures;
use crate::error::KResult;
use crate::mm::frame::{self, Frame};
use crate::sync::IrqLock;
use abi::errors::ENOMEM;
use abi::vm::{DescriptorTable, Segment, Sregs, access};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vmcb::{Ctl8, Ctl32, Ctl64, Exit32, Exit64, Save8, Save64, SegSlot, Vmcb, VmcbSegment};

const VM_CR: u32 = 0xc001_0114;
const VM_HSAVE_PA: u32 = 0xc001_0117;
const EFER_SVME: u64 = 1 << 12;

// Intercept bits (APM Table B-1, word 3 and word 4).
const MISC1: u32 = 1 << 0 // INTR
    | 1 << 1 // NMI
    | 1 << 2 // SMI
    | 1 << 3 // INIT
    | 1 << 15 // RDPMC
    | 1 << 18 // CPUID
    | 1 << 22 // INVD
    | 1 << 24 // HLT
    | 1 << 26 // INVLPGA
    | 1 << 27 // IOIO_PROT
    | 1 << 28 // MSR_PROT
    | 1 << 31; // SHUTDOWN
const MISC1_VINTR: u32 = 1 << 4;
const MISC2: u32 = 1 << 0 // VMRUN (required, §15.5.1)
    | 1 << 1 // VMMCALL
    | 1 << 2 // VMLOAD
    | 1 << 3 // VMSAVE
    | 1 << 4 // STGI
    | 1 << 5 // CLGI
    | 1 << 6 // SKINIT
    | 1 << 7 // RDTSCP
    | 1 << 9 // WBINVD
    | 1 << 10 // MONITOR
    | 1 << 11 // MWAIT
    | 1 << 12 // MWAIT (armed)
    | 1 << 13; // XSETBV
// V_INTR control (Table B-1, offset 0x60).
const V_IRQ: u32 = 1 << 8;
const V_INTR_PRIO: u32 = 0xf << 16;
const V_IGN_TPR: u32 = 1 << 20;
const V_INTR_MASKING: u32 = 1 << 24;

/// What the CPU's SVM offers, and the permission maps every VMCB shares.
struct Config {
    features: SvmFeatures,
    iopm: Frame,
    msrpm: Frame,
}

static CONFIG: spin::Once<Result<Config, &'static str>> = spin::Once::new();
static ON: AtomicBool = AtomicBool::new(false);
/// This CPU's host-state page for VMLOAD/VMSAVE (one CPU runs guests for now).
static HOST_AREA: AtomicU64 = AtomicU64::new(0);

/// ASIDs in use (index = ASID; 0 is the host's). Each vCPU flushes its ASID's translations
/// before its first VMRUN, so a recycled ASID starts clean.
static ASIDS: IrqLock<Vec<bool>> = IrqLock::new(Vec::new());

fn configure(features: SvmFeatures) -> Result<Config, &'static str> {
    if !features.npt {
        return Err("SVM lacks nested paging");
    }
    if features.disabled_by_firmware {
        return Err("SVM is disabled by the firmware (VM_CR.SVMDIS)");
    }
    // All ones: every port and MSR access exits (§15.10.1, §15.11).
    let iopm = frame::alloc_contiguous(3, 4096).ok_or(ENOMEM)?;
    let msrpm = frame::alloc_contiguous(2, 4096).ok_or(ENOMEM)?;
    // SAFETY: Fresh frames of ours.
    unsafe {
        core::ptr::write_bytes(iopm.as_mut_ptr(), 0xff, 3 * 4096);
        core::ptr::write_bytes(msrpm.as_mut_ptr(), 0xff, 2 * 4096);
    }
    // MSRs that VMLOAD/VMSAVE switch pass through (Table 15-5 gives the map's layout: two bits
    // per MSR, read then write; 0..1FFF at 0, C000_0000.. at 0x800, C001_0000.. at 0x1000).
    for m in [
        msr::IA32_SYSENTER_CS,
        msr::IA32_SYSENTER_ESP,
        msr::IA32_SYSENTER_EIP,
        msr::IA32_STAR,
        msr::IA32_LSTAR,
        msr::IA32_CSTAR,
        msr::IA32_FMASK,
        msr::IA32_FS_BASE,
        msr::IA32_GS_BASE,
        msr::IA32_KERNEL_GS_BASE,
    ] {
        let (base, index) = if m >= 0xc000_0000 {
            (0x800, m - 0xc000_0000)
        } else {
            (0, m)
        };
        let bit = index as usize * 2;
        let byte = base + bit / 8;
        // SAFETY: Inside the 8 KiB map.
        unsafe { *msrpm.as_mut_ptr().add(byte) &= !(0b11 << (bit % 8)) };
    }
    let asids = features.asids.clamp(2, 4096) as usize;
    *ASIDS.lock() = alloc::vec![false; asids];
    ASIDS.lock()[0] = true;
    Ok(Config {
        features,
        iopm,
        msrpm,
    })
}

fn config() -> &'static Config {
    match CONFIG.get() {
        Some(Ok(c)) => c,
        _ => unreachable!("the SVM backend exists only with a configuration"),
    }
}

/// The SVM backend.
pub struct Svm;

/// The one instance.
pub static SVM: Svm = Svm;

/// Checks the CPU's SVM; `Err` says why it cannot be used.
pub fn probe(features: &SvmFeatures) -> Result<&'static Svm, &'static str> {
    let f = features.clone();
    CONFIG.call_once(|| configure(f)).as_ref().map_err(|e| *e)?;
    Ok(&SVM)
}

fn alloc_asid() -> Option<u32> {
    let mut a = ASIDS.lock();
    let i = a.iter().position(|&used| !used)?;
    a[i] = true;
    Some(i as u32)
}

fn free_asid(asid: u32) {
    if let Some(slot) = ASIDS.lock().get_mut(asid as usize) {
        *slot = false;
    }
}

impl Backend for Svm {
    fn name(&self) -> &'static str {
        "SVM"
    }

    fn capabilities(&self) -> Capabilities {
        let f = &config().features;
        Capabilities {
            insn_len: f.nrip_save,
            insn_bytes: f.decode_assists,
            deadline: false,
            xsave: super::fpu::max_xcr0() != 0,
        }
    }

    fn enable_this_cpu(&self) -> KResult<()> {
        if ON.load(Ordering::Acquire) {
            return Ok(());
        }
        if msr::read_checked(VM_CR).unwrap_or(0) & (1 << 4) != 0 {
            return Err("SVM is disabled by the firmware (VM_CR.SVMDIS)".into());
        }
        super::fpu::init_cpu();
        let hsave = frame::alloc_zeroed().ok_or(ENOMEM)?;
        let host = frame::alloc_zeroed().ok_or(ENOMEM)?;
        // SAFETY: EFER.SVME enables the SVM instructions (§15.4); VM_HSAVE_PA names a page of
        // ours (leaked: SVM stays on) where VMRUN keeps the host state (§15.30.4).
        unsafe {
            msr::write(msr::IA32_EFER, msr::read(msr::IA32_EFER) | EFER_SVME);
            msr::write(VM_HSAVE_PA, hsave.addr());
        }
        HOST_AREA.store(host.addr(), Ordering::Relaxed);
        ON.store(true, Ordering::Release);
        log::info!("svm: on ({} ASIDs)", config().features.asids);
        Ok(())
    }

    fn npt_format(&self) -> Format {
        Format::Npt
    }

    fn new_vcpu(&self, npt_root: u64) -> KResult<Box<dyn HwVcpu>> {
        let asid = alloc_asid().ok_or("no free ASID for another vCPU")?;
        let Some(frame) = frame::alloc_zeroed() else {
            free_asid(asid);
            return Err(ENOMEM.into());
        };
        let mut v = Box::new(SvmVcpu {
            vmcb: Vmcb::new(frame),
            asid,
            flush: true,
            event_queued: false,
            first_run: true,
            check_state: true,
        });
        v.setup(npt_root);
        Ok(v)
    }

    fn flush_npt(&self, _npt_root: u64) {
        // Translations are tagged by ASID, and a recycled ASID is flushed before its first
        // VMRUN (§15.16).
    }
}

/// One vCPU's VMCB.
pub struct SvmVcpu {
    vmcb: Vmcb,
    asid: u32,
    /// Flush this ASID's translations at the next VMRUN.
    flush: bool,
    event_queued: bool,
    first_run: bool,
    /// The state was set from outside the guest: check it before the next VMRUN.
    check_state: bool,
}

/// VMX-layout access rights to the VMCB's packed attributes (APM §15.5.1).
fn to_attrib(access_rights: u32) -> u16 {
    if access_rights & access::UNUSABLE != 0 {
        return 0;
    }
    ((access_rights & 0xff) | (access_rights >> 4) & 0xf00) as u16
}

/// And back; a segment that is not present reads as unusable.
fn from_attrib(attrib: u16) -> u32 {
    let a = u32::from(attrib);
    let rights = (a & 0xff) | (a & 0xf00) << 4;
    if rights & access::P == 0 {
        rights | access::UNUSABLE
    } else {
        rights
    }
}

fn slot(seg: SegReg) -> SegSlot {
    match seg {
        SegReg::Es => SegSlot::Es,
        SegReg::Cs => SegSlot::Cs,
        SegReg::Ss => SegSlot::Ss,
        SegReg::Ds => SegSlot::Ds,
        SegReg::Fs => SegSlot::Fs,
        SegReg::Gs => SegSlot::Gs,
    }
}

impl SvmVcpu {
    fn setup(&mut self, npt_root: u64) {
        let c = config();
        let v = &mut self.vmcb;
        v.set(Ctl32::InterceptCr, 1 << (16 + 8));
        v.set(Ctl32::InterceptDr, u32::MAX);
        // #DB and #AC: see `exit::fault`; #DF: so that Bochs's missing SHUTDOWN intercept on a
        // triple fault cannot stop the emulator (`exit::fault::exception`).
        v.set(Ctl32::InterceptExceptions, 1 << 1 | 1 << 8 | 1 << 17);
        v.set(Ctl32::InterceptMisc1, MISC1);
        v.set(Ctl32::InterceptMisc2, MISC2);
        v.set(Ctl64::IopmBase, c.iopm.addr());
        v.set(Ctl64::MsrpmBase, c.msrpm.addr());
        v.set(Ctl64::TscOffset, 0);
        v.set(Ctl32::Asid, self.asid);
        v.set(Ctl32::IntCtl, V_INTR_MASKING);
        v.set(Ctl64::NestedCtl, 1);
        v.set(Ctl64::NestedCr3, npt_root);
        v.set(Save64::GPat, msr::PAT_DEFAULT);
        v.set(Save64::Dr6, 0xffff_0ff0);
        v.set(Save64::Dr7, 0x400);
        v.set(Save64::Efer, EFER_SVME);
        let mut reset = abi::vm::VcpuState::real_mode(0xfff0).sregs;
        reset.cs = Segment::new(0xf000, 0xffff_0000, 0xffff, access::REAL_CODE);
        self.set_sregs(&reset);
        self.set_rflags(2);
        self.set_rip(0xfff0);
    }

    /// Turns the exit fields into our [`Exit`] (APM Appendix C).
    fn decode_exit(&mut self) -> Exit {
        let f = &config().features;
        let v = &self.vmcb;
        let code = v.get(Exit64::ExitCode);
        let info1 = v.get(Exit64::ExitInfo1);
        let info2 = v.get(Exit64::ExitInfo2);
        let rip = v.get(Save64::Rip);
        let len = if f.nrip_save {
            Len::Known(v.get(Exit64::NextRip).wrapping_sub(rip) as u8)
        } else {
            Len::Decode
        };
        // With decode assists, CR and DR intercepts name the register (§15.33.2).
        let operand = (f.decode_assists && info1 & (1 << 63) != 0).then_some((info1 & 0xf) as u8);
        match code {
            0x18 => Exit::CrWrite {
                cr: 8,
                gpr: operand,
                len,
            },
            0x20..=0x2f => Exit::DrAccess {
                dr: (code & 0xf) as u8,
                gpr: operand,
                write: false,
                len,
            },
            0x30..=0x3f => Exit::DrAccess {
                dr: (code & 0xf) as u8,
                gpr: operand,
                write: true,
                len,
            },
            0x40..=0x5f => {
                let vector = (code - 0x40) as u8;
                Exit::Exception {
                    vector,
                    error: matches!(vector, 8 | 17).then_some(info1 as u32),
                }
            }
            0x60 => Exit::ExternalInterrupt,
            0x61 => Exit::Nmi,
            // SMI and INIT are held for the host; nothing for the guest to do.
            0x62 | 0x63 => Exit::ExternalInterrupt,
            0x64 => Exit::InterruptWindow,
            0x72 => Exit::Cpuid(len),
            0x76 | 0x77 | 0x89 => Exit::Skip(len),
            0x78 => Exit::Hlt(len),
            0x6f | 0x7a | 0x80 | 0x82..=0x87 | 0x8a..=0x8c => Exit::Undefined,
            0x7b => Exit::Io(IoExit {
                port: (info1 >> 16) as u16,
                size: match (info1 >> 4) & 7 {
                    1 => 1,
                    2 => 2,
                    _ => 4,
                },
                input: info1 & 1 != 0,
                string: info1 & (1 << 2) != 0,
                rep: info1 & (1 << 3) != 0,
                address_size: match (info1 >> 7) & 7 {
                    1 => 2,
                    2 => 4,
                    _ => 8,
                },
                segment: if f.decode_assists {
                    SegReg::from_index((info1 >> 10) & 7)
                } else {
                    None
                },
                // EXITINFO2 is the next RIP for IOIO intercepts (§15.10.2).
                len: Len::Known(info2.wrapping_sub(rip) as u8),
            }),
            0x7c => {
                if info1 & 1 == 0 {
                    Exit::Rdmsr(len)
                } else {
                    Exit::Wrmsr(len)
                }
            }
            0x7f => Exit::TripleFault,
            0x81 => Exit::Hypercall(len),
            0x8d => Exit::Xsetbv(len),
            // Nested page fault: EXITINFO1 is the error code, EXITINFO2 the address (§15.25.6).
            0x400 => Exit::NestedFault {
                gpa: info2,
                write: info1 & 2 != 0,
                fetch: info1 & (1 << 4) != 0,
            },
            // VMEXIT_INVALID is -1; some implementations write only the low 32 bits.
            u64::MAX | 0xffff_ffff => Exit::EntryFailed {
                code: u64::MAX,
                qualification: 0,
            },
            other => Exit::Unhandled {
                code: other,
                qualification: info1,
            },
        }
    }

    /// Whether the state is one of the illegal combinations VMRUN refuses (APM §15.5.1,
    /// "Canonicalization and Consistency Checks"). Checked in software as well: Bochs 2.7 runs
    /// some of them and then stops the whole emulator.
    fn illegal_state(&self) -> bool {
        let v = &self.vmcb;
        let (cr0, cr4, efer) = (v.get(Save64::Cr0), v.get(Save64::Cr4), v.get(Save64::Efer));
        let cs = from_attrib(v.segment(SegSlot::Cs).attrib);
        let long = efer & EFER_LME != 0 && cr0 & CR0_PG != 0;
        cr0 >> 32 != 0
            || cr0 & CR0_NW != 0 && cr0 & CR0_CD == 0
            || cr4 >> 32 != 0
            || efer & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME) != 0
            || long && cr4 & CR4_PAE == 0
            || long && cr0 & CR0_PE == 0
            || long && cs & access::L != 0 && cs & access::DB != 0
            || efer & EFER_LMA != 0 && !long
            || cr0 & CR0_PG != 0 && cr0 & CR0_PE == 0
            || v.get(Save64::Dr6) >> 32 != 0
            || v.get(Save64::Dr7) >> 32 != 0
    }

    fn set_cpl(&mut self) {
        let cr0 = self.vmcb.get(Save64::Cr0);
        let cpl = if cr0 & CR0_PE == 0 {
            0
        } else {
            (self.vmcb.segment(SegSlot::Ss).attrib >> 5 & 3) as u8
        };
        self.vmcb.set(Save8::Cpl, cpl);
    }
}

impl Drop for SvmVcpu {
    fn drop(&mut self) {
        free_asid(self.asid);
        frame::free(self.vmcb.frame());
    }
}

impl HwVcpu for SvmVcpu {
    fn run(&mut self, gprs: &mut Gprs, _deadline: Option<u64>) -> Exit {
        if core::mem::take(&mut self.check_state) && self.illegal_state() {
            self.check_state = true;
            return Exit::EntryFailed {
                code: u64::MAX,
                qualification: 1,
            };
        }
        let f = &config().features;
        let v = &mut self.vmcb;
        v.set(Save64::Rax, gprs.r[gpr::RAX]);
        v.set(Save64::Rsp, gprs.r[gpr::RSP]);
        if v.get(Save64::Cr2) != gprs.cr2 {
            v.set(Save64::Cr2, gprs.cr2);
        }
        if self.flush {
            // Without flush-by-ASID, flush everything (§15.16.1).
            v.set(Ctl8::TlbControl, if f.flush_by_asid { 3 } else { 1 });
        }
        if self.first_run || !f.vmcb_clean {
            v.all_dirty();
        }
        let clean = v.take_clean();
        v.set(Ctl32::Clean, if f.vmcb_clean { clean } else { 0 });
        // SAFETY: SVM is on with this CPU's host area filled by `enter_context`; the VMCB is
        // ours and set up by `setup`; the run loop calls us with interrupts off.
        unsafe { entry::run(gprs, v.addr(), HOST_AREA.load(Ordering::Relaxed)) };
        self.first_run = false;
        if self.flush {
            self.flush = false;
            v.set(Ctl8::TlbControl, 0);
        }
        gprs.r[gpr::RAX] = v.get(Save64::Rax);
        gprs.r[gpr::RSP] = v.get(Save64::Rsp);
        gprs.cr2 = v.get(Save64::Cr2);
        // The event we queued was delivered or comes back in EXITINTINFO (§15.20, §15.7.2).
        self.event_queued = false;
        v.set(Ctl32::EventInj, 0);
        let exit = self.decode_exit();
        let info = self.vmcb.get(Exit32::ExitIntInfo);
        if info & (1 << 31) != 0 && exit != Exit::TripleFault {
            let err = self.vmcb.get(Exit32::ExitIntInfoErr);
            self.vmcb.set(Ctl32::EventInj, info);
            self.vmcb.set(Ctl32::EventInjErr, err);
            self.event_queued = true;
        }
        exit
    }

    fn sregs(&mut self) -> Sregs {
        let v = &self.vmcb;
        let seg = |s: SegSlot| {
            let x = v.segment(s);
            Segment::new(x.selector, x.base, x.limit, from_attrib(x.attrib))
        };
        let table = |s: SegSlot| {
            let x = v.segment(s);
            DescriptorTable::new(x.base, x.limit as u16)
        };
        Sregs {
            cs: seg(SegSlot::Cs),
            ds: seg(SegSlot::Ds),
            es: seg(SegSlot::Es),
            fs: seg(SegSlot::Fs),
            gs: seg(SegSlot::Gs),
            ss: seg(SegSlot::Ss),
            tr: seg(SegSlot::Tr),
            ldtr: seg(SegSlot::Ldtr),
            gdtr: table(SegSlot::Gdtr),
            idtr: table(SegSlot::Idtr),
            cr0: v.get(Save64::Cr0),
            cr2: 0,
            cr3: v.get(Save64::Cr3),
            cr4: v.get(Save64::Cr4),
            cr8: 0,
            efer: v.get(Save64::Efer) & !EFER_SVME,
            apic_base: 0,
        }
    }

    fn set_sregs(&mut self, s: &Sregs) {
        let v = &mut self.vmcb;
        for (slot, seg) in [
            (SegSlot::Cs, &s.cs),
            (SegSlot::Ds, &s.ds),
            (SegSlot::Es, &s.es),
            (SegSlot::Fs, &s.fs),
            (SegSlot::Gs, &s.gs),
            (SegSlot::Ss, &s.ss),
            (SegSlot::Tr, &s.tr),
            (SegSlot::Ldtr, &s.ldtr),
        ] {
            v.set_segment(
                slot,
                VmcbSegment {
                    selector: seg.selector,
                    attrib: to_attrib(seg.access),
                    limit: seg.limit,
                    base: seg.base,
                },
            );
        }
        for (slot, t) in [(SegSlot::Gdtr, &s.gdtr), (SegSlot::Idtr, &s.idtr)] {
            v.set_segment(
                slot,
                VmcbSegment {
                    selector: 0,
                    attrib: 0,
                    limit: u32::from(t.limit),
                    base: t.base,
                },
            );
        }
        v.set(Save64::Cr0, s.cr0);
        v.set(Save64::Cr3, s.cr3);
        v.set(Save64::Cr4, s.cr4);
        v.set(Save64::Efer, s.efer | EFER_SVME);
        v.set(Ctl32::IntState, 0);
        self.set_cpl();
        self.check_state = true;
    }

    fn rip(&mut self) -> u64 {
        self.vmcb.get(Save64::Rip)
    }

    fn set_rip(&mut self, rip: u64) {
        self.vmcb.set(Save64::Rip, rip);
    }

    fn rflags(&mut self) -> u64 {
        self.vmcb.get(Save64::Rflags)
    }

    fn set_rflags(&mut self, rflags: u64) {
        self.vmcb.set(Save64::Rflags, rflags);
    }

    fn cr0(&mut self) -> u64 {
        self.vmcb.get(Save64::Cr0)
    }

    fn cr3(&mut self) -> u64 {
        self.vmcb.get(Save64::Cr3)
    }

    fn cr4(&mut self) -> u64 {
        self.vmcb.get(Save64::Cr4)
    }

    fn efer(&mut self) -> u64 {
        self.vmcb.get(Save64::Efer) & !EFER_SVME
    }

    fn segment(&mut self, seg: SegReg) -> Segment {
        let x = self.vmcb.segment(slot(seg));
        Segment::new(x.selector, x.base, x.limit, from_attrib(x.attrib))
    }

    fn cpl(&mut self) -> u8 {
        self.vmcb.get(Save8::Cpl)
    }

    fn write_cr(&mut self, cr: u8, value: u64) -> Result<(), Fault> {
        match cr {
            0 => {
                let efer = cregs::write_cr0(self.cr0(), value, self.efer(), self.cr4())?;
                self.vmcb.set(Save64::Cr0, value);
                if let Some(efer) = efer {
                    self.vmcb.set(Save64::Efer, efer | EFER_SVME);
                }
                self.set_cpl();
                Ok(())
            }
            3 => {
                self.vmcb.set(Save64::Cr3, value);
                Ok(())
            }
            4 => {
                // The VMCB holds CR4 as 64 bits, of which the upper half is reserved.
                cregs::check_cr4(value, u64::from(u32::MAX), self.efer())?;
                self.vmcb.set(Save64::Cr4, value);
                Ok(())
            }
            _ => Err(Fault::UD),
        }
    }

    fn set_efer(&mut self, value: u64) -> Result<(), Fault> {
        let new = cregs::write_efer(self.efer(), value, self.cr0())?;
        self.vmcb.set(Save64::Efer, new | EFER_SVME);
        Ok(())
    }

    fn msr(&mut self, m: HwMsr) -> u64 {
        let v = &self.vmcb;
        match m {
            HwMsr::Pat => v.get(Save64::GPat),
            HwMsr::SysenterCs => v.get(Save64::SysenterCs),
            HwMsr::SysenterEsp => v.get(Save64::SysenterEsp),
            HwMsr::SysenterEip => v.get(Save64::SysenterEip),
            HwMsr::FsBase => v.segment(SegSlot::Fs).base,
            HwMsr::GsBase => v.segment(SegSlot::Gs).base,
            HwMsr::KernelGsBase => v.get(Save64::KernelGsBase),
            HwMsr::Star => v.get(Save64::Star),
            HwMsr::Lstar => v.get(Save64::Lstar),
            HwMsr::Cstar => v.get(Save64::Cstar),
            HwMsr::Sfmask => v.get(Save64::Sfmask),
        }
    }

    fn set_msr(&mut self, m: HwMsr, value: u64) {
        let v = &mut self.vmcb;
        match m {
            HwMsr::Pat => v.set(Save64::GPat, value),
            HwMsr::SysenterCs => v.set(Save64::SysenterCs, value),
            HwMsr::SysenterEsp => v.set(Save64::SysenterEsp, value),
            HwMsr::SysenterEip => v.set(Save64::SysenterEip, value),
            HwMsr::FsBase | HwMsr::GsBase => {
                let s = if m == HwMsr::FsBase {
                    SegSlot::Fs
                } else {
                    SegSlot::Gs
                };
                let mut x = v.segment(s);
                x.base = value;
                v.set_segment(s, x);
            }
            HwMsr::KernelGsBase => v.set(Save64::KernelGsBase, value),
            HwMsr::Star => v.set(Save64::Star, value),
            HwMsr::Lstar => v.set(Save64::Lstar, value),
            HwMsr::Cstar => v.set(Save64::Cstar, value),
            HwMsr::Sfmask => v.set(Save64::Sfmask, value),
        }
    }

    fn interrupt_shadow(&mut self) -> bool {
        self.vmcb.get(Ctl32::IntState) & 1 != 0
    }

    fn clear_interrupt_shadow(&mut self) {
        if self.vmcb.get(Ctl32::IntState) & 1 != 0 {
            self.vmcb.set(Ctl32::IntState, 0);
        }
    }

    fn event_pending(&mut self) -> bool {
        self.event_queued
    }

    fn inject(&mut self, event: Event) {
        if self.event_queued {
            return;
        }
        let real_mode = self.cr0() & CR0_PE == 0;
        // EVENTINJ (§15.20): vector, type (0 interrupt, 3 exception), EV, V.
        let info = match event {
            Event::Interrupt(v) => u32::from(v) | 1 << 31,
            Event::Exception { vector, error } => {
                let mut info = u32::from(vector) | 3 << 8 | 1 << 31;
                if let (Some(e), false) = (error, real_mode) {
                    info |= 1 << 11;
                    self.vmcb.set(Ctl32::EventInjErr, e);
                }
                info
            }
        };
        self.vmcb.set(Ctl32::EventInj, info);
        self.event_queued = true;
    }

    fn clear_events(&mut self) {
        self.vmcb.set(Ctl32::EventInj, 0);
        self.event_queued = false;
    }

    fn set_interrupt_window(&mut self, on: bool) {
        // A virtual interrupt that ignores the TPR, intercepted as VINTR as soon as the guest
        // could take it (§15.21.4).
        let ctl = self.vmcb.get(Ctl32::IntCtl);
        let misc = self.vmcb.get(Ctl32::InterceptMisc1);
        let (want_ctl, want_misc) = if on {
            (ctl | V_IRQ | V_IGN_TPR | V_INTR_PRIO, misc | MISC1_VINTR)
        } else {
            (
                ctl & !(V_IRQ | V_IGN_TPR | V_INTR_PRIO),
                misc & !MISC1_VINTR,
            )
        };
        if want_ctl != ctl {
            self.vmcb.set(Ctl32::IntCtl, want_ctl);
        }
        if want_misc != misc {
            self.vmcb.set(Ctl32::InterceptMisc1, want_misc);
        }
    }

    fn hw_tpr(&mut self) -> Option<u8> {
        Some(((self.vmcb.get(Ctl32::IntCtl) & 0xf) << 4) as u8)
    }

    fn set_hw_tpr(&mut self, tpr: u8) {
        let ctl = self.vmcb.get(Ctl32::IntCtl);
        let want = ctl & !0xf | u32::from(tpr >> 4);
        if want != ctl {
            self.vmcb.set(Ctl32::IntCtl, want);
        }
    }

    fn fault_insn_bytes(&mut self) -> Option<([u8; 15], usize)> {
        if !config().features.decode_assists {
            return None;
        }
        let (b, n) = self.vmcb.insn_bytes();
        (n > 0).then_some((b, n))
    }

    fn enter_context(&mut self) {
        // SAFETY: SVM is on and the host area is this CPU's page: VMSAVE records the host's
        // FS/GS/TR/LDTR state and SYSCALL MSRs, which `svm_enter` reloads after each VMRUN.
        unsafe { entry::vmsave(HOST_AREA.load(Ordering::Relaxed)) };
    }

    fn leave_context(&mut self) {}
}
