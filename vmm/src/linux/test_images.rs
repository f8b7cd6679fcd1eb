//! Synthetic but realistic kernel images for tests: an ELF64 `vmlinux` with a PT_LOAD segment
//! and a PT_NOTE holding the Xen PVH entry note, shaped like Linux's, and a `bzImage` with a
//! real-format setup header (protocol 2.15 like Linux 6.1's). Field offsets follow the gABI
//! and boot.rst, written out here independently of the loader.

use alloc::vec::Vec;

/// Physical load address of the synthetic vmlinux (Linux's default, 16 MiB).
pub const VMLINUX_PADDR: u64 = 0x100_0000;
/// Its PVH entry, 0x40 into the segment.
pub const VMLINUX_PVH_ENTRY: u64 = VMLINUX_PADDR + 0x40;

fn w16(v: &mut [u8], o: usize, x: u16) {
    v[o..o + 2].copy_from_slice(&x.to_le_bytes());
}
fn w32(v: &mut [u8], o: usize, x: u32) {
    v[o..o + 4].copy_from_slice(&x.to_le_bytes());
}
fn w64(v: &mut [u8], o: usize, x: u64) {
    v[o..o + 8].copy_from_slice(&x.to_le_bytes());
}

/// A vmlinux: header, 2 program headers (PT_LOAD with `code` and a bss tail, PT_NOTE with a
/// "Linux" note then the Xen PVH note), the note, then the code.
pub fn vmlinux(code: &[u8], bss: u64) -> Vec<u8> {
    let phoff = 64;
    let notes_off = phoff + 2 * 56;
    let mut notes = Vec::new();
    for (name, kind, desc) in [
        (&b"Linux\0"[..], 6u32, &b"6.1.0\0\0\0"[..]),
        (&b"Xen\0"[..], 18, &VMLINUX_PVH_ENTRY.to_le_bytes()[..]),
    ] {
        notes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        notes.extend_from_slice(&kind.to_le_bytes());
        notes.extend_from_slice(name);
        notes.resize(notes.len().next_multiple_of(4), 0);
        notes.extend_from_slice(desc);
        notes.resize(notes.len().next_multiple_of(4), 0);
    }
    let code_off = (notes_off + notes.len()).next_multiple_of(0x1000);
    let mut f = alloc::vec![0u8; code_off + code.len()];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // ELFDATA2LSB
    f[6] = 1; // EV_CURRENT
    w16(&mut f, 16, 2); // ET_EXEC
    w16(&mut f, 18, 62); // EM_X86_64
    w32(&mut f, 20, 1);
    w64(&mut f, 24, 0xffff_ffff_8100_0000); // e_entry: virtual, unused for PVH
    w64(&mut f, 32, phoff as u64);
    w16(&mut f, 52, 64);
    w16(&mut f, 54, 56);
    w16(&mut f, 56, 2);
    // PT_LOAD
    let p = phoff;
    w32(&mut f, p, 1);
    w32(&mut f, p + 4, 7);
    w64(&mut f, p + 8, code_off as u64);
    w64(&mut f, p + 16, 0xffff_ffff_8100_0000);
    w64(&mut f, p + 24, VMLINUX_PADDR);
    w64(&mut f, p + 32, code.len() as u64);
    w64(&mut f, p + 40, code.len() as u64 + bss);
    // PT_NOTE
    let p = phoff + 56;
    w32(&mut f, p, 4);
    w64(&mut f, p + 8, notes_off as u64);
    w64(&mut f, p + 32, notes.len() as u64);
    w64(&mut f, p + 40, notes.len() as u64);
    f[notes_off..notes_off + notes.len()].copy_from_slice(&notes);
    f[code_off..].copy_from_slice(code);
    f
}

/// Byte offset in the vmlinux of the PVH note's descriptor (for corruption tests).
pub fn vmlinux_note_desc_offset(image: &[u8]) -> usize {
    image.windows(4).position(|w| w == b"Xen\0").unwrap() + 4
}

/// A bzImage: 4 setup sectors after the boot sector (setup_sects = 4), protocol 2.15,
/// relocatable, 64-bit entry, 2 MiB alignment, preferred address 16 MiB, `init_size` the
/// payload plus `extra`.
pub fn bzimage(payload: &[u8], extra: u32) -> Vec<u8> {
    let setup = 5 * 512;
    let mut f = alloc::vec![0u8; setup + payload.len()];
    f[0x1f1] = 4; // setup_sects
    w32(&mut f, 0x1f4, payload.len().div_ceil(16) as u32); // syssize
    w16(&mut f, 0x1fe, 0xaa55);
    f[0x200] = 0xeb; // jmp short
    f[0x201] = 0x6a; // to 0x26c: the header ends there
    f[0x202..0x206].copy_from_slice(b"HdrS");
    w16(&mut f, 0x206, 0x020f);
    f[0x211] = 0x01; // LOADED_HIGH
    w32(&mut f, 0x214, 0x10_0000); // code32_start
    w32(&mut f, 0x22c, 0x7fff_ffff); // initrd_addr_max
    w32(&mut f, 0x230, 0x20_0000); // kernel_alignment
    f[0x234] = 1; // relocatable_kernel
    f[0x235] = 21; // min_alignment
    w16(&mut f, 0x236, 0x7f); // xloadflags: KERNEL_64 | CAN_BE_LOADED_ABOVE_4G | EFI ...
    w32(&mut f, 0x238, 2047); // cmdline_size
    w64(&mut f, 0x258, 0x100_0000); // pref_address
    w32(&mut f, 0x260, payload.len() as u32 + extra); // init_size
    f[setup..].copy_from_slice(payload);
    f
}

/// A tiny initramfs: a newc cpio archive with /init.
pub fn initramfs() -> Vec<u8> {
    let mut w = cpio::Writer::new();
    w.file("init", 0o755, b"#!/bin/sh\necho hi\n");
    w.finish()
}
