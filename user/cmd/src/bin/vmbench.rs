//! vmbench: prints what a VM exit costs on this machine's virtualization backend: one handled in
//! the kernel (CPUID) and one reflected to the VMM (an OUT, completed by a read of `vcpu0`),
//! each per exit and as a ratio to a null system call measured in the same run.
//!
//! `vmbench [-v] [N]` runs N exits of each kind (default 20000); `-v` also prints each VM's
//! `stats` (where the time went: guest, kernel, VMM).

#![no_std]
#![no_main]

extern crate alloc;

#[allow(dead_code)]
#[path = "vmtest/guest.rs"]
mod guest;
#[allow(dead_code)]
#[path = "vmtest/vmlib.rs"]
mod vmlib;

use abi::sys::Sys;
use abi::vm::ExitReason;
use rt::sys::{call, nsec};
use rt::{Error, format, fs, println};
use vmlib::{Guest, entry};

rt::entry!(main);

fn main() -> rt::Result<()> {
    let args = rt::env::args();
    let verbose = args.iter().any(|a| a == "-v");
    let n: u64 = args[1..]
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000)
        .max(100);
    if let Ok(cpu) = fs::read_to_string("#arch/cpu")
        && let Some(line) = cpu.lines().find(|l| l.starts_with("virtualization:"))
    {
        println!(
            "vmbench: {}",
            line.trim_start_matches("virtualization:").trim()
        );
    }

    let t0 = nsec();
    for _ in 0..n * 5 {
        call(Sys::Nop, [0; 6]);
    }
    let null_ns = ((nsec() - t0) as f64 / (n * 5) as f64).max(1.0);

    // In-kernel: N CPUIDs, then one OUT to port 0xf4 ends the read.
    let g = Guest::new()?;
    let mut s = vmlib::long_mode(entry(&raw const guest::guest_loop));
    s.regs.rbx = 1;
    s.regs.r8 = n;
    g.vcpu.set_state(&s)?;
    g.expect_pio(0x80, true)?;
    let t0 = nsec();
    g.expect_done()?;
    let kernel_ns = (nsec() - t0) as f64 / n as f64;
    let kernel_stats = g.vm.stats()?;

    // Reflected: N OUTs, each a read of vcpu0.
    let g = Guest::new()?;
    g.start_long(entry(&raw const guest::guest_out_loop))?;
    g.vcpu.run()?;
    let t0 = nsec();
    for _ in 0..n {
        let e = g.vcpu.run()?;
        if e.kind() != Some(ExitReason::Pio) {
            return Err(Error::new(format!(
                "unexpected exit {}",
                vmlib::describe(&e)
            )));
        }
    }
    let reflected_ns = (nsec() - t0) as f64 / n as f64;
    let reflected_stats = g.vm.stats()?;

    println!("{:<36} {:>10.0} ns", "null system call", null_ns);
    println!(
        "{:<36} {:>10.0} ns  {:>6.1}x null syscall  ({n} exits)",
        "exit handled in the kernel (CPUID)",
        kernel_ns,
        kernel_ns / null_ns
    );
    println!(
        "{:<36} {:>10.0} ns  {:>6.1}x null syscall  ({n} exits)",
        "exit reflected to the VMM (OUT)",
        reflected_ns,
        reflected_ns / null_ns
    );
    if verbose {
        println!("in-kernel VM:\n{kernel_stats}reflecting VM:\n{reflected_stats}");
    }
    Ok(())
}
