//! Host MSR access for the backends: plain reads and writes of MSRs the CPU is known to have,
//! and reads and writes that survive the #GP of an MSR an emulator lacks
//! (`arch::x86_64::extable`).

use x86_64::registers::model_specific::Msr;

/// Reads an MSR the CPU has (an architectural one, or one its CPUID bits promise).
pub fn read(msr: u32) -> u64 {
    // SAFETY: Callers only name MSRs the CPU implements; reading has no side effects.
    unsafe { Msr::new(msr).read() }
}

/// Writes an MSR the CPU has, with a value it accepts.
///
/// # Safety
/// The write must not break the kernel's invariants (these are the MSRs the backends switch
/// between host and guest values: SYSCALL targets, GS bases, XSS and the like).
pub unsafe fn write(msr: u32, value: u64) {
    // SAFETY: Forwarded from the caller.
    unsafe { Msr::new(msr).write(value) }
}

/// Reads an MSR that may not exist.
pub fn read_checked(msr: u32) -> Option<u64> {
    crate::arch::x86_64::extable::rdmsr(msr)
}

/// Writes an MSR that may not exist; false if the CPU refused.
///
/// # Safety
/// As for `write`.
pub unsafe fn write_checked(msr: u32, value: u64) -> bool {
    // SAFETY: Forwarded from the caller.
    unsafe { crate::arch::x86_64::extable::wrmsr(msr, value) }
}

/// IA32_FEATURE_CONTROL (SDM Vol. 4, Table 2-2).
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
/// IA32_PAT.
pub const IA32_PAT: u32 = 0x277;
/// IA32_EFER.
pub const IA32_EFER: u32 = 0xc000_0080;
/// IA32_STAR.
pub const IA32_STAR: u32 = 0xc000_0081;
/// IA32_LSTAR.
pub const IA32_LSTAR: u32 = 0xc000_0082;
/// IA32_CSTAR.
pub const IA32_CSTAR: u32 = 0xc000_0083;
/// IA32_FMASK.
pub const IA32_FMASK: u32 = 0xc000_0084;
/// IA32_FS_BASE.
pub const IA32_FS_BASE: u32 = 0xc000_0100;
/// IA32_GS_BASE.
pub const IA32_GS_BASE: u32 = 0xc000_0101;
/// IA32_KERNEL_GS_BASE.
pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// IA32_SYSENTER_CS.
pub const IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const IA32_SYSENTER_EIP: u32 = 0x176;
/// The PAT value after reset (SDM Vol. 3A §12.12.4).
pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
