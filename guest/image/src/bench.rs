//! `guest-image bench`: the filesystem VM's figures, printed (not a timed test; DESIGN.md
//! section 8). Kernel build time (cold and cached), image sizes, time from QEMU's start to the
//! agent's `ready` line and to the 9P server's first answer, shutdown time, and 9P read
//! throughput of the 32 MiB demo file over QEMU's user network at several msizes.
//!
//! `--cold` rebuilds the kernel in a scratch cache to time a cold build (about 5 minutes);
//! without it the cold figure is the one recorded when the cached kernel was built.

use guest_image::disk::{self, BIG_FILE};
use guest_image::microvm::{Microvm, MicrovmConfig, connect_9p, free_port};
use guest_image::{Error, Options, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Boots measured.
const BOOTS: usize = 3;
/// msizes for the throughput figures (the 8 KiB and 512 KiB, and DESIGN.md's 64 KiB).
const MSIZES: &[u32] = &[8 << 10, 64 << 10, 512 << 10];
/// Reads of the big file per msize.
const READS: usize = 3;

fn size(path: &Path) -> String {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    format!(
        "{:>10} B  ({:.2} MiB)  {}",
        len,
        len as f64 / (1 << 20) as f64,
        path.display()
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark and prints its figures.
pub fn run(cold: bool) -> Result<()> {
    println!("== guest kernel build");
    if cold {
        let scratch = std::env::temp_dir().join(format!("tern-bench-cold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let t = Instant::now();
        guest_image::kernel::build(&scratch, None)?;
        println!(
            "cold build (measured now):  {:7.1} s",
            t.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let t = Instant::now();
    let a = guest_image::build(&Options::default())?;
    let cached = t.elapsed();
    println!(
        "cold build (recorded):      {:7.1} s",
        a.kernel_build_time.as_secs_f64()
    );
    println!(
        "cached build() call:        {:7.3} s  (kernel from the cache: {}; includes the nested cargo check of the guest programs)",
        cached.as_secs_f64(),
        a.kernel_cached
    );

    println!("== image sizes");
    println!("vmlinux    {}", size(&a.vmlinux));
    println!("bzImage    {}", size(&a.bz_image));
    println!("initramfs  {}", size(&a.initramfs));
    let gz = guest_image::build(&Options {
        gzip_initramfs: true,
        ..Options::default()
    })?;
    println!("  gzipped  {}", size(&gz.initramfs));
    let pristine = guest_image::demo_disk()?;
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&pristine).map_or(0, |m| m.blocks() * 512)
    };
    println!(
        "demo disk  {}  ({:.1} MiB allocated)",
        size(&pristine),
        allocated as f64 / (1 << 20) as f64
    );

    let work = std::env::temp_dir().join(format!("tern-bench-{}.img", std::process::id()));
    disk::working_copy(&pristine, &work)?;
    let result = boots_and_reads(&a, &work);
    let _ = std::fs::remove_file(&work);
    result
}

fn boots_and_reads(a: &guest_image::Artifacts, disk_path: &Path) -> Result<()> {
    println!("== QEMU microvm (TCG), vmlinux via PVH, {BOOTS} boots");
    let (mut ready, mut answer, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..BOOTS {
        let port = free_port()?;
        let cfg = MicrovmConfig::new(a, Some(disk_path.to_path_buf()), 1, Some(port));
        let mut vm = Microvm::spawn(&cfg)?;
        // Poll the 9P port from QEMU's start: the first answer to Tversion is "serving".
        let mut c = connect_9p(port, 512 << 10, Duration::from_secs(60))?;
        answer.push(vm.started().elapsed().as_secs_f64());
        let (at, _) = vm.wait_for_reply_at(Duration::from_secs(60), |r| {
            matches!(r, fsvm_agent::control::Reply::Ready { .. })
        })?;
        ready.push(at.as_secs_f64());
        if i == BOOTS - 1 {
            throughput(&mut c, port)?;
        }
        drop(c);
        let t = Instant::now();
        vm.send("SHUTDOWN")?;
        let exit = vm.wait_exit(Duration::from_secs(30))?;
        down.push(t.elapsed().as_secs_f64());
        if exit.agent_status != Some(0) {
            return Err(Error::new(format!(
                "boot {i}: unclean exit {exit:?}\n{}",
                vm.summary()
            )));
        }
    }
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "QEMU start -> 9P answers Tversion:  median {:.2} s  ({})",
        median(answer.clone()),
        fmt(&answer)
    );
    println!(
        "QEMU start -> agent's ready line:   median {:.2} s  ({})",
        median(ready.clone()),
        fmt(&ready)
    );
    println!(
        "SHUTDOWN -> QEMU exit:              median {:.2} s  ({})",
        median(down.clone()),
        fmt(&down)
    );
    disk::fsck(disk_path, 1)?;
    println!("e2fsck -fn after {BOOTS} boots: clean");
    Ok(())
}

fn throughput(first: &mut ninep::client::Client<std::net::TcpStream>, port: u16) -> Result<()> {
    let nine = |e: ninep::client::Error| Error::new(format!("9P: {e}"));
    // Warm the guest's page cache, so the figures are about 9P and the network, not the disk.
    let (root, _) = first.attach("bench", "").map_err(nine)?;
    let (fid, _) = first.walk_path(root, BIG_FILE.path).map_err(nine)?;
    first.open(fid, ninep::OREAD).map_err(nine)?;
    let t = Instant::now();
    let data = first.read_all(fid).map_err(nine)?;
    let cold = t.elapsed().as_secs_f64();
    first.clunk(fid).map_err(nine)?;
    if disk::sha256(&data) != BIG_FILE.sha256 {
        return Err(Error::new(format!(
            "{} read back with the wrong checksum",
            BIG_FILE.path
        )));
    }
    let mib = BIG_FILE.size as f64 / (1 << 20) as f64;
    println!(
        "== 9P read of the {mib:.0} MiB file over QEMU user networking (host client: lib/ninep)"
    );
    println!(
        "first read, msize 512 KiB (guest page cache cold): {:7.1} MiB/s",
        mib / cold
    );
    let mut rates = Vec::new();
    for &msize in MSIZES {
        let mut c = connect_9p(port, msize, Duration::from_secs(10))?;
        let (root, _) = c.attach("bench", "").map_err(nine)?;
        let (fid, _) = c.walk_path(root, BIG_FILE.path).map_err(nine)?;
        let (_, iounit) = c.open(fid, ninep::OREAD).map_err(nine)?;
        let mut runs = Vec::new();
        for _ in 0..READS {
            let t = Instant::now();
            let n = c.read_all(fid).map_err(nine)?.len();
            if n as u64 != BIG_FILE.size {
                return Err(Error::new(format!("short read: {n} bytes")));
            }
            runs.push(mib / t.elapsed().as_secs_f64());
        }
        c.clunk(fid).map_err(nine)?;
        let rate = median(runs.clone());
        rates.push(rate);
        println!(
            "msize {:>4} KiB (negotiated {}, iounit {}): median {:7.1} MiB/s  ({})",
            msize >> 10,
            c.msize(),
            iounit,
            rate,
            runs.iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "ratio 64 KiB / 8 KiB: {:.1}x; 512 KiB / 8 KiB: {:.1}x",
        rates[1] / rates[0],
        rates[2] / rates[0]
    );
    Ok(())
}
