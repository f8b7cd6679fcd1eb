//! The GDT and TSS of each CPU, with IST stacks for the exceptions that must not run on a
//! possibly broken stack (double fault, NMI, machine check).
//!
//! Selector layout is fixed by SYSCALL/SYSRET (SDM Vol. 2B, SYSRET): kernel code, kernel data,
//! then user data and user code, so that STAR can name them.

use alloc::boxed::Box;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicPtr, Ordering};
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (1-based as in the IDT) of the double-fault stack.
pub const IST_DOUBLE_FAULT: u16 = 1;
/// IST slot of the NMI stack.
pub const IST_NMI: u16 = 2;
/// IST slot of the machine-check stack.
pub const IST_MACHINE_CHECK: u16 = 3;
const IST_STACK_SIZE: usize = 16 * 1024;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// User data selector (RPL 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u16 = 0x20 | 3;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

/// One CPU's descriptor tables; leaked at boot, never freed.
struct CpuTables {
    gdt: GlobalDescriptorTable,
    tss: TaskStateSegment,
    ist: [IstStack; 3],
}

static BSP_TSS: AtomicPtr<TaskStateSegment> = AtomicPtr::new(core::ptr::null_mut());

/// Loads this CPU's GDT and TSS.
pub fn init() {
    let tables: &'static mut CpuTables = Box::leak(Box::new(CpuTables {
        gdt: GlobalDescriptorTable::new(),
        tss: TaskStateSegment::new(),
        ist: [const { IstStack([0; IST_STACK_SIZE]) }; 3],
    }));
    for (i, stack) in tables.ist.iter().enumerate() {
        let top = stack.0.as_ptr() as u64 + IST_STACK_SIZE as u64;
        tables.tss.interrupt_stack_table[i] = VirtAddr::new(top);
    }
    let tss_ptr = addr_of_mut!(tables.tss);
    let cs = tables.gdt.append(Descriptor::kernel_code_segment());
    let ds = tables.gdt.append(Descriptor::kernel_data_segment());
    let uds = tables.gdt.append(Descriptor::user_data_segment());
    let ucs = tables.gdt.append(Descriptor::user_code_segment());
    // SAFETY: The TSS lives in leaked memory (forever) and is only changed through
    // `set_kernel_stack`, which writes a field the CPU reads on privilege changes.
    let tss = tables
        .gdt
        .append(unsafe { Descriptor::tss_segment_unchecked(tss_ptr) });
    assert_eq!(
        (cs.0, ds.0, uds.0, ucs.0),
        (KERNEL_CS, KERNEL_DS, USER_DS, USER_CS),
        "GDT layout must match SYSCALL/SYSRET"
    );
    let gdt: &'static GlobalDescriptorTable = &tables.gdt;
    gdt.load();
    // SAFETY: The selectors name the descriptors just loaded; the TSS descriptor is valid and
    // not busy.
    unsafe {
        CS::set_reg(cs);
        SS::set_reg(ds);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss);
    }
    BSP_TSS.store(tss_ptr, Ordering::Release);
}

/// Sets the stack the CPU switches to when an interrupt or exception arrives from user mode.
pub fn set_kernel_stack(top: u64) {
    let tss = BSP_TSS.load(Ordering::Acquire);
    if !tss.is_null() {
        // SAFETY: BSP_TSS points to leaked memory set once by `init`; this CPU is its only
        // writer and the CPU only reads the field on the next privilege change.
        unsafe { (*tss).privilege_stack_table[0] = VirtAddr::new(top) };
    }
}
