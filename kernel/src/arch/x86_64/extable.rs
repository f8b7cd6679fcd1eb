//! Exception fixups: instructions that may fault by design (an MSR that might not exist, later
//! a load from a user pointer) are listed in the `.ex_table` section with the address to resume
//! at. The trap handler consults the table before treating a kernel fault as fatal.

/// One entry of `.ex_table`: a faulting instruction and where to continue.
#[repr(C)]
struct Fixup {
    insn: u64,
    resume: u64,
}

unsafe extern "C" {
    static __ex_table_start: Fixup;
    static __ex_table_end: Fixup;
    fn rdmsr_checked(msr: u32, value: *mut u64) -> u64;
    fn wrmsr_checked(msr: u32, low: u32, high: u32) -> u64;
}

// RDMSR raises #GP for an MSR the CPU does not implement (SDM Vol. 2B, RDMSR).
core::arch::global_asm!(
    r#"
    .text
    .global rdmsr_checked
rdmsr_checked:                  /* (msr: edi, value: rsi) -> 0 ok, 1 faulted */
    mov ecx, edi
rdmsr_checked_insn:
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov [rsi], rax
    xor eax, eax
    ret
rdmsr_checked_fault:
    mov eax, 1
    ret
    .section .ex_table, "a"
    .balign 8
    .quad rdmsr_checked_insn, rdmsr_checked_fault
    .text
"#
);

// WRMSR raises #GP for an MSR the CPU lacks or a value it refuses (SDM Vol. 2B, WRMSR).
core::arch::global_asm!(
    r#"
    .text
    .global wrmsr_checked
wrmsr_checked:                  /* (msr: edi, low: esi, high: edx) -> 0 ok, 1 faulted */
    mov ecx, edi
    mov eax, esi
wrmsr_checked_insn:
    wrmsr
    xor eax, eax
    ret
wrmsr_checked_fault:
    mov eax, 1
    ret
    .section .ex_table, "a"
    .balign 8
    .quad wrmsr_checked_insn, wrmsr_checked_fault
    .text
"#
);

/// Where to resume after a fault at `rip`, if the fault was expected.
pub fn lookup(rip: u64) -> Option<u64> {
    let start = &raw const __ex_table_start;
    let end = &raw const __ex_table_end;
    let count = (end as usize - start as usize) / core::mem::size_of::<Fixup>();
    // SAFETY: The linker script brackets the `.ex_table` entries with these two symbols, and
    // every entry is a `Fixup` (two quads) emitted by `global_asm!` blocks in this kernel.
    let table = unsafe { core::slice::from_raw_parts(start, count) };
    table.iter().find(|f| f.insn == rip).map(|f| f.resume)
}

/// Reads an MSR, returning `None` if the CPU does not implement it.
pub fn rdmsr(msr: u32) -> Option<u64> {
    let mut value = 0;
    // SAFETY: `rdmsr_checked` only reads the MSR (its #GP is caught through `.ex_table`) and
    // writes the result to the valid `value`.
    let faulted = unsafe { rdmsr_checked(msr, &mut value) };
    (faulted == 0).then_some(value)
}

/// Writes an MSR, returning false if the CPU does not implement it or refuses the value.
///
/// # Safety
/// The write must not break the kernel's invariants (as for any WRMSR).
pub unsafe fn wrmsr(msr: u32, value: u64) -> bool {
    // SAFETY: Forwarded from the caller; a #GP resumes at the fault label via `.ex_table`.
    unsafe { wrmsr_checked(msr, value as u32, (value >> 32) as u32) == 0 }
}
