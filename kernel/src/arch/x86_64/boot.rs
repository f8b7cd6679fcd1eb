//! Boot entry: the boot headers, the 32-bit entry code and the switch to long mode.
//!
//! Two loaders reach the same code:
//! - QEMU `-kernel` (and any PVH loader: Xen, Firecracker, cloud-hypervisor) reads the Xen
//!   `PHYS32_ENTRY` ELF note and enters `_start_pvh` in 32-bit protected mode, paging off,
//!   with `ebx` = physical address of an `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h).
//! - GRUB (`multiboot2`) loads the ELF by its program headers and enters `_start32` in 32-bit
//!   protected mode with `eax` = 0x36d76289 and `ebx` = the multiboot2 information
//!   (Multiboot2 specification, section 3.3).
//!
//! Both paths build early page tables that identity-map the first 4 GiB, map the same 4 GiB at
//! the direct-map base and the first 2 GiB at the kernel base (-2 GiB), enable long mode, and jump
//! to `kmain(boot_magic, info_phys)` on the boot stack. `mm::paging` replaces these tables with
//! the real ones as soon as the frame allocator exists.

/// Magic value passed to `kmain` by the PVH path (the `hvm_start_info` magic).
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Magic value a multiboot2 loader leaves in `eax`.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

core::arch::global_asm!(
    r#"
    .section .boot.header, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6                    /* multiboot2 magic */
    .long 0                             /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    .balign 8                           /* end tag */
    .short 0
    .short 0
    .long 8
mb2_header_end:

    /* The PVH entry point. QEMU computes the descriptor offset assuming 4-byte note alignment. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                             /* namesz */
    .long 8                             /* descsz */
    .long 18                            /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .quad _start_pvh

    .section .boot.bss, "aw", @nobits
    .balign 4096
early_pml4:      .skip 4096
early_pdpt_low:  .skip 4096
early_pdpt_high: .skip 4096
early_pd:        .skip 4096 * 4
early_stack:     .skip 4096
early_stack_top:

    .section .boot.data, "aw"
    .balign 8
early_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff            /* 0x10: data */
early_gdt_end:
early_gdt_ptr:
    .short early_gdt_end - early_gdt - 1
    .long early_gdt

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    mov edi, eax                        /* boot magic, kept until kmain */
    mov esi, ebx                        /* boot information, kept until kmain */
    jmp 1f

    .global _start_pvh
_start_pvh:
    cli
    mov edi, {pvh_magic}
    mov esi, ebx

1:  mov esp, offset early_stack_top

    /* Long mode is required; stop quietly without it. */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 9f
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29
    jz 9f
    mov ebp, edx                        /* remember NX support (bit 20) */

    /* PD entries: 2048 2-MiB pages covering 0..4 GiB. */
    mov ecx, 0
2:  mov eax, ecx
    shl eax, 21
    or eax, 0x83                        /* present, writable, 2 MiB */
    mov edx, ecx
    shr edx, 11                         /* high dword of the physical address */
    mov [early_pd + ecx * 8], eax
    mov [early_pd + ecx * 8 + 4], edx
    inc ecx
    cmp ecx, 2048
    jne 2b

    /* PDPT entries: low and direct map share early_pdpt_low (4 GiB); -2 GiB maps 0..2 GiB. */
    mov eax, offset early_pd
    or eax, 3
    mov [early_pdpt_low], eax
    add eax, 4096
    mov [early_pdpt_low + 8], eax
    add eax, 4096
    mov [early_pdpt_low + 16], eax
    add eax, 4096
    mov [early_pdpt_low + 24], eax
    mov eax, offset early_pd
    or eax, 3
    mov [early_pdpt_high + 510 * 8], eax
    add eax, 4096
    mov [early_pdpt_high + 511 * 8], eax

    mov eax, offset early_pdpt_low
    or eax, 3
    mov [early_pml4], eax               /* identity */
    mov [early_pml4 + 256 * 8], eax     /* direct map */
    mov eax, offset early_pdpt_high
    or eax, 3
    mov [early_pml4 + 511 * 8], eax     /* kernel */

    mov eax, cr4
    or eax, 1 << 5                      /* PAE */
    mov cr4, eax
    mov eax, offset early_pml4
    mov cr3, eax
    mov ecx, 0xc0000080                 /* IA32_EFER */
    rdmsr
    or eax, 1 << 8                      /* LME */
    test ebp, 1 << 20
    jz 3f
    or eax, 1 << 11                     /* NXE */
3:  wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1   /* PG, WP, PE */
    mov cr0, eax
    lgdt [early_gdt_ptr]
    push 0x08                           /* far return into the 64-bit code segment */
    mov eax, offset long_mode
    push eax
    retf

9:  hlt
    jmp 9b

    .code64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rax, offset start64
    jmp rax

    .text
start64:
    lea rsp, [rip + {stack} + {stack_size}]
    xor ebp, ebp
    mov edi, edi                        /* upper halves are undefined after the mode switch */
    mov esi, esi
    call {kmain}
    ud2
"#,
    pvh_magic = const PVH_MAGIC,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    kmain = sym crate::kmain,
);

/// Size of the stack `kmain` starts on (it becomes the idle thread's stack).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

/// The boot stack; only the assembly above refers to it.
static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);
