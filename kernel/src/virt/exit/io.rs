//! Port I/O, reflected to the VMM, decoded from the exit information (port, size, direction,
//! string and REP; SDM Vol. 3C §28.2.1 Table 28-5; APM §15.10.2) rather than from opcode bytes.
//!
//! IN and OUT are one access each. INS and OUTS move up to [`IO_DATA_MAX`] bytes per exit,
//! within one page of guest memory: the kernel reads an OUTS's elements from the guest before
//! reflecting, writes an INS's elements after the VMM completes it, then advances RSI/RDI and
//! RCX as the address size says; a REP string that is not finished re-executes and exits again.
//! The segment and address size come from the exit information where the hardware gives them
//! (VMX INS/OUTS information, SVM decode assists) and from the decoded instruction otherwise.

use super::{Action, Ctx};
use crate::virt::decode::{self, Paging};
use crate::virt::hw::{IoExit, SegReg, gpr};
use crate::virt::vcpu::{self, Pending, VcpuInner};
use crate::virt::vm::Vm;
use abi::vm::{Complete, EXIT_REP, EXIT_STRING, ExitReason, IO_DATA_MAX};
use iced_x86::OpKind;

/// A string I/O instruction in progress.
#[derive(Clone, Copy, Debug)]
pub struct StringOp {
    size: u8,
    /// Elements moved by this exit.
    count: u32,
    input: bool,
    rep: bool,
    /// Address size in bytes.
    address_size: u8,
    /// RFLAGS.DF: addresses go down.
    down: bool,
    len: u8,
}

fn mask(address_size: u8) -> u64 {
    match address_size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// A register that holds an address of `address_size` bytes, advanced by `delta`.
fn advance(reg: u64, address_size: u8, delta: i64) -> u64 {
    let v = reg.wrapping_add(delta as u64);
    match address_size {
        2 => reg & !0xffff | v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    }
}

/// Address size and source segment of a string instruction: from the exit, or decoded.
fn string_info(ctx: &mut Ctx, io: &IoExit) -> Option<(u8, SegReg)> {
    if io.address_size != 0 && (io.input || io.segment.is_some()) {
        return Some((io.address_size, io.segment.unwrap_or(SegReg::Es)));
    }
    let mem = ctx.vm.mem.lock();
    let (instr, _, _) = decode::fetch(ctx.inner.hw.as_mut(), mem.as_ref()?, None)?;
    let size = match (instr.op0_kind(), instr.op1_kind()) {
        (OpKind::MemoryESDI, _) | (_, OpKind::MemorySegSI) => 2,
        (OpKind::MemoryESEDI, _) | (_, OpKind::MemorySegESI) => 4,
        _ => 8,
    };
    let size = if io.address_size != 0 {
        io.address_size
    } else {
        size
    };
    Some((size, decode::string_source_segment(&instr)))
}

/// Handles an I/O exit.
pub fn handle(ctx: &mut Ctx, io: IoExit) -> Action {
    let Some(len) = ctx.len(io.len) else {
        return ctx.fetch_failed();
    };
    ctx.vm.stats.port(io.port);
    if !io.string {
        let value = ctx.inner.gprs.r[gpr::RAX] & ((1u64 << (8 * io.size)) - 1);
        ctx.inner.pending = if io.input {
            Pending::PioIn { size: io.size, len }
        } else {
            Pending::Skip(len)
        };
        let a = ctx.reflect(ExitReason::Pio);
        ctx.out.port = io.port;
        ctx.out.size = io.size;
        ctx.out.write = u8::from(!io.input);
        if !io.input {
            ctx.out.value = value;
        }
        return a;
    }

    let Some((address_size, segment)) = string_info(ctx, &io) else {
        return ctx.fetch_failed();
    };
    let m = mask(address_size);
    let i = &mut *ctx.inner;
    let down = i.hw.rflags() & (1 << 10) != 0;
    let elements = if io.rep { i.gprs.r[gpr::RCX] & m } else { 1 };
    if elements == 0 {
        vcpu::skip(i, len);
        return Action::Continue;
    }
    let (seg, offset) = if io.input {
        (SegReg::Es, i.gprs.r[gpr::RDI] & m)
    } else {
        (segment, i.gprs.r[gpr::RSI] & m)
    };
    let la = vcpu::linear(i, seg, offset);
    let size = u64::from(io.size);
    let in_page = ((4096 - la % 4096) / size).max(1);
    let count = if down {
        1
    } else {
        elements.min(in_page).min(IO_DATA_MAX as u64 / size)
    } as u32;
    let op = StringOp {
        size: io.size,
        count,
        input: io.input,
        rep: io.rep,
        address_size,
        down,
        len,
    };
    let bytes = count as usize * usize::from(io.size);
    let mut data = [0u8; IO_DATA_MAX];
    if !io.input {
        let paging = Paging::of(i.hw.as_mut());
        let mem = ctx.vm.mem.lock();
        let ok = mem
            .as_ref()
            .and_then(|mem| paging.read_linear(mem, la, &mut data[..bytes]));
        drop(mem);
        if ok.is_none() {
            return ctx.fetch_failed();
        }
    }
    ctx.inner.pending = Pending::PioString(op);
    let a = ctx.reflect(ExitReason::Pio);
    let o = &mut *ctx.out;
    o.port = io.port;
    o.size = io.size;
    o.write = u8::from(!io.input);
    o.flags = EXIT_STRING | if io.rep { EXIT_REP } else { 0 };
    o.count = count;
    o.data = data;
    a
}

/// Completes a string instruction when the vCPU next runs: stores an INS's data, advances the
/// index registers and RCX, and moves RIP on once the string is done.
pub fn complete_string(vm: &Vm, i: &mut VcpuInner, op: StringOp, c: Option<&Complete>) {
    let m = mask(op.address_size);
    let mut moved = op.count;
    if op.input {
        let mut data = [0xffu8; IO_DATA_MAX];
        if let Some(c) = c {
            moved = c.count.min(op.count);
            data = c.data;
        }
        let bytes = moved as usize * usize::from(op.size);
        let la = vcpu::linear(i, SegReg::Es, i.gprs.r[gpr::RDI] & m);
        let paging = Paging::of(i.hw.as_mut());
        if let Some(mem) = vm.mem.lock().as_ref() {
            // A destination the guest cannot write is its own problem: the data is dropped.
            let _ = paging.write_linear(mem, la, &data[..bytes]);
        }
    }
    let step = i64::from(moved) * i64::from(op.size);
    let delta = if op.down { -step } else { step };
    let index = if op.input { gpr::RDI } else { gpr::RSI };
    i.gprs.r[index] = advance(i.gprs.r[index], op.address_size, delta);
    let mut done = !op.rep || (op.input && moved < op.count);
    if op.rep {
        let rcx = i.gprs.r[gpr::RCX];
        i.gprs.r[gpr::RCX] = advance(rcx, op.address_size, -i64::from(moved));
        done |= i.gprs.r[gpr::RCX] & m == 0;
    }
    if done {
        vcpu::skip(i, op.len);
    }
}
