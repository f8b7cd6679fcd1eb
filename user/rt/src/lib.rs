//! The user runtime: what every program of ours links against.
//!
//! - `_start` takes the stack the kernel built (`argc`, `argv`, `envp`), sets up the heap and
//!   calls the program's `main` (declared with [`entry!`]); an `Err` from `main` is printed and
//!   becomes the exit string.
//! - [`sys`]: the raw system calls; [`io`], [`fs`], [`net`], [`process`], [`thread`], [`notes`]: the
//!   safe wrappers, which turn failures into [`Error`] values carrying the kernel's message.

#![no_std]

extern crate alloc;

pub mod env;
pub mod fs;
pub mod io;
pub mod net;
pub mod notes;
pub mod process;
pub mod sync;
pub mod sys;
pub mod thread;

mod heap;

pub use alloc::{borrow, boxed, collections, format, string, vec};

use alloc::string::String;
use core::fmt;

/// A failed operation: the kernel's error string, or a message of the program's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

/// Result of an operation that may fail.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// The error string of the last failed system call of this thread.
    pub fn last() -> Error {
        let mut buf = [0u8; abi::sys::ERRMAX];
        let n = sys::errstr(&mut buf);
        Error(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// An error with a message of our own.
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }

    /// The message.
    pub fn msg(&self) -> &str {
        &self.0
    }

    /// The same error with `context: ` in front.
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error(alloc::format!("{context}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(String::from(s))
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

/// Declares the program's `main`: `rt::entry!(main);` with `fn main() -> rt::Result<()>`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __rt_main() -> $crate::Result<()> {
            $main()
        }
    };
}

unsafe extern "Rust" {
    fn __rt_main() -> Result<()>;
}

core::arch::global_asm!(
    r#"
    .text
    .global _start
_start:
    mov rdi, rsp
    and rsp, -16
    xor ebp, ebp
    call {start}
    ud2
"#,
    start = sym rt_start,
);

/// Called by `_start` with the initial stack pointer.
extern "C" fn rt_start(sp: *const u64) -> ! {
    // SAFETY: The kernel's exec built argc, argv, NULL, envp, NULL at `sp`.
    unsafe { env::init(sp) };
    // SAFETY: Every program defines `__rt_main` through `entry!`.
    let result = unsafe { __rt_main() };
    io::flush_stdout();
    match result {
        Ok(()) => process::exits(""),
        Err(e) => {
            eprintln!("{}: {}", env::program(), e);
            process::exits(e.msg())
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    eprintln!("{}: panic: {}", env::program(), info);
    process::exits("panic")
}
