//! Hardware virtualization (DESIGN.md §4): VMX and SVM behind one trait ([`hw`]), nested page
//! tables over the VMM's own memory ([`npt`], [`memory`]), the vCPU run loop ([`vcpu`]) and its
//! exit handlers ([`exit`]), the in-kernel LAPIC and IOAPIC ([`lapic`], [`ioapic`]),
//! instruction decoding for MMIO ([`decode`]), guest FPU state ([`fpu`]), and VMs ([`vm`]),
//! which the `#vm` device (`dev::vm`) puts in the name space. [`selftest`] holds the in-kernel
//! tests of the pure parts (`ktest`).
//!
//! Unsafe code lives in the backends' instruction and entry modules (`vmx::instr`,
//! `vmx::entry`, `svm::entry`), the VMCS/VMCB accessors, the FPU save/restore and the MSR
//! helpers; everything above them is safe Rust.

pub mod cregs;
pub mod decode;
pub mod exit;
pub mod fpu;
pub mod hw;
pub mod ioapic;
pub mod lapic;
pub mod memory;
pub mod msr;
pub mod npt;
pub mod selftest;
pub mod svm;
pub mod vcpu;
pub mod vm;
pub mod vmx;

use crate::arch::x86_64::cpuid::{CpuInfo, Virtualization};
use crate::error::KResult;
use hw::Backend;

static BACKEND: spin::Once<Result<&'static dyn Backend, &'static str>> = spin::Once::new();

fn choose() -> Result<&'static dyn Backend, &'static str> {
    match CpuInfo::get().virt {
        Virtualization::Vmx(f) => {
            if f.disabled_by_firmware {
                return Err("VMX is disabled by the firmware");
            }
            if !f.ept || !f.unrestricted_guest {
                return Err("VMX lacks EPT or unrestricted guest");
            }
            vmx::probe().map(|b| b as &'static dyn Backend)
        }
        Virtualization::Svm(f) => svm::probe(&f).map(|b| b as &'static dyn Backend),
        Virtualization::None => Err("the CPU has no hardware virtualization (VMX or SVM)"),
    }
}

/// The backend for this machine, or why there is none.
pub fn backend() -> KResult<&'static dyn Backend> {
    BACKEND.call_once(choose).map_err(Into::into)
}

/// Chooses the backend at boot and says which (VMX is only turned on by the first VM).
pub fn init() {
    match backend() {
        Ok(b) => {
            let c = b.capabilities();
            log::info!(
                "virt: {} backend (instruction lengths {}, decode assists {}, deadline timer {}, XSAVE {})",
                b.name(),
                if c.insn_len {
                    "from hardware"
                } else {
                    "decoded"
                },
                if c.insn_bytes { "yes" } else { "no" },
                if c.deadline { "yes" } else { "no" },
                if c.xsave { "yes" } else { "no" },
            );
        }
        Err(e) => log::info!("virt: no virtual machines: {e}"),
    }
}
