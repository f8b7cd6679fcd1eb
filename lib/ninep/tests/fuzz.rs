//! Bounded fuzzing of frame decoding on stable Rust, inside `cargo test`: random bytes and
//! mutations of valid frames must decode to `Ok` or `Err`, never panic; whatever decodes must
//! re-encode to exactly the bytes it came from (so nothing was read out of bounds or invented).
//! Set `NINEP_FUZZ_ITERS` to run longer.

mod support;

use ninep::{Dialect, Dir, DirEntries, Fcall, FrameReader};
use support::arbitrary::Rng;

fn iterations(default: u64) -> u64 {
    std::env::var("NINEP_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Decodes `bytes`; if that works, the re-encoding must be byte-identical (one exception: a
/// 9P2000 `Rerror` carrying an errno, which 9P2000 encoding drops on purpose).
fn check(bytes: &[u8], d: Dialect) -> bool {
    match Fcall::decode(bytes, d) {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
        Ok(f) => {
            let mut again = Vec::new();
            f.encode_vec(d, &mut again)
                .expect("a decoded message re-encodes");
            let errno_dropped =
                matches!(f.msg, ninep::Msg::Rerror { errno: Some(_), .. }) && d == Dialect::V9P2000;
            if !errno_dropped {
                assert_eq!(again, bytes, "{f:?}");
            }
            true
        }
    }
}

#[test]
fn mutated_frames_never_panic() {
    let mut rng = Rng::new(0xF022);
    let n = iterations(200_000);
    let mut decoded = 0;
    for i in 0..n {
        let d = if i % 2 == 0 {
            Dialect::V9P2000
        } else {
            Dialect::V9P2000U
        };
        let mut frame = Vec::new();
        rng.fcall(d).encode_vec(d, &mut frame).unwrap();
        let bad = rng.mutate(&frame);
        if check(&bad, d) {
            decoded += 1;
        }
        // Decoding with the other dialect must be just as safe.
        let other = if i % 2 == 0 {
            Dialect::V9P2000U
        } else {
            Dialect::V9P2000
        };
        let _ = Fcall::decode(&bad, other);
    }
    // Some mutations (a flipped data byte) leave valid frames; most must not.
    assert!(decoded > 0 && decoded < n, "decoded {decoded} of {n}");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(0xB17E5);
    for _ in 0..iterations(200_000) {
        let mut bytes = rng.bytes(80);
        // Give most inputs a plausible header so the body parsers see them.
        if bytes.len() >= 7 && rng.below(4) != 0 {
            let n = bytes.len() as u32;
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            bytes[4] = 100 + rng.below(28) as u8;
        }
        check(&bytes, Dialect::V9P2000);
        check(&bytes, Dialect::V9P2000U);
        for entry in DirEntries::new(&bytes, Dialect::V9P2000) {
            if entry.is_err() {
                break;
            }
        }
        let _ = Dir::decode(&bytes, Dialect::V9P2000U);
    }
}

#[test]
fn frame_reader_survives_garbage_streams() {
    let mut rng = Rng::new(0x57EA);
    for _ in 0..iterations(2_000) {
        let mut reader = FrameReader::new(256 + rng.below(4096) as u32);
        for _ in 0..20 {
            reader.push(&rng.bytes(64));
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    let _ = Fcall::decode(frame, Dialect::V9P2000);
                }
                Ok(None) => {}
                // The stream cannot be resynchronised: a real reader closes here.
                Err(_) => break,
            }
        }
    }
}
