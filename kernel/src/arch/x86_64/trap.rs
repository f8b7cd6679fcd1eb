//! Trap entry: the IDT, 256 entry stubs written in `global_asm!`, the saved register frame, and
//! the dispatcher that sends exceptions to their handlers and interrupts to `irq`.
//!
//! Every stub pushes an error code (a zero where the CPU pushes none, SDM Vol. 3A §6.13) and its
//! vector, then jumps to `trap_common`, which saves the general registers, swaps GS when the
//! trap came from user mode, and calls `trap_dispatch` with a pointer to the `TrapFrame`.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CS};
use core::fmt;

/// Number of IDT vectors.
const VECTORS: usize = 256;
/// Bytes between consecutive entry stubs (see the `.balign` below).
const STUB_SIZE: u64 = 16;

// The stubs: vectors that push their own error code are 8, 10-14, 17, 21, 29 and 30
// (SDM Vol. 3A, Table 6-1).
core::arch::global_asm!(
    r#"
    .text
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30
    .else
    pushq $0
    .endif
    pushq $vec
    jmp trap_common
    .set vec, vec + 1
    .endr
"#,
    options(att_syntax)
);

core::arch::global_asm!(
    r#"
    .text
    .global trap_common
trap_common:
    testb $3, 24(%rsp)          /* CS of the interrupted code: user mode? */
    jz 1f
    swapgs
1:  pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call trap_dispatch
    .global trap_return
trap_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    testb $3, 24(%rsp)
    jz 2f
    swapgs
2:  addq $16, %rsp              /* vector and error code */
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static trap_stubs: u8;
}

/// The registers saved on trap entry, in stack order (lowest address first).
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// Whether the trap interrupted user mode.
    pub fn is_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// An IDT gate descriptor (SDM Vol. 3A §6.14.1, Figure 6-8).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present 64-bit interrupt gate (type 0xE: IF cleared on entry) with the given DPL.
    fn interrupt(handler: u64, ist: u16, dpl: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: ist as u8,
            type_attr: 0x80 | (dpl << 5) | 0xe,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; VECTORS]);

static mut IDT: Idt = Idt([Gate::MISSING; VECTORS]);

/// Fills the IDT and loads it on this CPU.
pub fn init() {
    let stubs = &raw const trap_stubs as u64;
    let mut idt = Idt([Gate::MISSING; VECTORS]);
    for (v, gate) in idt.0.iter_mut().enumerate() {
        let ist = match v {
            2 => IST_NMI,
            8 => IST_DOUBLE_FAULT,
            18 => IST_MACHINE_CHECK,
            _ => 0,
        };
        // Breakpoint may be raised from user mode with `int3`.
        let dpl = if v == 3 { 3 } else { 0 };
        *gate = Gate::interrupt(stubs + v as u64 * STUB_SIZE, ist, dpl);
    }
    // SAFETY: The IDT is written once, here, by the boot CPU before interrupts are enabled;
    // afterwards the CPU only reads it.
    unsafe { (&raw mut IDT).write(idt) };
    load();
}

/// Loads the IDT on this CPU.
pub fn load() {
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: x86_64::VirtAddr::new(&raw const IDT as u64),
    };
    // SAFETY: IDT is a static, fully initialised table of valid gates.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// Called by `trap_common` for every trap.
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        0..=31 => exception(frame),
        v => {
            if v == u64::from(super::irq::TIMER_VECTOR) {
                crate::proc::sched::tick(frame.is_user());
            }
            super::irq::dispatch(v as u8)
        }
    }
    if frame.is_user() {
        crate::proc::return_to_user(frame);
    }
}

/// Names of the architectural exceptions (SDM Vol. 3A, Table 6-1).
fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error",
        "debug",
        "NMI",
        "breakpoint",
        "overflow",
        "BOUND range exceeded",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor segment overrun",
        "invalid TSS",
        "segment not present",
        "stack-segment fault",
        "general protection",
        "page fault",
        "reserved (15)",
        "x87 floating-point error",
        "alignment check",
        "machine check",
        "SIMD floating-point exception",
        "virtualization exception",
        "control protection",
        "reserved (22)",
        "reserved (23)",
        "reserved (24)",
        "reserved (25)",
        "reserved (26)",
        "reserved (27)",
        "hypervisor injection",
        "VMM communication",
        "security exception",
        "reserved (31)",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("unknown")
}

/// What a page-fault error code says (SDM Vol. 3A §4.7).
struct PageFaultCause(u64);

impl fmt::Display for PageFaultCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let what = if e & 1 == 0 {
            "not-present page"
        } else {
            "protection violation"
        };
        let access = match (e & 2 != 0, e & 16 != 0) {
            (_, true) => "instruction fetch",
            (true, false) => "write",
            (false, false) => "read",
        };
        let mode = if e & 4 != 0 { "user" } else { "kernel" };
        write!(f, "{mode} {access}, {what}")?;
        if e & 8 != 0 {
            write!(f, ", reserved bit set")?;
        }
        Ok(())
    }
}

fn exception(frame: &mut TrapFrame) {
    if frame.vector == 14 {
        // A fault on a user address may just be a page not yet present (demand paging), even
        // when the kernel touches it on a user's behalf.
        let addr = x86_64::registers::control::Cr2::read_raw();
        let (write, fetch) = (frame.error & 2 != 0, frame.error & 16 != 0);
        if addr < abi::sys::layout::USER_END && crate::proc::user_fault(addr, write, fetch).is_ok()
        {
            return;
        }
    }
    if !frame.is_user()
        && let Some(resume) = super::extable::lookup(frame.rip)
    {
        frame.rip = resume;
        return;
    }
    if frame.is_user() {
        user_exception(frame);
        return;
    }
    match frame.vector {
        2 => {
            log::warn!("NMI at {:#x}", frame.rip);
        }
        14 => {
            let addr = x86_64::registers::control::Cr2::read_raw();
            let hint = if let Some(slot) = crate::mm::kstack::guard_page_slot(addr) {
                alloc::format!(" (guard page of kernel stack {slot}: stack overflow)")
            } else if addr < 4096 {
                alloc::string::String::from(" (null pointer)")
            } else {
                alloc::string::String::new()
            };
            panic!(
                "page fault at {addr:#x}{hint}: {}, rip {:#x}\n{}",
                PageFaultCause(frame.error),
                frame.rip,
                Registers(frame)
            );
        }
        8 => {
            // A double fault in the kernel is nearly always a stack overflow: the page fault on
            // the guard page could not push its frame.
            let addr = x86_64::registers::control::Cr2::read_raw();
            let overflow = crate::mm::kstack::guard_page_slot(addr).is_some()
                || crate::mm::kstack::guard_page_slot(frame.rsp).is_some();
            panic!(
                "double fault{} (cr2 {addr:#x}), rip {:#x}\n{}",
                if overflow {
                    ": kernel stack overflow"
                } else {
                    ""
                },
                frame.rip,
                Registers(frame)
            );
        }
        v => panic!(
            "{} (vector {v}, error {:#x}) at rip {:#x}\n{}",
            exception_name(v),
            frame.error,
            frame.rip,
            Registers(frame)
        ),
    }
}

/// An exception in user mode becomes a note to the process (Plan 9's "sys: trap: ..."), which
/// kills it unless it handles the note.
fn user_exception(frame: &TrapFrame) {
    let what = match frame.vector {
        14 => {
            let addr = x86_64::registers::control::Cr2::read_raw();
            let access = if frame.error & 16 != 0 {
                "exec"
            } else if frame.error & 2 != 0 {
                "write"
            } else {
                "read"
            };
            alloc::format!(
                "sys: trap: fault {access} addr={addr:#x} pc={:#x}",
                frame.rip
            )
        }
        v => alloc::format!("sys: trap: {} pc={:#x}", exception_name(v), frame.rip),
    };
    if let Some(p) = crate::proc::sched::current_process() {
        crate::proc::note::post(&p, &what);
    }
}

/// Prints the registers of a trap frame.
struct Registers<'a>(&'a TrapFrame);

impl fmt::Display for Registers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(
            f,
            "rax {:016x} rbx {:016x} rcx {:016x} rdx {:016x}",
            r.rax, r.rbx, r.rcx, r.rdx
        )?;
        writeln!(
            f,
            "rsi {:016x} rdi {:016x} rbp {:016x} rsp {:016x}",
            r.rsi, r.rdi, r.rbp, r.rsp
        )?;
        writeln!(
            f,
            "r8  {:016x} r9  {:016x} r10 {:016x} r11 {:016x}",
            r.r8, r.r9, r.r10, r.r11
        )?;
        writeln!(
            f,
            "r12 {:016x} r13 {:016x} r14 {:016x} r15 {:016x}",
            r.r12, r.r13, r.r14, r.r15
        )?;
        write!(f, "cs {:#x} ss {:#x} rflags {:#x}", r.cs, r.ss, r.rflags)
    }
}
