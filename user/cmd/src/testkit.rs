//! What the system-check programs (`ptest`, `nstest`, `ninetest`, ...) share: named cases run
//! in order, one line each, and a closing `NAME: N passed, M failed` that the boot tests look
//! for; `ensure!` and expected-error checks; a checksum for data read back.

use alloc::string::String;
use rt::println;

/// The result of one case.
pub type Check = rt::Result<()>;

/// A named case.
pub type Case = (&'static str, fn() -> Check);

/// Fails the case with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(rt::Error(rt::format!($($msg)*)));
        }
    };
}

/// Checks that `r` failed with an error containing `want`.
pub fn expect_err<T: core::fmt::Debug>(what: &str, r: rt::Result<T>, want: &str) -> Check {
    match r {
        Ok(v) => Err(rt::Error(rt::format!("{what}: succeeded ({v:?})"))),
        Err(e) if e.msg().contains(want) => Ok(()),
        Err(e) => Err(rt::Error(rt::format!(
            "{what}: {:?}, expected {want:?}",
            e.msg()
        ))),
    }
}

/// FNV-1a over `data`, continuing from `h` (start with [`FNV_START`]).
pub fn fnv(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Measures until `settled` accepts the figure, up to ten times 20 ms apart, and returns the
/// last figure: for leak checks, where memory freed a moment after the work (a reaped thread's
/// stack, a timer entry) must not count as lost while a real leak stays.
pub fn settle<T>(
    mut measure: impl FnMut() -> rt::Result<T>,
    settled: impl Fn(&T) -> bool,
) -> rt::Result<T> {
    let mut m = measure()?;
    for _ in 0..10 {
        if settled(&m) {
            break;
        }
        rt::process::sleep(20)?;
        m = measure()?;
    }
    Ok(m)
}

/// The number after `name ` on a line of `text` (0 if there is none): the shape of
/// `/dev/memory` and of `#vm/N/stats`.
pub fn figure(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// One figure of `/dev/memory`.
pub fn memory_figure(name: &str) -> rt::Result<u64> {
    Ok(figure(&rt::fs::read_to_string("/dev/memory")?, name))
}

/// Memory the kernel counts as in use (`/dev/memory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InUse {
    /// Bytes of frames in use outside the heap and the kernel's page tables. The tables stay
    /// once made: they follow the high-water marks of the kernel's regions (its stacks), which
    /// depend on how work interleaves, so they are not counted as lost.
    pub frames: u64,
    /// Live heap allocations.
    pub heap_objects: u64,
    /// Bytes those allocations asked for.
    pub heap_bytes: u64,
}

impl InUse {
    /// What is in use now.
    pub fn now() -> rt::Result<InUse> {
        let text = rt::fs::read_to_string("/dev/memory")?;
        let f = |name: &str| figure(&text, name);
        Ok(InUse {
            frames: f("total") - f("free") - f("heap") - f("kernel-tables"),
            heap_objects: f("heap-objects"),
            heap_bytes: f("heap-bytes"),
        })
    }
}

/// Checks that the work done since `before` was measured lost no frames and no heap objects
/// (measured again until the figures settle, see [`settle`]); prints both, `what` naming the
/// work.
pub fn expect_nothing_lost(what: &str, before: InUse) -> Check {
    let after = settle(InUse::now, |a| {
        a.frames <= before.frames && a.heap_objects <= before.heap_objects
    })?;
    println!("  in use before and after {what}: {before:?} {after:?}");
    ensure!(
        after.frames <= before.frames,
        "{} bytes of frames lost",
        after.frames - before.frames
    );
    ensure!(
        after.heap_objects <= before.heap_objects,
        "{} heap objects lost",
        after.heap_objects - before.heap_objects
    );
    Ok(())
}

/// Runs `body` in a child with a namespace of its own (where mounts and binds stay private);
/// its error, if any, is the case's.
pub fn in_child(body: fn() -> Check) -> Check {
    use rt::process::{self, RFFDG, RFNAMEG, RFPROC};
    match process::rfork(RFPROC | RFFDG | RFNAMEG)? {
        0 => match body() {
            Ok(()) => process::exits(""),
            Err(e) => process::exits(e.msg()),
        },
        pid => {
            let (e, _) = process::wait_for(pid)?;
            ensure!(e.msg.is_empty(), "{}", e.msg);
            Ok(())
        }
    }
}

/// The FNV-1a offset basis.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Runs the cases named in `only` (all if empty), printing one line each and the summary;
/// fails if any case failed.
pub fn run(program: &str, cases: &[Case], only: &[String]) -> rt::Result<()> {
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        match case() {
            Ok(()) => {
                passed += 1;
                println!("{program} {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("{program} {name} ... FAILED: {e}");
            }
        }
    }
    println!("{program}: {passed} passed, {failed} failed");
    if failed > 0 {
        Err(rt::Error(rt::format!("{failed} failed")))
    } else {
        Ok(())
    }
}
