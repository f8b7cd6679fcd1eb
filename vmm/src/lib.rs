//! The VMM library used by `vmrunkernel` (DESIGN.md section 4): everything the user-space half of
//! a virtual machine does that is pure logic, host-tested with in-memory fakes.
//!
//! - [`memory`]: the checked accessor over guest RAM (the one place with `unsafe`) and its fake.
//! - [`layout`]: the guest-physical address map, the e820 memory map and the MMIO window.
//! - [`linux`]: loading Linux, as a `vmlinux` through the PVH entry or a `bzImage` through the
//!   64-bit boot protocol, with the boot-time registers, GDT and page tables of each.
//! - [`mptable`]: the Intel MP table through which a Linux without ACPI finds its IOAPIC.
//! - [`bus`] and [`irq`]: decoded MMIO accesses dispatched to devices, and interrupt lines out.
//! - [`virtio`]: the virtio-mmio transport, split virtqueues, and the blk, console and net devices.
//! - [`config`]: the VM configuration parsed from `vmrunkernel` arguments and option files.
//! - [`nat`]: the NAT behind virtio-net: the router the guest sees, and TCP port forwards.
//! - [`pio`]: the legacy PC ports a Linux guest still touches (COM1, the CMOS clock, the PIT).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bus;
pub mod config;
pub mod irq;
pub mod layout;
pub mod linux;
pub mod memory;
pub mod mptable;
pub mod nat;
pub mod pio;
pub mod virtio;
mod wire;

#[cfg(test)]
mod assembly_tests;
#[cfg(test)]
mod fuzz;
