//! ptest: checks processes, threads and notes on a running system. Prints one line per case
//! and `ptest: N passed, M failed`; exits non-zero if any case failed. (The boot tests run it;
//! users can too.)

#![no_std]
#![no_main]

use abi::sys::{ERROR, Sys};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rt::notes::{self, Action};
use rt::process::{self, RFFDG, RFNOWAIT, RFPROC};
use rt::string::String;
use rt::sync::Mutex;
use rt::sys::call;
use rt::vec::Vec;
use rt::{format, fs, io, thread};

use cmd::ensure;
use cmd::testkit::{self, Check};

rt::entry!(main);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| String::from(*s)).collect()
}

/// A child that runs `f` then exits with its result as exit string.
fn fork_child(flags: u64, f: impl FnOnce() -> String) -> rt::Result<u64> {
    match process::rfork(flags)? {
        0 => {
            let msg = f();
            process::exits(&msg)
        }
        pid => Ok(pid),
    }
}

fn fork_exec_await() -> Check {
    let pid = process::spawn("/bin/ptest", &args(&["ptest", "exit-with", "hello world"]))?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg == "hello world", "exit string {:?}", e.msg);
    let pid = process::spawn("/bin/no-such-program", &args(&["no-such-program"]))?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(
        e.msg.contains("file does not exist"),
        "exec of a missing file: {:?}",
        e.msg
    );
    let pid = fork_child(RFPROC | RFFDG, || String::from("direct"))?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg == "direct", "fork without exec: {:?}", e.msg);
    let pid = process::spawn("/bin/true", &args(&["true"]))?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg.is_empty(), "true exited with {:?}", e.msg);
    Ok(())
}

fn threads_share_memory() -> Check {
    static COUNTER: Mutex<u64> = Mutex::new(0);
    static SEEN: AtomicU64 = AtomicU64::new(0);
    *COUNTER.lock() = 0;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(|| {
                for _ in 0..1000 {
                    let mut c = COUNTER.lock();
                    let v = *c;
                    // Widen the window for a lost update if the lock did not work.
                    core::hint::black_box(v);
                    *c = v + 1;
                }
                SEEN.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect::<rt::Result<_>>()?;
    for h in handles {
        h.join();
    }
    ensure!(*COUNTER.lock() == 4000, "counter is {}", *COUNTER.lock());
    ensure!(
        SEEN.load(Ordering::SeqCst) == 4,
        "threads finished: {}",
        SEEN.load(Ordering::SeqCst)
    );
    Ok(())
}

static GOT_NOTE: AtomicBool = AtomicBool::new(false);

fn wake_handler(note: &str) -> Action {
    if note == "wake" {
        GOT_NOTE.store(true, Ordering::SeqCst);
        Action::Continue
    } else {
        Action::Die
    }
}

fn note_later(ms: u64) -> rt::Result<()> {
    let me = process::getpid();
    fork_child(RFPROC | RFNOWAIT, move || {
        let _ = process::sleep(ms);
        match process::postnote(me, "wake") {
            Ok(()) => String::new(),
            Err(e) => e.0,
        }
    })?;
    Ok(())
}

fn note_interrupts_sleep() -> Check {
    GOT_NOTE.store(false, Ordering::SeqCst);
    notes::set_handler(wake_handler);
    note_later(100)?;
    let t0 = rt::sys::nsec();
    let r = process::sleep(20_000);
    let ms = (rt::sys::nsec() - t0) / 1_000_000;
    notes::clear_handler();
    ensure!(
        r.as_ref().err().map(|e| e.msg()) == Some(notes::INTERRUPTED),
        "sleep returned {r:?}"
    );
    ensure!(GOT_NOTE.load(Ordering::SeqCst), "the handler did not run");
    ensure!(ms < 10_000, "sleep was not cut short ({ms} ms)");
    Ok(())
}

fn note_interrupts_await() -> Check {
    GOT_NOTE.store(false, Ordering::SeqCst);
    notes::set_handler(wake_handler);
    let slow = fork_child(RFPROC, || {
        let _ = process::sleep(30_000);
        String::from("slow")
    })?;
    note_later(100)?;
    let r = process::await_child();
    notes::clear_handler();
    ensure!(
        r.as_ref().err().map(|e| e.msg()) == Some(notes::INTERRUPTED),
        "await returned {r:?}"
    );
    ensure!(GOT_NOTE.load(Ordering::SeqCst), "the handler did not run");
    process::postnote(slow, "kill")?;
    let (e, _) = process::wait_for(slow)?;
    ensure!(e.msg == "kill", "the killed child exited with {:?}", e.msg);
    Ok(())
}

fn handler_returns_and_work_continues() -> Check {
    GOT_NOTE.store(false, Ordering::SeqCst);
    notes::set_handler(wake_handler);
    note_later(20)?;
    // Compute while the note arrives; the result must not be disturbed by the handler.
    let mut x: u64 = 1;
    let t0 = rt::sys::nsec();
    while !GOT_NOTE.load(Ordering::SeqCst) && rt::sys::nsec() - t0 < 10_000_000_000 {
        x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    notes::clear_handler();
    ensure!(GOT_NOTE.load(Ordering::SeqCst), "no note within 10 s");
    ensure!(x != 0, "state lost");
    Ok(())
}

fn kill_ends_an_unkillable_loop() -> Check {
    let pid = fork_child(RFPROC, || {
        notes::set_handler(|_| Action::Continue);
        let mut x = 0u64;
        loop {
            x = core::hint::black_box(x + 1);
        }
    })?;
    process::sleep(50)?;
    process::postnote(pid, "interrupt")?;
    process::sleep(100)?;
    // Still alive: the interrupt was ignored.
    process::postnote(pid, "hangup")?;
    process::sleep(50)?;
    process::postnote(pid, "kill").map_err(|e| e.context("the looping child died too early"))?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg == "kill", "exit string {:?}", e.msg);
    Ok(())
}

fn expect_error(what: &str, nr: Sys, a: [u64; 6], want: &str) -> Check {
    let r = call(nr, a);
    ensure!(r == ERROR, "{what}: succeeded with {r:#x}");
    let e = rt::Error::last();
    ensure!(
        e.msg().contains(want),
        "{what}: error {:?}, expected {want:?}",
        e.msg()
    );
    Ok(())
}

fn bad_arguments_are_errors() -> Check {
    use Sys::*;
    const KERNEL: u64 = 0xffff_8000_0000_0000;
    const UNMAPPED: u64 = 0x1000_0000;
    const BAD: &str = "bad address";
    let zero = fs::open("/dev/zero", fs::OREAD)?;
    let null = fs::open("/dev/null", fs::OWRITE)?;
    let path = "/dev/null";
    let (p, l) = (path.as_ptr() as u64, path.len() as u64);
    let mut buf = [0u8; 64];
    let b = buf.as_mut_ptr() as u64;
    let cases: &[(&str, Sys, [u64; 6], &str)] = &[
        ("open null path", Open, [1, 10, 0, 0, 0, 0], BAD),
        ("open kernel path", Open, [KERNEL, 10, 0, 0, 0, 0], BAD),
        (
            "open huge length",
            Open,
            [p, 1 << 40, 0, 0, 0, 0],
            "name too long",
        ),
        ("open bad mode", Open, [p, l, 0x8000, 0, 0, 0], "bad arg"),
        ("read into kernel", Read, [zero, KERNEL, 16, 0, 0, 0], BAD),
        (
            "read into unmapped",
            Read,
            [zero, UNMAPPED, 16, 0, 0, 0],
            BAD,
        ),
        (
            "read into unmapped, under eight bytes",
            Read,
            [zero, UNMAPPED, 5, 0, 0, 0],
            BAD,
        ),
        (
            "read wrapping",
            Read,
            [zero, u64::MAX - 4, 16, 0, 0, 0],
            BAD,
        ),
        (
            "read bad fd",
            Read,
            [9999, b, 16, 0, 0, 0],
            "fd out of range",
        ),
        ("write from kernel", Write, [null, KERNEL, 16, 0, 0, 0], BAD),
        (
            "write from unmapped",
            Write,
            [null, UNMAPPED, 16, 0, 0, 0],
            BAD,
        ),
        ("write huge length", Write, [null, b, 1 << 62, 0, 0, 0], BAD),
        (
            "pread negative offset",
            Pread,
            [zero, b, 16, u64::MAX, 0, 0],
            "bad offset",
        ),
        ("stat into kernel", Stat, [p, l, KERNEL, 64, 0, 0], BAD),
        ("stat short buffer", Stat, [p, l, b, 4, 0, 0], "too small"),
        (
            "fstat bad fd",
            Fstat,
            [9999, b, 64, 0, 0, 0],
            "fd out of range",
        ),
        ("wstat garbage", Wstat, [p, l, b, 8, 0, 0], "malformed stat"),
        ("exec bad path", Exec, [UNMAPPED, 8, 0, 0, 0, 0], BAD),
        ("exec bad argv", Exec, [p, l, UNMAPPED, 2, 0, 0], BAD),
        (
            "exec too many args",
            Exec,
            [p, l, b, 1 << 20, 0, 0],
            "too long",
        ),
        (
            "exec without permission",
            Exec,
            [p, l, 0, 0, 0, 0],
            "permission denied",
        ),
        ("pipe into kernel", Pipe, [KERNEL, 0, 0, 0, 0, 0], BAD),
        ("chdir bad path", Chdir, [UNMAPPED, 4, 0, 0, 0, 0], BAD),
        (
            "chdir to a file",
            Chdir,
            [p, l, 0, 0, 0, 0],
            "not a directory",
        ),
        ("bind bad path", Bind, [UNMAPPED, 4, p, l, 0, 0], BAD),
        ("bind bad flags", Bind, [p, l, p, l, 0x3, 0], "bad arg"),
        (
            "postnote no such pid",
            Postnote,
            [999_999, p, l, 0, 0, 0],
            "does not exist",
        ),
        (
            "postnote bad text",
            Postnote,
            [1, UNMAPPED, 4, 0, 0, 0],
            BAD,
        ),
        (
            "semacquire unaligned",
            Semacquire,
            [b + 1, 0, 0, 0, 0, 0],
            BAD,
        ),
        (
            "semacquire kernel",
            Semacquire,
            [KERNEL, 0, 0, 0, 0, 0],
            BAD,
        ),
        (
            "notify kernel handler",
            Notify,
            [KERNEL, 0, 0, 0, 0, 0],
            BAD,
        ),
        (
            "rfork unknown flags",
            Rfork,
            [1 << 40, 0, 0, 0, 0, 0],
            "bad arg",
        ),
        (
            "brk into the kernel",
            Brk,
            [KERNEL, 0, 0, 0, 0, 0],
            "allocate",
        ),
        ("seek bad whence", Seek, [zero, 0, 7, 0, 0, 0], "bad arg"),
        (
            "dup bad fd",
            Dup,
            [9999, u64::MAX, 0, 0, 0, 0],
            "fd out of range",
        ),
        (
            "close bad fd",
            Close,
            [9999, 0, 0, 0, 0, 0],
            "fd out of range",
        ),
        ("errstr into kernel", Errstr, [KERNEL, 64, 0, 0, 0, 0], BAD),
        (
            "noted outside a handler",
            Noted,
            [0, 0, 0, 0, 0, 0],
            "bad arg",
        ),
    ];
    for &(what, nr, a, want) in cases {
        expect_error(what, nr, a, want)?;
    }
    let r = call_raw(999);
    ensure!(
        r == ERROR && rt::Error::last().msg() == "bad system call",
        "syscall 999: {r:#x}"
    );
    // A bad await buffer loses no child: the exit message is still there afterwards.
    let pid = fork_child(RFPROC, || String::from("kept"))?;
    process::sleep(50)?;
    expect_error("await into kernel", Await, [KERNEL, 0, 0, 0, 0, 0], BAD)?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg == "kept", "the exit message was lost: {:?}", e.msg);
    // exits with a bad pointer still exits, with a message saying so.
    let pid = fork_child(RFPROC, || {
        call(Exits, [UNMAPPED, 8, 0, 0, 0, 0]);
        String::from("exits returned")
    })?;
    let (e, _) = process::wait_for(pid)?;
    ensure!(
        e.msg == "exits: bad address",
        "exits with a bad pointer: {:?}",
        e.msg
    );
    // The process is intact: fds still work.
    ensure!(
        io::read(zero, &mut buf)? == buf.len(),
        "reading /dev/zero after the errors"
    );
    io::close(zero)?;
    io::close(null)?;
    Ok(())
}

fn call_raw(nr: u64) -> u64 {
    let ret: u64;
    // SAFETY: An unknown system call number; the kernel rejects it without touching memory.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr => ret, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn spawn_and_reap(n: usize) -> Check {
    let mut pids = Vec::new();
    for i in 0..n {
        pids.push(fork_child(RFPROC | RFFDG, move || format!("child {i}"))?);
    }
    for _ in 0..n {
        let e = process::await_child()?;
        ensure!(pids.contains(&e.pid), "unknown child {}", e.pid);
    }
    ensure!(process::await_child().is_err(), "a child too many");
    Ok(())
}

fn processes_free_everything() -> Check {
    spawn_and_reap(200)?; // warm-up: kernel tables reach their working size
    let before = testkit::InUse::now()?;
    spawn_and_reap(200)?;
    testkit::expect_nothing_lost("200 processes", before)
}

const CASES: &[testkit::Case] = &[
    ("fork_exec_await", fork_exec_await),
    ("threads_share_memory", threads_share_memory),
    ("note_interrupts_sleep", note_interrupts_sleep),
    ("note_interrupts_await", note_interrupts_await),
    (
        "handler_returns_and_work_continues",
        handler_returns_and_work_continues,
    ),
    ("kill_ends_an_unkillable_loop", kill_ends_an_unkillable_loop),
    ("bad_arguments_are_errors", bad_arguments_are_errors),
    ("processes_free_everything", processes_free_everything),
];

fn main() -> rt::Result<()> {
    let argv = rt::env::args();
    if argv.get(1).map(String::as_str) == Some("exit-with") {
        process::exits(argv.get(2).map_or("", String::as_str));
    }
    testkit::run("ptest", CASES, &argv[1..])
}
