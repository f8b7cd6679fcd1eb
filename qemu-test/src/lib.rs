//! The host-side harness: boots the OS under QEMU or Bochs, types at its serial console and
//! collects what it prints, with hard timeouts that fail closed.
//!
//! - [`tools`]: finds the emulators and image tools, installing them on Debian when root.
//! - [`iso`]: wraps a kernel and boot archive into a GRUB multiboot2 ISO.
//! - [`machine`]: a running emulator and its console.

pub mod iso;
pub mod machine;
pub mod tools;

pub use machine::{Boot, ConsoleInput, Emulator, Error, Machine, MachineConfig};
