//! The console: COM1 through `uart_16550`, with interrupt-driven input into a ring buffer.
//!
//! Output goes straight to the UART (with `\n` sent as `\r\n`). Input bytes are queued by the
//! IRQ 4 handler and taken by `read_byte`, which sleeps with `hlt` while the queue is empty.

use crate::sync::IrqLock;
use core::fmt::{self, Write};
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::IER;
use uart_16550::{BaudRate, Config, Uart16550};

/// Base I/O port of COM1.
const COM1: u16 = 0x3f8;
/// ISA IRQ line of COM1.
pub const COM1_IRQ: u8 = 4;
/// Bytes of typed-ahead input kept.
const INPUT_CAPACITY: usize = 4096;

static SERIAL: IrqLock<Option<Uart16550<PioBackend>>> = IrqLock::new(None);
static INPUT: IrqLock<Ring> = IrqLock::new(Ring {
    buf: [0; INPUT_CAPACITY],
    head: 0,
    len: 0,
});

struct Ring {
    buf: [u8; INPUT_CAPACITY],
    head: usize,
    len: usize,
}

impl Ring {
    fn push(&mut self, b: u8) {
        if self.len < INPUT_CAPACITY {
            self.buf[(self.head + self.len) % INPUT_CAPACITY] = b;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<u8> {
        (self.len > 0).then(|| {
            let b = self.buf[self.head];
            self.head = (self.head + 1) % INPUT_CAPACITY;
            self.len -= 1;
            b
        })
    }
}

/// Sets up COM1 for output (polled) as the very first thing at boot.
pub fn init_early() {
    // SAFETY: COM1's eight registers at 0x3f8 belong to this driver alone.
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return;
    };
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    if uart.init(config).is_ok() {
        *SERIAL.lock() = Some(uart);
    }
}

/// Routes COM1's interrupt and enables the receive interrupt.
pub fn enable_input_interrupts() {
    crate::arch::x86_64::irq::register_isa(COM1_IRQ, on_interrupt);
    if let Some(uart) = SERIAL.lock().as_mut() {
        uart.enable_interrupts(IER::DATA_READY);
    }
}

fn on_interrupt() {
    let mut bytes = [0u8; 64];
    let mut n = 0;
    {
        let mut serial = SERIAL.lock();
        let Some(uart) = serial.as_mut() else { return };
        while n < bytes.len() {
            match uart.try_receive_byte() {
                Ok(b) => {
                    bytes[n] = b;
                    n += 1;
                }
                Err(_) => break,
            }
        }
    }
    if crate::dev::cons::line_discipline_active() {
        for &b in &bytes[..n] {
            crate::dev::cons::input(b);
        }
    } else {
        let mut input = INPUT.lock();
        for &b in &bytes[..n] {
            input.push(b);
        }
    }
}

/// Takes one input byte if one is queued.
pub fn try_read_byte() -> Option<u8> {
    INPUT.lock().pop()
}

/// Waits for one input byte.
pub fn read_byte() -> u8 {
    loop {
        x86_64::instructions::interrupts::disable();
        if let Some(b) = try_read_byte() {
            x86_64::instructions::interrupts::enable();
            return b;
        }
        // Interrupts are enabled and the CPU halted in one step, so an interrupt that queues a
        // byte between the check and the halt still wakes us.
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Writes raw bytes to the console (translating `\n` to `\r\n`).
pub fn write_bytes(bytes: &[u8]) {
    let mut serial = SERIAL.lock();
    let Some(uart) = serial.as_mut() else { return };
    for chunk in bytes.split_inclusive(|&b| b == b'\n') {
        match chunk.split_last() {
            Some((b'\n', line)) => {
                uart.send_bytes_exact(line);
                uart.send_bytes_exact(b"\r\n");
            }
            _ => uart.send_bytes_exact(chunk),
        }
    }
}

/// Writes to the console without waiting for a lock holder: for the panic path.
pub fn write_bytes_panicking(bytes: &[u8]) {
    if let Some(mut serial) = SERIAL.try_lock() {
        if let Some(uart) = serial.as_mut() {
            uart.send_bytes_exact(bytes);
        }
        return;
    }
    // The lock is held by the code that panicked; take the port anyway, it is all we have left.
    // SAFETY: Interrupts are off on the panic path and this CPU is the only one running, so
    // no other user of the UART runs while these bytes go out.
    if let Ok(mut uart) = unsafe { Uart16550::new_port(COM1) } {
        uart.send_bytes_exact(bytes);
    }
}

/// A `fmt::Write` for the console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

/// Prints to the console.
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {print, println};
