//! ATA disks by programmed I/O on the PC's two legacy channels (ATA/ATAPI-7 Vol. 1: IDENTIFY
//! DEVICE, READ/WRITE SECTORS EXT, FLUSH CACHE EXT), polled, interrupts off. Used under
//! Bochs and on machines whose disk controller runs in IDE mode.

use super::disk::{self, Disk, SECTOR};
use crate::error::KResult;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use x86_64::instructions::port::Port;

const STATUS_BSY: u8 = 0x80;
const STATUS_DRDY: u8 = 0x40;
const STATUS_DF: u8 = 0x20;
const STATUS_DRQ: u8 = 0x08;
const STATUS_ERR: u8 = 0x01;
/// Sectors per command (READ SECTORS EXT takes a 16-bit count; keep requests modest).
const MAX_SECTORS: usize = 128;
/// Status polls before a command is declared dead.
const TIMEOUT_POLLS: u32 = 10_000_000;

struct Channel {
    base: u16,
    control: u16,
}

const CHANNELS: [Channel; 2] = [
    Channel {
        base: 0x1f0,
        control: 0x3f6,
    },
    Channel {
        base: 0x170,
        control: 0x376,
    },
];

struct AtaDisk {
    base: u16,
    slave: bool,
    sectors: u64,
    model: String,
}

fn outb(port: u16, v: u8) {
    // SAFETY: The ATA task-file registers of a legacy channel, owned by this driver.
    unsafe { Port::<u8>::new(port).write(v) }
}

fn inb(port: u16) -> u8 {
    // SAFETY: As in `outb`; reading the status register also acknowledges the device.
    unsafe { Port::<u8>::new(port).read() }
}

fn inw(port: u16) -> u16 {
    // SAFETY: The data register of a legacy channel, read while the device offers data (DRQ).
    unsafe { Port::<u16>::new(port).read() }
}

fn outw(port: u16, v: u16) {
    // SAFETY: The data register, written while the device asks for data (DRQ).
    unsafe { Port::<u16>::new(port).write(v) }
}

/// Waits until BSY clears; then until `want` is set, unless an error shows.
fn wait(base: u16, want: u8) -> KResult<u8> {
    for _ in 0..TIMEOUT_POLLS {
        let s = inb(base + 7);
        if s & STATUS_BSY != 0 {
            continue;
        }
        if s & (STATUS_ERR | STATUS_DF) != 0 {
            return Err(alloc::format!(
                "ata: device error (status {s:#x}, error {:#x})",
                inb(base + 1)
            )
            .into());
        }
        if s & want == want {
            return Ok(s);
        }
    }
    Err("ata: device timed out".into())
}

impl AtaDisk {
    fn select(&self, lba_high: u8) {
        outb(
            self.base + 6,
            0xe0 | (u8::from(self.slave) << 4) | (lba_high & 0x0f),
        );
        // 400 ns for the selection to settle: four status reads.
        for _ in 0..4 {
            inb(self.base + 7);
        }
    }

    /// Issues a 48-bit LBA command for `count` sectors at `lba`.
    fn command48(&self, cmd: u8, lba: u64, count: u16) -> KResult<()> {
        wait(self.base, 0)?;
        self.select(0);
        let b = self.base;
        outb(b + 2, (count >> 8) as u8);
        outb(b + 3, (lba >> 24) as u8);
        outb(b + 4, (lba >> 32) as u8);
        outb(b + 5, (lba >> 40) as u8);
        outb(b + 2, count as u8);
        outb(b + 3, lba as u8);
        outb(b + 4, (lba >> 8) as u8);
        outb(b + 5, (lba >> 16) as u8);
        outb(b + 7, cmd);
        Ok(())
    }
}

impl Disk for AtaDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn model(&self) -> String {
        alloc::format!(
            "ATA {} ({:#x} {})",
            self.model,
            self.base,
            if self.slave { "slave" } else { "master" }
        )
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> KResult<()> {
        for (i, chunk) in buf.chunks_mut(MAX_SECTORS * SECTOR).enumerate() {
            let at = lba + (i * MAX_SECTORS) as u64;
            self.command48(0x24, at, (chunk.len() / SECTOR) as u16)?;
            for sector in chunk.chunks_mut(SECTOR) {
                wait(self.base, STATUS_DRQ)?;
                for pair in sector.chunks_mut(2) {
                    pair.copy_from_slice(&inw(self.base).to_le_bytes());
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[u8]) -> KResult<()> {
        for (i, chunk) in buf.chunks(MAX_SECTORS * SECTOR).enumerate() {
            let at = lba + (i * MAX_SECTORS) as u64;
            self.command48(0x34, at, (chunk.len() / SECTOR) as u16)?;
            for sector in chunk.chunks(SECTOR) {
                wait(self.base, STATUS_DRQ)?;
                for pair in sector.chunks(2) {
                    outw(self.base, u16::from_le_bytes([pair[0], pair[1]]));
                }
            }
            wait(self.base, 0)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> KResult<()> {
        wait(self.base, 0)?;
        self.select(0);
        outb(self.base + 7, 0xea); // FLUSH CACHE EXT
        wait(self.base, 0).map(|_| ())
    }
}

/// IDENTIFY DEVICE on one drive; `None` if there is no ATA disk there.
fn identify(ch: &Channel, slave: bool) -> Option<AtaDisk> {
    let b = ch.base;
    if inb(b + 7) == 0xff {
        return None; // floating bus: no channel
    }
    let disk = AtaDisk {
        base: b,
        slave,
        sectors: 0,
        model: String::new(),
    };
    disk.select(0);
    outb(b + 2, 0);
    outb(b + 3, 0);
    outb(b + 4, 0);
    outb(b + 5, 0);
    outb(b + 7, 0xec);
    if inb(b + 7) == 0 {
        return None;
    }
    for _ in 0..TIMEOUT_POLLS {
        if inb(b + 7) & STATUS_BSY == 0 {
            break;
        }
    }
    // ATAPI and SATA signatures: not an ATA disk.
    if inb(b + 4) != 0 || inb(b + 5) != 0 {
        return None;
    }
    wait(b, STATUS_DRQ | STATUS_DRDY).ok()?;
    let words: Vec<u16> = (0..256).map(|_| inw(b)).collect();
    let lba48 = words[83] & (1 << 10) != 0;
    let sectors = if lba48 {
        (0..4).fold(0u64, |acc, i| acc | (u64::from(words[100 + i]) << (16 * i)))
    } else {
        u64::from(words[60]) | (u64::from(words[61]) << 16)
    };
    let model: String = words[27..47]
        .iter()
        .flat_map(|w| [(w >> 8) as u8 as char, (*w & 0xff) as u8 as char])
        .collect::<String>()
        .trim()
        .into();
    (lba48 && sectors > 0).then_some(AtaDisk {
        sectors,
        model,
        ..disk
    })
}

/// Finds ATA disks on the legacy channels and registers them.
pub fn probe() {
    let mut disks: Vec<Box<dyn Disk>> = Vec::new();
    for ch in &CHANNELS {
        outb(ch.control, 0x02); // nIEN: no interrupts, we poll
        for slave in [false, true] {
            if let Some(d) = identify(ch, slave) {
                disks.push(Box::new(d));
            }
        }
    }
    disk::register(disks);
}
