//! The vCPU state Linux expects at each entry point, and the GDT and page tables behind it.
//!
//! - PVH (Xen `docs/misc/pvh.pandoc`, which Linux's `arch/x86/platform/pvh/head.S` follows):
//!   32-bit protected mode, paging off; CS a flat 32-bit execute/read segment; DS, ES, SS flat
//!   read/write; TR a 32-bit TSS with base 0 and limit 0x67; CR0.PE set; CR4 zero; EFLAGS.IF,
//!   TF and VM clear; EBX the address of `hvm_start_info`.
//! - The 64-bit boot protocol (boot.rst, "64-bit Boot Protocol"): long mode with paging;
//!   identity mapping of the kernel, the zero page and the command line; a GDT with flat
//!   segments `__BOOT_CS` (0x10, execute/read) and `__BOOT_DS` (0x18, read/write); CS =
//!   `__BOOT_CS`, DS, ES, SS = `__BOOT_DS`; interrupts off; RSI the address of `boot_params`.
//!
//! One GDT serves both: 0x08 is a 32-bit code segment, 0x10 a 64-bit one, 0x18 data, 0x20 a
//! TSS. The page tables identity-map the first 4 GiB with 2 MiB pages, which covers the kernel,
//! the zero page, the command line and the initrd (all below the 3 GiB hole). The CR0 and CR4
//! values are the architectural minimum; a VT backend ORs in its fixed-1 bits (e.g. CR0.NE).
//!
//! Segment access rights are in the VMX layout (SDM Vol 3C §25.4.1, table 25-2):
//! type[3:0], S[4], DPL[6:5], P[7], AVL[12], L[13], D/B[14], G[15], unusable[16].
//! [`Segment::svm_attrib`] packs them the way the VMCB wants (APM Vol 2 §15.5.1).

use crate::layout::{BOOT_GDT, BOOT_STACK_TOP, PD, PDPT, PML4};
use crate::memory::{GuestMemory, MemoryError};

/// Selector of the 32-bit code segment (PVH entry).
pub const CODE32_SELECTOR: u16 = 0x08;
/// Selector of the 64-bit code segment, Linux's `__BOOT_CS`.
pub const CODE64_SELECTOR: u16 = 0x10;
/// Selector of the data segment, Linux's `__BOOT_DS`.
pub const DATA_SELECTOR: u16 = 0x18;
/// Selector of the TSS.
pub const TSS_SELECTOR: u16 = 0x20;

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.ET: always 1 on processors with an x87.
pub const CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension, required for long mode.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1, reserved and always set.
pub const RFLAGS_RESERVED: u64 = 1 << 1;

/// Access rights: present, code, execute/read, accessed; 32-bit, 4 KiB granularity.
pub const ACCESS_CODE32: u32 = 0xc09b;
/// Access rights: present, code, execute/read, accessed; 64-bit, 4 KiB granularity.
pub const ACCESS_CODE64: u32 = 0xa09b;
/// Access rights: present, data, read/write, accessed; 32-bit, 4 KiB granularity.
pub const ACCESS_DATA: u32 = 0xc093;
/// Access rights: present, busy 32-bit TSS (type 11, which is also the 64-bit busy TSS).
pub const ACCESS_TSS: u32 = 0x008b;
/// Access rights: unusable (for the LDTR, which has no descriptor).
pub const ACCESS_UNUSABLE: u32 = 1 << 16;

/// A segment register with its hidden part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The visible selector.
    pub selector: u16,
    /// Base address.
    pub base: u64,
    /// Limit in bytes (already scaled by the granularity).
    pub limit: u32,
    /// Access rights in the VMX layout.
    pub access: u32,
}

impl Segment {
    /// The access rights in the VMCB `attrib` layout: VMX bits 7:0 and 15:12 packed into 11:0.
    pub fn svm_attrib(&self) -> u16 {
        ((self.access & 0xff) | ((self.access >> 4) & 0xf00)) as u16
    }
}

/// The base and limit of a descriptor table register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableRegister {
    /// Base address.
    pub base: u64,
    /// Limit (size minus one).
    pub limit: u16,
}

/// Which way the kernel is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 32-bit protected mode, paging off (PVH).
    Protected32,
    /// 64-bit long mode with identity paging (boot.rst 64-bit protocol).
    Long64,
}

/// The state of the boot vCPU at the first instruction of the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootCpuState {
    /// The entry mode this state is for.
    pub mode: EntryMode,
    /// First instruction.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Flags.
    pub rflags: u64,
    /// RBX (PVH: `hvm_start_info`).
    pub rbx: u64,
    /// RSI (64-bit protocol: `boot_params`).
    pub rsi: u64,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// CS.
    pub cs: Segment,
    /// DS.
    pub ds: Segment,
    /// ES.
    pub es: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// SS.
    pub ss: Segment,
    /// TR.
    pub tr: Segment,
    /// LDTR.
    pub ldtr: Segment,
    /// GDTR.
    pub gdtr: TableRegister,
    /// IDTR (empty: the kernel loads its own before enabling interrupts).
    pub idtr: TableRegister,
}

const FLAT: u32 = 0xffff_ffff;
const TSS_LIMIT: u32 = 0x67;
/// GDT entries: null, code32, code64, data, and a TSS that takes two slots in long mode.
const GDT_ENTRIES: usize = 6;

fn descriptor(base: u32, limit: u32, access: u32) -> u64 {
    // Limit in 4 KiB units when G is set.
    let raw_limit = if access & 0x8000 != 0 {
        limit >> 12
    } else {
        limit
    };
    let (base, raw_limit, access) = (u64::from(base), u64::from(raw_limit), u64::from(access));
    (raw_limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | (access & 0xff) << 40
        | ((raw_limit >> 16) & 0xf) << 48
        | ((access >> 12) & 0xf) << 52
        | (base >> 24) << 56
}

/// The boot GDT, as 64-bit descriptors.
pub fn gdt() -> [u64; GDT_ENTRIES] {
    [
        0,
        descriptor(0, FLAT, ACCESS_CODE32),
        descriptor(0, FLAT, ACCESS_CODE64),
        descriptor(0, FLAT, ACCESS_DATA),
        descriptor(0, TSS_LIMIT, ACCESS_TSS),
        0,
    ]
}

fn write_gdt(mem: &impl GuestMemory) -> Result<TableRegister, MemoryError> {
    let mut bytes = [0u8; GDT_ENTRIES * 8];
    for (i, d) in gdt().iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
    }
    mem.write(BOOT_GDT, &bytes)?;
    Ok(TableRegister {
        base: BOOT_GDT,
        limit: (bytes.len() - 1) as u16,
    })
}

/// Page-table entry bits.
const PTE_PRESENT: u64 = 1;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_LARGE: u64 = 1 << 7;

/// Writes identity page tables for `[0, 4 GiB)` with 2 MiB pages; returns CR3.
pub fn write_identity_page_tables(mem: &impl GuestMemory) -> Result<u64, MemoryError> {
    mem.zero(PML4, 0x1000)?;
    mem.write_u64(PML4, PDPT | PTE_PRESENT | PTE_WRITABLE)?;
    mem.zero(PDPT, 0x1000)?;
    let mut pd = [0u8; 0x1000];
    for gib in 0..4u64 {
        let table = PD + gib * 0x1000;
        mem.write_u64(PDPT + 8 * gib, table | PTE_PRESENT | PTE_WRITABLE)?;
        for (i, e) in pd.chunks_exact_mut(8).enumerate() {
            let addr = (gib << 30) | ((i as u64) << 21);
            e.copy_from_slice(&(addr | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE).to_le_bytes());
        }
        mem.write(table, &pd)?;
    }
    Ok(PML4)
}

fn segment(selector: u16, limit: u32, access: u32) -> Segment {
    Segment {
        selector,
        base: 0,
        limit,
        access,
    }
}

/// Writes the GDT (and for long mode the page tables) and returns the vCPU state that enters
/// the kernel at `entry` in `mode`, with `boot_info` in RBX (PVH) or RSI (64-bit protocol).
pub fn setup(
    mem: &impl GuestMemory,
    mode: EntryMode,
    entry: u64,
    boot_info: u64,
) -> Result<BootCpuState, MemoryError> {
    let gdtr = write_gdt(mem)?;
    let data = segment(DATA_SELECTOR, FLAT, ACCESS_DATA);
    let mut s = BootCpuState {
        mode,
        rip: entry,
        rsp: BOOT_STACK_TOP,
        rflags: RFLAGS_RESERVED,
        rbx: 0,
        rsi: 0,
        cr0: CR0_PE | CR0_ET,
        cr3: 0,
        cr4: 0,
        efer: 0,
        cs: segment(CODE32_SELECTOR, FLAT, ACCESS_CODE32),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: segment(TSS_SELECTOR, TSS_LIMIT, ACCESS_TSS),
        ldtr: Segment {
            selector: 0,
            base: 0,
            limit: 0,
            access: ACCESS_UNUSABLE,
        },
        gdtr,
        idtr: TableRegister::default(),
    };
    match mode {
        EntryMode::Protected32 => s.rbx = boot_info,
        EntryMode::Long64 => {
            s.rsi = boot_info;
            s.cr3 = write_identity_page_tables(mem)?;
            s.cr0 |= CR0_PG;
            s.cr4 = CR4_PAE;
            s.efer = EFER_LME | EFER_LMA;
            s.cs = segment(CODE64_SELECTOR, FLAT, ACCESS_CODE64);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::FakeGuestMemory;

    #[test]
    fn gdt_descriptors_match_the_hand_encoded_values() {
        let g = gdt();
        assert_eq!(g[1], 0x00cf_9b00_0000_ffff);
        assert_eq!(g[2], 0x00af_9b00_0000_ffff);
        assert_eq!(g[3], 0x00cf_9300_0000_ffff);
        assert_eq!(g[4], 0x0000_8b00_0000_0067);
        assert_eq!(
            usize::from(CODE64_SELECTOR) / 8,
            2,
            "__BOOT_CS is 0x10 (boot.rst)"
        );
        assert_eq!(
            usize::from(DATA_SELECTOR) / 8,
            3,
            "__BOOT_DS is 0x18 (boot.rst)"
        );
    }

    #[test]
    fn svm_attributes_pack_the_vmx_layout() {
        let s = segment(CODE64_SELECTOR, FLAT, ACCESS_CODE64);
        assert_eq!(s.svm_attrib(), 0xa9b);
    }

    #[test]
    fn long_mode_state_and_identity_tables() {
        let mem = FakeGuestMemory::with_size(0x10_0000);
        let s = setup(&mem, EntryMode::Long64, 0x100_0200, 0x7000).unwrap();
        assert_eq!(
            (s.rip, s.rsi, s.cs.selector, s.ds.selector),
            (0x100_0200, 0x7000, 0x10, 0x18)
        );
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!((s.cr4, s.efer, s.rflags), (CR4_PAE, EFER_LME | EFER_LMA, 2));
        // Walk the tables for a few addresses: 16 MiB (kernel), 2.9 GiB (initrd), 4 GiB - 1.
        for va in [0x100_0000u64, 0xb9ff_f000, 0xffff_ffff] {
            let pml4e = mem.read_u64(s.cr3 + 8 * (va >> 39)).unwrap();
            let pdpte = mem
                .read_u64((pml4e & !0xfff) + 8 * ((va >> 30) & 511))
                .unwrap();
            let pde = mem
                .read_u64((pdpte & !0xfff) + 8 * ((va >> 21) & 511))
                .unwrap();
            assert_eq!(pde & 0x83, 0x83);
            assert_eq!(
                (pde & !0x1f_ffff) | (va & 0x1f_ffff),
                va,
                "identity at {va:#x}"
            );
        }
        let gdt0 = mem.read_u64(s.gdtr.base + 0x10).unwrap();
        assert_eq!(gdt0, gdt()[2]);
    }

    #[test]
    fn pvh_state_is_flat_protected_mode_without_paging() {
        let mem = FakeGuestMemory::with_size(0x10_0000);
        let s = setup(&mem, EntryMode::Protected32, 0x100_0000, 0x8000).unwrap();
        assert_eq!((s.rbx, s.cr0 & CR0_PG, s.cr4, s.efer), (0x8000, 0, 0, 0));
        assert_eq!(s.cr0 & CR0_PE, CR0_PE);
        assert_eq!(
            (s.cs.limit, s.cs.access & 0x6000),
            (FLAT, 0x4000),
            "32-bit, not 64-bit"
        );
        assert_eq!((s.tr.limit, s.tr.base), (0x67, 0));
        assert_eq!(s.rflags & (1 << 9 | 1 << 8 | 1 << 17), 0);
    }
}
