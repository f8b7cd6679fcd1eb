use super::bzimage::offset;
use super::test_images::*;
use super::*;
use crate::layout::{E820Type, MIB, PVH_START_INFO, ZERO_PAGE};
use crate::memory::FakeGuestMemory;
use crate::wire::{u16_at, u32_at, u64_at};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

const MEM: u64 = 64 * MIB;

fn guest(size: u64) -> (FakeGuestMemory, GuestLayout) {
    let layout = GuestLayout::new(size).unwrap();
    (FakeGuestMemory::new(&layout.ram_regions()), layout)
}

fn read(mem: &FakeGuestMemory, addr: u64, len: usize) -> Vec<u8> {
    let mut v = alloc::vec![0; len];
    mem.read(addr, &mut v).unwrap();
    v
}

fn cstr(mem: &FakeGuestMemory, addr: u64) -> String {
    let b = read(mem, addr, 4096);
    String::from_utf8(b[..b.iter().position(|&c| c == 0).unwrap()].to_vec()).unwrap()
}

#[test]
fn vmlinux_loads_through_pvh() {
    let (mem, layout) = guest(MEM);
    let code: Vec<u8> = (0..0x3000u32).map(|i| i as u8 | 1).collect();
    mem.write(VMLINUX_PADDR + 0x3000, &[0xcc; 0x100]).unwrap(); // garbage where bss goes
    let initrd = initramfs();
    let k = load(
        &mem,
        &layout,
        &vmlinux(&code, 0x2000),
        Some(&initrd),
        "console=hvc0 quiet",
    )
    .unwrap();
    assert_eq!(k.protocol, BootProtocol::Pvh);
    assert_eq!(k.kernel, (VMLINUX_PADDR, VMLINUX_PADDR + 0x5000));
    assert_eq!(read(&mem, VMLINUX_PADDR, 0x3000), code);
    assert!(
        read(&mem, VMLINUX_PADDR + 0x3000, 0x2000)
            .iter()
            .all(|&b| b == 0),
        "bss zeroed"
    );
    assert_eq!((k.cpu.rip, k.cpu.rbx), (VMLINUX_PVH_ENTRY, PVH_START_INFO));
    // hvm_start_info, checked field by field against start_info.h.
    let si = read(&mem, PVH_START_INFO, pvh::START_INFO_SIZE);
    assert_eq!(u32_at(&si, 0), Some(0x336e_c578));
    assert_eq!(u32_at(&si, 4), Some(1));
    assert_eq!(u32_at(&si, 12), Some(1), "one module: the initrd");
    assert_eq!(cstr(&mem, u64_at(&si, 24).unwrap()), "console=hvc0 quiet");
    assert_eq!(u64_at(&si, 32), Some(0), "no RSDP");
    let modlist = u64_at(&si, 16).unwrap();
    let (iaddr, ilen) = (
        mem.read_u64(modlist).unwrap(),
        mem.read_u64(modlist + 8).unwrap(),
    );
    assert_eq!(Some((iaddr, ilen)), k.initrd);
    assert_eq!(read(&mem, iaddr, ilen as usize), initrd);
    assert_eq!(iaddr % 4096, 0);
    assert!(iaddr + ilen <= MEM && iaddr >= k.kernel.1);
    let (memmap, n) = (u64_at(&si, 40).unwrap(), u32_at(&si, 48).unwrap());
    let e820 = layout.e820();
    assert_eq!(n as usize, e820.len());
    for (i, e) in e820.iter().enumerate() {
        let at = memmap + 24 * i as u64;
        assert_eq!(
            (
                mem.read_u64(at).unwrap(),
                mem.read_u64(at + 8).unwrap(),
                mem.read_u32(at + 16).unwrap()
            ),
            (e.addr, e.size, e.kind as u32)
        );
    }
}

#[test]
fn bzimage_loads_through_the_64_bit_protocol() {
    let (mem, layout) = guest(MEM);
    let payload: Vec<u8> = (0..0x4000u32).map(|i| (i * 7) as u8).collect();
    let image = bzimage(&payload, 0x10_0000);
    let initrd = initramfs();
    let k = load(&mem, &layout, &image, Some(&initrd), "root=/dev/vda1").unwrap();
    assert_eq!(k.protocol, BootProtocol::Linux64);
    assert_eq!(read(&mem, 0x100_0000, payload.len()), payload);
    assert_eq!((k.cpu.rip, k.cpu.rsi), (0x100_0200, ZERO_PAGE));
    let zp = read(&mem, ZERO_PAGE, 4096);
    // The setup header is copied verbatim except for what the loader fills in.
    assert_eq!(&zp[0x1f1..0x210], &image[0x1f1..0x210]);
    assert_eq!(&zp[0x230..0x26c], &image[0x230..0x26c]);
    assert_eq!(zp[offset::TYPE_OF_LOADER], 0xff);
    assert_eq!(zp[offset::SENTINEL], 0);
    assert_eq!(
        cstr(&mem, u64::from(u32_at(&zp, offset::CMD_LINE_PTR).unwrap())),
        "root=/dev/vda1"
    );
    let (ri, rs) = (
        u32_at(&zp, offset::RAMDISK_IMAGE).unwrap(),
        u32_at(&zp, offset::RAMDISK_SIZE).unwrap(),
    );
    assert_eq!(Some((u64::from(ri), u64::from(rs))), k.initrd);
    assert!(
        u64::from(ri) >= 0x100_0000 + 0x4000 + 0x10_0000,
        "initrd above init_size"
    );
    assert_eq!(u32_at(&zp, offset::EXT_RAMDISK_IMAGE), Some(0));
    let n = usize::from(zp[offset::E820_ENTRIES]);
    assert_eq!(n, layout.e820().len());
    let last = offset::E820_TABLE + 20 * (n - 1);
    assert_eq!(u64_at(&zp, last), Some(MIB));
    assert_eq!(u64_at(&zp, last + 8), Some(MEM - MIB));
    assert_eq!(u32_at(&zp, last + 16), Some(E820Type::Ram as u32));
}

fn err(kernel: &[u8], initrd: Option<&[u8]>, cmdline: &str) -> LoadError {
    let (mem, layout) = guest(MEM);
    load(&mem, &layout, kernel, initrd, cmdline).unwrap_err()
}

#[test]
fn every_truncation_of_a_kernel_is_an_error() {
    for image in [vmlinux(&[0x90; 0x200], 0), bzimage(&[0x90; 0x200], 0)] {
        for len in (0..image.len()).step_by(7).chain([image.len() - 1]) {
            let e = err(&image[..len], None, "");
            assert!(!matches!(e, LoadError::Memory(_)), "prefix {len}: {e}");
        }
    }
}

#[test]
fn malformed_vmlinux_errors_name_the_problem() {
    let good = vmlinux(&[0x90; 0x100], 0);
    let mut v = good.clone();
    v[18] = 3; // EM_386
    assert!(err(&v, None, "").to_string().contains("not an x86-64"));
    let mut v = good.clone();
    let n = vmlinux_note_desc_offset(&v);
    v[n - 12 + 8] = 17; // note type: not PHYS32_ENTRY
    assert!(err(&v, None, "").to_string().contains("CONFIG_PVH"));
    let mut v = good.clone();
    v[n..n + 8].copy_from_slice(&0x900_0000u64.to_le_bytes()); // entry outside the segment
    assert!(
        err(&v, None, "")
            .to_string()
            .contains("outside every loaded segment")
    );
    let mut v = good.clone();
    v[64 + 24..64 + 32].copy_from_slice(&(60 * MIB).to_le_bytes()); // p_paddr near the top
    v[64 + 40..64 + 48].copy_from_slice(&(8 * MIB).to_le_bytes()); // p_memsz past the end
    v[n..n + 8].copy_from_slice(&(60 * MIB + 0x40).to_le_bytes());
    assert!(matches!(err(&v, None, ""), LoadError::DoesNotFit(_)));
    let mut v = good.clone();
    v[64 + 40..64 + 48].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        err(&v, None, ""),
        LoadError::Invalid(_) | LoadError::DoesNotFit(_)
    ));
    let mut v = good.clone();
    v[56..58].copy_from_slice(&0u16.to_le_bytes()); // no program headers
    assert!(matches!(err(&v, None, ""), LoadError::Invalid(_)));
    let mut v = good;
    v[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // p_offset wraps
    assert!(matches!(err(&v, None, ""), LoadError::Truncated(_)));
}

#[test]
fn malformed_bzimage_errors_name_the_problem() {
    let good = bzimage(&[0x90; 0x400], 0x1000);
    let mut b = good.clone();
    b[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
    assert!(err(&b, None, "").to_string().contains("older than 2.12"));
    let mut b = good.clone();
    b[0x236] = 0;
    assert!(err(&b, None, "").to_string().contains("64-bit entry"));
    let mut b = good.clone();
    b[0x211] = 0;
    assert!(err(&b, None, "").to_string().contains("zImage"));
    let mut b = good.clone();
    b[0x260..0x264].copy_from_slice(&(100 * MIB as u32).to_le_bytes());
    assert!(matches!(err(&b, None, ""), LoadError::DoesNotFit(_)));
    let mut b = good.clone();
    b[0x260..0x264].copy_from_slice(&0x10u32.to_le_bytes());
    assert!(err(&b, None, "").to_string().contains("init_size"));
    let mut b = good.clone();
    b[0x1f1] = 200; // setup longer than the file
    assert!(matches!(err(&b, None, ""), LoadError::Truncated(_)));
    let mut b = good.clone();
    b[0x258..0x260].copy_from_slice(&0x100_1000u64.to_le_bytes());
    assert!(err(&b, None, "").to_string().contains("alignment"));
    assert_eq!(err(&[0u8; 4096], None, ""), LoadError::UnknownFormat);
    assert!(matches!(
        err(&good, None, &"x".repeat(2048)),
        LoadError::CmdlineTooLong {
            len: 2048,
            max: 2047
        }
    ));
    assert!(load(&guest(MEM).0, &guest(MEM).1, &good, None, &"x".repeat(2047)).is_ok());
}

#[test]
fn bad_initrds_are_refused() {
    let k = vmlinux(&[0x90; 0x100], 0);
    assert!(err(&k, Some(&[]), "").to_string().contains("empty"));
    assert!(
        err(&k, Some(b"PK\x03\x04zip"), "")
            .to_string()
            .contains("neither a cpio")
    );
    let cpio = initramfs();
    assert!(
        err(&k, Some(&cpio[..cpio.len() - 200]), "")
            .to_string()
            .contains("truncated")
    );
    assert!(
        err(&k, Some(&[0x1f, 0x8b, 8]), "")
            .to_string()
            .contains("gzip")
    );
    // Larger than the memory above the kernel.
    let big = alloc::vec![0x1f; (60 * MIB) as usize];
    let mut big = big;
    big[1] = 0x8b;
    assert!(err(&k, Some(&big), "").to_string().contains("more memory"));
}

#[test]
fn initrd_respects_initrd_addr_max() {
    let (mem, layout) = guest(256 * MIB);
    let mut b = bzimage(&[0x90; 0x400], 0x1000);
    b[0x22c..0x230].copy_from_slice(&(0x400_0000u32 - 1).to_le_bytes());
    let k = load(&mem, &layout, &b, Some(&initramfs()), "").unwrap();
    let (a, l) = k.initrd.unwrap();
    assert!(a + l <= 0x400_0000);
}

/// A real Linux image, from an environment variable or the build caches, when one is there:
/// guest-image's cache (`$TERN_CACHE`, `$XDG_CACHE_HOME/tern` or `~/.cache/tern`, then
/// `kernel/<key>/`), and for bzImage also a Debian kernel unpacked into `<cache>/debian/`.
fn real_image(var: &str, name: &str) -> Option<(std::path::PathBuf, Vec<u8>)> {
    use std::path::PathBuf;
    let env = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let mut candidates: Vec<PathBuf> = env(var).into_iter().collect();
    let roots: Vec<PathBuf> = [
        env("TERN_CACHE"),
        env("XDG_CACHE_HOME").map(|x| x.join("tern")),
        env("HOME").map(|h| h.join(".cache/tern")),
    ]
    .into_iter()
    .flatten()
    .collect();
    for root in &roots {
        for e in std::fs::read_dir(root.join("kernel"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !e.file_name().to_string_lossy().ends_with(".partial") {
                candidates.push(e.path().join(name));
            }
        }
        if name == "bzImage" {
            for e in std::fs::read_dir(root.join("debian"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with("bzImage") {
                    candidates.push(e.path());
                }
            }
        }
    }
    let p = candidates.into_iter().find(|p| p.is_file())?;
    let data = std::fs::read(&p).ok()?;
    Some((p, data))
}

#[test]
fn real_vmlinux_when_available() {
    let Some((path, image)) = real_image("TERN_GUEST_VMLINUX", "vmlinux") else {
        std::eprintln!(
            "SKIPPED real_vmlinux_when_available: no vmlinux (set TERN_GUEST_VMLINUX or build the guest)"
        );
        return;
    };
    let (mem, layout) = guest(256 * MIB);
    let v = elf::parse(&image).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let k = load(&mem, &layout, &image, Some(&initramfs()), "console=hvc0").unwrap();
    assert_eq!(k.cpu.rip, v.pvh_entry);
    assert!(k.kernel.0 >= MIB && k.cpu.rip >= k.kernel.0 && k.cpu.rip < k.kernel.1);
    std::eprintln!(
        "loaded {} ({} bytes): PVH entry {:#x}, kernel {:#x?}",
        path.display(),
        image.len(),
        k.cpu.rip,
        k.kernel
    );
}

#[test]
fn real_bzimage_when_available() {
    let Some((path, image)) = real_image("TERN_GUEST_BZIMAGE", "bzImage") else {
        std::eprintln!(
            "SKIPPED real_bzimage_when_available: no bzImage (set TERN_GUEST_BZIMAGE or build the guest)"
        );
        return;
    };
    let h = bzimage::parse(&image).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(h.version >= 0x020c, "the 64-bit entry needs protocol 2.12");
    let (mem, layout) = guest(256 * MIB);
    let k = load(&mem, &layout, &image, Some(&initramfs()), "console=hvc0").unwrap();
    assert_eq!(k.cpu.rip, h.pref_address + 0x200);
    let zp = read(&mem, ZERO_PAGE, 4096);
    assert_eq!(u16_at(&zp, offset::BOOT_FLAG), Some(0xaa55));
    assert_eq!(&zp[offset::HEADER..offset::HEADER + 4], b"HdrS");
    assert_eq!(&zp[0x1f1..h.header_end][..0x1f], &image[0x1f1..0x210]);
    assert_eq!(
        read(&mem, h.pref_address, 4096),
        image[h.setup_size..h.setup_size + 4096]
    );
    std::eprintln!(
        "loaded {} ({} bytes): protocol {:#x}, init_size {:#x}, initrd at {:#x?}",
        path.display(),
        image.len(),
        h.version,
        h.init_size,
        k.initrd
    );
}
