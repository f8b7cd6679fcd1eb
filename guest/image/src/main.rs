//! `guest-image`: the command-line face of the crate, for people and CI.
//!
//! ```text
//! guest-image build [--gzip]      build or find the guest kernel and initramfs; print their paths
//! guest-image disk                make or find the pristine demo disk; print its path
//! guest-image paths               print the cache directory and the kernel's cache key
//! guest-image run [--disk FILE] [--part N] [--9p-port P]
//!                                 the launcher's --microvm mode
//! guest-image bench [--cold]      print the guest's figures (see bench.rs)
//! ```

mod bench;

use guest_image::{Options, microvm};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: guest-image build [--gzip] | disk | paths | bench [--cold] | \
         run [--disk FILE] [--part N] [--9p-port P]"
    );
    ExitCode::from(2)
}

fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<T, String> {
    let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: bad value {v:?}"))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        return usage();
    };
    let result: Result<ExitCode, String> = (|| match cmd.as_str() {
        "build" => {
            let gzip = match args.next().as_deref() {
                None => false,
                Some("--gzip") => true,
                Some(a) => return Err(format!("unknown argument {a:?}")),
            };
            let a = guest_image::build(&Options {
                gzip_initramfs: gzip,
                ..Options::default()
            })
            .map_err(|e| e.to_string())?;
            println!("vmlinux {}", a.vmlinux.display());
            println!("bzImage {}", a.bz_image.display());
            println!("initramfs {}", a.initramfs.display());
            println!("config {}", a.kernel_config.display());
            Ok(ExitCode::SUCCESS)
        }
        "disk" => {
            println!(
                "{}",
                guest_image::demo_disk()
                    .map_err(|e| e.to_string())?
                    .display()
            );
            Ok(ExitCode::SUCCESS)
        }
        "paths" => {
            println!("cache {}", guest_image::cache_dir().display());
            println!("kernel-key {}", guest_image::kernel::cache_key());
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            let mut opts = microvm::MicrovmOptions::default();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--disk" => opts.disk = Some(value::<String>(&mut args, &a)?.into()),
                    "--part" => opts.part = Some(value(&mut args, &a)?),
                    "--9p-port" => opts.host_port = value(&mut args, &a)?,
                    _ => return Err(format!("unknown argument {a:?}")),
                }
            }
            let exit = microvm::run(&opts).map_err(|e| e.to_string())?;
            Ok(ExitCode::from(exit.exit_code()))
        }
        "bench" => {
            let cold = match args.next().as_deref() {
                None => false,
                Some("--cold") => true,
                Some(a) => return Err(format!("unknown argument {a:?}")),
            };
            bench::run(cold).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("unknown command {cmd:?}")),
    })();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            if e.starts_with("unknown") || e.contains("needs a value") || e.contains("bad value") {
                return usage();
            }
            ExitCode::FAILURE
        }
    }
}
