//! The legacy 8259 PICs: moved out of the exception vectors and masked, since the IOAPIC does
//! their job.

use x86_64::instructions::port::Port;

/// Remaps both PICs to `base..base + 16` and masks every line.
pub fn disable(base: u8) {
    let mut cmd1 = Port::<u8>::new(0x20);
    let mut data1 = Port::<u8>::new(0x21);
    let mut cmd2 = Port::<u8>::new(0xa0);
    let mut data2 = Port::<u8>::new(0xa1);
    // SAFETY: The standard ICW1-ICW4 initialisation sequence for the PC's cascaded PICs, ending
    // with every line masked; the PIC ports belong to this module.
    unsafe {
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(base);
        data2.write(base + 8);
        data1.write(4);
        data2.write(2);
        data1.write(1);
        data2.write(1);
        data1.write(0xff);
        data2.write(0xff);
    }
}
