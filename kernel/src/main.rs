//! The kernel: ring 0 of a small Plan 9-flavoured x86-64 operating system in which a Linux
//! virtual machine is just a process (see DESIGN.md).
//!
//! `kmain` is entered on the boot stack with the early page tables of `arch::x86_64::boot`; it
//! brings up memory, traps, time and devices in that order, then runs the kernel monitor.

#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod bootinfo;
mod console;
mod dev;
mod drivers;
mod error;
mod klog;
mod ktest;
mod mm;
mod monitor;
mod net;
mod ns;
mod panic;
mod power;
mod proc;
mod sync;
mod syscall;
mod time;
mod virt;

use arch::x86_64 as cpu_arch;

/// The kernel command line, as the loader passed it.
pub static CMDLINE: spin::Once<alloc::string::String> = spin::Once::new();

/// Whether `opt` appears as a word of the kernel command line.
pub fn cmdline_has(opt: &str) -> bool {
    CMDLINE
        .get()
        .is_some_and(|c| c.split_whitespace().any(|w| w == opt))
}

/// The value of `key=value` on the kernel command line.
pub fn cmdline_value(key: &str) -> Option<&'static str> {
    CMDLINE
        .get()?
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The Rust entry point, called once by the boot assembly on the bootstrap processor.
#[unsafe(no_mangle)]
extern "C" fn kmain(boot_magic: u32, boot_info: u32) -> ! {
    console::init_early();
    let info = match bootinfo::parse(boot_magic, boot_info) {
        Ok(info) => info,
        Err(e) => panic!("cannot read the boot information: {e}"),
    };
    mm::init(&info);
    CMDLINE.call_once(|| alloc::string::String::from(info.cmdline()));
    klog::init(cmdline_value("loglevel"));
    power::set_debug_exit(cmdline_has("debugexit"));
    cpu_arch::init_traps();
    let platform = cpu_arch::acpi::set_platform(cpu_arch::acpi::Platform::discover(info.rsdp));
    cpu_arch::init_interrupts(platform);
    time::init();
    console::enable_input_interrupts();
    power::init(platform);
    drivers::pci::init();
    drivers::virtio::probe();
    drivers::ata::probe();
    virt::init();

    proc::sched::init();
    net::init();
    if let Some(archive) = info.modules().first() {
        // SAFETY: The loader placed the module there; the frame allocator keeps its frames
        // reserved for good, and nothing writes to them.
        let bytes = unsafe {
            core::slice::from_raw_parts(mm::PhysAddr(archive.start).to_virt(), archive.len as usize)
        };
        dev::root::init(bytes);
    } else {
        dev::root::init(&[]);
    }

    print_banner(&info, platform);
    cpu_arch::enable_interrupts();

    if cmdline_has("ktest") {
        ktest::run_all();
    }
    if cmdline_has("monitor") || dev::root::ROOT.file(INIT).is_none() {
        monitor::run()
    }
    match proc::start_init(INIT) {
        Ok(()) => dev::cons::start_line_discipline(),
        Err(e) => {
            log::error!("cannot start {INIT}: {e}; running the kernel monitor");
            monitor::run()
        }
    }
    proc::sched::idle()
}

/// The first user program.
const INIT: &str = "/bin/init";

/// The namespace a process starts with: the boot archive as `/`, the console devices in
/// `/dev`.
pub fn boot_namespace() -> error::KResult<alloc::sync::Arc<ns::Namespace>> {
    use alloc::sync::Arc;
    let mut root = ns::devtab::attach("root")?;
    root.path = alloc::string::String::from("/");
    let ns = ns::Namespace::new(Arc::new(root));
    let top = ns.root();
    let bind_after = |dev: &str, at: &[&str]| -> error::KResult<()> {
        let new = Arc::new(ns::devtab::attach(dev)?);
        let old = ns.walk(top.clone(), at)?;
        ns.bind(new, &old.chan, abi::sys::bind::MAFTER)
    };
    let bind = |dev: &str, at: &[&str], flags: u64| -> error::KResult<()> {
        let new = Arc::new(ns::devtab::attach(dev)?);
        let old = ns.walk(top.clone(), at)?;
        ns.bind(new, &old.chan, flags)
    };
    bind_after("cons", &["dev"])?;
    bind_after("sd", &["dev"])?;
    bind("proc", &["proc"], abi::sys::bind::MREPL)?;
    bind("ip", &["net"], abi::sys::bind::MREPL)?;
    bind(
        "srv",
        &["srv"],
        abi::sys::bind::MREPL | abi::sys::bind::MCREATE,
    )?;
    let writable = abi::sys::bind::MREPL | abi::sys::bind::MCREATE;
    bind("tmpfs", &["tmp"], writable)?;
    // Mount points for users: `mkdir /n/x`, then mount there.
    bind("tmpfs", &["n"], writable)?;
    Ok(ns)
}

fn print_banner(info: &bootinfo::BootInfo, platform: &cpu_arch::acpi::Platform) {
    let cpu = cpu_arch::cpuid::CpuInfo::get();
    console::println!("");
    console::println!(
        "tern kernel {} booted by {}",
        env!("CARGO_PKG_VERSION"),
        info.loader
    );
    console::println!("cpu: {} ({})", cpu.brand, cpu.vendor);
    console::println!("virtualization: {}", cpu.virt);
    let cpus = platform.cpus.len();
    console::println!(
        "memory: {} MiB usable; {cpus} CPU{}; {}",
        mm::frame::total_bytes() >> 20,
        if cpus == 1 { "" } else { "s" },
        time::describe(),
    );
}
