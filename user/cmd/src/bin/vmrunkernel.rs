//! vmrunkernel: runs a Linux kernel in a virtual machine of the kernel's `#vm` device.
//!
//! ```text
//! vmrunkernel [-m SIZE] [-N CPUS] [-i INITRD] [-k CMDLINE-FILE] [-c EXTRA]
//!             [-f DISK [--ro]] [-n NET-OPTIONS-FILE [--mac MAC] [--mrg-rxbuf]] [-e LINE] KERNEL
//! ```
//!
//! `-e LINE`: when our standard input ends, type LINE to the guest's console (the fsvm agent's
//! `SHUTDOWN`), so that a guest whose controller died outright still stops cleanly.
//!
//! Guest RAM is memory of this process, shared with the guest (zero copy). The kernel (a
//! `bzImage` through the 64-bit boot protocol, or a `vmlinux` through PVH), initrd, command line
//! and MP table are placed by the `vmm` library; devices are virtio-mmio (`vmm::virtio`): a
//! console on our standard input and output, a disk backed by a file (for example
//! `/dev/sdE0/data`), a network card into the user-mode NAT (`vmm::nat`) whose port forwards
//! listen on the host's `#ip` and whose outbound flows (the guest's TCP connections beyond its
//! router 10.0.2.2; no UDP or ICMP) are dialled through it as `tcp!ADDR!PORT`. The kernel handles CPUID, MSRs, the LAPIC, IOAPIC and timer
//! itself; what reaches us is MMIO to the devices, port I/O (the few legacy ports of
//! `vmm::pio`: COM1 kept for a post-mortem, the CMOS clock, the PIT; everything else reads as all
//! ones) and hypercalls. The guest powering off with the
//! `PowerOff` hypercall ends the program with the guest's status.

#![no_std]
#![no_main]

extern crate alloc;

#[path = "vmrunkernel/backends.rs"]
mod backends;
#[path = "vmrunkernel/forward.rs"]
mod forward;

use abi::hv::{Hypercall, PowerOffStatus};
use abi::vm::{Complete, Exit, ExitReason, Record, SetState, VcpuState};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use backends::{FileStore, IrqPin, SharedNat, StdioConsole};
use rt::sync::Mutex;
use rt::{Error, Result, eprintln, format, fs, io, println};
use vmm::bus::{Bus, MmioAccess};
use vmm::config::{DeviceKind, FileSource, VmConfig};
use vmm::memory::{GuestMemory, MappedGuestMemory, MappedRegion};
use vmm::pio::LegacyPorts;
use vmm::virtio::mmio::MmioTransport;

rt::entry!(main);

/// The guest's memory, shared by the device models and the loader.
pub type Memory = Arc<MappedGuestMemory>;

/// Reads the files options name through the namespace.
struct Files;

impl FileSource for Files {
    fn read_file(&mut self, path: &str) -> core::result::Result<Vec<u8>, String> {
        fs::read_file(path).map_err(|e| e.0)
    }
}

/// A VM of the `#vm` device: its number and `ctl` file.
pub struct Vm {
    id: u64,
    ctl: u64,
}

impl Vm {
    fn new() -> Result<Vm> {
        let ctl = fs::open("#vm/clone", fs::ORDWR)?;
        let mut b = [0u8; 32];
        let n = io::pread(ctl, &mut b, 0)?;
        let id = core::str::from_utf8(&b[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::new("#vm/clone: no VM number"))?;
        Ok(Vm { id, ctl })
    }

    /// Sends a `ctl` command.
    pub fn ctl(&self, cmd: &str) -> Result<()> {
        io::write(self.ctl, cmd.as_bytes())
            .map_err(|e| e.context(format!("#vm/{} ctl {cmd}", self.id)))?;
        Ok(())
    }
}

/// Guest RAM regions: page-aligned memory of this process, never freed (it lives as long as the
/// program, and the guest may touch it until the very end).
fn allocate_ram(regions: &[vmm::memory::RamRegion]) -> Result<Vec<MappedRegion>> {
    let mut mapped = Vec::new();
    for r in regions {
        let layout = core::alloc::Layout::from_size_align(r.len as usize, 4096)
            .map_err(|_| Error::new("bad guest RAM size"))?;
        // SAFETY: A non-zero size with a valid alignment. Fresh heap pages of a process are
        // zero; the kernel's `mem` command pins them.
        let host = unsafe { alloc::alloc::alloc(layout) };
        if host.is_null() {
            return Err(Error::new(format!(
                "no memory for {} MiB of guest RAM",
                r.len >> 20
            )));
        }
        mapped.push(MappedRegion { guest: *r, host });
    }
    Ok(mapped)
}

/// The TSC frequency of this machine in kHz, from `#arch/tsc`, for the guest's command line:
/// with it the guest needs no PIT to calibrate its clocks.
fn tsc_khz() -> Result<u64> {
    let text = fs::read_to_string("#arch/tsc")?;
    let hz: u64 = text
        .trim()
        .parse()
        .map_err(|_| Error::new("#arch/tsc: not a number"))?;
    Ok(hz / 1000)
}

fn to_vcpu_state(c: &vmm::linux::entry::BootCpuState) -> VcpuState {
    use abi::vm::{DescriptorTable, Regs, Segment, Sregs};
    let seg = |s: &vmm::linux::entry::Segment| Segment::new(s.selector, s.base, s.limit, s.access);
    VcpuState {
        regs: Regs {
            rip: c.rip,
            rsp: c.rsp,
            rflags: c.rflags,
            rbx: c.rbx,
            rsi: c.rsi,
            ..Regs::default()
        },
        sregs: Sregs {
            cs: seg(&c.cs),
            ds: seg(&c.ds),
            es: seg(&c.es),
            fs: seg(&c.fs),
            gs: seg(&c.gs),
            ss: seg(&c.ss),
            tr: seg(&c.tr),
            ldtr: seg(&c.ldtr),
            gdtr: DescriptorTable::new(c.gdtr.base, c.gdtr.limit),
            idtr: DescriptorTable::new(c.idtr.base, c.idtr.limit),
            cr0: c.cr0,
            cr3: c.cr3,
            cr4: c.cr4,
            efer: c.efer,
            apic_base: 0xfee0_0000 | (1 << 11) | (1 << 8),
            ..Sregs::default()
        },
    }
}

/// Everything the vCPU thread and the I/O threads share.
pub struct Machine {
    pub bus: Mutex<Bus>,
    pub nat: Option<SharedNat>,
    pub ports: Mutex<LegacyPorts>,
    /// The wall clock (seconds since 1970) when the system booted, for the guest's RTC.
    pub boot_epoch: i64,
}

impl Machine {
    /// Lets the devices take input that arrived from outside (console, network).
    pub fn poll_devices(&self) {
        self.bus.lock().poll();
    }

    /// A port I/O exit: the completion of a read the legacy ports answer (no completion reads
    /// as all ones).
    fn pio(&self, exit: &Exit) -> Option<Complete> {
        let mut ports = self.ports.lock();
        if exit.write != 0 {
            let value = exit.value.to_le_bytes();
            let data = match exit.data() {
                [] => &value[..usize::from(exit.size).min(8)],
                d => d,
            };
            ports.write(exit.port, data);
            return None;
        }
        let now = self.boot_epoch + (rt::sys::nsec() / 1_000_000_000) as i64;
        ports
            .read(exit.port, now)
            .map(|v| Complete::value(u64::from(v)))
    }
}

fn build(cfg: &VmConfig, vm: &Vm, mem: &Memory) -> Result<Arc<Machine>> {
    let mut bus = Bus::new();
    let mut nat = None;
    for d in &cfg.devices {
        let irq = IrqPin::new(vm, d.irq)?;
        let size = vmm::layout::VIRTIO_MMIO_SIZE;
        let inserted = match &d.kind {
            DeviceKind::Console => {
                let dev = vmm::virtio::console::Console::new(StdioConsole::new());
                bus.insert(
                    d.base,
                    size,
                    Box::new(MmioTransport::new(dev, mem.clone(), irq)),
                )
            }
            DeviceKind::Block { path, read_only } => {
                let store = FileStore::open(path, *read_only)?;
                let dev = vmm::virtio::blk::Block::new(store, "fsvm-disk");
                bus.insert(
                    d.base,
                    size,
                    Box::new(MmioTransport::new(dev, mem.clone(), irq)),
                )
            }
            DeviceKind::Net { mac, mergeable } => {
                let options = cfg.nat.clone().unwrap_or_default();
                let config = vmm::nat::NatConfig::from_options(&options)
                    .map_err(|e| Error::new(format!("{e}")))?;
                let mtu = config.mtu;
                let n = SharedNat::new(config).map_err(|e| Error::new(format!("NAT: {e}")))?;
                nat = Some(n.clone());
                let dev = vmm::virtio::net::Net::new(n, *mac, *mergeable).with_mtu(mtu);
                bus.insert(
                    d.base,
                    size,
                    Box::new(MmioTransport::new(dev, mem.clone(), irq)),
                )
            }
        };
        inserted.map_err(|e| Error::new(format!("device at {:#x}: {e}", d.base)))?;
    }
    Ok(Arc::new(Machine {
        bus: Mutex::new(bus),
        nat,
        ports: Mutex::new(LegacyPorts::new()),
        boot_epoch: boot_epoch()?,
    }))
}

/// The wall clock when the system booted: `/dev/time`'s seconds less the uptime.
fn boot_epoch() -> Result<i64> {
    let text = fs::read_to_string("/dev/time")?;
    let secs: i64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(format!("/dev/time: unexpected {text:?}")))?;
    Ok(secs - (rt::sys::nsec() / 1_000_000_000) as i64)
}

/// How the guest ended.
enum End {
    PowerOff(u64),
    Failed(String),
}

/// Runs vCPU 0 until the guest powers off or fails.
fn run_vcpu(vm: &Vm, machine: &Machine, mem: &Memory, state: &VcpuState) -> Result<End> {
    vm.ctl("vcpu 0")?;
    let fd = fs::open(&format!("#vm/{}/vcpu0", vm.id), fs::ORDWR)?;
    io::write(fd, SetState::new(*state).as_bytes())?;
    let mut buf = [0u8; core::mem::size_of::<Exit>()];
    loop {
        let n = match io::read(fd, &mut buf) {
            Ok(n) => n,
            // We install no note handler: a note (^C at the console, `kill`) ends us as killing
            // QEMU would, with the guest stopped where it is (fsvm asks its guest to shut down
            // first). A read interrupted without a note being delivered is retried.
            Err(e) if e.msg() == rt::notes::INTERRUPTED => continue,
            Err(e) => return Err(e.context("vcpu0")),
        };
        let exit = Exit::from_bytes(&buf[..n])
            .ok_or_else(|| Error::new(format!("vcpu0: short exit record ({n} bytes)")))?;
        let reply = match exit.kind() {
            Some(ExitReason::Mmio) => {
                let access = MmioAccess {
                    addr: exit.gpa,
                    size: exit.size,
                    write: (exit.write != 0).then_some(exit.value),
                };
                let result = machine.bus.lock().dispatch(access);
                // A queue notification may have left frames for the guest in the NAT.
                if let Some(nat) = &machine.nat
                    && nat.0.lock().has_frames_for_guest()
                {
                    machine.poll_devices();
                }
                match result {
                    Ok(Some(v)) => Some(Complete::value(v)),
                    // Stores, and unclaimed addresses: loads of those read as all ones.
                    Ok(None) | Err(_) => None,
                }
            }
            Some(ExitReason::Pio) => machine.pio(&exit),
            Some(ExitReason::Hypercall) => match Hypercall::from_raw(exit.state.regs.rax) {
                Some(Hypercall::PowerOff) => return Ok(End::PowerOff(exit.state.regs.rbx)),
                Some(Hypercall::Log) => {
                    let len = exit.state.regs.rcx.min(abi::hv::MAX_LOG_BYTES) as usize;
                    let mut text = alloc::vec![0u8; len];
                    let written = if mem.read(exit.state.regs.rbx, &mut text).is_ok() {
                        eprintln!("guest: {}", String::from_utf8_lossy(&text).trim_end());
                        len as u64
                    } else {
                        0
                    };
                    Some(Complete::value(written))
                }
                None => Some(Complete::value(abi::hv::HYPERCALL_UNKNOWN)),
            },
            Some(ExitReason::TripleFault) => {
                return Ok(End::Failed(String::from("the guest triple-faulted")));
            }
            Some(ExitReason::Halted) => {
                return Ok(End::Failed(String::from("the guest halted for good")));
            }
            Some(
                r @ (ExitReason::EntryFailed | ExitReason::EmulationFailed | ExitReason::Unhandled),
            ) => {
                return Ok(End::Failed(format!(
                    "{} (code {:#x}, qualification {:#x}) at rip {:#x}",
                    r.name(),
                    exit.code,
                    exit.qualification,
                    exit.state.regs.rip
                )));
            }
            None => return Ok(End::Failed(format!("unknown exit reason {}", exit.reason))),
        };
        if let Some(c) = reply {
            io::write(fd, c.as_bytes())?;
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<&str> = rt::env::args()[1..].iter().map(String::as_str).collect();
    let mut cfg = vmm::config::parse_args(&args, &mut Files)
        .map_err(|e| Error::new(format!("{}: {}", e.option, e.message)))?;
    // The guest learns the TSC frequency from its command line instead of calibrating against
    // a PIT we do not emulate; `no_timer_check` skips its test of the (absent) PIT interrupt.
    cfg.cmdline = format!(
        "{} tsc_early_khz={} tsc=reliable no_timer_check",
        cfg.cmdline,
        tsc_khz()?
    );
    // Linux frees sent frames when it sends the next ones instead of asking for an interrupt
    // per frame sent: an interrupt costs three exits here (status, acknowledge, EOI). Under
    // QEMU a 9P read through the NAT took 30-40% fewer exits.
    if cfg
        .devices
        .iter()
        .any(|d| matches!(d.kind, DeviceKind::Net { .. }))
    {
        cfg.cmdline.push_str(" virtio_net.napi_tx=0");
    }
    let kernel = fs::read_file(&cfg.kernel)?;
    let initrd = cfg.initrd.as_deref().map(fs::read_file).transpose()?;
    let layout = cfg.layout().map_err(|e| Error::new(format!("-m: {e}")))?;

    let regions = allocate_ram(&layout.ram_regions())?;
    let vm = Vm::new()?;
    for r in &regions {
        vm.ctl(&format!(
            "mem {:#x} {:#x} {:#x}",
            r.guest.start, r.guest.len, r.host as u64
        ))?;
    }
    // SAFETY: The regions are this process's heap memory, allocated above for the life of the
    // program, accessed only through the accessor's volatile copies (and by the guest).
    let mem: Memory = Arc::new(unsafe { MappedGuestMemory::new(&regions) });
    let loaded = vmm::linux::load(
        &*mem,
        &layout,
        &kernel,
        initrd.as_deref(),
        &cfg.kernel_cmdline(),
    )
    .map_err(|e| Error::new(format!("{}: {e}", cfg.kernel)))?;
    drop(kernel);
    drop(initrd);
    vmm::mptable::write(&*mem, cfg.cpus).map_err(|e| Error::new(format!("MP table: {e:?}")))?;

    let machine = build(&cfg, &vm, &mem)?;
    backends::start_console_input(machine.clone(), cfg.eof_line.clone())?;
    if let (Some(nat), Some(options)) = (&machine.nat, &cfg.nat) {
        forward::start(machine.clone(), nat.clone(), options)?;
    }

    let end = run_vcpu(&vm, &machine, &mem, &to_vcpu_state(&loaded.cpu));
    io::flush_stdout();
    let _ = vm.ctl("destroy");
    match end? {
        End::PowerOff(0) => Ok(()),
        End::PowerOff(status) => {
            let why = PowerOffStatus::from_raw(status).describe();
            Err(Error::new(format!(
                "the guest powered off with status {status}: {why}"
            )))
        }
        End::Failed(why) => {
            let tail = machine.ports.lock().serial_tail();
            if !tail.is_empty() {
                eprintln!("vmrunkernel: the guest's serial output ended with:\n{tail}");
            }
            println!();
            Err(Error::new(why))
        }
    }
}
