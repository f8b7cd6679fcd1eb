//! `exec`: loads a static ELF64 program into a fresh address space with its arguments and
//! environment on the stack (System V layout: `argc`, `argv[]`, NULL, `envp[]`, NULL, then the
//! strings), and points the user registers at its entry.

use super::SharedSpace;
use super::elf;
use crate::arch::x86_64::gdt::{USER_CS, USER_DS};
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::KResult;
use crate::mm::PAGE_SIZE;
use crate::mm::vmspace::{FaultError, Prot, SegKind};
use crate::ns::{Namespace, Walked};
use abi::errors::{EBADEXEC, ENOMEM, ETOOLONG};
use abi::sys::layout::{STACK_MAX, STACK_TOP};
use abi::sys::mode::OEXEC;
use abi::sys::{MAXARGBYTES, MAXARGS};
use alloc::string::String;
use alloc::vec::Vec;

/// Largest program file accepted.
const MAX_IMAGE: usize = 64 << 20;

fn fault(e: FaultError) -> crate::error::Error {
    match e {
        FaultError::OutOfMemory => ENOMEM.into(),
        _ => EBADEXEC.into(),
    }
}

/// Reads a whole file through the namespace.
pub fn read_file(
    ns: &Namespace,
    dot: &Walked,
    path: &str,
    mode: u64,
    max: usize,
) -> KResult<Vec<u8>> {
    let w = crate::ns::lookup(ns, dot, path)?;
    let c = w.chan.dev.open(&w.chan, mode)?;
    let mut data = Vec::new();
    let mut chunk = alloc::vec![0u8; 64 * 1024];
    loop {
        let n = c.dev.read(&c, &mut chunk, data.len() as u64)?;
        if n == 0 {
            return Ok(data);
        }
        if data.len() + n > max {
            return Err(ETOOLONG.into());
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

/// For a script (`#!INTERPRETER [ARG]` on its first line), the interpreter and the arguments
/// to start it with: `INTERPRETER [ARG] PATH argv[1..]`. An interpreter must itself be a
/// program, not another script.
fn interpreter(file: &[u8], path: &str, argv: &[String]) -> KResult<Option<(String, Vec<String>)>> {
    let Some(rest) = file.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if line.len() >= 256 {
        return Err(EBADEXEC.into());
    }
    let line = core::str::from_utf8(line).map_err(|_| EBADEXEC)?;
    let mut words = line.split_whitespace();
    let interpreter = words.next().ok_or(EBADEXEC)?;
    if interpreter.starts_with("#!") {
        return Err(EBADEXEC.into());
    }
    let mut new_argv = alloc::vec![String::from(interpreter)];
    // One optional argument, the rest of the line (as Linux and Plan 9 do).
    let arg = line
        .trim_start()
        .strip_prefix(interpreter)
        .map(str::trim)
        .unwrap_or("");
    if !arg.is_empty() {
        new_argv.push(String::from(arg));
    }
    new_argv.push(String::from(path));
    new_argv.extend(argv.iter().skip(1).cloned());
    Ok(Some((String::from(interpreter), new_argv)))
}

/// Loads the program at `path` into the empty address space `space` and sets `frame` to start
/// it. Returns the program's name (the last element of `argv[0]`, or of the path).
pub fn load(
    ns: &Namespace,
    dot: &Walked,
    space: &SharedSpace,
    path: &str,
    argv: &[String],
    envp: &[String],
    frame: &mut TrapFrame,
) -> KResult<String> {
    // The process is named after what was run: the script, not its interpreter.
    let name = argv.first().map_or(path, String::as_str);
    let name = String::from(name.rsplit('/').next().unwrap_or(name));
    let file = read_file(ns, dot, path, OEXEC, MAX_IMAGE)?;
    if let Some((interpreter, argv)) = interpreter(&file, path, argv)? {
        let file = read_file(ns, dot, &interpreter, OEXEC, MAX_IMAGE)?;
        if file.starts_with(b"#!") {
            return Err(EBADEXEC.into()); // an interpreter must be a program
        }
        load_elf(&file, space, &argv, envp, frame)?;
        return Ok(name);
    }
    load_elf(&file, space, argv, envp, frame)?;
    Ok(name)
}

/// Loads the ELF executable `file` with its arguments (checked here against the limits, after
/// a script's interpreter has added its own).
fn load_elf(
    file: &[u8],
    space: &SharedSpace,
    argv: &[String],
    envp: &[String],
    frame: &mut TrapFrame,
) -> KResult<()> {
    let total: usize = argv.iter().chain(envp).map(|s| s.len() + 1).sum();
    if argv.len() + envp.len() > MAXARGS || total > MAXARGBYTES {
        return Err(ETOOLONG.into());
    }
    let image = elf::parse(file)?;
    let mut s = space.lock();
    let ranges = elf::page_ranges(&image);
    for &(start, end, prot) in &ranges {
        let kind = if prot.contains(Prot::EXEC) {
            SegKind::Text
        } else {
            SegKind::Data
        };
        s.add_segment(start, end, prot, kind)
            .map_err(|_| EBADEXEC)?;
    }
    for seg in &image.segments {
        s.write_bytes(seg.vaddr, seg.data).map_err(fault)?;
    }
    let heap = ranges.last().map_or(abi::sys::layout::USER_MIN, |r| r.1);
    s.add_segment(
        heap,
        heap + PAGE_SIZE,
        Prot::READ | Prot::WRITE,
        SegKind::Heap,
    )
    .map_err(|_| EBADEXEC)?;
    s.add_segment(
        STACK_TOP - STACK_MAX,
        STACK_TOP,
        Prot::READ | Prot::WRITE,
        SegKind::Stack,
    )
    .map_err(|_| EBADEXEC)?;

    // Strings at the top of the stack, then the pointer arrays and argc below them.
    let mut words: Vec<u64> = Vec::with_capacity(argv.len() + envp.len() + 3);
    let mut strings_at = STACK_TOP;
    let mut string_ptrs = Vec::with_capacity(argv.len() + envp.len());
    for a in argv.iter().chain(envp) {
        strings_at -= a.len() as u64 + 1;
        let mut bytes = Vec::with_capacity(a.len() + 1);
        bytes.extend_from_slice(a.as_bytes());
        bytes.push(0);
        s.write_bytes(strings_at, &bytes).map_err(fault)?;
        string_ptrs.push(strings_at);
    }
    words.push(argv.len() as u64);
    words.extend_from_slice(&string_ptrs[..argv.len()]);
    words.push(0);
    words.extend_from_slice(&string_ptrs[argv.len()..]);
    words.push(0);
    let sp = ((strings_at & !15) - 8 * words.len() as u64) & !15;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    s.write_bytes(sp, &bytes).map_err(fault)?;
    drop(s);

    *frame = TrapFrame {
        rip: image.entry,
        cs: u64::from(USER_CS),
        ss: u64::from(USER_DS),
        rsp: sp,
        rflags: 0x202,
        rdi: sp,
        ..TrapFrame::default()
    };
    Ok(())
}
