//! The shell's pure logic, host-testable with `cargo test -p shell`:
//!
//! - [`ast`]: the syntax tree of a script.
//! - [`parse`]: source text to [`ast::Program`]s, one complete command at a time, with line
//!   numbers and here-documents; tells "incomplete" (read another line) from "syntax error".
//! - [`expand`]: word expansion: parameters, command substitution (through the caller),
//!   arithmetic, field splitting, pathname expansion, quote removal.
//! - [`arith`]: `$((...))` expressions.
//! - [`glob`]: `*`, `?` and `[...]` patterns, matched against names and expanded over
//!   directories (through the caller).
//! - [`cond`]: the expression language of `test` and `[`.
//! - [`printf`]: the format language of `printf`.
//! - [`signal`]: POSIX signal names and the notes they stand for.
//!
//! And pure pieces the commands share: [`sha256`], [`regex`] (for `grep`) and [`date`].
//!
//! The language is described in `sh.1.md` beside this crate.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arith;
pub mod ast;
pub mod cond;
pub mod date;
pub mod expand;
pub mod glob;
pub mod parse;
pub mod printf;
pub mod regex;
pub mod sha256;
pub mod signal;
