//! The hypervisor interface our VMM presents to a guest.
//!
//! A guest detects us with CPUID: leaf 1 ECX bit 31 ("hypervisor present") and leaf
//! `0x4000_0000` returning [`CPUID_MAX_LEAF`] in EAX and the 12-byte [`SIGNATURE`] in EBX, ECX,
//! EDX (the convention KVM, Xen and Hyper-V share). Only then may it issue hypercalls:
//! `VMCALL` (Intel) or `VMMCALL` (AMD), from any privilege level, with the hypercall number in
//! RAX and arguments in RBX, RCX, RDX, RSI; the result comes back in RAX. Elsewhere the
//! instruction raises #UD, which is why the signature check comes first.

/// CPUID leaf of the hypervisor signature.
pub const CPUID_SIGNATURE_LEAF: u32 = 0x4000_0000;
/// Highest hypervisor CPUID leaf we implement (returned in EAX of the signature leaf).
pub const CPUID_MAX_LEAF: u32 = 0x4000_0001;
/// The signature, as the bytes of EBX, ECX, EDX in that order.
pub const SIGNATURE: [u8; 12] = *b"TernVMM\0\0\0\0\0";

/// Splits the signature into the (EBX, ECX, EDX) values CPUID returns.
pub const fn signature_registers() -> (u32, u32, u32) {
    let s = SIGNATURE;
    (
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
    )
}

/// Whether CPUID (EBX, ECX, EDX) of the signature leaf names our hypervisor.
pub fn is_our_signature(ebx: u32, ecx: u32, edx: u32) -> bool {
    (ebx, ecx, edx) == signature_registers()
}

/// Hypercall numbers (RAX on entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Hypercall {
    /// Power the VM off. RBX = exit status (see [`PowerOffStatus`]). Does not return.
    PowerOff = 1,
    /// Write bytes to the VMM's log: RBX = guest-physical address, RCX = length (at most
    /// [`MAX_LOG_BYTES`]). Returns the number of bytes written.
    Log = 2,
}

impl Hypercall {
    /// Decodes a hypercall number.
    pub fn from_raw(nr: u64) -> Option<Hypercall> {
        match nr {
            1 => Some(Hypercall::PowerOff),
            2 => Some(Hypercall::Log),
            _ => None,
        }
    }
}

/// The most bytes one `Log` hypercall writes.
pub const MAX_LOG_BYTES: u64 = 4096;

/// Result in RAX of an unknown hypercall number.
pub const HYPERCALL_UNKNOWN: u64 = u64::MAX;

/// Exit statuses the guest agent reports with `PowerOff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum PowerOffStatus {
    /// Clean shutdown: the file system was synced and unmounted.
    Clean = 0,
    /// The configured partition does not exist.
    NoSuchPartition = 2,
    /// The partition could not be mounted as ext4.
    NotExt4 = 3,
    /// The 9P server could not listen on its port.
    PortInUse = 4,
    /// Any other failure of the agent.
    AgentFailed = 5,
}

impl PowerOffStatus {
    /// Decodes a status (unknown values are failures).
    pub fn from_raw(raw: u64) -> PowerOffStatus {
        match raw {
            0 => PowerOffStatus::Clean,
            2 => PowerOffStatus::NoSuchPartition,
            3 => PowerOffStatus::NotExt4,
            4 => PowerOffStatus::PortInUse,
            _ => PowerOffStatus::AgentFailed,
        }
    }

    /// A message for the VMM's user.
    pub fn describe(self) -> &'static str {
        match self {
            PowerOffStatus::Clean => "clean shutdown",
            PowerOffStatus::NoSuchPartition => "the partition does not exist",
            PowerOffStatus::NotExt4 => "the partition is not ext4",
            PowerOffStatus::PortInUse => "the 9P port is in use",
            PowerOffStatus::AgentFailed => "the guest agent failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_through_registers() {
        let (b, c, d) = signature_registers();
        assert!(is_our_signature(b, c, d));
        assert!(!is_our_signature(b, c, d ^ 1));
    }

    #[test]
    fn hypercall_numbers_decode() {
        assert_eq!(Hypercall::from_raw(1), Some(Hypercall::PowerOff));
        assert_eq!(Hypercall::from_raw(2), Some(Hypercall::Log));
        assert_eq!(Hypercall::from_raw(0), None);
        assert_eq!(PowerOffStatus::from_raw(99), PowerOffStatus::AgentFailed);
    }
}
