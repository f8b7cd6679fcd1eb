//! virtio over PCI through the `virtio-drivers` crate: our `Hal` (DMA memory from the frame
//! allocator, MMIO through `mm::mmio`, buffers shared by physical address or bounced when they
//! are not physically contiguous), PCI configuration access through ports 0xcf8/0xcfc, and the
//! virtio-blk disks found on the PCI bus.

use super::disk::{self, Disk, SECTOR};
use super::pci;
use crate::error::KResult;
use crate::mm::{PAGE_SIZE, PhysAddr, frame, paging};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::{BufferDirection, Hal};

/// The kernel's side of the DMA contract.
pub struct KernelHal;

fn bounce_pages(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE as usize)
}

/// The physical address of `[virt, virt + len)` if it is physically contiguous.
fn contiguous_phys(virt: u64, len: usize) -> Option<u64> {
    let start = paging::translate(virt)?;
    let mut page = virt & !(PAGE_SIZE - 1);
    let mut expected = start - (virt - page);
    while page < virt + len as u64 {
        if paging::translate(page)? != expected {
            return None;
        }
        page += PAGE_SIZE;
        expected += PAGE_SIZE;
    }
    Some(start)
}

// SAFETY: DMA memory comes from the frame allocator (zeroed, page-aligned, contiguous, owned
// until `dma_dealloc`); MMIO addresses are mapped by `mm::mmio`; shared buffers are either
// physically contiguous kernel memory, passed by physical address, or copied to and from a
// bounce buffer that nothing else uses.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (u64, NonNull<u8>) {
        let f = frame::alloc_contiguous(pages, PAGE_SIZE).expect("out of memory for virtio DMA");
        // SAFETY: The frames were just allocated to us and are mapped by the direct map.
        unsafe { core::ptr::write_bytes(f.as_mut_ptr(), 0, pages * PAGE_SIZE as usize) };
        (
            f.addr(),
            NonNull::new(f.as_mut_ptr()).expect("the direct map is not null"),
        )
    }

    unsafe fn dma_dealloc(paddr: u64, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        frame::free_contiguous(frame::Frame(PhysAddr(paddr)), pages);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: u64, size: usize) -> NonNull<u8> {
        let virt = crate::mm::mmio::map(paddr, size as u64).expect("cannot map a virtio BAR");
        NonNull::new(virt as *mut u8).expect("MMIO mappings are not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> u64 {
        let (virt, len) = (buffer.as_ptr() as *mut u8 as u64, buffer.len());
        if let Some(phys) = contiguous_phys(virt, len) {
            return phys;
        }
        let f = frame::alloc_contiguous(bounce_pages(len), PAGE_SIZE)
            .expect("out of memory for a bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: The caller guarantees `buffer` is valid for reads of `len` bytes; the
            // bounce frames are ours and at least as long.
            unsafe { core::ptr::copy_nonoverlapping(virt as *const u8, f.as_mut_ptr(), len) };
        }
        f.addr()
    }

    unsafe fn unshare(paddr: u64, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let (virt, len) = (buffer.as_ptr() as *mut u8 as u64, buffer.len());
        if contiguous_phys(virt, len) == Some(paddr) {
            return;
        }
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` is the bounce buffer `share` made for this buffer, mapped by the
            // direct map; the caller guarantees `buffer` is valid for writes.
            unsafe {
                core::ptr::copy_nonoverlapping(PhysAddr(paddr).to_virt(), virt as *mut u8, len)
            };
        }
        frame::free_contiguous(frame::Frame(PhysAddr(paddr)), bounce_pages(len));
    }
}

/// PCI configuration space through the legacy ports, for `virtio-drivers`.
pub struct PortCam;

impl ConfigurationAccess for PortCam {
    fn read_word(&self, f: DeviceFunction, offset: u8) -> u32 {
        pci::read32(
            pci::Bdf {
                bus: f.bus,
                dev: f.device,
                func: f.function,
            },
            offset,
        )
    }

    fn write_word(&mut self, f: DeviceFunction, offset: u8, data: u32) {
        pci::write32(
            pci::Bdf {
                bus: f.bus,
                dev: f.device,
                func: f.function,
            },
            offset,
            data,
        )
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

struct VirtioDisk {
    blk: VirtIOBlk<KernelHal, PciTransport>,
    bdf: pci::Bdf,
}

fn io_error(what: &str, e: virtio_drivers::Error) -> crate::error::Error {
    alloc::format!("virtio-blk {what}: {e}").into()
}

impl Disk for VirtioDisk {
    fn sectors(&self) -> u64 {
        self.blk.capacity()
    }

    fn model(&self) -> String {
        alloc::format!("virtio-blk at {}", self.bdf)
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> KResult<()> {
        self.blk
            .read_blocks(lba as usize, buf)
            .map_err(|e| io_error("read", e))
    }

    fn write(&mut self, lba: u64, buf: &[u8]) -> KResult<()> {
        self.blk
            .write_blocks(lba as usize, buf)
            .map_err(|e| io_error("write", e))
    }

    fn flush(&mut self) -> KResult<()> {
        self.blk.flush().map_err(|e| io_error("flush", e))
    }
}

/// Finds the virtio-blk functions on the PCI bus and registers their disks.
pub fn probe() {
    let mut root = PciRoot::new(PortCam);
    let mut disks: Vec<Box<dyn Disk>> = Vec::new();
    for d in pci::devices() {
        // Transitional (0x1001) and modern (0x1042) virtio-blk.
        if d.vendor != 0x1af4 || !(d.device == 0x1001 || d.device == 0x1042) {
            continue;
        }
        let f = DeviceFunction {
            bus: d.bdf.bus,
            device: d.bdf.dev,
            function: d.bdf.func,
        };
        root.set_command(f, Command::MEMORY_SPACE | Command::BUS_MASTER);
        let blk = PciTransport::new::<KernelHal, _>(&mut root, f)
            .map_err(|e| alloc::format!("{e}"))
            .and_then(|t| VirtIOBlk::<KernelHal, _>::new(t).map_err(|e| alloc::format!("{e}")));
        match blk {
            Ok(blk) => disks.push(Box::new(VirtioDisk { blk, bdf: d.bdf })),
            Err(e) => log::warn!("virtio-blk at {}: {e}", d.bdf),
        }
    }
    disk::register(disks);
}

const _: () = assert!(SECTOR == virtio_drivers::device::blk::SECTOR_SIZE);
