//! In-kernel tests of the pure parts of `virt` (run by `ktest`): the LAPIC and IOAPIC models,
//! the MMIO instruction decoder (a table of encodings and a run over pseudo-random bytes, which
//! must never panic), instruction lengths, and the CPUID view.

use super::decode::{self, Extend, MmioOp};
use super::ioapic::{Ioapic, Message};
use super::lapic::{BASE_ENABLE, BASE_EXTD, Delivery, Destination, Lapic};
use alloc::string::String;
use alloc::vec::Vec;
use iced_x86::{Decoder, DecoderOptions};

type TestResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($msg)*));
        }
    };
}

/// LAPIC priorities, EOI, timer arithmetic, mode switches and IPIs.
pub fn lapic() -> TestResult {
    let tsc_hz = 1_000_000_000;
    let mut l = Lapic::new(0, tsc_hz);
    l.accept_irq(0x45, false);
    l.accept_irq(0x31, true);
    ensure!(
        l.pending() == Some(0x45),
        "highest first: {:?}",
        l.pending()
    );
    l.delivered(0x45);
    ensure!(l.pending().is_none(), "0x31 is below the in-service class");
    ensure!(l.eoi().is_none(), "edge-triggered EOI returned a vector");
    ensure!(l.pending() == Some(0x31), "after EOI: {:?}", l.pending());
    l.set_tpr(0x30);
    ensure!(l.pending().is_none(), "TPR 0x30 must block class 3");
    l.set_tpr(0);
    l.delivered(0x31);
    ensure!(
        l.eoi() == Some(0x31),
        "level-triggered EOI must report its vector"
    );
    l.accept_irq(5, false);
    ensure!(l.pending().is_none(), "an illegal vector was accepted");

    // One-shot timer, divide by 1, 100 counts at 100 MHz = 1 us = 1000 TSC ticks here. The
    // LVT stays masked while the APIC is software-disabled (SVR bit 8).
    l.write(0x320, 0x40, 0);
    ensure!(
        l.read(0x320, 0) & 1 << 16 != 0,
        "LVT unmasked while the APIC is disabled"
    );
    l.write(0xf0, 0x1ff, 0);
    l.write(0x3e0, 0xb, 0);
    l.write(0x320, 0x40, 0);
    l.write(0x380, 100, 0);
    ensure!(l.deadline() == Some(1000), "deadline {:?}", l.deadline());
    ensure!(
        l.read(0x390, 500,) == 50,
        "current count halfway: {}",
        l.read(0x390, 500)
    );
    l.poll_timer(999);
    ensure!(l.pending().is_none(), "fired early");
    l.poll_timer(1000);
    ensure!(
        l.pending() == Some(0x40) && l.deadline().is_none(),
        "one-shot did not fire once"
    );

    // x2APIC: EXTD alone is invalid; enabling works; the ICR names a 32-bit destination.
    ensure!(
        l.set_base(0xfee0_0000 | BASE_EXTD).is_err(),
        "EXTD without EN accepted"
    );
    ensure!(
        l.set_base(0xfee0_0000 | BASE_ENABLE | BASE_EXTD).is_ok(),
        "x2APIC refused"
    );
    let (ipi, _) = l
        .write_msr(0x830, 1 << 32 | 0x4500, 0)
        .map_err(|_| "ICR refused")?;
    let ipi = ipi.ok_or("no IPI")?;
    ensure!(
        ipi.delivery == Delivery::Init && ipi.destination == Destination::Physical(1),
        "INIT IPI decoded as {ipi:?}"
    );
    let (ipi, _) = l
        .write_msr(0x830, 3 << 18 | 0x47, 0)
        .map_err(|_| "ICR refused")?;
    ensure!(
        ipi.is_some_and(|i| i.destination == Destination::AllButSelf),
        "shorthand: {ipi:?}"
    );
    ensure!(l.read_msr(0x831, 0).is_err(), "x2APIC has no ICR high");
    Ok(())
}

/// IOAPIC edges, masks, levels and remote IRR.
pub fn ioapic() -> TestResult {
    let mut io = Ioapic::new();
    let got: core::cell::RefCell<Vec<Message>> = core::cell::RefCell::new(Vec::new());
    let mut out = |m: Message| got.borrow_mut().push(m);
    let n = || got.borrow().len();
    io.set_irq(3, true, &mut out);
    ensure!(n() == 0, "a masked pin delivered");
    io.mmio_write(0, 0x16, &mut out); // pin 3 low: vector 0x33, edge, unmasked
    io.mmio_write(0x10, 0x33, &mut out);
    io.set_irq(3, false, &mut out);
    io.set_irq(3, true, &mut out);
    io.set_irq(3, true, &mut out);
    ensure!(
        n() == 1 && got.borrow()[0].vector == 0x33,
        "edge: {:?}",
        got.borrow()
    );
    io.mmio_write(0, 0x18, &mut out); // pin 4: vector 0x34, level
    io.mmio_write(0x10, 0x8034, &mut out);
    io.set_irq(4, true, &mut out);
    io.set_irq(4, true, &mut out);
    ensure!(
        n() == 2 && got.borrow()[1].level,
        "level: {:?}",
        got.borrow()
    );
    io.eoi(0x34, &mut out);
    ensure!(n() == 3, "still asserted after EOI: delivered again");
    io.set_irq(4, false, &mut out);
    io.eoi(0x34, &mut out);
    ensure!(n() == 3, "delivered after the line fell");
    io.mmio_write(0, 1, &mut out);
    ensure!(
        io.mmio_read(0x10) == 0x0017_0011,
        "version {:#x}",
        io.mmio_read(0x10)
    );
    Ok(())
}

fn decode(bits: u32, bytes: &[u8], gprs: &[u64; 16]) -> Option<decode::MmioInsn> {
    let instr = Decoder::with_ip(bits, bytes, 0x1000, DecoderOptions::NONE).decode();
    if instr.is_invalid() {
        return None;
    }
    decode::mmio_insn(&instr, gprs)
}

/// The MMIO decoder on known encodings, and on random bytes.
pub fn mmio_decoder() -> TestResult {
    let mut g = [0u64; 16];
    g[0] = 0x1122_3344_5566_7788; // RAX
    g[3] = 0xaabb; // RBX
    let store = |v| MmioOp::Store { value: v };
    // (code size, bytes, access size, length, value stored or None for a load)
    type Case = (u32, &'static [u8], u8, u8, Option<u64>);
    let cases: &[Case] = &[
        // mov [rdi], al / ax / eax / rax
        (64, &[0x88, 0x07], 1, 2, Some(0x88)),
        (64, &[0x66, 0x89, 0x07], 2, 3, Some(0x7788)),
        (64, &[0x89, 0x07], 4, 2, Some(0x5566_7788)),
        (64, &[0x48, 0x89, 0x07], 8, 3, Some(0x1122_3344_5566_7788)),
        // mov byte [rdi], 0x12; mov dword [rdi+4], imm32; mov qword [rdi], -1 (sign-extended)
        (64, &[0xc6, 0x07, 0x12], 1, 3, Some(0x12)),
        (
            64,
            &[0xc7, 0x47, 0x04, 0xde, 0xbc, 0x9a, 0x78],
            4,
            7,
            Some(0x789a_bcde),
        ),
        (
            64,
            &[0x48, 0xc7, 0x07, 0xff, 0xff, 0xff, 0xff],
            8,
            7,
            Some(u64::MAX),
        ),
        // mov [rdi], bh (a high-byte register)
        (64, &[0x88, 0x3f], 1, 2, Some(0xaa)),
        // loads: mov eax, [rdi]; movzx ebx, byte [rdi]; movsx rbx, byte [rdi]; moffs
        (64, &[0x8b, 0x07], 4, 2, None),
        (64, &[0x0f, 0xb6, 0x1f], 1, 3, None),
        (64, &[0x48, 0x0f, 0xbe, 0x1f], 1, 4, None),
        (32, &[0xa1, 0x00, 0x00, 0xe0, 0xfe], 4, 5, None),
        // 16-bit code: mov [bx], ax
        (16, &[0x89, 0x07], 2, 2, Some(0x7788)),
    ];
    for (i, &(bits, bytes, size, len, value)) in cases.iter().enumerate() {
        let d = decode(bits, bytes, &g).ok_or_else(|| alloc::format!("case {i}: not decoded"))?;
        ensure!(
            d.size == size && d.len == len,
            "case {i}: size {} len {}",
            d.size,
            d.len
        );
        match value {
            Some(v) => ensure!(
                d.op == store(v),
                "case {i}: {:?}, not a store of {v:#x}",
                d.op
            ),
            None => ensure!(matches!(d.op, MmioOp::Load { .. }), "case {i}: {:?}", d.op),
        }
    }
    // Loads complete into the right register with the right extension.
    let mut r = g;
    decode(64, &[0x48, 0x0f, 0xbe, 0x1f], &r)
        .ok_or("movsx")?
        .complete_load(&mut r, 0x80);
    ensure!(r[3] == 0xffff_ffff_ffff_ff80, "movsx rbx: {:#x}", r[3]);
    let mut r = g;
    let d = decode(64, &[0x8a, 0x3f], &r).ok_or("mov bh")?; // mov bh, [rdi]
    ensure!(
        matches!(
            d.op,
            MmioOp::Load {
                extend: Extend::None,
                ..
            }
        ),
        "{:?}",
        d.op
    );
    d.complete_load(&mut r, 0x5a);
    ensure!(r[3] == 0x5abb, "mov bh: rbx {:#x}", r[3]);
    let mut r = g;
    decode(64, &[0x8b, 0x07], &r)
        .ok_or("mov eax")?
        .complete_load(&mut r, u64::MAX);
    ensure!(
        r[0] == 0xffff_ffff,
        "a 32-bit load must zero the upper half: {:#x}",
        r[0]
    );
    // Not single loads or stores.
    for bytes in [
        &[0x01, 0x07][..],
        &[0xf3, 0xa4],
        &[0x0f, 0x29, 0x07],
        &[0x87, 0x07],
    ] {
        ensure!(
            decode(64, bytes, &g).is_none(),
            "{bytes:x?} decoded as an access"
        );
    }
    // Instruction lengths without the decoder.
    for (bytes, len) in [
        (&[0x0f, 0xa2][..], Some(2)),
        (&[0xf4], Some(1)),
        (&[0x0f, 0x01, 0xd9], Some(3)),
        (&[0x0f, 0x22, 0xc0], Some(3)),
        (&[0x66, 0x0f, 0xa2], None),
    ] {
        ensure!(decode::quick_len(bytes) == len, "quick_len({bytes:x?})");
    }
    // Random bytes: never a panic, never an access of a bad size.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..3000 {
        let mut b = [0u8; 15];
        for byte in &mut b {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        for bits in [16, 32, 64] {
            if let Some(d) = decode(bits, &b, &g) {
                ensure!(
                    matches!(d.size, 1 | 2 | 4 | 8) && usize::from(d.len) <= 15,
                    "{b:x?}: {d:?}"
                );
            }
        }
    }
    Ok(())
}

/// The CPUID view hides what it promises to hide.
pub fn cpuid_view() -> TestResult {
    use super::exit::cpuid::view;
    let l1 = view(1, 0, 2, 4, 0);
    ensure!(l1[2] & 1 << 31 != 0, "hypervisor bit clear");
    ensure!(
        l1[2] & (1 << 5 | 1 << 3) == 0,
        "VMX or MONITOR visible: {:#x}",
        l1[2]
    );
    ensure!(l1[1] >> 24 == 2, "APIC ID {:#x}", l1[1]);
    ensure!(
        l1[3] & (1 << 12 | 1 << 7 | 1 << 14) == 0,
        "MTRR/MCE/MCA visible"
    );
    let (b, c, d) = abi::hv::signature_registers();
    ensure!(view(0x4000_0000, 0, 0, 1, 0)[1..] == [b, c, d], "signature");
    ensure!(view(0xa, 0, 0, 1, 0) == [0; 4], "PMU leaf not zero");
    ensure!(view(0x8000_000a, 0, 0, 1, 0) == [0; 4], "SVM leaf not zero");
    ensure!(
        view(0x8000_0001, 0, 0, 1, 0)[2] & 1 << 2 == 0,
        "SVM bit visible"
    );
    ensure!(
        view(0x8000_0007, 0, 0, 1, 0)[3] & 1 << 8 != 0,
        "TSC not invariant"
    );
    ensure!(
        view(0x4fff_0000, 0, 0, 1, 0) == [0; 4],
        "an unknown leaf is not zero"
    );
    let topo = view(0xb, 1, 3, 4, 0);
    ensure!(topo[1] == 4 && topo[3] == 3, "topology: {topo:x?}");
    Ok(())
}
