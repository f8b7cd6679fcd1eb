//! nstest: checks namespaces and devices on a running system: bind/mount unions, MCREATE,
//! unmount, per-process namespaces, #tmpfs, #pipe, #srv, #proc and bad input. Prints one line
//! per case and `nstest: N passed, M failed`. Disk cases run when a disk is attached.

#![no_std]
#![no_main]

use rt::fs::{self, MAFTER, MBEFORE, MCREATE, MREPL, ORDWR, OREAD, OWRITE};
use rt::process::{self, RFFDG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{format, io, println, vec};

use cmd::ensure;
use cmd::testkit::{self, Check, FNV_START, expect_err, fnv, in_child};

rt::entry!(main);

fn write_file(path: &str, data: &[u8]) -> Check {
    let fd = fs::create(path, OWRITE, 0o644)?;
    let r = io::write(fd, data);
    io::close(fd)?;
    ensure!(r? == data.len(), "short write to {path}");
    Ok(())
}

fn names(path: &str) -> rt::Result<Vec<String>> {
    Ok(fs::read_dir(path)?
        .into_iter()
        .map(|d| String::from(d.name.as_ref()))
        .collect())
}

fn tmpfs_files_and_directories() -> Check {
    let d = "/tmp/nstest-files";
    fs::create(d, OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    write_file(&format!("{d}/a"), b"hello")?;
    ensure!(fs::read_file(&format!("{d}/a"))? == b"hello", "read back");
    // create truncates an existing file (Plan 9 create(2)); OEXCL refuses it.
    write_file(&format!("{d}/a"), b"hi")?;
    ensure!(
        fs::read_file(&format!("{d}/a"))? == b"hi",
        "create did not truncate"
    );
    expect_err(
        "create OEXCL",
        fs::create(&format!("{d}/a"), OWRITE | fs::OEXCL, 0o644),
        "exists",
    )?;
    // Sparse write: a hole reads as zeros.
    let fd = fs::open(&format!("{d}/a"), ORDWR)?;
    io::pwrite(fd, b"end", 100_000)?;
    let mut buf = vec![1u8; 10];
    io::pread(fd, &mut buf, 50_000)?;
    ensure!(buf.iter().all(|&b| b == 0), "hole is not zero");
    io::close(fd)?;
    ensure!(
        fs::stat(&format!("{d}/a"))?.length == 100_003,
        "sparse length"
    );
    // Append through DMAPPEND.
    let fd = fs::create(&format!("{d}/log"), OWRITE, 0o644 | ninep::DMAPPEND)?;
    io::pwrite(fd, b"one", 0)?;
    io::pwrite(fd, b"two", 0)?;
    io::close(fd)?;
    ensure!(fs::read_file(&format!("{d}/log"))? == b"onetwo", "append");
    // Rename and truncate with wstat.
    let mut w = ninep::Dir::dont_touch();
    w.name = "b".into();
    fs::wstat(&format!("{d}/a"), &w)?;
    expect_err(
        "old name after rename",
        fs::stat(&format!("{d}/a")),
        "does not exist",
    )?;
    let mut t = ninep::Dir::dont_touch();
    t.length = 1;
    fs::wstat(&format!("{d}/b"), &t)?;
    ensure!(fs::read_file(&format!("{d}/b"))? == b"h", "truncate");
    // Directories: mkdir, non-empty remove refused, listing sorted by name.
    fs::create(&format!("{d}/sub"), OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    write_file(&format!("{d}/sub/x"), b"x")?;
    expect_err(
        "remove non-empty dir",
        fs::remove(&format!("{d}/sub")),
        "not empty",
    )?;
    fs::remove(&format!("{d}/sub/x"))?;
    fs::remove(&format!("{d}/sub"))?;
    ensure!(names(d)? == ["b", "log"], "listing {:?}", names(d)?);
    for f in ["b", "log"] {
        fs::remove(&format!("{d}/{f}"))?;
    }
    fs::remove(d)?;
    Ok(())
}

fn tmpfs_many_files() -> Check {
    let d = "/tmp/nstest-many";
    fs::create(d, OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    const N: usize = 2000;
    for i in 0..N {
        write_file(&format!("{d}/f{i}"), format!("{i}").as_bytes())?;
    }
    let listed = names(d)?;
    ensure!(listed.len() == N, "listed {} of {N}", listed.len());
    let mut paths: Vec<u64> = Vec::new();
    for i in (0..N).step_by(97) {
        let st = fs::stat(&format!("{d}/f{i}"))?;
        paths.push(st.qid.path);
        ensure!(
            fs::read_file(&format!("{d}/f{i}"))? == format!("{i}").as_bytes(),
            "content of f{i}"
        );
    }
    let mut unique = paths.clone();
    unique.sort_unstable();
    unique.dedup();
    ensure!(unique.len() == paths.len(), "qid paths collide");
    for i in 0..N {
        fs::remove(&format!("{d}/f{i}"))?;
    }
    fs::remove(d)?;
    Ok(())
}

fn tmpfs_64_mib_file() -> Check {
    let path = "/tmp/nstest-big";
    const MIB: usize = 1 << 20;
    let fd = fs::create(path, ORDWR, 0o644)?;
    let mut written = FNV_START;
    let mut block = vec![0u8; MIB];
    for i in 0..64u32 {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (j as u32).wrapping_mul(31).wrapping_add(i) as u8;
        }
        written = fnv(written, &block);
        ensure!(io::write(fd, &block)? == MIB, "short write");
    }
    io::close(fd)?;
    ensure!(fs::stat(path)?.length == 64 * MIB as u64, "length");
    let fd = fs::open(path, OREAD)?;
    let mut read = FNV_START;
    let mut total = 0;
    loop {
        let n = io::read(fd, &mut block)?;
        if n == 0 {
            break;
        }
        read = fnv(read, &block[..n]);
        total += n;
    }
    io::close(fd)?;
    fs::remove(path)?;
    ensure!(
        total == 64 * MIB && read == written,
        "checksum {read:#x} != {written:#x} ({total} bytes)"
    );
    Ok(())
}

/// Filling tmpfs ends in "file system full", not in a kernel out of memory; removing the file
/// gives the memory back to the system. One byte per page reaches the limit (half of memory).
fn tmpfs_full_is_an_error() -> Check {
    let free = || testkit::memory_figure("free");
    let free_before = free()?;
    let path = "/tmp/nstest-full";
    let fd = fs::create(path, OWRITE, 0o644)?;
    let mut pages = 0u64;
    let err = loop {
        match io::pwrite(fd, b"x", pages * 4096) {
            Ok(1) => pages += 1,
            Ok(n) => break format!("short write of {n} bytes"),
            Err(e) => break String::from(e.msg()),
        }
        ensure!(pages < 1 << 24, "no limit after 64 GiB");
    };
    io::close(fd)?;
    ensure!(err.contains("file system full"), "the error was {err:?}");
    fs::remove(path)?;
    let free_after = free()?;
    println!(
        "  full after {} MiB: {err}; free memory {} MiB before, {} MiB after removing the file",
        pages / 256,
        free_before >> 20,
        free_after >> 20
    );
    // The page index's own heap nodes may stay with the heap; the pages themselves come back.
    ensure!(
        free_after + (16 << 20) >= free_before,
        "the file's memory did not come back"
    );
    write_file("/tmp/nstest-after-full", b"room again")?;
    ensure!(
        fs::read_file("/tmp/nstest-after-full")? == b"room again",
        "read back after the room came back"
    );
    fs::remove("/tmp/nstest-after-full")?;
    Ok(())
}

fn union_order_and_create() -> Check {
    in_child(|| {
        let a = "/tmp/u-a";
        let b = "/tmp/u-b";
        let m = "/tmp/u-m";
        for d in [a, b, m] {
            fs::create(d, OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
        }
        write_file(&format!("{a}/same"), b"from a")?;
        write_file(&format!("{b}/same"), b"from b")?;
        write_file(&format!("{b}/only-b"), b"b")?;
        fs::bind(a, m, MREPL)?;
        fs::bind(b, m, MAFTER)?;
        ensure!(
            fs::read_file(&format!("{m}/same"))? == b"from a",
            "MAFTER: first member wins"
        );
        ensure!(
            fs::read_file(&format!("{m}/only-b"))? == b"b",
            "walk into the second member"
        );
        let listed = names(m)?;
        ensure!(
            listed == ["same", "only-b"] || listed == ["only-b", "same"],
            "union listing {listed:?}"
        );
        expect_err(
            "create without MCREATE",
            fs::create(&format!("{m}/new"), OWRITE, 0o644),
            "forbids creation",
        )?;
        fs::unmount(Some(b), m)?;
        fs::bind(b, m, MBEFORE | MCREATE)?;
        ensure!(
            fs::read_file(&format!("{m}/same"))? == b"from b",
            "MBEFORE: new member first"
        );
        write_file(&format!("{m}/new"), b"n")?;
        ensure!(
            fs::read_file(&format!("{b}/new"))? == b"n",
            "create went to the MCREATE member"
        );
        // Unmount one member: the other stays.
        fs::unmount(Some(b), m)?;
        expect_err(
            "unmounted member",
            fs::stat(&format!("{m}/only-b")),
            "does not exist",
        )?;
        ensure!(
            fs::read_file(&format!("{m}/same"))? == b"from a",
            "remaining member"
        );
        fs::unmount(None, m)?;
        ensure!(
            names(m)?.is_empty(),
            "mount point not empty after unmount all"
        );
        expect_err(
            "unmount what is not mounted",
            fs::unmount(None, m),
            "not mounted",
        )?;
        Ok(())
    })
}

fn rfnameg_isolates() -> Check {
    let mark = "/tmp/ns-isolated";
    fs::create(mark, OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    in_child(|| {
        fs::bind("#arch", "/tmp/ns-isolated", MREPL)?;
        ensure!(
            fs::stat("/tmp/ns-isolated/cpu").is_ok(),
            "bind in the child"
        );
        Ok(())
    })?;
    expect_err(
        "the parent sees the child's bind",
        fs::stat(&format!("{mark}/cpu")),
        "does not exist",
    )?;
    fs::remove(mark)?;
    Ok(())
}

fn bad_namespace_input() -> Check {
    expect_err(
        "missing path",
        fs::open("/no/such/file", OREAD),
        "does not exist",
    )?;
    expect_err(
        "create in read-only dir",
        fs::create("/bin/new", OWRITE, 0o644),
        "permission denied",
    )?;
    expect_err(
        "bind a file onto a dir",
        fs::bind("/dev/null", "/tmp", MREPL),
        "inconsistent mount",
    )?;
    expect_err(
        "walk through a file",
        fs::open("/dev/null/x", OREAD),
        "not a directory",
    )?;
    expect_err(
        "unknown device",
        fs::open("#nosuchdev", OREAD),
        "mount/attach disallowed",
    )?;
    // `..` past the root stays at the root.
    ensure!(fs::stat("/../../dev/null").is_ok(), "/../../dev/null");
    ensure!(fs::stat("#tmpfs/../..").is_ok(), "#tmpfs/../..");
    expect_err(
        "write a directory",
        fs::open("/tmp", OWRITE),
        "is a directory",
    )?;
    Ok(())
}

fn pipe_hangup_both_ways() -> Check {
    // Readers see end of file after the writers' side is closed, with the data first.
    let (a, b) = io::pipe()?;
    io::write(a, b"last words")?;
    io::close(a)?;
    let mut buf = [0u8; 64];
    let n = io::read(b, &mut buf)?;
    ensure!(&buf[..n] == b"last words", "data before hangup");
    ensure!(io::read(b, &mut buf)? == 0, "end of file after hangup");
    io::close(b)?;
    // Writers get an error once the other side has gone.
    let (a, b) = io::pipe()?;
    io::close(b)?;
    expect_err("write to a hung-up pipe", io::write(a, b"x"), "hungup")?;
    io::close(a)?;
    // The #pipe device: data and data1 opened by name.
    fs::create("/tmp/p", OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    in_child(|| {
        fs::bind("#pipe", "/tmp/p", MREPL)?;
        let w = fs::open("/tmp/p/data", OWRITE)?;
        let r = fs::open("/tmp/p/data1", OREAD)?;
        io::write(w, b"SHUTDOWN\n")?;
        io::close(w)?;
        let text = io::read_all(r)?;
        ensure!(text == b"SHUTDOWN\n", "through #pipe: {text:?}");
        Ok(())
    })?;
    fs::remove("/tmp/p")?;
    Ok(())
}

fn srv_posts_a_channel() -> Check {
    let (a, b) = io::pipe()?;
    let fd = fs::create("/srv/nstest", OWRITE, 0o666)?;
    io::write(fd, format!("{b}").as_bytes())?;
    io::close(fd)?;
    io::close(b)?;
    let posted = fs::open("/srv/nstest", ORDWR)?;
    io::write(a, b"via srv")?;
    let mut buf = [0u8; 16];
    let n = io::read(posted, &mut buf)?;
    ensure!(&buf[..n] == b"via srv", "read through the posted channel");
    io::close(posted)?;
    fs::remove("/srv/nstest")?;
    expect_err(
        "removed name",
        fs::open("/srv/nstest", OREAD),
        "does not exist",
    )?;
    io::close(a)?;
    Ok(())
}

fn proc_files() -> Check {
    let me = process::getpid();
    let status = fs::read_to_string(&format!("/proc/{me}/status"))?;
    let fields: Vec<&str> = status.split_whitespace().collect();
    ensure!(
        fields.len() == 4 && fields[0] == format!("{me}") && fields[1] == "nstest",
        "status {status:?}"
    );
    ensure!(fields[2] == "RUNNING", "state {}", fields[2]);
    let ns = fs::read_to_string(&format!("/proc/{me}/ns"))?;
    ensure!(ns.contains("'#proc' '/proc'"), "ns {ns:?}");
    // A child's files disappear once it has exited.
    let pid = process::spawn("/bin/true", &[String::from("true")])?;
    process::wait_for(pid)?;
    expect_err(
        "files of an exited process",
        fs::stat(&format!("/proc/{pid}/status")),
        "does not exist",
    )?;
    Ok(())
}

/// The fsvm pattern: cd into a fresh #tmpfs, bind #pipe inside it, exit. Nothing may remain,
/// whether the bind replaced the directory or joined it in a union (whose member for the
/// directory itself must not keep the instance alive).
fn tmpfs_instance_freed_with_its_binds() -> Check {
    let mounts = || -> rt::Result<usize> {
        Ok(
            fs::read_to_string(&format!("/proc/{}/ns", process::getpid()))?
                .lines()
                .count(),
        )
    };
    let objects = || testkit::memory_figure("heap-objects");
    let run = |flags: u64| -> Check {
        // Shares our namespace on purpose: the bind lands in it.
        match process::rfork(RFPROC | RFFDG)? {
            0 => {
                let r = (|| -> Check {
                    fs::chdir("#tmpfs")?;
                    fs::create("pipe-dir", OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
                    write_file("pipe-dir/own", b"mine")?;
                    fs::bind("#pipe", "pipe-dir", flags)?;
                    write_file("cmdline", b"console=hvc0")?;
                    ensure!(fs::stat("pipe-dir/data").is_ok(), "pipe bound");
                    ensure!(
                        fs::stat("pipe-dir/own").is_ok() == (flags != MREPL),
                        "the directory's own file with flags {flags:#x}"
                    );
                    Ok(())
                })();
                process::exits(r.err().as_ref().map_or("", |e| e.msg()))
            }
            pid => {
                let (e, _) = process::wait_for(pid)?;
                ensure!(e.msg.is_empty(), "{}", e.msg);
                Ok(())
            }
        }
    };
    for (name, flags) in [("MREPL", MREPL), ("MAFTER", MAFTER), ("MBEFORE", MBEFORE)] {
        run(flags)?; // warm-up
        let (m0, o0) = (mounts()?, objects()?);
        run(flags)?;
        let (m1, o1) =
            testkit::settle(|| Ok((mounts()?, objects()?)), |&(m, o)| m <= m0 && o <= o0)?;
        println!("  {name}: mount entries {m0} -> {m1}, heap objects {o0} -> {o1}");
        ensure!(m1 == m0, "{name}: a mount entry was left behind");
        ensure!(o1 <= o0, "{name}: {} heap objects left behind", o1 - o0);
    }
    Ok(())
}

/// Raw disk I/O on the first disk, if one is attached: unaligned writes read back with the
/// same checksum, the partition table is listed, and writing past the end fails. What the
/// test overwrites is put back afterwards.
fn disk_raw_io() -> Check {
    let data = "/dev/sdE0/data";
    let Ok(st) = fs::stat(data) else {
        println!("  no disk attached: skipped");
        return Ok(());
    };
    let ctl = fs::read_to_string("/dev/sdE0/ctl")?;
    ensure!(
        ctl.contains("geometry ") && ctl.contains("part data 0 "),
        "ctl {ctl:?}"
    );
    println!(
        "  {}",
        ctl.lines()
            .filter(|l| l.starts_with("part "))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let fd = fs::open(data, ORDWR)?;
    let offset = st.length / 2 + 17; // unaligned, away from any table
    let pattern: Vec<u8> = (0..(1 << 20) + 333)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    ensure!(
        io::pwrite(fd, &pattern, offset)? == pattern.len(),
        "short write"
    );
    let mut back = vec![0u8; pattern.len()];
    let mut got = 0;
    while got < back.len() {
        let n = io::pread(fd, &mut back[got..], offset + got as u64)?;
        ensure!(n > 0, "early end of disk");
        got += n;
    }
    let sum = |d: &[u8]| fnv(FNV_START, d);
    ensure!(
        sum(&back) == sum(&pattern),
        "checksum after write and read back"
    );
    expect_err(
        "write past the end",
        io::pwrite(fd, b"x", st.length),
        "past the end",
    )?;
    ensure!(
        io::pread(fd, &mut back[..16], st.length)? == 0,
        "read at the end is not end of file"
    );
    let sync = fs::open("/dev/sdE0/ctl", OWRITE)?;
    io::write(sync, b"sync")?;
    io::close(sync)?;
    io::close(fd)?;
    Ok(())
}

/// Scripts run through their `#!` interpreter; files that are neither fail cleanly.
fn exec_scripts_and_bad_images() -> Check {
    let run = |path: &str| -> rt::Result<String> {
        let pid = process::spawn(path, &[String::from(path), String::from("extra")])?;
        Ok(process::wait_for(pid)?.0.msg)
    };
    let write_exec = |path: &str, body: &[u8]| -> Check {
        let fd = fs::create(path, OWRITE, 0o755)?;
        io::write(fd, body)?;
        io::close(fd)
    };
    write_exec("/tmp/script", b"#!/bin/ptest exit-with\necho not reached\n")?;
    let msg = run("/tmp/script")?;
    ensure!(
        msg == "/tmp/script",
        "the interpreter got the wrong arguments: {msg:?}"
    );
    write_exec("/tmp/junk", b"\x7fELF but not really")?;
    let msg = run("/tmp/junk")?;
    ensure!(msg.contains("exec header invalid"), "junk image: {msg:?}");
    write_exec("/tmp/script2", b"#!/tmp/script\n")?;
    let msg = run("/tmp/script2")?;
    ensure!(
        msg.contains("exec header invalid"),
        "script as interpreter: {msg:?}"
    );
    write_exec("/tmp/script3", b"#!/no/such/interpreter\n")?;
    let msg = run("/tmp/script3")?;
    ensure!(
        msg.contains("does not exist"),
        "missing interpreter: {msg:?}"
    );
    for f in ["/tmp/script", "/tmp/junk", "/tmp/script2", "/tmp/script3"] {
        fs::remove(f)?;
    }
    Ok(())
}

const CASES: &[testkit::Case] = &[
    ("disk_raw_io", disk_raw_io),
    ("exec_scripts_and_bad_images", exec_scripts_and_bad_images),
    ("tmpfs_files_and_directories", tmpfs_files_and_directories),
    ("tmpfs_many_files", tmpfs_many_files),
    ("tmpfs_64_mib_file", tmpfs_64_mib_file),
    ("tmpfs_full_is_an_error", tmpfs_full_is_an_error),
    ("union_order_and_create", union_order_and_create),
    ("rfnameg_isolates", rfnameg_isolates),
    ("bad_namespace_input", bad_namespace_input),
    ("pipe_hangup_both_ways", pipe_hangup_both_ways),
    ("srv_posts_a_channel", srv_posts_a_channel),
    ("proc_files", proc_files),
    (
        "tmpfs_instance_freed_with_its_binds",
        tmpfs_instance_freed_with_its_binds,
    ),
];

fn main() -> rt::Result<()> {
    testkit::run("nstest", CASES, &rt::env::args()[1..])
}
