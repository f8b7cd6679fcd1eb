//! The kernel log: a `log` facade backend that prints to the console with an uptime stamp and
//! keeps the most recent messages in a ring for `dmesg`.

use crate::sync::IrqLock;
use alloc::collections::VecDeque;
use alloc::string::String;
use core::fmt::Write;
use log::{LevelFilter, Log, Metadata, Record};

/// Bytes of recent log text kept for `dmesg` (`#cons/kmesg`).
const KMESG_CAPACITY: usize = 64 * 1024;

static KMESG: IrqLock<VecDeque<u8>> = IrqLock::new(VecDeque::new());
static LOGGER: KernelLog = KernelLog;

struct KernelLog;

impl Log for KernelLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = crate::time::uptime_ns();
        let mut line = String::new();
        let _ = writeln!(
            line,
            "[{:5}.{:06}] {:5} {}",
            ns / 1_000_000_000,
            ns % 1_000_000_000 / 1000,
            record.level(),
            record.args()
        );
        crate::console::write_bytes(line.as_bytes());
        let mut k = KMESG.lock();
        k.extend(line.as_bytes());
        let excess = k.len().saturating_sub(KMESG_CAPACITY);
        k.drain(..excess);
    }

    fn flush(&self) {}
}

/// Parses a level name as the monitor's `log` command and `loglevel=` take it.
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    match name.to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// Installs the logger at the level named on the command line (default `info`).
pub fn init(level: Option<&str>) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level.and_then(parse_level).unwrap_or(LevelFilter::Info));
    if let Some(bad) = level.filter(|l| parse_level(l).is_none()) {
        log::warn!("loglevel={bad}: unknown level, using info");
    }
}

/// A copy of the kernel log ring.
pub fn kmesg() -> alloc::vec::Vec<u8> {
    KMESG.lock().iter().copied().collect()
}
