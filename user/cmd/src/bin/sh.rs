//! sh: the shell. Interactive on the console (prompt `DIR $ `, line editing, history, ^C
//! interrupts the foreground job), and the interpreter of scripts (`sh FILE`, `sh -c`,
//! `#!/bin/sh`). The language is described in `user/shell/sh.1.md`; the executor lives in
//! `user/cmd/src/sh/`.

#![no_std]
#![no_main]

extern crate alloc;

#[path = "../sh/mod.rs"]
mod sh;

rt::entry!(sh::main);
