//! x86-64: boot, descriptor tables, traps, interrupt controllers, timers, CPU identification
//! and firmware tables.

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod context;
pub mod cpuid;
pub mod extable;
pub mod gdt;
pub mod ioapic;
pub mod irq;
pub mod percpu;
mod pic;
pub mod pit;
pub mod syscall;
pub mod trap;

/// Loads this CPU's GDT, TSS and IDT.
pub fn init_traps() {
    gdt::init();
    trap::init();
    percpu::init();
    syscall::init();
}

/// Takes interrupts away from the legacy PICs and gives them to the LAPIC and IOAPICs.
pub fn init_interrupts(platform: &acpi::Platform) {
    pic::disable(irq::PIC_VECTOR_BASE);
    apic::init(cpuid::CpuInfo::get().x2apic);
    ioapic::init(platform, apic::id());
}

/// Lets interrupts in on this CPU.
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Halts this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions in ring 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}
