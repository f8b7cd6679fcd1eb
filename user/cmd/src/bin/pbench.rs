//! pbench: prints the cost of kernel operations: a null system call, getpid, fork+await,
//! fork+exec+await, and pipe throughput. Figures are per operation, measured with the kernel's
//! clock; compare them as ratios within one run.

#![no_std]
#![no_main]

use abi::sys::Sys;
use rt::process::{self, RFFDG, RFPROC};
use rt::string::String;
use rt::sys::{call, nsec};
use rt::{io, println, vec};

rt::entry!(main);

fn per_op(label: &str, n: u64, f: impl Fn()) -> u64 {
    let t0 = nsec();
    for _ in 0..n {
        f();
    }
    let ns = (nsec() - t0) / n;
    println!("{label:<28} {ns:>10} ns/op  ({n} ops)");
    ns
}

fn main() -> rt::Result<()> {
    let null = per_op("null system call", 100_000, || {
        call(Sys::Nop, [0; 6]);
    });
    per_op("getpid", 100_000, || {
        call(Sys::Getpid, [0; 6]);
    });
    let fork = per_op("fork+await", 200, || {
        if let Ok(0) = process::rfork(RFPROC | RFFDG) {
            process::exits("");
        }
        let _ = process::await_child();
    });
    let exec = per_op("fork+exec+await (/bin/true)", 100, || {
        if let Ok(pid) = process::spawn("/bin/true", &[String::from("true")]) {
            let _ = process::wait_for(pid);
        }
    });
    // Pipe throughput: a child writes 32 MiB in 64 KiB writes, we read it.
    const TOTAL: usize = 32 << 20;
    let (r, w) = io::pipe()?;
    let t0 = nsec();
    match process::rfork(RFPROC | RFFDG)? {
        0 => {
            let _ = io::close(r);
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0;
            while sent < TOTAL {
                match io::write(w, &chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            process::exits("")
        }
        pid => {
            io::close(w)?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            loop {
                let n = io::read(r, &mut buf)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let ns = nsec() - t0;
            let _ = process::wait_for(pid);
            let mib_s = (got as u128 * 1_000_000_000 / u128::from(ns.max(1))) >> 20;
            println!(
                "{:<28} {:>10} MiB/s ({} MiB)",
                "pipe throughput",
                mib_s,
                got >> 20
            );
        }
    }
    println!(
        "ratios to a null system call: fork+await {}x, fork+exec+await {}x",
        fork / null.max(1),
        exec / null.max(1)
    );
    Ok(())
}
