//! The device table: every `#name` the kernel knows, and attaching one.

use super::chan::{Chan, Dev};
use crate::error::KResult;
use abi::errors::ENOATTACH;

/// Every device, by name.
static DEVICES: [&'static dyn Dev; 10] = [
    &crate::dev::root::ROOT,
    &crate::dev::cons::CONS,
    &crate::dev::pipe::PIPE,
    &crate::dev::arch::ARCH,
    &crate::dev::tmpfs::TMPFS,
    &crate::dev::procdev::PROC,
    &crate::dev::srv::SRV,
    &crate::dev::sd::SD,
    &crate::dev::ip::IP,
    &crate::dev::vm::VM,
];

fn devices() -> &'static [&'static dyn Dev] {
    &DEVICES
}

/// The device called `name`.
pub fn lookup(name: &str) -> Option<&'static dyn Dev> {
    devices().iter().copied().find(|d| d.name() == name)
}

/// Attaches `#name` (the text after `#` up to the first `/`).
pub fn attach(name: &str) -> KResult<Chan> {
    let dev = lookup(name).ok_or(ENOATTACH)?;
    let mut c = dev.attach("")?;
    c.path = alloc::format!("#{name}");
    Ok(c)
}
