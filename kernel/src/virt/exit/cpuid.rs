//! CPUID: the guest sees a filtered, documented view of the host CPU (SDM Vol. 2A CPUID; AMD
//! APM Vol. 3 Appendix E). Everything is an allow-list:
//!
//! - leaves above 0xD (basic) and 0x8000_0008 (extended) are hidden;
//! - no VMX or SVM, no SMX, no MONITOR/MWAIT, no performance monitoring (leaf 0xA zero, PDCM
//!   clear, no perf-counter extensions), no thermal/power leaves, no MTRRs or machine checks
//!   (the kernel emulates neither), no speculation-control MSRs, no TSX, MPX, SGX, PKU, LA57,
//!   WAITPKG, RDTSCP/RDPID, XSAVES;
//! - always: the hypervisor bit, x2APIC and the TSC-deadline timer (the in-kernel LAPIC has
//!   both), the invariant ("stable") TSC; APIC ID = vCPU number, one thread per core, one core
//!   per vCPU in the topology leaf 0xB;
//! - XSAVE and AVX/AVX-512 only as far as the guest may enable them in XCR0; OSXSAVE mirrors
//!   the guest's CR4;
//! - leaf 0x4000_0000 is our signature ([`abi::hv`]), 0x4000_0001 the guest's clocks
//!   ([`abi::vm::CPUID_TIMING_LEAF`]).

use super::{Action, Ctx};
use crate::virt::fpu;
use crate::virt::hw::{Len, gpr};

/// Highest basic leaf shown.
const MAX_BASIC: u32 = 0xd;
/// Highest extended leaf shown.
const MAX_EXTENDED: u32 = 0x8000_0008;

fn bits(list: &[u32]) -> u32 {
    list.iter().fold(0, |m, b| m | 1 << b)
}

fn host(leaf: u32, sub: u32) -> [u32; 4] {
    let r = raw_cpuid::cpuid!(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The guest's view of leaf `leaf`, subleaf `sub`.
pub fn view(leaf: u32, sub: u32, vcpu: u32, vcpus: u32, cr4: u64) -> [u32; 4] {
    let xcr0 = fpu::max_xcr0();
    let avx = xcr0 & 0b110 == 0b110;
    let avx512 = xcr0 & 0xe0 == 0xe0;
    let max_basic = host(0, 0)[0].min(MAX_BASIC);
    let max_ext = host(0x8000_0000, 0)[0].min(MAX_EXTENDED);
    match leaf {
        0 => {
            let h = host(0, 0);
            [max_basic, h[1], h[2], h[3]]
        }
        1 => {
            let h = host(1, 0);
            let ebx = h[1] & 0xffff | 1 << 16 | vcpu << 24;
            let mut ecx = h[2] & bits(&[0, 1, 9, 12, 13, 17, 19, 20, 22, 23, 25, 29, 30])
                | bits(&[21, 24, 31]);
            if xcr0 != 0 {
                ecx |= h[2] & 1 << 26;
                if cr4 & (1 << 18) != 0 {
                    ecx |= 1 << 27;
                }
                if avx {
                    ecx |= h[2] & 1 << 28;
                }
            }
            if !avx {
                // FMA and F16C need AVX state.
                ecx &= !bits(&[12, 29]);
            }
            let edx = h[3]
                & bits(&[
                    0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 16, 17, 19, 23, 24, 25, 26,
                ]);
            [h[0], ebx, ecx, edx]
        }
        2 if leaf <= max_basic => host(2, 0),
        4 if leaf <= max_basic => {
            let h = host(4, sub);
            // No sharing between logical processors or cores.
            [h[0] & 0x3fff, h[1], h[2], h[3]]
        }
        7 if leaf <= max_basic && sub == 0 => {
            let h = host(7, 0);
            let mut ebx = h[1] & bits(&[0, 3, 6, 7, 8, 9, 10, 13, 18, 19, 20, 23, 24, 29]);
            let mut ecx = h[2] & bits(&[0, 2, 8, 25, 27, 28]);
            let mut edx = h[3] & bits(&[4, 10, 14]);
            if avx {
                ebx |= h[1] & 1 << 5;
                ecx |= h[2] & bits(&[9, 10]);
            }
            if avx512 {
                ebx |= h[1] & bits(&[16, 17, 21, 26, 27, 28, 30, 31]);
                ecx |= h[2] & bits(&[1, 6, 11, 12, 14]);
                edx |= h[3] & bits(&[2, 3, 8]);
            }
            [0, ebx, ecx, edx]
        }
        0xb if leaf <= max_basic => {
            // x2APIC topology (SDM Vol. 3A §9.9): level 0 SMT (one thread), level 1 cores.
            let shift = 32 - vcpus.saturating_sub(1).leading_zeros();
            match sub {
                0 => [0, 1, 0x100, vcpu],
                1 => [shift, vcpus, 0x200 | 1, vcpu],
                _ => [0, 0, sub & 0xff, vcpu],
            }
        }
        0xd if leaf <= max_basic && xcr0 != 0 => match sub {
            // EBX follows the XCR0 in the hardware, which is the guest's while its context is
            // loaded (handlers run inside it).
            0 => {
                let h = host(0xd, 0);
                [xcr0 as u32, h[1], h[2], (xcr0 >> 32) as u32]
            }
            1 => [host(0xd, 1)[0] & bits(&[0, 1, 2]), 0, 0, 0],
            i if i < 64 && xcr0 & (1 << i) != 0 => host(0xd, i),
            _ => [0; 4],
        },
        0x4000_0000 => {
            let (b, c, d) = abi::hv::signature_registers();
            [abi::hv::CPUID_MAX_LEAF, b, c, d]
        }
        0x4000_0001 => [
            (crate::time::tsc_hz() / 1000) as u32,
            (abi::vm::APIC_BUS_HZ / 1000) as u32,
            0,
            0,
        ],
        0x8000_0000 => {
            let h = host(0x8000_0000, 0);
            [max_ext, h[1], h[2], h[3]]
        }
        0x8000_0001 if leaf <= max_ext => {
            let h = host(0x8000_0001, 0);
            let ecx = h[2] & bits(&[0, 5, 6, 7, 8, 11, 16, 21]);
            let edx = h[3]
                & bits(&[
                    0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 16, 17, 20, 22, 23, 24, 26, 29, 30, 31,
                ]);
            [h[0], h[1], ecx, edx]
        }
        0x8000_0002..=0x8000_0006 if leaf <= max_ext => host(leaf, 0),
        0x8000_0007 if leaf <= max_ext => [0, 0, 0, 1 << 8],
        0x8000_0008 if leaf <= max_ext => [host(leaf, 0)[0], 0, 0, 0],
        _ => [0; 4],
    }
}

/// Handles a CPUID exit.
pub fn handle(ctx: &mut Ctx, len: Len) -> Action {
    let g = &ctx.inner.gprs.r;
    let (leaf, sub) = (g[gpr::RAX] as u32, g[gpr::RCX] as u32);
    let cr4 = ctx.inner.hw.cr4();
    let r = view(leaf, sub, ctx.vcpu.index, ctx.vm.vcpu_count(), cr4);
    let g = &mut ctx.inner.gprs.r;
    (g[gpr::RAX], g[gpr::RBX], g[gpr::RCX], g[gpr::RDX]) = (
        u64::from(r[0]),
        u64::from(r[1]),
        u64::from(r[2]),
        u64::from(r[3]),
    );
    ctx.skip(len)
}
