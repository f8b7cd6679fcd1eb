//! The guest's control registers and EFER as the architecture defines them, whatever the
//! backend: the bits, and the checks a write must pass (SDM Vol. 3A §2.5, §2.2.1, §10.8.5;
//! Vol. 2B MOV CR and WRMSR). The backends store the results in their VMCS or VMCB.

use super::hw::Fault;

pub const CR0_PE: u64 = 1;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_NW: u64 = 1 << 29;
pub const CR0_CD: u64 = 1 << 30;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PSE: u64 = 1 << 4;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_VMXE: u64 = 1 << 13;
pub const EFER_SCE: u64 = 1;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;

/// Checks a MOV of `value` to CR0, given the current CR0 (`old`), EFER and CR4. When the write
/// turns paging on or off with LME set, the guest enters or leaves IA-32e mode: the EFER with
/// LMA following is returned for the backend to store (and to switch its entry mode).
pub fn write_cr0(old: u64, value: u64, efer: u64, cr4: u64) -> Result<Option<u64>, Fault> {
    if value >> 32 != 0
        || value & CR0_PG != 0 && value & CR0_PE == 0
        || value & CR0_NW != 0 && value & CR0_CD == 0
        || value & CR0_PG != 0 && old & CR0_PG == 0 && efer & EFER_LME != 0 && cr4 & CR4_PAE == 0
    {
        return Err(Fault::GP);
    }
    if efer & EFER_LME != 0 && (old ^ value) & CR0_PG != 0 {
        let lma = if value & CR0_PG != 0 { EFER_LMA } else { 0 };
        return Ok(Some(efer & !EFER_LMA | lma));
    }
    Ok(None)
}

/// Checks a MOV of `value` to CR4: only `allowed` bits (what the backend lets a guest set),
/// and PAE stays on in IA-32e mode.
pub fn check_cr4(value: u64, allowed: u64, efer: u64) -> Result<(), Fault> {
    if value & !allowed != 0 || efer & EFER_LMA != 0 && value & CR4_PAE == 0 {
        return Err(Fault::GP);
    }
    Ok(())
}

/// Checks a WRMSR of `value` to EFER, given the current EFER (`old`) and CR0: known bits only,
/// LME fixed while paging is on. Returns the EFER to store: LMA is the CPU's to set, so the
/// written bit is ignored.
pub fn write_efer(old: u64, value: u64, cr0: u64) -> Result<u64, Fault> {
    if value & !(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE) != 0
        || cr0 & CR0_PG != 0 && (old ^ value) & EFER_LME != 0
    {
        return Err(Fault::GP);
    }
    Ok(value & !EFER_LMA | old & EFER_LMA)
}
