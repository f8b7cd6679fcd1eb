//! What the CPU is and which hardware virtualization it offers: VMX with its secondary controls
//! (SDM Vol. 3D Appendix A) or SVM with its feature leaf (AMD APM Vol. 3, CPUID Fn8000_000A).

use alloc::string::String;
use core::fmt;
use raw_cpuid::CpuId;

/// Intel VMX capabilities.
#[derive(Clone, Debug, Default)]
pub struct VmxFeatures {
    /// IA32_FEATURE_CONTROL is locked with VMX outside SMX disabled.
    pub disabled_by_firmware: bool,
    pub ept: bool,
    pub vpid: bool,
    pub unrestricted_guest: bool,
    pub posted_interrupts: bool,
    pub virtual_interrupt_delivery: bool,
    pub preemption_timer: bool,
    pub ept_ad: bool,
    pub ept_1g: bool,
}

/// AMD SVM capabilities.
#[derive(Clone, Debug, Default)]
pub struct SvmFeatures {
    /// VM_CR.SVMDIS is set.
    pub disabled_by_firmware: bool,
    pub asids: u32,
    pub npt: bool,
    pub nrip_save: bool,
    pub vmcb_clean: bool,
    pub flush_by_asid: bool,
    pub decode_assists: bool,
    pub vgif: bool,
    pub avic: bool,
    pub pause_filter: bool,
}

/// The hardware virtualization this CPU offers.
#[derive(Clone, Debug)]
pub enum Virtualization {
    Vmx(VmxFeatures),
    Svm(SvmFeatures),
    None,
}

/// The CPU, as CPUID and the capability MSRs describe it.
#[derive(Clone, Debug)]
pub struct CpuInfo {
    pub vendor: String,
    pub brand: String,
    pub family: u8,
    pub model: u8,
    pub stepping: u8,
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub invariant_tsc: bool,
    pub pdpe1gb: bool,
    pub nx: bool,
    pub virt: Virtualization,
}

/// Reads a capability MSR; one the CPU (or emulator) lacks reads as 0.
fn rdmsr(msr: u32) -> u64 {
    super::extable::rdmsr(msr).unwrap_or(0)
}

/// Whether the allowed-1 half (bits 32-63) of a VMX capability MSR permits control `bit`.
fn allowed1(cap: u64, bit: u32) -> bool {
    cap >> 32 & (1 << bit) != 0
}

fn vmx_features() -> VmxFeatures {
    const IA32_FEATURE_CONTROL: u32 = 0x3a;
    const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
    const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
    const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
    const IA32_VMX_EPT_VPID_CAP: u32 = 0x48c;
    let fc = rdmsr(IA32_FEATURE_CONTROL);
    let mut f = VmxFeatures {
        disabled_by_firmware: fc & 1 != 0 && fc & (1 << 2) == 0,
        ..VmxFeatures::default()
    };
    let pin = rdmsr(IA32_VMX_PINBASED_CTLS);
    f.preemption_timer = allowed1(pin, 6);
    f.posted_interrupts = allowed1(pin, 7);
    // Secondary controls exist only if the primary "activate secondary controls" can be 1.
    if allowed1(rdmsr(IA32_VMX_PROCBASED_CTLS), 31) {
        let sec = rdmsr(IA32_VMX_PROCBASED_CTLS2);
        f.ept = allowed1(sec, 1);
        f.vpid = allowed1(sec, 5);
        f.unrestricted_guest = allowed1(sec, 7);
        f.virtual_interrupt_delivery = allowed1(sec, 9);
        if f.ept || f.vpid {
            let cap = rdmsr(IA32_VMX_EPT_VPID_CAP);
            f.ept_ad = cap & (1 << 21) != 0;
            f.ept_1g = cap & (1 << 17) != 0;
        }
    }
    f
}

fn svm_features(cpuid: &CpuId<raw_cpuid::CpuIdReaderNative>) -> SvmFeatures {
    const VM_CR: u32 = 0xc001_0114;
    let mut f = SvmFeatures {
        disabled_by_firmware: rdmsr(VM_CR) & (1 << 4) != 0,
        ..SvmFeatures::default()
    };
    if let Some(svm) = cpuid.get_svm_info() {
        f.asids = svm.supported_asids();
        f.npt = svm.has_nested_paging();
        f.nrip_save = svm.has_nrip();
        f.vmcb_clean = svm.has_vmcb_clean_bits();
        f.flush_by_asid = svm.has_flush_by_asid();
        f.decode_assists = svm.has_decode_assists();
        f.vgif = svm.has_gif();
        f.avic = svm.has_avic();
        f.pause_filter = svm.has_pause_filter();
    }
    f
}

impl CpuInfo {
    /// Reads CPUID (and the virtualization capability MSRs) on this CPU.
    pub fn get() -> CpuInfo {
        let cpuid = CpuId::new();
        let vendor = cpuid
            .get_vendor_info()
            .map(|v| String::from(v.as_str()))
            .unwrap_or_default();
        let brand = cpuid
            .get_processor_brand_string()
            .map(|b| String::from(b.as_str().trim()))
            .unwrap_or_else(|| String::from("unknown model"));
        let features = cpuid.get_feature_info();
        let ext = cpuid.get_extended_processor_and_feature_identifiers();
        let vmx = features.as_ref().is_some_and(|f| f.has_vmx());
        let svm = ext.as_ref().is_some_and(|e| e.has_svm());
        let virt = if vmx {
            Virtualization::Vmx(vmx_features())
        } else if svm {
            Virtualization::Svm(svm_features(&cpuid))
        } else {
            Virtualization::None
        };
        CpuInfo {
            vendor,
            brand,
            family: features.as_ref().map_or(0, |f| f.family_id()),
            model: features.as_ref().map_or(0, |f| f.model_id()),
            stepping: features.as_ref().map_or(0, |f| f.stepping_id()),
            x2apic: features.as_ref().is_some_and(|f| f.has_x2apic()),
            tsc_deadline: features.as_ref().is_some_and(|f| f.has_tsc_deadline()),
            invariant_tsc: cpuid
                .get_advanced_power_mgmt_info()
                .is_some_and(|p| p.has_invariant_tsc()),
            pdpe1gb: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
            nx: ext.as_ref().is_some_and(|e| e.has_execute_disable()),
            virt,
        }
    }
}

/// The CPU as the `cpu` command (and `#arch/cpu`) shows it.
pub fn report() -> String {
    use core::fmt::Write;
    let info = CpuInfo::get();
    let mut out = String::new();
    let _ = writeln!(out, "vendor:         {}", info.vendor);
    let _ = writeln!(out, "model:          {}", info.brand);
    let _ = writeln!(
        out,
        "family/model:   {}/{} stepping {}",
        info.family, info.model, info.stepping
    );
    let _ = writeln!(out, "virtualization: {}", info.virt);
    let _ = writeln!(
        out,
        "cpus:           {}",
        super::acpi::platform().cpus.len()
    );
    let flags = [
        (info.x2apic, "x2apic"),
        (info.tsc_deadline, "tsc-deadline"),
        (info.invariant_tsc, "invariant-tsc"),
        (info.pdpe1gb, "1g-pages"),
        (info.nx, "nx"),
    ];
    let names: alloc::vec::Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    let _ = writeln!(out, "features:       {}", names.join(" "));
    let _ = writeln!(out, "clock:          {}", crate::time::describe());
    out
}

/// Writes `name` for each true flag, space-separated, or `-` if none.
fn flags(f: &mut fmt::Formatter<'_>, list: &[(bool, &str)]) -> fmt::Result {
    let mut any = false;
    for (on, name) in list {
        if *on {
            write!(f, "{}{name}", if any { " " } else { "" })?;
            any = true;
        }
    }
    if !any {
        write!(f, "-")?;
    }
    Ok(())
}

impl fmt::Display for Virtualization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Virtualization::Vmx(v) => {
                write!(f, "VMX (")?;
                flags(
                    f,
                    &[
                        (v.ept, "EPT"),
                        (v.vpid, "VPID"),
                        (v.unrestricted_guest, "unrestricted-guest"),
                        (v.posted_interrupts, "posted-interrupts"),
                        (v.virtual_interrupt_delivery, "virtual-interrupt-delivery"),
                        (v.preemption_timer, "preemption-timer"),
                        (v.ept_ad, "EPT-A/D"),
                        (v.ept_1g, "EPT-1G"),
                    ],
                )?;
                write!(f, ")")?;
                if v.disabled_by_firmware {
                    write!(f, ", disabled by firmware")?;
                }
                Ok(())
            }
            Virtualization::Svm(s) => {
                write!(f, "SVM (")?;
                flags(
                    f,
                    &[
                        (s.npt, "NPT"),
                        (s.nrip_save, "NRIP-save"),
                        (s.decode_assists, "decode-assists"),
                        (s.vmcb_clean, "VMCB-clean"),
                        (s.flush_by_asid, "flush-by-ASID"),
                        (s.vgif, "vGIF"),
                        (s.avic, "AVIC"),
                        (s.pause_filter, "pause-filter"),
                    ],
                )?;
                write!(f, "), {} ASIDs", s.asids)?;
                if s.disabled_by_firmware {
                    write!(f, ", disabled by firmware")?;
                }
                Ok(())
            }
            Virtualization::None => write!(f, "none"),
        }
    }
}
