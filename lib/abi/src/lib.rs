//! The ABI shared across privilege domains: what the kernel, our user programs, the VMM and the
//! Linux guest agent must agree on. Nobody copies these definitions; they depend on this crate.
//!
//! - [`sys`]: system call numbers, flags and structures.
//! - [`errors`]: the kernel's error strings.
//! - [`hv`]: the hypervisor interface a guest sees (CPUID signature, hypercalls).
//! - [`vm`]: the `#vm` device's records (vCPU state, exits, commands) shared with VMMs.

#![cfg_attr(not(test), no_std)]

pub mod errors;
pub mod hv;
pub mod sys;
pub mod vm;
