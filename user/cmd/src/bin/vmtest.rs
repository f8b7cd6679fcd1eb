//! vmtest: checks hardware virtualization through `#vm` with small guests built in-tree: real
//! and protected mode entry, port I/O (REP strings too), MMIO of every size, a hypercall, HLT
//! woken by the LAPIC timer, CPUID and MSRs, IOAPIC interrupts (edge and level), a second vCPU
//! started by INIT/SIPI and IPIs, SSE state kept per guest, a triple fault, a bad state, 10,000
//! exits without
//! leaks, an exit storm and a guest that spins with interrupts off while the kernel stays
//! responsive, and the VMM killed while its vCPU runs. Prints one line per case and `vmtest: N passed, M failed`;
//! exits non-zero if any case failed. `vmtest CASE...` runs only those cases.

#![no_std]
#![no_main]

extern crate alloc;

// Shared with vmbench, which uses other parts of them.
#[allow(dead_code)]
#[path = "vmtest/guest.rs"]
mod guest;
#[allow(dead_code)]
#[path = "vmtest/vmlib.rs"]
mod vmlib;

use abi::vm::{Complete, EXIT_REP, EXIT_STRING, ExitReason};
use cmd::ensure;
use cmd::testkit::{self, Check, InUse, figure};
use rt::process::{self, RFFDG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{format, fs, println};
use vmlib::{Guest, entry};

rt::entry!(main);

fn real_mode_to_long_mode() -> Check {
    let g = Guest::new()?;
    g.vcpu
        .set_state(&abi::vm::VcpuState::real_mode(vmlib::LOAD as u16))?;
    let e = g.expect_pio(0x21, true)?;
    ensure!(e.value == 0x64, "reported {:#x}", e.value);
    let s = &e.state.sregs;
    ensure!(s.efer & 0x400 != 0, "EFER.LMA clear: {:#x}", s.efer);
    ensure!(
        s.cs.access & abi::vm::access::L != 0,
        "CS not 64-bit: {:#x}",
        s.cs.access
    );
    ensure!(s.cr0 & 0x8000_0001 == 0x8000_0001, "CR0 {:#x}", s.cr0);
    g.expect_done()?;
    // Back to real mode from the VMM, once more (the VMX IA-32e entry control must follow).
    g.vcpu
        .set_state(&abi::vm::VcpuState::real_mode(vmlib::LOAD as u16))?;
    ensure!(g.expect_report()? == 0x64, "second run from real mode");
    g.expect_done()
}

fn protected_mode_entry() -> Check {
    let g = Guest::new()?;
    let mut s = vmlib::protected_mode(entry(&raw const guest::guest_pm32));
    s.regs.rbx = 0x8000;
    g.vcpu.set_state(&s)?;
    ensure!(g.expect_report()? == 0x8000, "EBX not passed");
    let cr0 = g.expect_report()?;
    ensure!(cr0 & 0x8000_0001 == 1, "CR0 as seen by the guest: {cr0:#x}");
    g.expect_done()
}

fn port_io() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_pio))?;
    for (port, size, value) in [(0x10, 1, 0x11), (0x12, 2, 0x2233), (0x14, 4, 0x4455_6677)] {
        let e = g.expect_pio(port, true)?;
        ensure!(
            e.size == size && e.value == value,
            "OUT {port:#x}: size {} value {:#x}",
            e.size,
            e.value
        );
    }
    for (port, size, value) in [
        (0x10, 1u8, 0xa5u64),
        (0x12, 2, 0xbeef),
        (0x14, 4, 0xcafe_f00d),
    ] {
        let e = g.expect_pio(port, false)?;
        ensure!(e.size == size, "IN {port:#x}: size {}", e.size);
        g.vcpu
            .complete(&Complete::value(value | 0xffff_ffff_0000_0000))?;
        let echo = g.expect_pio(0x21, true)?;
        ensure!(
            echo.value == value && echo.size == size,
            "IN {port:#x} read {:#x} (size {})",
            echo.value,
            echo.size
        );
    }
    // REP OUTSB of a 269-byte text, in pieces, then REP INSB of 16 bytes.
    let mut text = Vec::new();
    let mut exits = 0;
    let ins = loop {
        let e = g.vcpu.run()?;
        if e.kind() != Some(ExitReason::Pio) || e.port != 0x30 {
            break e;
        }
        ensure!(
            e.flags & (EXIT_STRING | EXIT_REP) == EXIT_STRING | EXIT_REP && e.size == 1,
            "OUTS flags {:#x} size {}",
            e.flags,
            e.size
        );
        text.extend_from_slice(e.data());
        exits += 1;
    };
    ensure!(
        text.len() == 269
            && text.starts_with(b"REP OUTSB carries")
            && text.ends_with(b"long enough."),
        "REP OUTSB data ({} bytes): {:?}",
        text.len(),
        String::from_utf8_lossy(&text)
    );
    ensure!(exits >= 2, "269 bytes in {exits} exit(s)");
    ensure!(
        ins.kind() == Some(ExitReason::Pio) && ins.port == 0x31 && ins.write == 0,
        "expected INS from port 0x31, got {}",
        vmlib::describe(&ins)
    );
    ensure!(
        ins.count == 16 && ins.flags & EXIT_STRING != 0,
        "INS count {}",
        ins.count
    );
    let data: Vec<u8> = (0..16u8).map(|i| 0xa0 + i).collect();
    g.vcpu.complete(&Complete::data(1, &data))?;
    let e = g.expect_pio(0x32, true)?;
    ensure!(
        e.data() == data.as_slice(),
        "INS/OUTS round trip: {:?}",
        e.data()
    );
    let e = g.expect_pio(0x33, true)?;
    ensure!(
        e.size == 2 && e.count == 4 && e.data() == &data[..8],
        "REP OUTSW: size {} count {} {:?}",
        e.size,
        e.count,
        e.data()
    );
    g.expect_done()
}

fn mmio() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_mmio))?;
    let mmio = |offset: u64, size: u8, write: Option<u64>| -> rt::Result<()> {
        let e = g.vcpu.run()?;
        ensure!(
            e.kind() == Some(ExitReason::Mmio)
                && e.gpa == vmlib::MMIO + offset
                && e.size == size
                && (e.write == 1) == write.is_some(),
            "expected MMIO {} of {size} at +{offset:#x}, got {}",
            if write.is_some() { "store" } else { "load" },
            vmlib::describe(&e)
        );
        if let Some(v) = write {
            ensure!(
                e.value == v,
                "store at +{offset:#x}: {:#x}, not {v:#x}",
                e.value
            );
        }
        Ok(())
    };
    mmio(0, 1, Some(0x12))?;
    mmio(2, 2, Some(0x3456))?;
    mmio(4, 4, Some(0x789a_bcde))?;
    mmio(8, 8, Some(0x1122_3344_5566_7788))?;
    // (load offset, size, value supplied, offset and size of the store that echoes it, value
    // expected there): upper garbage is dropped, MOVZX/MOVSX extend, a high-byte register
    // lands in bits 15:8, an access across a page boundary is one access.
    for (offset, size, value, echo_at, echo_size, echo) in [
        (0x10, 1, 0xa5u64, 0x20, 1, 0xa5u64),
        (0x12, 2, 0xbeef, 0x22, 2, 0xbeef),
        (0x14, 4, 0xcafe_f00d, 0x24, 4, 0xcafe_f00d),
        (
            0x18,
            8,
            0x0123_4567_89ab_cdef,
            0x28,
            8,
            0x0123_4567_89ab_cdef,
        ),
        (0x30, 1, 0x80, 0x38, 8, 0x80),
        (0x31, 1, 0x80, 0x40, 8, 0xffff_ffff_ffff_ff80),
        (0xffe, 4, 0x1122_3344, 0x48, 4, 0x1122_3344),
        (0x50, 1, 0x5a, 0x52, 2, 0x5a00),
    ] {
        mmio(offset, size, None)?;
        let supplied = if size == 8 {
            value
        } else {
            value | 0xdead_0000_0000_0000
        };
        g.vcpu.complete(&Complete::value(supplied))?;
        mmio(echo_at, echo_size, Some(echo))?;
    }
    // MOV EAX, [RDI] spanning guest pages 0x9000 and 0xa000.
    mmio(0, 4, None)?;
    g.vcpu.complete(&Complete::value(0x600d_f00d))?;
    mmio(0x60, 4, Some(0x600d_f00d))?;
    g.expect_done()
}

fn hypercall() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_hypercall))?;
    let call = |nr: u64| -> rt::Result<abi::vm::Exit> {
        let e = g.vcpu.run()?;
        ensure!(
            e.kind() == Some(ExitReason::Hypercall) && e.value == nr,
            "expected hypercall {nr:#x}, got {}",
            vmlib::describe(&e)
        );
        Ok(e)
    };
    let e = call(0x1234)?;
    let r = &e.state.regs;
    ensure!(
        (r.rbx, r.rcx, r.rdx, r.rsi) == (0x1111, 0x2222, 0x3333, 0x4444),
        "arguments ({:#x}, {:#x}, {:#x}, {:#x})",
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi
    );
    g.vcpu.complete(&Complete::value(0xfeed_face_1234_5678))?;
    let lo = g.expect_report()?;
    let hi = g.expect_report()?;
    ensure!(
        (hi << 32 | lo) == 0xfeed_face_1234_5678,
        "result {hi:#x}:{lo:#x}"
    );
    // From user mode (CPL 3), with the result used by the next one.
    let e = call(0x5678)?;
    ensure!(
        e.state.sregs.cs.selector & 3 == 3 && e.state.regs.rbx == 0x55,
        "CPL {} rbx {:#x}",
        e.state.sregs.cs.selector & 3,
        e.state.regs.rbx
    );
    g.vcpu.complete(&Complete::value(0xabc))?;
    let e = call(0x9999)?;
    ensure!(
        e.state.regs.rbx == 0xabc,
        "CPL 3 result {:#x}",
        e.state.regs.rbx
    );
    Ok(())
}

fn lapic_timer() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_timer))?;
    let t0 = rt::sys::nsec();
    let one_shot = g.expect_report()?;
    ensure!(one_shot == 1, "ticks after the one-shot timer: {one_shot}");
    let periodic = g.expect_report()?;
    ensure!(periodic >= 4, "ticks after the periodic timer: {periodic}");
    let deadline = g.expect_report()?;
    ensure!(deadline >= 5, "ticks after the TSC deadline: {deadline}");
    g.expect_done()?;
    let ms = (rt::sys::nsec() - t0) / 1_000_000;
    let stats = g.vm.stats()?;
    let hlts = figure(&stats, "exit hlt");
    ensure!(hlts >= 3, "only {hlts} HLT exits ({ms} ms):\n{stats}");
    ensure!(ms < 10_000, "the timer test took {ms} ms");
    Ok(())
}

fn cpuid_and_msrs() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_cpuid))?;
    let max = g.expect_report()?;
    let sig = [g.expect_report()?, g.expect_report()?, g.expect_report()?];
    let (b, c, d) = abi::hv::signature_registers();
    ensure!(
        max == u64::from(abi::hv::CPUID_MAX_LEAF)
            && sig == [u64::from(b), u64::from(c), u64::from(d)],
        "hypervisor leaf: {max:#x} {sig:x?}"
    );
    let leaf1_ecx = g.expect_report()?;
    ensure!(
        leaf1_ecx & 1 << 31 != 0,
        "hypervisor bit clear: {leaf1_ecx:#x}"
    );
    ensure!(leaf1_ecx & 1 << 5 == 0, "VMX visible: {leaf1_ecx:#x}");
    ensure!(leaf1_ecx & 1 << 21 != 0, "x2APIC hidden: {leaf1_ecx:#x}");
    let ext_ecx = g.expect_report()?;
    ensure!(ext_ecx & 1 << 2 == 0, "SVM visible: {ext_ecx:#x}");
    let pmu = g.expect_report()?;
    ensure!(pmu == 0, "PMU leaf 0xA: {pmu:#x}");
    let gps = g.expect_report()?;
    ensure!(gps == 2, "unknown MSRs raised {gps} #GP, not 2");
    let lo = g.expect_report()?;
    let hi = g.expect_report()?;
    ensure!(
        (lo, hi) == (0x1234_5000, 0x7fff),
        "KERNEL_GS_BASE read back {hi:#x}:{lo:#x}"
    );
    let apic_base = g.expect_report()?;
    ensure!(
        apic_base & !0xfff == 0xfee0_0000 && apic_base & 0x900 == 0x900,
        "IA32_APIC_BASE {apic_base:#x}"
    );
    g.expect_done()
}

fn triple_fault() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_triple))?;
    let e = g.vcpu.run()?;
    ensure!(
        e.kind() == Some(ExitReason::TripleFault),
        "expected a triple fault, got {}",
        vmlib::describe(&e)
    );
    let again = g.vcpu.run();
    ensure!(again.is_err(), "a triple-faulted vCPU ran again");
    // A new state makes it runnable.
    g.start_long(entry(&raw const guest::guest_hypercall))?;
    let e = g.vcpu.run()?;
    ensure!(
        e.kind() == Some(ExitReason::Hypercall),
        "after a new state: {}",
        vmlib::describe(&e)
    );
    Ok(())
}

fn bad_state() -> Check {
    let g = Guest::new()?;
    let mut s = vmlib::long_mode(entry(&raw const guest::guest_pio));
    s.sregs.cr0 = 0x8000_0000; // PG without PE
    g.vcpu.set_state(&s)?;
    let e = g.vcpu.run()?;
    ensure!(
        e.kind() == Some(ExitReason::EntryFailed),
        "expected a failed entry, got {}",
        vmlib::describe(&e)
    );
    // Fixed, it runs.
    g.start_long(entry(&raw const guest::guest_pio))?;
    let e = g.expect_pio(0x10, true)?;
    ensure!(e.value == 0x11, "value {:#x}", e.value);
    Ok(())
}

fn ioapic() -> Check {
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_ioapic))?;
    let version = g.expect_report()?;
    ensure!(
        version == 0x0017_0011,
        "IOAPIC version register {version:#x}"
    );
    ensure!(
        g.expect_pio(0x22, true)?.value == 1,
        "not ready for the edge"
    );
    g.vm.ctl("irq 5 1")?;
    g.vm.ctl("irq 5 0")?;
    ensure!(
        g.expect_report()? == 1,
        "the edge-triggered pin did not interrupt once"
    );
    ensure!(
        g.expect_pio(0x22, true)?.value == 2,
        "not ready for the level"
    );
    g.vm.ctl("irq 6 1")?;
    // Delivered, EOI, delivered again while the line is high; then the guest asks us to lower it.
    let e = g.expect_pio(0x23, true)?;
    ensure!(e.value == 3, "level pin: {:#x}", e.value);
    g.vm.ctl("irq 6 0")?;
    ensure!(
        g.expect_report()? == 3,
        "level pin: wrong count of interrupts"
    );
    g.expect_done()?;
    let bad = g.vm.ctl("irq 24 1");
    ensure!(bad.is_err(), "irq 24 accepted");
    Ok(())
}

fn two_vcpus_ipi() -> Check {
    use core::sync::atomic::{AtomicU64, Ordering};
    static AP: AtomicU64 = AtomicU64::new(0);
    let g = Guest::new()?;
    let ap = g.vm.vcpu(1)?;
    AP.store(0, Ordering::SeqCst);
    // The second vCPU's thread: waits in the kernel for INIT/SIPI, then runs the receiver.
    let worker = rt::thread::spawn(move || {
        let run = || -> rt::Result<u64> {
            let e = ap.run()?;
            if e.kind() != Some(ExitReason::Pio) || e.port != 0x24 || e.value != 0xa9 {
                return Err(rt::Error(format!("AP start: {}", vmlib::describe(&e))));
            }
            let cs = e.state.sregs.cs;
            if cs.base != 0xc000 || e.state.sregs.cr0 & 1 != 0 {
                return Err(rt::Error(format!("AP started at {:#x}", cs.base)));
            }
            ap.set_state(&vmlib::long_mode(entry(
                &raw const guest::guest_ipi_receiver,
            )))?;
            let count = report(&ap)?;
            let id = report(&ap)?;
            let e = ap.run()?;
            if e.kind() != Some(ExitReason::Pio) || e.port != 0xf4 {
                return Err(rt::Error(format!("AP end: {}", vmlib::describe(&e))));
            }
            Ok(count | id << 32)
        };
        AP.store(
            match run() {
                Ok(v) => v | 1 << 63,
                Err(e) => {
                    println!("  AP: {e}");
                    u64::MAX
                }
            },
            Ordering::SeqCst,
        );
    })?;
    g.start_long(entry(&raw const guest::guest_ipi_sender))?;
    let bsp = g.expect_done();
    worker.join();
    bsp?;
    let v = AP.load(Ordering::SeqCst);
    ensure!(v != u64::MAX && v & 1 << 63 != 0, "the second vCPU failed");
    let (count, id) = (v & 0xffff_ffff, (v >> 32) & 0x7fff_ffff);
    ensure!(
        count >= 1 && id == 1,
        "receiver: {count} IPIs, x2APIC ID {id}"
    );
    Ok(())
}

fn report(v: &vmlib::Vcpu) -> rt::Result<u64> {
    let e = v.run()?;
    if e.kind() != Some(ExitReason::Pio) || e.port != 0x21 {
        return Err(rt::Error(format!(
            "expected a report, got {}",
            vmlib::describe(&e)
        )));
    }
    Ok(e.value)
}

fn fpu_state_per_guest() -> Check {
    let a = Guest::new()?;
    let b = Guest::new()?;
    let start = |g: &Guest, pattern: u64| -> Check {
        let mut s = vmlib::long_mode(entry(&raw const guest::guest_sse));
        s.sregs.cr4 |= 1 << 9 | 1 << 10; // OSFXSR, OSXMMEXCPT
        s.regs.rbx = pattern;
        g.vcpu.set_state(&s)?;
        g.expect_pio(0x25, true)?;
        Ok(())
    };
    let check = |g: &Guest, pattern: u64| -> Check {
        let lo = g.expect_report()?;
        let hi = g.expect_report()?;
        let upper = g.expect_report()?;
        ensure!(
            hi << 32 | lo == pattern && upper == pattern & 0xffff_ffff,
            "XMM0 {hi:#x}:{lo:#x} (upper {upper:#x}), not {pattern:#x}"
        );
        g.expect_done()
    };
    start(&a, 0x1111_2222_3333_4444)?;
    start(&b, 0x5555_6666_7777_8888)?;
    check(&a, 0x1111_2222_3333_4444)?;
    check(&b, 0x5555_6666_7777_8888)
}

fn ten_thousand_exits() -> Check {
    let g = Guest::new()?;
    let mut s = vmlib::long_mode(entry(&raw const guest::guest_loop));
    s.regs.rbx = 10_000;
    s.regs.r8 = 10_000;
    g.vcpu.set_state(&s)?;
    for i in 0..10_000 {
        let e = g.vcpu.run()?;
        ensure!(
            e.kind() == Some(ExitReason::Pio) && e.port == 0x80,
            "exit {i}: {}",
            vmlib::describe(&e)
        );
    }
    g.expect_done()?;
    let stats = g.vm.stats()?;
    ensure!(
        figure(&stats, "reflected pio") == 10_001 && figure(&stats, "exit cpuid") == 10_000,
        "stats:\n{stats}"
    );
    Ok(())
}

fn exits_no_leak() -> Check {
    ten_thousand_exits()?; // warm-up: kernel tables reach their working size
    let before = InUse::now()?;
    ten_thousand_exits()?;
    ten_thousand_exits()?;
    testkit::expect_nothing_lost("2 VMs x 20,000 exits", before)
}

/// Runs `rip` in a child process (forever, unless it exits); returns the child's pid and the
/// VM's number, read from a pipe.
fn guest_in_child(rip: u64) -> rt::Result<(u64, u64)> {
    let (r, w) = rt::io::pipe()?;
    match process::rfork(RFPROC | RFFDG)? {
        0 => {
            let _ = rt::io::close(r);
            let g = match Guest::new() {
                Ok(g) => g,
                Err(e) => process::exits(e.msg()),
            };
            let _ = rt::io::write(w, format!("{}\n", g.vm.id).as_bytes());
            let _ = g.start_long(rip);
            let r = g.vcpu.run();
            process::exits(&format!("vcpu returned: {:?}", r.map(|e| e.reason)))
        }
        pid => {
            rt::io::close(w)?;
            let line = rt::io::read_line(r)?.unwrap_or_default();
            rt::io::close(r)?;
            let id = line
                .trim()
                .parse()
                .map_err(|_| rt::Error(format!("child VM: '{line}'")))?;
            Ok((pid, id))
        }
    }
}

fn kill_and_wait(pid: u64) -> Check {
    process::postnote(pid, "kill")?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg == "kill", "the VMM exited with {:?}", e.msg);
    Ok(())
}

fn exit_storm() -> Check {
    let (pid, id) = guest_in_child(entry(&raw const guest::guest_storm))?;
    // We still get the CPU, promptly, while the guest exits as fast as it can.
    let mut worst = 0;
    for _ in 0..5 {
        let t0 = rt::sys::nsec();
        process::sleep(20)?;
        worst = worst.max((rt::sys::nsec() - t0) / 1_000_000);
    }
    let stats = fs::read_to_string(&format!("#vm/{id}/stats"))?;
    kill_and_wait(pid)?;
    ensure!(figure(&stats, "exit cpuid") > 100, "few exits:\n{stats}");
    ensure!(
        worst < 1000,
        "a 20 ms sleep took {worst} ms during the storm"
    );
    Ok(())
}

/// A skipped case: its error message starts with this.
const SKIP: &str = "skip: ";

/// Bochs 2.7's SVM (`trinity_apu`) masks host interrupts when it enters a guest whose RFLAGS.IF
/// is clear (it recomputes the mask before it marks itself in guest mode), so nothing stops
/// such a guest: the whole emulator spins. Real SVM, QEMU's, and VMX (whose preemption timer the
/// kernel always arms) do not have the problem.
fn bochs_svm() -> bool {
    fs::read_to_string("#arch/cpu").is_ok_and(|c| c.contains("AMD A8-5600K") && c.contains("SVM"))
}

fn spin_with_interrupts_off() -> Check {
    if bochs_svm() {
        return Err(rt::Error(format!(
            "{SKIP}Bochs 2.7's SVM does not exit for host interrupts while the guest has IF clear"
        )));
    }
    let (pid, id) = guest_in_child(entry(&raw const guest::guest_spin_cli))?;
    let mut worst = 0;
    for _ in 0..5 {
        let t0 = rt::sys::nsec();
        process::sleep(20)?;
        worst = worst.max((rt::sys::nsec() - t0) / 1_000_000);
    }
    let stats = fs::read_to_string(&format!("#vm/{id}/stats"))?;
    kill_and_wait(pid)?;
    ensure!(
        figure(&stats, "guest-ns") > 0,
        "the guest did not run:\n{stats}"
    );
    ensure!(
        worst < 1000,
        "a 20 ms sleep took {worst} ms beside the spinning guest"
    );
    Ok(())
}

fn vmm_killed() -> Check {
    // Warm up (page tables of the child's heap, kernel tables) and measure.
    let (pid, _) = guest_in_child(entry(&raw const guest::guest_spin))?;
    process::sleep(50)?;
    kill_and_wait(pid)?;
    let before = InUse::now()?;
    let (pid, id) = guest_in_child(entry(&raw const guest::guest_spin))?;
    process::sleep(300)?;
    let stats = fs::read_to_string(&format!("#vm/{id}/stats"))?;
    ensure!(
        figure(&stats, "guest-ns") > 0,
        "the guest did not run:\n{stats}"
    );
    kill_and_wait(pid)?;
    ensure!(
        fs::read_to_string(&format!("#vm/{id}/stats")).is_err(),
        "VM {id} still exists after its VMM died"
    );
    testkit::expect_nothing_lost("a VMM killed while its guest ran", before)
}

/// The note a watchdog posts when a case runs too long.
const TIMEOUT_NOTE: &str = "vmtest: case timed out";
/// Longest a case may take (Bochs runs the slowest in about ten seconds).
const CASE_SECONDS: u64 = 120;

/// A process that interrupts us after `CASE_SECONDS`: a stuck vCPU read fails with
/// "interrupted" instead of hanging the run.
fn watchdog() -> rt::Result<u64> {
    let me = process::getpid();
    match process::rfork(RFPROC | RFFDG | process::RFNOWAIT)? {
        0 => {
            let _ = process::sleep(CASE_SECONDS * 1000);
            let _ = process::postnote(me, TIMEOUT_NOTE);
            process::exits("")
        }
        pid => Ok(pid),
    }
}

/// A named case.
type Case = (&'static str, fn() -> Check);

const CASES: &[Case] = &[
    ("real_mode_to_long_mode", real_mode_to_long_mode),
    ("protected_mode_entry", protected_mode_entry),
    ("port_io", port_io),
    ("mmio", mmio),
    ("hypercall", hypercall),
    ("lapic_timer_wakes_hlt", lapic_timer),
    ("cpuid_and_msrs", cpuid_and_msrs),
    ("ioapic_edge_and_level", ioapic),
    ("two_vcpus_init_sipi_ipi", two_vcpus_ipi),
    ("fpu_state_per_guest", fpu_state_per_guest),
    ("triple_fault", triple_fault),
    ("bad_state_fails_entry", bad_state),
    ("exits_10000_no_leak", exits_no_leak),
    ("exit_storm_stays_responsive", exit_storm),
    ("spin_with_interrupts_off", spin_with_interrupts_off),
    ("vmm_killed_while_running", vmm_killed),
];

fn main() -> rt::Result<()> {
    let argv = rt::env::args();
    let only: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    if let Ok(cpu) = fs::read_to_string("#arch/cpu")
        && let Some(line) = cpu.lines().find(|l| l.starts_with("virtualization:"))
    {
        println!(
            "vmtest: {}",
            line.trim_start_matches("virtualization:").trim()
        );
    }
    rt::notes::set_handler(|note| {
        if note == TIMEOUT_NOTE {
            rt::notes::Action::Continue
        } else {
            rt::notes::Action::Die
        }
    });
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, case) in CASES {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let dog = watchdog()?;
        let result = case();
        let _ = process::postnote(dog, "kill");
        match result {
            Ok(()) => {
                passed += 1;
                println!("vmtest {name} ... ok");
            }
            Err(e) if e.msg().starts_with(SKIP) => {
                skipped += 1;
                println!("vmtest {name} ... skipped: {}", &e.msg()[SKIP.len()..]);
            }
            Err(e) => {
                failed += 1;
                println!("vmtest {name} ... FAILED: {e}");
            }
        }
    }
    if skipped > 0 {
        println!("vmtest: {passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("vmtest: {passed} passed, {failed} failed");
    }
    if failed > 0 {
        Err(rt::Error(format!("{failed} failed")))
    } else {
        Ok(())
    }
}
