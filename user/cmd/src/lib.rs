//! Shared pieces of the user commands (each command is a binary in `src/bin/`).

#![no_std]
