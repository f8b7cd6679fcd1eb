//! Control registers, debug registers and XCR0.
//!
//! - MOV to CR0/CR4 exits only when the guest changes a bit the host owns (VMX: CR0.NE,
//!   CR4.VMXE); the backend applies the architectural checks and mode switches (SDM Vol. 3A
//!   §2.5, §10.8.5). Entering PAE paging outside long mode loads the PDPTEs (§4.4.1).
//! - CR8 is the LAPIC's TPR (§11.8.6).
//! - DR0-DR7 are kept per vCPU and never reach the hardware: guests cannot set host
//!   breakpoints (DR4/DR5 alias DR6/DR7 unless CR4.DE, §18.2.2).
//! - XSETBV loads a checked XCR0 (§13.3, Vol. 2C XSETBV).

use super::{Action, Ctx};
use crate::virt::decode;
use crate::virt::hw::{Fault, Len};

const CR0_TS: u64 = 1 << 3;
const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_DE: u64 = 1 << 3;
const CR4_PAE: u64 = 1 << 5;
const EFER_LMA: u64 = 1 << 10;

/// The general register of a CR/DR move: as the hardware said, or decoded.
fn operand(ctx: &mut Ctx, gpr: Option<u8>) -> Option<usize> {
    if let Some(g) = gpr {
        return Some(usize::from(g & 0xf));
    }
    let mem = ctx.vm.mem.lock();
    let (instr, _, _) = decode::fetch(ctx.inner.hw.as_mut(), mem.as_ref()?, None)?;
    decode::mov_cr_dr_gpr(&instr).map(usize::from)
}

/// After CR0/CR4 changes: PAE paging without long mode takes its PDPTEs from CR3 (VMX).
fn load_pdptes(ctx: &mut Ctx) {
    let hw = ctx.inner.hw.as_mut();
    let (cr0, cr4, efer) = (hw.cr0(), hw.cr4(), hw.efer());
    if cr0 & CR0_PG == 0 || cr4 & CR4_PAE == 0 || efer & EFER_LMA != 0 {
        return;
    }
    let base = hw.cr3() & 0xffff_ffe0;
    let guard = ctx.vm.mem.lock();
    let Some(mem) = guard.as_ref() else { return };
    let mut p = [0u64; 4];
    for (i, e) in p.iter_mut().enumerate() {
        *e = mem.read_u64(base + 8 * i as u64).unwrap_or(0);
    }
    drop(guard);
    ctx.inner.hw.set_pdptes(p);
}

fn write_cr(ctx: &mut Ctx, cr: u8, value: u64) -> Result<(), Fault> {
    if cr == 8 {
        if value >> 4 != 0 {
            return Err(Fault::GP);
        }
        let mut l = ctx.vcpu.lapic.lock();
        l.set_tpr((value << 4) as u8);
        ctx.inner.hw.set_hw_tpr(l.tpr());
        return Ok(());
    }
    ctx.inner.hw.write_cr(cr, value)?;
    if cr == 0 || cr == 4 {
        load_pdptes(ctx);
    }
    Ok(())
}

/// MOV to CRn.
pub fn write(ctx: &mut Ctx, cr: u8, gpr: Option<u8>, len: Len) -> Action {
    let Some(r) = operand(ctx, gpr) else {
        return ctx.fetch_failed();
    };
    let value = ctx.inner.gprs.r[r];
    match write_cr(ctx, cr, value) {
        Ok(()) => ctx.skip(len),
        Err(f) => ctx.raise(f.0),
    }
}

/// MOV from CRn.
pub fn read(ctx: &mut Ctx, cr: u8, gpr: Option<u8>, len: Len) -> Action {
    let Some(r) = operand(ctx, gpr) else {
        return ctx.fetch_failed();
    };
    let hw = ctx.inner.hw.as_mut();
    let value = match cr {
        0 => hw.cr0(),
        3 => hw.cr3(),
        4 => hw.cr4(),
        8 => u64::from(ctx.vcpu.lapic.lock().tpr() >> 4),
        _ => return ctx.raise(Fault::UD.0),
    };
    ctx.inner.gprs.r[r] = value;
    ctx.skip(len)
}

/// CLTS.
pub fn clts(ctx: &mut Ctx, len: Len) -> Action {
    let cr0 = ctx.inner.hw.cr0();
    match write_cr(ctx, 0, cr0 & !CR0_TS) {
        Ok(()) => ctx.skip(len),
        Err(f) => ctx.raise(f.0),
    }
}

/// LMSW: loads CR0 bits 3:0, and cannot clear PE (Vol. 2A LMSW).
pub fn lmsw(ctx: &mut Ctx, value: u16, len: Len) -> Action {
    let cr0 = ctx.inner.hw.cr0();
    let new = cr0 & !0xe | u64::from(value) & 0xf | cr0 & CR0_PE;
    match write_cr(ctx, 0, new) {
        Ok(()) => ctx.skip(len),
        Err(f) => ctx.raise(f.0),
    }
}

/// MOV to or from DRn.
pub fn dr(ctx: &mut Ctx, dr: u8, gpr: Option<u8>, write: bool, len: Len) -> Action {
    if ctx.inner.hw.cpl() != 0 {
        return ctx.raise(Fault::GP.0);
    }
    let dr = match dr {
        4 | 5 if ctx.inner.hw.cr4() & CR4_DE != 0 => return ctx.raise(Fault::UD.0),
        4 | 5 => dr + 2,
        0..=7 => dr,
        _ => return ctx.raise(Fault::UD.0),
    };
    let Some(r) = operand(ctx, gpr) else {
        return ctx.fetch_failed();
    };
    let i = usize::from(dr);
    if write {
        let v = ctx.inner.gprs.r[r];
        ctx.inner.dr[i] = match dr {
            6 => v & 0xf00f | 0xffff_0ff0,
            7 => v & 0xffff_2bff | 0x400,
            _ => v,
        };
    } else {
        ctx.inner.gprs.r[r] = ctx.inner.dr[i];
    }
    ctx.skip(len)
}

/// XSETBV.
pub fn xsetbv(ctx: &mut Ctx, len: Len) -> Action {
    let g = &ctx.inner.gprs.r;
    let (index, value) = (g[1] as u32, g[0] & 0xffff_ffff | g[2] << 32);
    if ctx.inner.hw.cpl() != 0 || index != 0 || !ctx.inner.fpu.set_guest_xcr0(value) {
        return ctx.raise(Fault::GP.0);
    }
    ctx.skip(len)
}
