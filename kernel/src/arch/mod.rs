//! Architecture-specific code. The kernel runs only on x86-64; everything that touches its
//! registers, tables and instructions lives below this module.

pub mod x86_64;
