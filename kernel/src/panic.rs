//! The panic handler: prints the message, where it happened and the return addresses on the
//! stack (the kernel keeps frame pointers), then stops the machine. Under the test harness
//! (`debugexit`) it also ends the emulator with a failure code.

use crate::console::write_bytes_panicking;
use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);
/// Frames printed at most.
const MAX_FRAMES: usize = 32;

struct PanicConsole;

impl Write for PanicConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for part in s.split_inclusive('\n') {
            match part.strip_suffix('\n') {
                Some(line) => {
                    write_bytes_panicking(line.as_bytes());
                    write_bytes_panicking(b"\r\n");
                }
                None => write_bytes_panicking(part.as_bytes()),
            }
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, Ordering::SeqCst) {
        write_bytes_panicking(b"\r\nKERNEL PANIC while panicking\r\n");
        crate::power::debug_exit(crate::power::EXIT_FAILURE);
        crate::arch::x86_64::halt_forever();
    }
    let mut out = PanicConsole;
    let _ = write!(out, "\nKERNEL PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(out, "\n  at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let _ = writeln!(out, "\nstack trace (return addresses):");
    backtrace(&mut out);
    crate::power::debug_exit(crate::power::EXIT_FAILURE);
    crate::arch::x86_64::halt_forever()
}

/// Walks the frame-pointer chain from the caller's frame.
fn backtrace(out: &mut PanicConsole) {
    let mut rbp: u64;
    // SAFETY: Reads the frame pointer register; no memory is touched.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp) };
    for _ in 0..MAX_FRAMES {
        // Only follow frames that lie in mapped kernel memory and are aligned.
        if rbp == 0 || !rbp.is_multiple_of(8) || rbp < crate::mm::PHYS_OFFSET {
            break;
        }
        if crate::mm::paging::translate(rbp).is_none()
            || crate::mm::paging::translate(rbp + 8).is_none()
        {
            break;
        }
        // SAFETY: Both words are mapped (checked above) and aligned; a frame holds the caller's
        // rbp at [rbp] and the return address at [rbp + 8].
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        let _ = writeln!(out, "  {ret:#018x}");
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}
