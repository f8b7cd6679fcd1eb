//! The 8254 PIT, used once at boot as the reference clock to measure the TSC and LAPIC timer.

use x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;

/// Runs `start`, waits `ms` milliseconds on PIT channel 2 (mode 0, polled through port 0x61),
/// then runs `end`. The gate of channel 2 is the only hardware state changed.
pub fn measure<T>(ms: u64, start: impl FnOnce(), end: impl FnOnce() -> T) -> T {
    let count = (PIT_HZ * ms / 1000) as u16;
    let mut ctrl = Port::<u8>::new(0x61);
    let mut mode = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: Ports 0x42, 0x43 and 0x61 are the PIT's channel 2 and the speaker/gate control;
    // the speaker output stays off and nothing else uses channel 2.
    unsafe {
        let gate = ctrl.read() & !0x02;
        ctrl.write(gate & !0x01);
        mode.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        start();
        ctrl.write(gate | 0x01); // rising gate edge starts the count
        while ctrl.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let result = end();
        ctrl.write(gate & !0x01);
        result
    }
}
