//! libFuzzer target: decoding arbitrary frames (and the directory entries inside them) must
//! never panic, and whatever decodes must re-encode without error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ninep::{Dialect, DirEntries, Fcall};

fuzz_target!(|data: &[u8]| {
    for d in [Dialect::V9P2000, Dialect::V9P2000U] {
        if let Ok(f) = Fcall::decode(data, d) {
            let mut out = Vec::new();
            f.encode_vec(d, &mut out).expect("a decoded message re-encodes");
        }
        for entry in DirEntries::new(data, d) {
            if entry.is_err() {
                break;
            }
        }
    }
});
