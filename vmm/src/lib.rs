//! The VMM library (see DESIGN.md section 4).
#![cfg_attr(not(test), no_std)]
