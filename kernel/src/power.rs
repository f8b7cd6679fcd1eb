//! Power control: ACPI soft-off (S5) and reset, with the PC's fallbacks, and QEMU's
//! `isa-debug-exit` device for reporting a test result or a panic to the harness.

use crate::arch::x86_64::acpi::{Platform, PowerControl};
use crate::sync::IrqLock;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::port::Port;

/// I/O port of QEMU's `isa-debug-exit` device as the launcher configures it.
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Written to `isa-debug-exit` when tests pass: QEMU exits with (0x10 << 1) | 1 = 33.
pub const EXIT_SUCCESS: u8 = 0x10;
/// Written to `isa-debug-exit` on failure or panic: QEMU exits with 35.
pub const EXIT_FAILURE: u8 = 0x11;

static POWER: IrqLock<Option<PowerControl>> = IrqLock::new(None);
static DEBUG_EXIT: AtomicBool = AtomicBool::new(false);

/// Whether the command line said an `isa-debug-exit` device is present (`debugexit`).
pub fn set_debug_exit(present: bool) {
    DEBUG_EXIT.store(present, Ordering::Relaxed);
}

/// Remembers the firmware's power-control registers.
pub fn init(platform: &Platform) {
    *POWER.lock() = platform.power;
    if platform.power.and_then(|p| p.s5).is_none() {
        log::warn!("no ACPI S5 sleep type: poweroff will only halt");
    }
}

/// Ends the emulator run with `code` if an `isa-debug-exit` device is present; otherwise returns.
pub fn debug_exit(code: u8) {
    if DEBUG_EXIT.load(Ordering::Relaxed) {
        // SAFETY: The launcher attached isa-debug-exit at this port (it said so on the command
        // line); writing it ends the emulator.
        unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(u32::from(code)) };
    }
}

fn outw(port: u16, value: u16) {
    // SAFETY: Ports named by the FADT for power management, written as ACPI §4.8 prescribes.
    unsafe { Port::<u16>::new(port).write(value) }
}

fn inw(port: u16) -> u16 {
    // SAFETY: As in `outw`; reading PM1 control has no side effects.
    unsafe { Port::<u16>::new(port).read() }
}

/// Switches the chipset to ACPI mode if the firmware left it in legacy mode (ACPI §4.8.2.1).
fn enable_acpi_mode(p: &PowerControl) {
    const SCI_EN: u16 = 1;
    if p.pm1a_cnt == 0 || inw(p.pm1a_cnt) & SCI_EN != 0 || p.smi_cmd == 0 || p.acpi_enable == 0 {
        return;
    }
    // SAFETY: SMI_CMD and ACPI_ENABLE come from the FADT for exactly this write.
    unsafe { Port::<u8>::new(p.smi_cmd).write(p.acpi_enable) };
    for _ in 0..1000 {
        if inw(p.pm1a_cnt) & SCI_EN != 0 {
            return;
        }
        crate::time::spin_ns(1_000_000);
    }
}

/// Turns the machine off (ACPI S5). Halts if that is not possible.
pub fn poweroff() -> ! {
    x86_64::instructions::interrupts::disable();
    let power = *POWER.lock();
    if let Some(p) = power
        && let Some((typ_a, typ_b)) = p.s5
    {
        const SLP_EN: u16 = 1 << 13;
        enable_acpi_mode(&p);
        outw(p.pm1a_cnt, (u16::from(typ_a) << 10) | SLP_EN);
        if p.pm1b_cnt != 0 {
            outw(p.pm1b_cnt, (u16::from(typ_b) << 10) | SLP_EN);
        }
        crate::time::spin_ns(100_000_000);
    }
    debug_exit(EXIT_SUCCESS);
    crate::console::println!("poweroff failed: the machine can be switched off now");
    crate::arch::x86_64::halt_forever()
}

/// Resets the machine: the FADT reset register, then the keyboard controller, then a triple
/// fault.
pub fn reboot() -> ! {
    x86_64::instructions::interrupts::disable();
    let power = *POWER.lock();
    if let Some(r) = power.and_then(|p| p.reset)
        && r.space == 1
    {
        // SAFETY: The FADT's reset register in I/O space, written with its reset value.
        unsafe { Port::<u8>::new(r.addr as u16).write(r.value) };
        crate::time::spin_ns(50_000_000);
    }
    // SAFETY: Pulsing the CPU reset line through the 8042 (command 0xfe) is the PC's classic
    // reset; nothing else uses the keyboard controller.
    unsafe { Port::<u8>::new(0x64).write(0xfe) };
    crate::time::spin_ns(50_000_000);
    // Last resort: an empty IDT turns the next exception into a triple fault, which resets.
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::zero(),
    };
    // SAFETY: Deliberately loading an unusable IDT and trapping: the CPU shuts down and resets.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3");
    }
    crate::arch::x86_64::halt_forever()
}
