//! free: memory in use and free, in KiB (from `/dev/memory`): physical memory, and the
//! kernel heap within it.

#![no_std]
#![no_main]

extern crate alloc;

use cmd::args;
use cmd::output::{complain, finish};
use rt::fs;

rt::entry!(main);

fn main() -> rt::Result<()> {
    let a = args::parse("free", "", "");
    if !a.rest.is_empty() {
        args::usage("free");
    }
    let text = match fs::read_to_string("/dev/memory") {
        Ok(t) => t,
        Err(e) => return finish(Some(complain(e.0))),
    };
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        })
    };
    let (Some(total), Some(free)) = (field("total"), field("free")) else {
        return finish(Some(complain(alloc::string::String::from(
            "/dev/memory: no total or free line",
        ))));
    };
    let kib = |b: u64| b / 1024;
    rt::println!("{:<8}{:>12}{:>12}{:>12}", "", "total", "used", "free");
    rt::println!(
        "{:<8}{:>12}{:>12}{:>12}",
        "memory",
        kib(total),
        kib(total.saturating_sub(free)),
        kib(free)
    );
    if let (Some(heap), Some(used)) = (field("heap"), field("heap-used")) {
        rt::println!(
            "{:<8}{:>12}{:>12}{:>12}",
            "heap",
            kib(heap),
            kib(used),
            kib(heap.saturating_sub(used))
        );
    }
    Ok(())
}
