//! RDMSR and WRMSR: every MSR is per-vCPU state with one owner (the VMCS/VMCB, the LAPIC, or
//! the vCPU), and an MSR not listed here raises #GP in the guest (SDM Vol. 4 for the numbers).
//!
//! | MSR | behaviour |
//! |---|---|
//! | IA32_TSC (0x10) | reads the TSC (no offset); writes are ignored |
//! | IA32_APIC_BASE (0x1B) | the LAPIC's base and mode |
//! | IA32_FEATURE_CONTROL (0x3A) | reads "locked, VMX off" |
//! | IA32_BIOS_SIGN_ID (0x8B) | reads 0; writes ignored |
//! | IA32_SYSENTER_CS/ESP/EIP | hardware context |
//! | IA32_MISC_ENABLE (0x1A0) | per-vCPU value (fast strings) |
//! | IA32_DEBUGCTL (0x1D9) | reads 0; writes of 0 accepted |
//! | IA32_PAT (0x277) | hardware context, checked |
//! | IA32_TSC_DEADLINE (0x6E0) | the LAPIC timer |
//! | 0x800-0x8FF | the x2APIC registers |
//! | EFER, STAR, LSTAR, CSTAR, FMASK, FS/GS/KERNEL_GS base | hardware context (or switched) |

use super::{Action, Ctx};
use crate::virt::hw::{Fault, HwMsr, Len, gpr};

fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

fn hw_msr(msr: u32) -> Option<HwMsr> {
    Some(match msr {
        0x174 => HwMsr::SysenterCs,
        0x175 => HwMsr::SysenterEsp,
        0x176 => HwMsr::SysenterEip,
        0x277 => HwMsr::Pat,
        0xc000_0081 => HwMsr::Star,
        0xc000_0082 => HwMsr::Lstar,
        0xc000_0083 => HwMsr::Cstar,
        0xc000_0084 => HwMsr::Sfmask,
        0xc000_0100 => HwMsr::FsBase,
        0xc000_0101 => HwMsr::GsBase,
        0xc000_0102 => HwMsr::KernelGsBase,
        _ => return None,
    })
}

fn read(ctx: &mut Ctx, msr: u32) -> Option<u64> {
    let now = crate::arch::x86_64::rdtsc();
    Some(match msr {
        0x10 => now,
        0x1b => ctx.vcpu.lapic.lock().base(),
        0x3a => 1,
        0x8b | 0x1d9 => 0,
        0x1a0 => ctx.inner.misc_enable,
        0x6e0 => ctx.vcpu.lapic.lock().tsc_deadline(),
        0x800..=0x8ff => ctx.vcpu.lapic.lock().read_msr(msr, now).ok()?,
        0xc000_0080 => ctx.inner.hw.efer(),
        m => ctx.inner.hw.msr(hw_msr(m)?),
    })
}

/// Handles RDMSR.
pub fn rdmsr(ctx: &mut Ctx, len: Len) -> Action {
    let msr = ctx.inner.gprs.r[gpr::RCX] as u32;
    match read(ctx, msr) {
        Some(v) => {
            ctx.inner.gprs.r[gpr::RAX] = v & 0xffff_ffff;
            ctx.inner.gprs.r[gpr::RDX] = v >> 32;
            ctx.skip(len)
        }
        None => ctx.raise(Fault::GP.0),
    }
}

fn write(ctx: &mut Ctx, msr: u32, value: u64) -> Result<(), Fault> {
    let now = crate::arch::x86_64::rdtsc();
    match msr {
        0x10 | 0x8b => Ok(()),
        0x1b => ctx.vcpu.lapic.lock().set_base(value).map_err(|_| Fault::GP),
        0x1a0 => {
            ctx.inner.misc_enable = value;
            Ok(())
        }
        0x1d9 if value == 0 => Ok(()),
        0x6e0 => {
            ctx.vcpu.lapic.lock().set_tsc_deadline(value, now);
            Ok(())
        }
        0x800..=0x8ff => {
            let r = ctx.vcpu.lapic.lock().write_msr(msr, value, now);
            let (ipi, eoi) = r.map_err(|_| Fault::GP)?;
            ctx.vm.lapic_effects(ctx.vcpu, ipi, eoi);
            Ok(())
        }
        0xc000_0080 => ctx.inner.hw.set_efer(value),
        0x277 => {
            // Each entry must be a valid memory type (SDM Vol. 3A §12.12.2).
            if value
                .to_le_bytes()
                .iter()
                .any(|t| !matches!(t, 0 | 1 | 4..=7))
            {
                return Err(Fault::GP);
            }
            ctx.inner.hw.set_msr(HwMsr::Pat, value);
            Ok(())
        }
        m => {
            let hw = hw_msr(m).ok_or(Fault::GP)?;
            let bad = match hw {
                HwMsr::Lstar
                | HwMsr::Cstar
                | HwMsr::FsBase
                | HwMsr::GsBase
                | HwMsr::KernelGsBase
                | HwMsr::SysenterEsp
                | HwMsr::SysenterEip => !canonical(value),
                HwMsr::Sfmask => value >> 32 != 0,
                _ => false,
            };
            if bad {
                return Err(Fault::GP);
            }
            ctx.inner.hw.set_msr(hw, value);
            Ok(())
        }
    }
}

/// Handles WRMSR.
pub fn wrmsr(ctx: &mut Ctx, len: Len) -> Action {
    let g = &ctx.inner.gprs.r;
    let msr = g[gpr::RCX] as u32;
    let value = g[gpr::RAX] & 0xffff_ffff | g[gpr::RDX] << 32;
    match write(ctx, msr, value) {
        Ok(()) => ctx.skip(len),
        Err(f) => ctx.raise(f.0),
    }
}
