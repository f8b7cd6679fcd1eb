//! Reading the guest's instructions: linear to guest-physical translation through the guest's
//! own page tables (no paging, 32-bit, PAE and 4-level; SDM Vol. 3A §4.3-4.5), instruction
//! fetch at CS:RIP across page boundaries, and decoding with `iced-x86` into what the kernel
//! needs: an instruction's length (SVM without NRIP save), the register of a MOV to or from a
//! control or debug register (SVM without decode assists), and a load or store to unbacked
//! memory as one access of a known size, direction and value (MMIO).

use super::cregs::{CR0_PE, CR0_PG, CR4_PAE, CR4_PSE, EFER_LMA};
use super::hw::{HwVcpu, SegReg};
use super::memory::GuestMemory;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

const PTE_P: u64 = 1;
const PTE_PS: u64 = 1 << 7;
/// Physical-address bits of a paging-structure entry (bits 51:12), without NX and software
/// bits.
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The guest's paging registers, read once per translation.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

impl Paging {
    /// The vCPU's current paging mode.
    pub fn of(hw: &mut dyn HwVcpu) -> Paging {
        Paging {
            cr0: hw.cr0(),
            cr3: hw.cr3(),
            cr4: hw.cr4(),
            efer: hw.efer(),
        }
    }

    /// Whether the guest is in IA-32e mode.
    pub fn long_mode(&self) -> bool {
        self.efer & EFER_LMA != 0
    }

    /// Guest-physical address of linear `la`, by the guest's page tables.
    pub fn translate(&self, mem: &GuestMemory, la: u64) -> Option<u64> {
        if self.cr0 & CR0_PG == 0 {
            return Some(if self.long_mode() {
                la
            } else {
                la & 0xffff_ffff
            });
        }
        let entry = |table: u64, index: u64, wide: bool| -> Option<u64> {
            if wide {
                mem.read_u64(table + index * 8).ok()
            } else {
                let mut b = [0u8; 4];
                mem.read(table + index * 4, &mut b).ok()?;
                Some(u64::from(u32::from_le_bytes(b)))
            }
        };
        if self.long_mode() {
            // 4-level paging; CR3 bits 11:0 may hold a PCID (§4.5).
            let mut table = self.cr3 & PTE_ADDR;
            for level in (1..=4u32).rev() {
                let shift = 12 + 9 * (level - 1);
                let e = entry(table, (la >> shift) & 0x1ff, true)?;
                if e & PTE_P == 0 {
                    return None;
                }
                if level == 1 || (level <= 3 && e & PTE_PS != 0) {
                    let size = 1u64 << shift;
                    return Some((e & PTE_ADDR & !(size - 1)) | (la & (size - 1)));
                }
                table = e & PTE_ADDR;
            }
            None
        } else if self.cr4 & CR4_PAE != 0 {
            // PAE: four PDPTEs at CR3 bits 31:5 (§4.4).
            let la = la & 0xffff_ffff;
            let pdpte = entry(self.cr3 & 0xffff_ffe0, la >> 30, true)?;
            if pdpte & PTE_P == 0 {
                return None;
            }
            let pde = entry(pdpte & PTE_ADDR, (la >> 21) & 0x1ff, true)?;
            if pde & PTE_P == 0 {
                return None;
            }
            if pde & PTE_PS != 0 {
                return Some((pde & PTE_ADDR & !0x1f_ffff) | (la & 0x1f_ffff));
            }
            let pte = entry(pde & PTE_ADDR, (la >> 12) & 0x1ff, true)?;
            (pte & PTE_P != 0).then_some((pte & PTE_ADDR) | (la & 0xfff))
        } else {
            // 32-bit paging (§4.3).
            let la = la & 0xffff_ffff;
            let pde = entry(self.cr3 & 0xffff_f000, la >> 22, false)?;
            if pde & PTE_P == 0 {
                return None;
            }
            if pde & PTE_PS != 0 && self.cr4 & CR4_PSE != 0 {
                let high = (pde >> 13) & 0xff;
                return Some((pde & 0xffc0_0000) | high << 32 | (la & 0x3f_ffff));
            }
            let pte = entry(pde & 0xffff_f000, (la >> 12) & 0x3ff, false)?;
            (pte & PTE_P != 0).then_some((pte & 0xffff_f000) | (la & 0xfff))
        }
    }

    /// Reads `buf.len()` bytes at linear `la`, page by page.
    pub fn read_linear(&self, mem: &GuestMemory, la: u64, buf: &mut [u8]) -> Option<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = la.wrapping_add(done as u64);
            let n = (buf.len() - done).min((4096 - at % 4096) as usize);
            let gpa = self.translate(mem, at)?;
            mem.read(gpa, &mut buf[done..done + n]).ok()?;
            done += n;
        }
        Some(())
    }

    /// Writes `data` at linear `la`, page by page.
    pub fn write_linear(&self, mem: &GuestMemory, la: u64, data: &[u8]) -> Option<()> {
        let mut done = 0;
        while done < data.len() {
            let at = la.wrapping_add(done as u64);
            let n = (data.len() - done).min((4096 - at % 4096) as usize);
            let gpa = self.translate(mem, at)?;
            mem.write(gpa, &data[done..done + n]).ok()?;
            done += n;
        }
        Some(())
    }
}

/// The code size the guest executes in: 16, 32 or 64 (SDM Vol. 3A §5.2.1).
pub fn bitness(hw: &mut dyn HwVcpu) -> u32 {
    let cs = hw.segment(SegReg::Cs).access;
    if hw.cr0() & CR0_PE == 0 || hw.rflags() & (1 << 17) != 0 {
        16
    } else if hw.efer() & EFER_LMA != 0 && cs & abi::vm::access::L != 0 {
        64
    } else if cs & abi::vm::access::DB != 0 {
        32
    } else {
        16
    }
}

/// Reads the instruction bytes at CS:RIP (up to 15, fewer if a page after the first is not
/// mapped).
pub fn fetch_bytes(hw: &mut dyn HwVcpu, mem: &GuestMemory) -> Option<([u8; 15], usize)> {
    let base = if bitness(hw) == 64 {
        0
    } else {
        hw.segment(SegReg::Cs).base
    };
    let la = base.wrapping_add(hw.rip());
    let paging = Paging::of(hw);
    let mut b = [0u8; 15];
    let mut n = 15;
    while paging.read_linear(mem, la, &mut b[..n]).is_none() {
        let to_page_end = (4096 - la % 4096) as usize;
        if n <= to_page_end || to_page_end == 0 {
            return None;
        }
        n = to_page_end;
    }
    Some((b, n))
}

/// Fetches and decodes the instruction at CS:RIP (or decodes `bytes` the hardware gave).
pub fn fetch(
    hw: &mut dyn HwVcpu,
    mem: &GuestMemory,
    given: Option<([u8; 15], usize)>,
) -> Option<(Instruction, [u8; 15], usize)> {
    let bits = bitness(hw);
    let rip = hw.rip();
    let (bytes, n) = match given {
        Some(g) => g,
        None => fetch_bytes(hw, mem)?,
    };
    let mut d = Decoder::with_ip(bits, &bytes[..n], rip, DecoderOptions::NONE);
    let instr = d.decode();
    (!instr.is_invalid()).then_some((instr, bytes, n))
}

/// The length of the instructions that exit unconditionally, when they come without prefixes
/// (SDM Vol. 2 opcode tables): CPUID, RDMSR, WRMSR, HLT, VMCALL, VMMCALL, XSETBV, PAUSE, INVD,
/// WBINVD, and MOV to or from a control or debug register. Anything else needs the decoder.
pub fn quick_len(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [0xf4, ..] => Some(1),
        [0x0f, 0xa2 | 0x30 | 0x32 | 0x08 | 0x09, ..] | [0xf3, 0x90, ..] => Some(2),
        [0x0f, 0x01, 0xc1 | 0xd9 | 0xd1, ..] => Some(3),
        [0x0f, 0x20..=0x23, modrm, ..] if modrm >> 6 == 3 => Some(3),
        _ => None,
    }
}

/// A general register operand: its number (RAX = 0 ... R15 = 15), size in bytes, and whether it
/// is AH, CH, DH or BH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GprOperand {
    /// RAX = 0 ... R15 = 15.
    pub number: u8,
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// AH, CH, DH or BH.
    pub high_byte: bool,
}

/// The general register `r`, if it is one.
pub fn gpr_operand(r: Register) -> Option<GprOperand> {
    if !r.is_gpr() {
        return None;
    }
    let high_byte = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    let full = r.full_register();
    Some(GprOperand {
        number: (full as u32 - Register::RAX as u32) as u8,
        size: r.size() as u8,
        high_byte,
    })
}

impl GprOperand {
    /// The operand's value out of the full register.
    pub fn get(&self, full: u64) -> u64 {
        match (self.size, self.high_byte) {
            (1, true) => (full >> 8) & 0xff,
            (1, false) => full & 0xff,
            (2, _) => full & 0xffff,
            (4, _) => full & 0xffff_ffff,
            _ => full,
        }
    }

    /// The full register after writing `value` to the operand (32-bit writes zero the upper
    /// half, 8- and 16-bit writes keep the rest; SDM Vol. 1 §3.4.1.1).
    pub fn put(&self, full: u64, value: u64) -> u64 {
        match (self.size, self.high_byte) {
            (1, true) => full & !0xff00 | (value & 0xff) << 8,
            (1, false) => full & !0xff | value & 0xff,
            (2, _) => full & !0xffff | value & 0xffff,
            (4, _) => value & 0xffff_ffff,
            _ => value,
        }
    }
}

/// How a load's value reaches its register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// MOV: the register is as wide as the access.
    None,
    /// MOVZX.
    Zero,
    /// MOVSX, MOVSXD.
    Sign,
}

/// One emulated access to unbacked memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioOp {
    /// A load into `dest`.
    Load { dest: GprOperand, extend: Extend },
    /// A store of `value`.
    Store { value: u64 },
}

/// A decoded MMIO instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInsn {
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// Load or store.
    pub op: MmioOp,
    /// Instruction length.
    pub len: u8,
}

/// Decodes `instr` as a load or store with one memory operand: MOV (register, immediate or
/// moffs forms), MOVZX, MOVSX, MOVSXD. Anything else is not emulated.
pub fn mmio_insn(instr: &Instruction, gprs: &[u64; 16]) -> Option<MmioInsn> {
    let size = instr.memory_size().size();
    if !matches!(size, 1 | 2 | 4 | 8) || instr.op_count() != 2 {
        return None;
    }
    let len = instr.len() as u8;
    let op = match (instr.mnemonic(), instr.op0_kind(), instr.op1_kind()) {
        (Mnemonic::Mov, OpKind::Memory, OpKind::Register) => {
            let src = gpr_operand(instr.op1_register())?;
            MmioOp::Store {
                value: src.get(gprs[usize::from(src.number)]),
            }
        }
        (
            Mnemonic::Mov,
            OpKind::Memory,
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64,
        ) => MmioOp::Store {
            value: instr.immediate(1),
        },
        (Mnemonic::Mov, OpKind::Register, OpKind::Memory) => MmioOp::Load {
            dest: gpr_operand(instr.op0_register())?,
            extend: Extend::None,
        },
        (Mnemonic::Movzx, OpKind::Register, OpKind::Memory) => MmioOp::Load {
            dest: gpr_operand(instr.op0_register())?,
            extend: Extend::Zero,
        },
        (Mnemonic::Movsx | Mnemonic::Movsxd, OpKind::Register, OpKind::Memory) => MmioOp::Load {
            dest: gpr_operand(instr.op0_register())?,
            extend: Extend::Sign,
        },
        _ => return None,
    };
    let mask = if size == 8 {
        u64::MAX
    } else {
        (1 << (8 * size)) - 1
    };
    let op = match op {
        MmioOp::Store { value } => MmioOp::Store {
            value: value & mask,
        },
        load => load,
    };
    Some(MmioInsn {
        size: size as u8,
        op,
        len,
    })
}

impl MmioInsn {
    /// The destination register's new full value after a load that read `value`.
    pub fn complete_load(&self, gprs: &mut [u64; 16], value: u64) {
        let MmioOp::Load { dest, extend } = self.op else {
            return;
        };
        let bits = 8 * u32::from(self.size);
        let value = if bits == 64 {
            value
        } else {
            value & ((1 << bits) - 1)
        };
        let extended = match extend {
            Extend::Sign if bits < 64 => {
                let shift = 64 - bits;
                ((value << shift) as i64 >> shift) as u64
            }
            _ => value,
        };
        let r = usize::from(dest.number);
        gprs[r] = dest.put(gprs[r], extended);
    }
}

/// The general register of a MOV to or from CRn/DRn (the r/m operand; SDM Vol. 2B MOV).
pub fn mov_cr_dr_gpr(instr: &Instruction) -> Option<u8> {
    let r = match instr.mnemonic() {
        Mnemonic::Mov => {
            if instr.op0_kind() == OpKind::Register && instr.op0_register().is_gpr() {
                instr.op0_register()
            } else {
                instr.op1_register()
            }
        }
        _ => return None,
    };
    gpr_operand(r).map(|g| g.number)
}

/// The segment of a string instruction's memory source (OUTS: DS unless overridden).
pub fn string_source_segment(instr: &Instruction) -> SegReg {
    match instr.memory_segment() {
        Register::ES => SegReg::Es,
        Register::CS => SegReg::Cs,
        Register::SS => SegReg::Ss,
        Register::FS => SegReg::Fs,
        Register::GS => SegReg::Gs,
        _ => SegReg::Ds,
    }
}
