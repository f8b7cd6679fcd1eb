//! The `#` devices: one file (or folder) each.

pub mod arch;
pub mod cons;
pub mod ip;
pub mod mnt;
pub mod pipe;
pub mod procdev;
pub mod root;
pub mod sd;
pub mod srv;
pub mod tmpfs;
pub mod vm;
