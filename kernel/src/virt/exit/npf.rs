//! Nested page faults (EPT violations, SDM Vol. 3C §29.3.3.2; NPF, APM §15.25.6).
//!
//! - On registered memory: the page is mapped (with the rest of its 64 KiB block) and the guest
//!   retries.
//! - On the in-kernel LAPIC's page (xAPIC mode) or the IOAPIC's: the instruction is decoded and
//!   emulated against the device in the kernel.
//! - Anywhere else: MMIO for the VMM. The instruction (bytes from the hardware with SVM decode
//!   assists, else fetched through the guest's page tables, across page boundaries) is decoded
//!   into one load or store of 1, 2, 4 or 8 bytes, at the address the instruction computes
//!   (so that an access starting in the page before the faulting one is reported where it
//!   starts); loads complete into their register when the vCPU next runs.

use super::{Action, Ctx};
use crate::virt::decode::{self, MmioInsn, MmioOp, Paging};
use crate::virt::hw::SegReg;
use crate::virt::memory::Backing;
use crate::virt::vcpu::{self, Pending};
use crate::virt::vm::Stat;
use abi::vm::{ExitReason, IOAPIC_BASE, emulation};
use iced_x86::{Instruction, Register};

/// The in-kernel devices reached by MMIO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Lapic,
    Ioapic,
}

fn emulation_failed(ctx: &mut Ctx, gpa: u64, code: u64, bytes: &[u8]) -> Action {
    let a = ctx.reflect(ExitReason::EmulationFailed);
    ctx.out.gpa = gpa;
    ctx.out.code = code;
    ctx.out.count = bytes.len() as u32;
    ctx.out.data[..bytes.len()].copy_from_slice(bytes);
    a
}

/// Linear address of `instr`'s memory operand (only the segment it uses is read).
fn operand_address(ctx: &mut Ctx, instr: &Instruction) -> Option<u64> {
    let gprs = ctx.inner.gprs.r;
    let op = (0..instr.op_count()).find(|&i| instr.op_kind(i) == iced_x86::OpKind::Memory)?;
    instr.virtual_address(op, 0, |r, _, _| {
        let seg = match r {
            Register::ES => SegReg::Es,
            Register::CS => SegReg::Cs,
            Register::SS => SegReg::Ss,
            Register::DS => SegReg::Ds,
            Register::FS => SegReg::Fs,
            Register::GS => SegReg::Gs,
            r => return decode::gpr_operand(r).map(|g| g.get(gprs[usize::from(g.number)])),
        };
        Some(vcpu::linear(ctx.inner, seg, 0))
    })
}

/// Handles a nested page fault at `gpa`.
pub fn handle(ctx: &mut Ctx, gpa: u64, _write: bool, fetch: bool) -> Action {
    let device = if ctx.vcpu.lapic.lock().mmio_base() == Some(gpa & !0xfff) {
        Some(Device::Lapic)
    } else if gpa & !0xfff == IOAPIC_BASE {
        Some(Device::Ioapic)
    } else {
        None
    };
    if device.is_none() {
        let backing = match ctx.vm.mem.lock().as_mut().map(|m| m.fault(gpa)) {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                log::warn!("vm {}: cannot map guest page {gpa:#x}: {e}", ctx.vm.id);
                return Action::Fail(abi::errors::ENOMEM);
            }
            None => Backing::Unbacked,
        };
        if let Backing::Ram = backing {
            ctx.vm.stats.add(Stat::MemoryFaults, 1);
            return Action::Continue;
        }
    }
    if fetch {
        return emulation_failed(ctx, gpa, emulation::EXECUTE, &[]);
    }

    // Decode the instruction.
    let given = ctx.inner.hw.fault_insn_bytes();
    let decoded = {
        let mem = ctx.vm.mem.lock();
        mem.as_ref()
            .and_then(|m| decode::fetch(ctx.inner.hw.as_mut(), m, given))
    };
    let Some((instr, bytes, n)) = decoded else {
        return emulation_failed(ctx, gpa, emulation::FETCH, &[]);
    };
    let Some(insn) = decode::mmio_insn(&instr, &ctx.inner.gprs.r) else {
        return emulation_failed(ctx, gpa, emulation::UNSUPPORTED, &bytes[..n]);
    };

    // Where the access starts, and whether it stays in unbacked memory.
    let size = u64::from(insn.size);
    let start = operand_address(ctx, &instr).and_then(|la| {
        let paging = Paging::of(ctx.inner.hw.as_mut());
        ctx.vm
            .mem
            .lock()
            .as_ref()
            .and_then(|m| paging.translate(m, la))
    });
    let start = match start {
        Some(s) if s <= gpa && gpa < s + size => s,
        _ => gpa,
    };
    let end = start + size - 1;
    if start >> 12 != end >> 12 {
        let ram = ctx
            .vm
            .mem
            .lock()
            .as_ref()
            .is_some_and(|m| m.is_ram(start) || m.is_ram(end));
        if ram || device.is_some() {
            return emulation_failed(ctx, start, emulation::STRADDLES, &bytes[..n]);
        }
    }

    match device {
        Some(d) => in_kernel(ctx, d, start, insn),
        None => {
            ctx.inner.pending = match insn.op {
                MmioOp::Load { .. } => Pending::MmioLoad(insn),
                MmioOp::Store { .. } => Pending::Skip(insn.len),
            };
            let a = ctx.reflect(ExitReason::Mmio);
            ctx.out.gpa = start;
            ctx.out.size = insn.size;
            if let MmioOp::Store { value } = insn.op {
                ctx.out.write = 1;
                ctx.out.value = value;
            }
            a
        }
    }
}

/// Emulates an access to the LAPIC or IOAPIC: 32-bit registers at 16-byte boundaries; other
/// accesses read as zero and are ignored.
fn in_kernel(ctx: &mut Ctx, device: Device, gpa: u64, insn: MmioInsn) -> Action {
    let offset = gpa & 0xfff;
    let aligned = offset.is_multiple_of(16) && insn.size == 4;
    let now = crate::arch::x86_64::rdtsc();
    let mut value = 0u64;
    match (device, insn.op) {
        (Device::Lapic, MmioOp::Load { .. }) if aligned => {
            value = u64::from(ctx.vcpu.lapic.lock().read(offset as u32, now));
        }
        (Device::Lapic, MmioOp::Store { value: v }) if aligned => {
            let (ipi, eoi) = ctx.vcpu.lapic.lock().write(offset as u32, v as u32, now);
            ctx.vm.lapic_effects(ctx.vcpu, ipi, eoi);
        }
        (Device::Ioapic, MmioOp::Load { .. }) if aligned => {
            value = u64::from(ctx.vm.ioapic.lock().mmio_read(offset));
        }
        (Device::Ioapic, MmioOp::Store { value: v }) if aligned => {
            ctx.vm.ioapic_write(offset, v as u32);
        }
        _ => {}
    }
    ctx.vm.stats.add(
        if device == Device::Lapic {
            Stat::LapicAccesses
        } else {
            Stat::IoapicAccesses
        },
        1,
    );
    insn.complete_load(&mut ctx.inner.gprs.r, value);
    vcpu::skip(ctx.inner, insn.len);
    Action::Continue
}
