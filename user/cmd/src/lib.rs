//! Shared pieces of the user commands (each command is a binary in `src/bin/`):
//!
//! - [`args`]: flags and operands, and the usage message for wrong ones.
//! - [`output`]: buffered standard output, and ending a command that failed.
//! - [`input`]: reading operands (`-` is standard input) in chunks or whole.
//! - [`files`]: copying files and trees, path names.
//! - [`testkit`]: running the cases of the system-check programs.
//!
//! The pure parts (regular expressions, SHA-256, dates, `test`, signals) live in the `shell`
//! crate, where they are tested on the host.

#![no_std]

extern crate alloc;

pub mod args;
pub mod files;
pub mod input;
pub mod output;
pub mod testkit;
