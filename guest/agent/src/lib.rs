//! The pure logic of the Linux filesystem VM's init agent, kept apart from the PID 1 program
//! (`main.rs`) so that host tests and the host side of the session (guest-image's QEMU harness,
//! later our VMM) share one definition of what the agent reads and writes:
//!
//! - [`cmdline`]: the `fsvm.*` options on the kernel command line;
//! - [`control`]: the control protocol on `hvc0` (commands in, reply lines out) and the final
//!   machine-readable exit-status line;
//! - [`power`]: whether to power off by hypercall, and with which instruction.

pub mod cmdline;
pub mod control;
pub mod power;
