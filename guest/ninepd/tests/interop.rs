//! ninepd driven by a client we did not write: python-9p (plan9port's codec, multiplexed tags),
//! installed from PyPI into a venv in the target directory (see lib/ninep's `pyvenv.rs`).

mod support;

#[path = "../../../lib/ninep/tests/support/pyvenv.rs"]
mod pyvenv;

use std::collections::HashMap;
use std::fs;
use std::process::Command;

use support::{TempDir, pattern, server};

fn crc32(data: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), to compare with Python's zlib.crc32.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn run_py9p(msize: u32) {
    let t = TempDir::new("py9p");
    fs::write(t.path().join("hello.txt"), "hello from ninepd").unwrap();
    let big = pattern(3 << 20, 77);
    fs::write(t.path().join("big"), &big).unwrap();
    fs::create_dir(t.path().join("sub")).unwrap();
    let srv = server(t.path(), ninepd::Options::default());

    let out = Command::new(pyvenv::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/py9p_client.py"
        ))
        .arg(srv.local_addr().port().to_string())
        .arg(msize.to_string())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "py9p client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let want = [
        ("msize", msize.to_string()),
        ("version", "9P2000".into()),
        ("root", "big,hello.txt,sub".into()),
        ("hello", "hello from ninepd".into()),
        ("hello.length", "17".into()),
        ("readback", "True".into()),
        ("pydir.isdir", "True".into()),
        ("renamed", "renamed.txt".into()),
        ("missing", "file does not exist".into()),
        ("big.len", big.len().to_string()),
        ("big.crc", crc32(&big).to_string()),
    ];
    for (k, v) in want {
        assert_eq!(got.get(k).copied(), Some(v.as_str()), "{k} (msize {msize})");
    }
    assert_eq!(
        fs::read(t.path().join("renamed.txt")).unwrap(),
        "written by python-9p\n".repeat(1000).as_bytes()
    );
    assert!(!t.path().join("from-python.txt").exists());
    assert!(!t.path().join("pydir").exists());
}

#[test]
fn python_9p_client_lists_reads_writes_and_creates_at_msize_8k() {
    run_py9p(8192);
}

#[test]
fn python_9p_client_at_msize_1m() {
    run_py9p(1 << 20);
}
