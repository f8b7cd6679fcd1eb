//! The kernel monitor: a command line on the console for looking at the machine until the
//! userland shell exists.

use crate::console::{self, print, println};
use crate::drivers::pci;
use crate::mm::{frame, heap};
use alloc::string::String;

/// The prompt; the test harness waits for a line ending in `$ `.
const PROMPT: &str = "kmon$ ";
/// Longest command line accepted.
const MAX_LINE: usize = 256;

struct Command {
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: fn(&[&str]),
}

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "",
        help: "list the commands",
        run: help,
    },
    Command {
        name: "cpu",
        args: "",
        help: "CPU model and virtualization features",
        run: cpu,
    },
    Command {
        name: "mem",
        args: "",
        help: "physical memory and kernel heap",
        run: mem,
    },
    Command {
        name: "pci",
        args: "",
        help: "PCI functions",
        run: pci_list,
    },
    Command {
        name: "uptime",
        args: "",
        help: "time since boot",
        run: uptime,
    },
    Command {
        name: "dmesg",
        args: "",
        help: "the kernel log",
        run: dmesg,
    },
    Command {
        name: "log",
        args: "[LEVEL]",
        help: "show or set the log level",
        run: log_level,
    },
    Command {
        name: "panic",
        args: "",
        help: "panic (tests the panic path)",
        run: panic,
    },
    Command {
        name: "reboot",
        args: "",
        help: "reset the machine",
        run: reboot,
    },
    Command {
        name: "poweroff",
        args: "",
        help: "switch the machine off",
        run: poweroff,
    },
];

/// Reads and runs commands forever.
pub fn run() -> ! {
    println!("kernel monitor: type 'help' for commands");
    let mut line = String::new();
    loop {
        print!("{PROMPT}");
        read_line(&mut line);
        let words: alloc::vec::Vec<&str> = line.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            continue;
        };
        match COMMANDS.iter().find(|c| c.name == name) {
            Some(c) => (c.run)(args),
            None => println!("{name}: unknown command (type 'help' for the list)"),
        }
    }
}

/// Reads one line with echo, backspace and ^U.
fn read_line(line: &mut String) {
    line.clear();
    loop {
        match console::read_byte() {
            b'\r' | b'\n' => {
                println!();
                return;
            }
            0x08 | 0x7f if line.pop().is_some() => print!("\x08 \x08"),
            0x15 => {
                for _ in 0..line.len() {
                    print!("\x08 \x08");
                }
                line.clear();
            }
            b if (0x20..0x7f).contains(&b) && line.len() < MAX_LINE => {
                line.push(b as char);
                console::write_bytes(&[b]);
            }
            _ => {}
        }
    }
}

fn help(_: &[&str]) {
    for c in COMMANDS {
        let usage = alloc::format!("{} {}", c.name, c.args);
        println!("  {usage:<16} {}", c.help);
    }
}

fn cpu(_: &[&str]) {
    print!("{}", crate::arch::x86_64::cpuid::report());
}

fn mem(_: &[&str]) {
    let (mapped, used) = heap::usage();
    println!(
        "physical: {} KiB total, {} KiB free",
        frame::total_bytes() >> 10,
        frame::free_bytes() >> 10
    );
    println!(
        "heap:     {} KiB mapped, {} KiB in use",
        mapped >> 10,
        used >> 10
    );
}

fn pci_list(_: &[&str]) {
    print!("{}", pci::report());
}

fn uptime(_: &[&str]) {
    let ns = crate::time::uptime_ns();
    println!(
        "up {}.{:03} s, {} ticks",
        ns / 1_000_000_000,
        ns / 1_000_000 % 1000,
        crate::time::ticks()
    );
}

fn dmesg(_: &[&str]) {
    console::write_bytes(&crate::klog::kmesg());
}

fn log_level(args: &[&str]) {
    match args {
        [] => println!("log level: {}", log::max_level()),
        [name] => match crate::klog::parse_level(name) {
            Some(level) => log::set_max_level(level),
            None => println!("log: unknown level '{name}' (off, error, warn, info, debug, trace)"),
        },
        _ => println!("usage: log [LEVEL]"),
    }
}

fn panic(_: &[&str]) {
    panic!("panic requested from the monitor");
}

fn reboot(_: &[&str]) {
    crate::power::reboot();
}

fn poweroff(_: &[&str]) {
    crate::power::poweroff();
}
