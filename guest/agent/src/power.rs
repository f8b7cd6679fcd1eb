//! How the agent decides to power off (the decisions only; the instructions are in `sys.rs`):
//! the hypercall of [`abi::hv`] when CPUID shows our VMM, with VMCALL or VMMCALL by CPU vendor,
//! and a reboot everywhere else.

/// The instruction that makes a hypercall on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallInsn {
    /// Intel VT-x (and anything that is not AMD or Hygon).
    Vmcall,
    /// AMD-V (AMD and Hygon CPUs).
    Vmmcall,
}

/// Picks the hypercall instruction from CPUID leaf 0's vendor string (EBX, EDX, ECX bytes).
pub fn hypercall_insn(vendor: &[u8; 12]) -> HypercallInsn {
    match vendor {
        b"AuthenticAMD" | b"HygonGenuine" => HypercallInsn::Vmmcall,
        _ => HypercallInsn::Vmcall,
    }
}

/// Whether CPUID describes our VMM: leaf 1 ECX bit 31 ("hypervisor present") and leaf
/// [`abi::hv::CPUID_SIGNATURE_LEAF`] returning at least that leaf in EAX and our signature in
/// EBX, ECX, EDX. `signature` is that leaf's (EAX, EBX, ECX, EDX).
pub fn is_our_vmm(leaf1_ecx: u32, signature: (u32, u32, u32, u32)) -> bool {
    let (eax, ebx, ecx, edx) = signature;
    leaf1_ecx & (1 << 31) != 0
        && eax >= abi::hv::CPUID_SIGNATURE_LEAF
        && abi::hv::is_our_signature(ebx, ecx, edx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_picks_the_instruction() {
        assert_eq!(hypercall_insn(b"AuthenticAMD"), HypercallInsn::Vmmcall);
        assert_eq!(hypercall_insn(b"HygonGenuine"), HypercallInsn::Vmmcall);
        assert_eq!(hypercall_insn(b"GenuineIntel"), HypercallInsn::Vmcall);
        assert_eq!(hypercall_insn(b"TCGTCGTCGTCG"), HypercallInsn::Vmcall);
    }

    #[test]
    fn only_our_signature_with_the_hypervisor_bit_counts() {
        let (b, c, d) = abi::hv::signature_registers();
        let sig = (abi::hv::CPUID_MAX_LEAF, b, c, d);
        assert!(is_our_vmm(1 << 31, sig));
        // No hypervisor bit: leaf 0x40000000 is meaningless (bare metal echoes another leaf).
        assert!(!is_our_vmm(0, sig));
        // KVM's signature, or a max leaf below the signature leaf.
        let kvm = b"KVMKVMKVM\0\0\0";
        let w = |i: usize| u32::from_le_bytes([kvm[i], kvm[i + 1], kvm[i + 2], kvm[i + 3]]);
        assert!(!is_our_vmm(1 << 31, (0x4000_0001, w(0), w(4), w(8))));
        assert!(!is_our_vmm(1 << 31, (0x0000_000d, b, c, d)));
    }
}
