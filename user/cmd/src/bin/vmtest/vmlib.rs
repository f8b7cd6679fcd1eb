//! A small VMM over `#vm` for the tests and the benchmark: a VM with 4 MiB of RAM taken from
//! this process's heap (zero-copy: the guest's bytes are ours), the test guest image loaded at
//! [`LOAD`], identity page tables for the first 4 GiB, an IDT, and one vCPU.

use super::guest;
use abi::vm::{
    Complete, DescriptorTable, Exit, Record, Regs, Segment, SetRegs, SetState, Sregs, VcpuState,
    access,
};
use rt::string::String;
use rt::{Error, Result, format, fs, io};

/// Where the guest image goes.
pub const LOAD: u64 = 0x1000;
/// Bytes of guest RAM, from guest-physical 0.
pub const RAM: u64 = 4 << 20;
/// The page tables: PML4, PDPT, four page directories.
pub const PML4: u64 = 0x10000;
const PDPT: u64 = 0x11000;
const PD: u64 = 0x12000;
/// The long-mode IDT.
pub const IDT: u64 = 0x20000;
/// Top of the guest's stack.
pub const STACK: u64 = 0x80000;
/// Unbacked guest-physical memory the MMIO test uses.
pub const MMIO: u64 = 0xd000_0000;

/// Guest RAM: page-aligned memory of this process.
pub struct Ram {
    ptr: *mut u8,
    layout: core::alloc::Layout,
}

impl Ram {
    fn new(len: u64) -> Result<Ram> {
        let layout = core::alloc::Layout::from_size_align(len as usize, 4096)
            .map_err(|_| Error::new("bad RAM size"))?;
        // SAFETY: A non-zero size with a valid alignment.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Error::new("out of memory for guest RAM"));
        }
        Ok(Ram { ptr, layout })
    }

    /// Its address in this process.
    pub fn va(&self) -> u64 {
        self.ptr as u64
    }

    /// Copies `data` to guest-physical `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) {
        assert!(gpa as usize + data.len() <= self.layout.size());
        // SAFETY: In bounds (checked); the guest does not run while we write (one thread).
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(gpa as usize), data.len())
        };
    }

    /// Reads guest-physical `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) {
        assert!(gpa as usize + buf.len() <= self.layout.size());
        // SAFETY: As in `write`.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.add(gpa as usize), buf.as_mut_ptr(), buf.len())
        };
    }

    fn write_u64(&self, gpa: u64, v: u64) {
        self.write(gpa, &v.to_le_bytes());
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        // SAFETY: Allocated in `new` with this layout; the VM that used it is gone (the
        // Guest drops its VM first).
        unsafe { alloc::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// A VM: its `ctl` file.
pub struct Vm {
    pub id: u64,
    ctl: u64,
}

impl Vm {
    /// Opens `#vm/clone`.
    pub fn new() -> Result<Vm> {
        let ctl = fs::open("#vm/clone", fs::ORDWR).map_err(|e| e.context("#vm/clone"))?;
        let mut b = [0u8; 32];
        let n = io::pread(ctl, &mut b, 0)?;
        let id = core::str::from_utf8(&b[..n])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::new("#vm ctl: no VM number"))?;
        Ok(Vm { id, ctl })
    }

    /// Writes a `ctl` command.
    pub fn ctl(&self, cmd: &str) -> Result<()> {
        io::write(self.ctl, cmd.as_bytes()).map_err(|e| e.context(cmd))?;
        Ok(())
    }

    /// Makes vCPU `n` and opens its file.
    pub fn vcpu(&self, n: u32) -> Result<Vcpu> {
        self.ctl(&format!("vcpu {n}"))?;
        let fd = fs::open(&format!("#vm/{}/vcpu{n}", self.id), fs::ORDWR)?;
        Ok(Vcpu { fd })
    }

    /// The `stats` text.
    pub fn stats(&self) -> Result<String> {
        fs::read_to_string(&format!("#vm/{}/stats", self.id))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = io::close(self.ctl);
    }
}

/// A vCPU: its file.
pub struct Vcpu {
    fd: u64,
}

impl Vcpu {
    /// Runs until an exit for the VMM.
    pub fn run(&self) -> Result<Exit> {
        let mut b = [0u8; core::mem::size_of::<Exit>()];
        let n = io::read(self.fd, &mut b)?;
        Exit::from_bytes(&b[..n]).ok_or_else(|| Error::new(format!("short exit record ({n})")))
    }

    /// Sets the whole state.
    pub fn set_state(&self, s: &VcpuState) -> Result<()> {
        io::write(self.fd, SetState::new(*s).as_bytes())?;
        Ok(())
    }

    /// Sets the general registers.
    pub fn set_regs(&self, r: &Regs) -> Result<()> {
        io::write(self.fd, SetRegs::new(*r).as_bytes())?;
        Ok(())
    }

    /// Completes the last exit.
    pub fn complete(&self, c: &Complete) -> Result<()> {
        io::write(self.fd, c.as_bytes())?;
        Ok(())
    }
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        let _ = io::close(self.fd);
    }
}

/// A test VM with its RAM, loaded and ready, and vCPU 0.
pub struct Guest {
    pub vcpu: Vcpu,
    pub vm: Vm,
    pub ram: Ram,
}

/// Guest address of an entry point of the image.
pub fn entry(sym: *const u8) -> u64 {
    LOAD + guest::offset(sym)
}

fn gate(handler: u64) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    g[2..4].copy_from_slice(&0x18u16.to_le_bytes());
    g[5] = 0x8e; // present, DPL 0, 64-bit interrupt gate
    g[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    g
}

impl Guest {
    /// A VM with the image, page tables and IDT in place.
    pub fn new() -> Result<Guest> {
        let vm = Vm::new()?;
        let ram = Ram::new(RAM)?;
        ram.write(LOAD, guest::image());
        // Identity map 0..4 GiB with 2 MiB pages, user-accessible (for the CPL 3 hypercall).
        ram.write_u64(PML4, PDPT | 7);
        for g in 0..4u64 {
            ram.write_u64(PDPT + 8 * g, (PD + g * 0x1000) | 7);
            for i in 0..512u64 {
                ram.write_u64(PD + g * 0x1000 + 8 * i, (g << 30 | i << 21) | 0x87);
            }
        }
        ram.write(IDT + 0x40 * 16, &gate(LOAD + guest::timer_isr_offset()));
        ram.write(IDT + 13 * 16, &gate(LOAD + guest::gp_isr_offset()));
        for v in [0x45, 0x46] {
            ram.write(IDT + v * 16, &gate(LOAD + guest::ioapic_isr_offset()));
        }
        for v in [0x47, 0x48] {
            ram.write(IDT + v * 16, &gate(LOAD + guest::ipi_isr_offset()));
        }
        // The second vCPU's real-mode start at 0xc000: OUT 0x24 with AX = 0xa9; HLT.
        ram.write(0xc000, &[0xb8, 0xa9, 0x00, 0xe7, 0x24, 0xf4]);
        // An instruction across a page boundary for the MMIO test: MOV EAX, [RDI]; RET.
        ram.write(0x9fff, &[0x8b, 0x07, 0xc3]);
        vm.ctl(&format!("mem 0 {RAM:#x} {:#x}", ram.va()))?;
        let vcpu = vm.vcpu(0)?;
        Ok(Guest { vcpu, vm, ram })
    }

    /// Starts the vCPU in 64-bit mode at `rip`.
    pub fn start_long(&self, rip: u64) -> Result<()> {
        self.vcpu.set_state(&long_mode(rip))
    }

    /// Runs and expects port I/O; returns it.
    pub fn expect_pio(&self, port: u16, write: bool) -> Result<Exit> {
        let e = self.vcpu.run()?;
        if e.kind() != Some(abi::vm::ExitReason::Pio) || e.port != port || (e.write == 1) != write {
            return Err(Error::new(format!(
                "expected {} of port {port:#x}, got {}",
                if write { "a write" } else { "a read" },
                describe(&e)
            )));
        }
        Ok(e)
    }

    /// Runs and expects a value reported on port 0x21.
    pub fn expect_report(&self) -> Result<u64> {
        Ok(self.expect_pio(0x21, true)?.value)
    }

    /// Runs and expects "done" (port 0xf4, 0).
    pub fn expect_done(&self) -> Result<()> {
        let e = self.expect_pio(0xf4, true)?;
        if e.value != 0 {
            return Err(Error::new(format!("guest failed with code {:#x}", e.value)));
        }
        Ok(())
    }
}

/// A one-line description of an exit, for messages.
pub fn describe(e: &Exit) -> String {
    let r = &e.state.regs;
    match e.kind() {
        Some(k) => format!(
            "{} (port {:#x} size {} write {} value {:#x} gpa {:#x} code {:#x} qual {:#x}) at rip {:#x}",
            k.name(),
            e.port,
            e.size,
            e.write,
            e.value,
            e.gpa,
            e.code,
            e.qualification,
            r.rip
        ),
        None => format!("unknown exit {}", e.reason),
    }
}

/// The state of a vCPU entering 64-bit code at `rip` with our GDT, page tables and IDT.
pub fn long_mode(rip: u64) -> VcpuState {
    let data = Segment::new(0x10, 0, 0xffff_ffff, access::DATA32);
    VcpuState {
        regs: Regs {
            rip,
            rsp: STACK,
            rflags: 2,
            ..Regs::default()
        },
        sregs: Sregs {
            cs: Segment::new(0x18, 0, 0xffff_ffff, access::CODE64),
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            tr: Segment::new(0, 0, 0xffff, access::TSS_BUSY),
            ldtr: Segment::unusable(),
            gdtr: DescriptorTable::new(LOAD + guest::gdt_offset(), 47),
            idtr: DescriptorTable::new(IDT, 0xfff),
            cr0: 0x8000_0031, // PG, NE, ET, PE
            cr3: PML4,
            cr4: 0x20,   // PAE
            efer: 0x500, // LMA, LME
            ..Sregs::default()
        },
    }
}

/// The state of a vCPU entering 32-bit protected mode without paging at `rip` (the PVH entry).
pub fn protected_mode(rip: u64) -> VcpuState {
    let mut s = long_mode(rip);
    s.sregs.cs = Segment::new(0x08, 0, 0xffff_ffff, access::CODE32);
    s.sregs.cr0 = 0x11; // ET, PE
    s.sregs.cr3 = 0;
    s.sregs.cr4 = 0;
    s.sregs.efer = 0;
    s.sregs.idtr = DescriptorTable::new(0, 0);
    s
}
