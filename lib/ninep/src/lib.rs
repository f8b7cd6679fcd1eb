//! 9P2000 (placeholder until the codec lands).
#![cfg_attr(not(test), no_std)]
