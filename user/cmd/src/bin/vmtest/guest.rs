//! The test guests: x86 machine code assembled in-tree (AT&T syntax), kept in a data section of
//! this program and copied into guest RAM at [`super::vmlib::LOAD`]. Each entry point is a
//! global label; `vmlib::entry` turns one into its guest address.
//!
//! Conventions shared with the tests:
//! - port 0xf4: "done", EAX = 0 for success (anything else is a failure code);
//! - port 0x21: a value reported to the VMM (its size is the access size);
//! - the GDT at `gdt`: 0x08 flat 32-bit code, 0x10 flat data, 0x18 64-bit code, 0x20 user data,
//!   0x28 user 64-bit code;
//! - in long mode the VMM's page tables identity-map the first 4 GiB and its IDT (at
//!   `vmlib::IDT`) sends vector 0x40 to `timer_isr`, 13 to `gp_isr`, 0x45 and 0x46 to
//!   `ioapic_isr`, 0x47 and 0x48 to `ipi_isr`;
//! - the second vCPU of the IPI test starts in real mode at 0xc000 (a few bytes the VMM writes).

core::arch::global_asm!(
    r#"
    .pushsection .rodata.vmguest, "a"
    .balign 4096
    .global vmguest_start
vmguest_start:

/* ---- Real mode at 0:0x1000 to long mode ---------------------------------------------- */
    .code16
    .global guest_real
guest_real:
    cli
    lgdt (gdt_ptr - vmguest_start + 0x1000)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(guest_pm32_from_real - vmguest_start + 0x1000)

    .code32
guest_pm32_from_real:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x80000, %esp
    movl %cr4, %eax
    orl $0x20, %eax                 /* PAE */
    movl %eax, %cr4
    movl $0x10000, %eax             /* PML4 built by the VMM */
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax           /* PG */
    movl %eax, %cr0
    ljmp $0x18, $(guest_long_from_real - vmguest_start + 0x1000)

    .code64
guest_long_from_real:
    movl $0x64, %eax                /* 'd': in long mode */
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

/* ---- 32-bit protected mode, paging off (the PVH entry state) ------------------------- */
    .code32
    .global guest_pm32
guest_pm32:
    movl %ebx, %eax                 /* the VMM put a value in EBX */
    outl %eax, $0x21
    movl %cr0, %eax
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

    .code64
/* ---- Port I/O ------------------------------------------------------------------------ */
    .global guest_pio
guest_pio:
    movb $0x11, %al
    outb %al, $0x10
    movw $0x2233, %ax
    outw %ax, $0x12
    movw $0x14, %dx
    movl $0x44556677, %eax
    outl %eax, %dx
    inb $0x10, %al
    outb %al, $0x21
    movw $0x12, %dx
    inw %dx, %ax
    outw %ax, $0x21
    movw $0x14, %dx
    inl %dx, %eax
    outl %eax, $0x21
    cld
    movw $0x30, %dx
    leaq pio_message(%rip), %rsi
    movl $(pio_message_end - pio_message), %ecx
    rep outsb
    movw $0x31, %dx
    leaq pio_buffer(%rip), %rdi
    movl $16, %ecx
    rep insb
    movw $0x32, %dx
    leaq pio_buffer(%rip), %rsi
    movl $16, %ecx
    rep outsb
    movw $0x33, %dx
    leaq pio_buffer(%rip), %rsi
    movl $4, %ecx
    rep outsw
    xorl %eax, %eax
    outl %eax, $0xf4

/* ---- MMIO on unbacked guest-physical memory ------------------------------------------ */
    .global guest_mmio
guest_mmio:
    movabsq $0xd0000000, %rdi
    movb $0x12, (%rdi)
    movw $0x3456, 2(%rdi)
    movl $0x789abcde, 4(%rdi)
    movabsq $0x1122334455667788, %rax
    movq %rax, 8(%rdi)
    movb 0x10(%rdi), %bl
    movb %bl, 0x20(%rdi)
    movw 0x12(%rdi), %bx
    movw %bx, 0x22(%rdi)
    movl 0x14(%rdi), %ebx
    movl %ebx, 0x24(%rdi)
    movq 0x18(%rdi), %rbx
    movq %rbx, 0x28(%rdi)
    movzbl 0x30(%rdi), %ebx
    movq %rbx, 0x38(%rdi)
    movsbq 0x31(%rdi), %rbx
    movq %rbx, 0x40(%rdi)
    movl 0xffe(%rdi), %ebx          /* crosses into the next page */
    movl %ebx, 0x48(%rdi)
    xorl %ebx, %ebx
    movb 0x50(%rdi), %bh            /* a high-byte register */
    movw %bx, 0x52(%rdi)
    movabsq $0x9fff, %rax           /* an instruction across a page boundary */
    call *%rax
    movl %eax, 0x60(%rdi)
    xorl %eax, %eax
    outl %eax, $0xf4

/* ---- Hypercall ----------------------------------------------------------------------- */
    .global guest_hypercall
guest_hypercall:
    xorl %eax, %eax
    cpuid
    xorl %r12d, %r12d
    cmpl $0x68747541, %ebx          /* "Auth": AMD, VMMCALL */
    sete %r12b
    movq $0x1234, %rax
    movq $0x1111, %rbx
    movq $0x2222, %rcx
    movq $0x3333, %rdx
    movq $0x4444, %rsi
    call hypercall
    outl %eax, $0x21
    shrq $32, %rax
    outl %eax, $0x21
    movq %rsp, %rax                 /* to CPL 3: a hypercall from user mode */
    pushq $0x23
    pushq %rax
    pushfq
    pushq $0x2b
    leaq 3f(%rip), %rax
    pushq %rax
    iretq
3:  movq $0x5678, %rax
    movq $0x55, %rbx
    call hypercall
    movq %rax, %rbx                 /* the result goes back in the next one */
    movq $0x9999, %rax
    call hypercall
4:  jmp 4b

hypercall:
    testq %r12, %r12
    jz 1f
    vmmcall
    ret
1:  vmcall
    ret

/* ---- LAPIC timer: xAPIC one-shot, x2APIC periodic, TSC deadline; HLT between ---------- */
    .global guest_timer
guest_timer:
    movabsq $0xfee00000, %rdi
    movl $0x1ff, 0xf0(%rdi)         /* SVR: enabled, spurious vector 0xff */
    movl $0xb, 0x3e0(%rdi)          /* divide by 1 */
    movl $0x40, 0x320(%rdi)         /* one-shot, vector 0x40 */
    movl $1000000, 0x380(%rdi)      /* 10 ms at 100 MHz */
    sti
1:  cli                             /* wait for ticks >= 1, halting between */
    cmpl $1, ticks(%rip)
    jae 5f
    sti
    hlt
    jmp 1b
5:  sti
    movl ticks(%rip), %eax
    outl %eax, $0x21
    cli
    movl $0x1b, %ecx                /* IA32_APIC_BASE: x2APIC mode */
    rdmsr
    orl $0x400, %eax
    wrmsr
    movb $1, x2apic_mode(%rip)
    movl $0x83e, %ecx
    movl $0xb, %eax
    xorl %edx, %edx
    wrmsr
    movl $0x832, %ecx               /* periodic, vector 0x40 */
    movl $0x20040, %eax
    wrmsr
    movl $0x838, %ecx               /* 10 ms */
    movl $1000000, %eax
    wrmsr
    sti
2:  cli                             /* wait for ticks >= 4, halting between */
    cmpl $4, ticks(%rip)
    jae 6f
    sti
    hlt
    jmp 2b
6:  sti
    cli
    movl $0x838, %ecx               /* stop */
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    movl ticks(%rip), %eax
    outl %eax, $0x21
    movl $0x832, %ecx               /* TSC-deadline mode, vector 0x40 */
    movl $0x40040, %eax
    xorl %edx, %edx
    wrmsr
    rdtsc
    shlq $32, %rdx
    orq %rax, %rdx
    addq $10000000, %rdx
    movq %rdx, %rax
    shrq $32, %rdx
    movl $0x6e0, %ecx
    wrmsr
    sti
3:  cli                             /* wait for ticks >= 5, halting between */
    cmpl $5, ticks(%rip)
    jae 7f
    sti
    hlt
    jmp 3b
7:  sti
    movl ticks(%rip), %eax
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

    .global timer_isr
timer_isr:
    pushq %rax
    pushq %rcx
    pushq %rdx
    incl ticks(%rip)
    cmpb $0, x2apic_mode(%rip)
    jne 1f
    movabsq $0xfee000b0, %rax       /* EOI, xAPIC */
    movl $0, (%rax)
    jmp 2f
1:  movl $0x80b, %ecx               /* EOI, x2APIC */
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
2:  popq %rdx
    popq %rcx
    popq %rax
    iretq

/* ---- CPUID and MSRs ------------------------------------------------------------------ */
    .global guest_cpuid
guest_cpuid:
    movl $0x40000000, %eax
    cpuid
    outl %eax, $0x21
    movl %ebx, %eax
    outl %eax, $0x21
    movl %ecx, %eax
    outl %eax, $0x21
    movl %edx, %eax
    outl %eax, $0x21
    movl $1, %eax
    cpuid
    movl %ecx, %eax
    outl %eax, $0x21
    movl $0x80000001, %eax
    cpuid
    movl %ecx, %eax
    outl %eax, $0x21
    movl $0xa, %eax                 /* no PMU */
    cpuid
    outl %eax, $0x21
    movl $0x12345678, %ecx          /* unknown MSRs: #GP */
    rdmsr
    movl $0xc0011234, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    movl gp_count(%rip), %eax
    outl %eax, $0x21
    movl $0xc0000102, %ecx          /* KERNEL_GS_BASE round trip */
    movl $0x12345000, %eax
    movl $0x7fff, %edx
    wrmsr
    xorl %eax, %eax
    xorl %edx, %edx
    rdmsr
    outl %eax, $0x21
    movl %edx, %eax
    outl %eax, $0x21
    movl $0x1b, %ecx                /* IA32_APIC_BASE */
    rdmsr
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

    .global gp_isr
gp_isr:
    incl gp_count(%rip)
    addq $8, %rsp                   /* the error code */
    addq $2, (%rsp)                 /* skip the 2-byte RDMSR/WRMSR */
    iretq

/* ---- Triple fault: no IDT, then an exception ------------------------------------------ */
    .global guest_triple
guest_triple:
    lidt empty_idt(%rip)
    ud2

/* ---- Loops ---------------------------------------------------------------------------- */
    .global guest_loop
guest_loop:                         /* RBX reflected exits, then R8 in-kernel ones */
1:  outb %al, $0x80
    decq %rbx
    jnz 1b
2:  xorl %eax, %eax
    cpuid
    decq %r8
    jnz 2b
    xorl %eax, %eax
    outl %eax, $0xf4

    .global guest_spin
guest_spin:                         /* an idle loop with interrupts on */
    sti
1:  jmp 1b

    .global guest_spin_cli
guest_spin_cli:                     /* interrupts off: only the hypervisor can stop it */
    cli
1:  jmp 1b

    .global guest_storm
guest_storm:
    xorl %eax, %eax
    cpuid
    jmp guest_storm

    .global guest_out_loop
guest_out_loop:
    outb %al, $0x80
    jmp guest_out_loop

/* ---- IOAPIC: an edge-triggered and a level-triggered pin ------------------------------- */
    .global guest_ioapic
guest_ioapic:
    movabsq $0xfee00000, %rdi
    movl $0x1ff, 0xf0(%rdi)         /* LAPIC on */
    movabsq $0xfec00000, %rsi
    movl $0x1a, (%rsi)              /* pin 5: edge, vector 0x45, to APIC 0 */
    movl $0x45, 0x10(%rsi)
    movl $0x1b, (%rsi)
    movl $0, 0x10(%rsi)
    movl $0x1c, (%rsi)              /* pin 6: level, vector 0x46 */
    movl $0x8046, 0x10(%rsi)
    movl $0x1d, (%rsi)
    movl $0, 0x10(%rsi)
    movl $1, (%rsi)                 /* the version register */
    movl 0x10(%rsi), %eax
    outl %eax, $0x21
    sti
    movl $1, %eax                   /* ready for the edge */
    outl %eax, $0x22
1:  cli                             /* wait for irq_count >= 1, halting between */
    cmpl $1, irq_count(%rip)
    jae 3f
    sti
    hlt
    jmp 1b
3:  sti
    movl irq_count(%rip), %eax
    outl %eax, $0x21
    movl $2, %eax                   /* ready for the level */
    outl %eax, $0x22
2:  cli                             /* wait for irq_count >= 3, halting between */
    cmpl $3, irq_count(%rip)
    jae 4f
    sti
    hlt
    jmp 2b
4:  sti
    movl irq_count(%rip), %eax
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

    .global ioapic_isr
ioapic_isr:
    pushq %rax
    incl irq_count(%rip)
    cmpl $3, irq_count(%rip)
    jne 1f
    movl $3, %eax                   /* the VMM lowers the level line now */
    outl %eax, $0x23
1:  movabsq $0xfee000b0, %rax       /* EOI: the level pin is delivered again while high */
    movl $0, (%rax)
    popq %rax
    iretq

/* ---- Two vCPUs: INIT/SIPI start the second, then IPIs ---------------------------------- */
    .global guest_ipi_sender
guest_ipi_sender:
    movl $0x1b, %ecx                /* x2APIC mode */
    rdmsr
    orl $0x400, %eax
    wrmsr
    movl $0x80f, %ecx               /* SVR: on */
    movl $0x1ff, %eax
    xorl %edx, %edx
    wrmsr
    movl $0x830, %ecx               /* INIT to APIC 1 */
    movl $0x4500, %eax
    movl $1, %edx
    wrmsr
    movl $0x60c, %eax               /* SIPI: start at 0xc000 */
    wrmsr
    sti
    movabsq $0xb000, %rsi
1:  pause                           /* until the receiver is ready */
    cmpl $1, (%rsi)
    jne 1b
    movl $0x830, %ecx               /* a fixed IPI, vector 0x47, to APIC 1 */
    movl $0x47, %eax
    movl $1, %edx
    wrmsr
    movl $0x83f, %ecx               /* a self IPI, vector 0x48 */
    movl $0x48, %eax
    xorl %edx, %edx
    wrmsr
2:  cli                             /* wait for ipi_count >= 1, halting between */
    cmpl $1, ipi_count(%rip)
    jae 3f
    sti
    hlt
    jmp 2b
3:  sti
    xorl %eax, %eax
    outl %eax, $0xf4

    .global guest_ipi_receiver
guest_ipi_receiver:
    movl $0x1b, %ecx
    rdmsr
    orl $0x400, %eax
    wrmsr
    movl $0x80f, %ecx
    movl $0x1ff, %eax
    xorl %edx, %edx
    wrmsr
    sti
    movabsq $0xb000, %rsi
    movl $1, (%rsi)                 /* ready */
1:  cli                             /* wait for ipi_count >= 1, halting between */
    cmpl $1, ipi_count(%rip)
    jae 2f
    sti
    hlt
    jmp 1b
2:  sti
    movl ipi_count(%rip), %eax
    outl %eax, $0x21
    movl $0x802, %ecx               /* its x2APIC ID */
    rdmsr
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

    .global ipi_isr
ipi_isr:
    pushq %rax
    pushq %rcx
    pushq %rdx
    lock incl ipi_count(%rip)
    movl $0x80b, %ecx               /* EOI */
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    popq %rdx
    popq %rcx
    popq %rax
    iretq

/* ---- SSE state belongs to its guest ---------------------------------------------------- */
    .global guest_sse
guest_sse:                          /* RBX: a pattern to keep in XMM0 across other guests */
    movq %rbx, %xmm0
    pshufd $0x44, %xmm0, %xmm0
    outl %eax, $0x25
    movq %xmm0, %rax
    outl %eax, $0x21
    shrq $32, %rax
    outl %eax, $0x21
    pshufd $0xee, %xmm0, %xmm1
    movq %xmm1, %rax
    outl %eax, $0x21
    xorl %eax, %eax
    outl %eax, $0xf4

/* ---- Data ----------------------------------------------------------------------------- */
    .balign 8
    .global gdt
gdt:
    .quad 0
    .quad 0x00cf9b000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf93000000ffff        /* 0x10: data */
    .quad 0x00af9b000000ffff        /* 0x18: 64-bit code */
    .quad 0x00cff3000000ffff        /* 0x20: user data */
    .quad 0x00affb000000ffff        /* 0x28: user 64-bit code */
gdt_ptr:
    .word 47
    .long gdt - vmguest_start + 0x1000
empty_idt:
    .word 0
    .quad 0
ticks:
    .long 0
gp_count:
    .long 0
x2apic_mode:
    .byte 0
    .balign 4
irq_count:
    .long 0
ipi_count:
    .long 0
pio_message:
    .ascii "REP OUTSB carries this sentence out of the guest in pieces of up to 256 bytes; "
    .ascii "it is long enough to need more than one exit, and every byte must arrive in order "
    .ascii "at port 0x30, where the VMM puts the pieces back together and compares them. "
    .ascii "This line makes it long enough."
pio_message_end:
    .balign 16
pio_buffer:
    .fill 16, 1, 0

    .global vmguest_end
vmguest_end:
    .popsection
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static vmguest_start: u8;
    static vmguest_end: u8;
    static gdt: u8;
    static timer_isr: u8;
    static gp_isr: u8;
    static ioapic_isr: u8;
    static ipi_isr: u8;
    pub static guest_ioapic: u8;
    pub static guest_ipi_sender: u8;
    pub static guest_ipi_receiver: u8;
    pub static guest_sse: u8;
    pub static guest_real: u8;
    pub static guest_pm32: u8;
    pub static guest_pio: u8;
    pub static guest_mmio: u8;
    pub static guest_hypercall: u8;
    pub static guest_timer: u8;
    pub static guest_cpuid: u8;
    pub static guest_triple: u8;
    pub static guest_loop: u8;
    pub static guest_spin: u8;
    pub static guest_spin_cli: u8;
    pub static guest_storm: u8;
    pub static guest_out_loop: u8;
}

/// The guest image.
pub fn image() -> &'static [u8] {
    let start = &raw const vmguest_start;
    let end = &raw const vmguest_end;
    // SAFETY: Both symbols bracket the assembled image in a read-only section of this program.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

/// Offset of a symbol of the image.
pub fn offset(sym: *const u8) -> u64 {
    sym as u64 - &raw const vmguest_start as u64
}

/// Offsets of the GDT and the interrupt handlers.
pub fn gdt_offset() -> u64 {
    offset(&raw const gdt)
}

/// Offset of the timer interrupt handler.
pub fn timer_isr_offset() -> u64 {
    offset(&raw const timer_isr)
}

/// Offset of the #GP handler.
pub fn gp_isr_offset() -> u64 {
    offset(&raw const gp_isr)
}

/// Offset of the IOAPIC test's interrupt handler.
pub fn ioapic_isr_offset() -> u64 {
    offset(&raw const ioapic_isr)
}

/// Offset of the IPI test's interrupt handler.
pub fn ipi_isr_offset() -> u64 {
    offset(&raw const ipi_isr)
}
