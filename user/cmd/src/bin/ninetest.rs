//! ninetest: checks the kernel's 9P client (`mount`) against our user-space file server
//! (`ramfs`): files and directories through the mount, a 16 MiB file, two readers at once, a
//! server killed mid-read, a server that sends garbage, writers killed by notes mid-request. `ninetest bench` prints read
//! throughput through a mount at msize 8 KiB and 64 KiB.

#![no_std]
#![no_main]

use rt::fs::{self, MCREATE, MREPL, OREAD, OWRITE};
use rt::process::{self, RFFDG, RFNAMEG, RFNOTEG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{format, io, println, vec};

use cmd::ensure;
use cmd::testkit::{self, Check, FNV_START, expect_err, fnv, in_child};

rt::entry!(main);

fn write_file(path: &str, data: &[u8]) -> Check {
    let fd = fs::create(path, OWRITE, 0o644)?;
    let mut done = 0;
    while done < data.len() {
        done += io::write(fd, &data[done..])?;
    }
    io::close(fd)
}

/// Starts ramfs as a child of ours (so we can kill it) serving on a pipe, mounts it on `dir`
/// with `msize` (0 = default); returns its pid.
fn start_ramfs(dir: &str, msize: u32) -> rt::Result<u64> {
    let (client, server) = io::pipe()?;
    let pid = match process::rfork(RFPROC | RFFDG | RFNOTEG)? {
        0 => {
            let _ = io::close(client);
            let _ = io::dup(server, Some(0));
            let e = process::exec("/bin/ramfs", &[String::from("ramfs"), String::from("-i")]);
            process::exits(e.msg())
        }
        pid => pid,
    };
    io::close(server)?;
    let flags = abi::sys::bind::with_msize(MREPL | MCREATE, msize);
    fs::mount(client, dir, flags, "")?;
    io::close(client)?;
    Ok(pid)
}

fn scratch() -> rt::Result<String> {
    let dir = format!("/tmp/ninetest-{}", process::getpid());
    fs::create(&dir, OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    Ok(dir)
}

fn files_through_a_mount() -> Check {
    in_child(|| {
        let m = scratch()?;
        let server = start_ramfs(&m, 0)?;
        write_file(&format!("{m}/a"), b"hello 9P")?;
        ensure!(
            fs::read_file(&format!("{m}/a"))? == b"hello 9P",
            "read back"
        );
        fs::create(&format!("{m}/dir"), OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
        write_file(&format!("{m}/dir/b"), b"b")?;
        let names: Vec<String> = fs::read_dir(&m)?
            .into_iter()
            .map(|d| String::from(d.name.as_ref()))
            .collect();
        ensure!(names == ["a", "dir"], "listing {names:?}");
        let st = fs::stat(&format!("{m}/a"))?;
        ensure!(st.length == 8 && st.mode & 0o777 == 0o644, "stat {st:?}");
        let mut w = ninep::Dir::dont_touch();
        w.name = "renamed".into();
        fs::wstat(&format!("{m}/a"), &w)?;
        ensure!(
            fs::read_file(&format!("{m}/renamed"))? == b"hello 9P",
            "rename"
        );
        expect_err(
            "old name",
            fs::open(&format!("{m}/a"), OREAD),
            "does not exist",
        )?;
        expect_err(
            "remove a non-empty dir",
            fs::remove(&format!("{m}/dir")),
            "not empty",
        )?;
        fs::remove(&format!("{m}/dir/b"))?;
        fs::remove(&format!("{m}/dir"))?;
        fs::remove(&format!("{m}/renamed"))?;
        ensure!(
            fs::read_dir(&m)?.is_empty(),
            "not empty after removing everything"
        );
        fs::unmount(None, &m)?;
        process::postnote(server, "kill")?;
        process::wait_for(server)?;
        Ok(())
    })
}

fn sixteen_mib_and_two_readers() -> Check {
    in_child(|| {
        let m = scratch()?;
        let server = start_ramfs(&m, 0)?;
        let path = format!("{m}/big");
        let data: Vec<u8> = (0..16u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let want = fnv(FNV_START, &data);
        write_file(&path, &data)?;
        drop(data);
        let read_sum = |path: &str| -> rt::Result<u64> {
            let fd = fs::open(path, OREAD)?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut h = FNV_START;
            loop {
                let n = io::read(fd, &mut buf)?;
                if n == 0 {
                    break;
                }
                h = fnv(h, &buf[..n]);
            }
            io::close(fd)?;
            Ok(h)
        };
        // A second process reads at the same time.
        let other = match process::rfork(RFPROC | RFFDG)? {
            0 => process::exits(if read_sum(&path) == Ok(want) {
                ""
            } else {
                "checksum mismatch"
            }),
            pid => pid,
        };
        ensure!(read_sum(&path)? == want, "checksum of the 16 MiB file");
        let (e, _) = process::wait_for(other)?;
        ensure!(e.msg.is_empty(), "the other reader: {}", e.msg);
        fs::unmount(None, &m)?;
        process::postnote(server, "kill")?;
        process::wait_for(server)?;
        Ok(())
    })
}

fn server_killed_mid_read() -> Check {
    in_child(|| {
        let m = scratch()?;
        let server = start_ramfs(&m, 0)?;
        write_file(&format!("{m}/f"), &vec![7u8; 4 << 20])?;
        let reader = match process::rfork(RFPROC | RFFDG)? {
            0 => {
                let path = format!("{}/f", m);
                let r = (|| -> rt::Result<()> {
                    let fd = fs::open(&path, OREAD)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        io::pread(fd, &mut buf, 0)?;
                    }
                })();
                process::exits(r.err().as_ref().map_or("no error", |e| e.msg()))
            }
            pid => pid,
        };
        process::sleep(200)?;
        process::postnote(server, "kill")?;
        process::wait_for(server)?;
        let t0 = rt::sys::nsec();
        let (e, _) = process::wait_for(reader)?;
        let ms = (rt::sys::nsec() - t0) / 1_000_000;
        ensure!(
            e.msg.contains("hung up") && e.msg.contains(&m),
            "the reader ended with {:?}",
            e.msg
        );
        ensure!(ms < 10_000, "the reader took {ms} ms to notice");
        // Later calls fail at once with the same kind of error; unmount still works.
        expect_err(
            "stat on a dead mount",
            fs::stat(&format!("{m}/f")),
            "hung up",
        )?;
        fs::unmount(None, &m)?;
        Ok(())
    })
}

/// Writers interrupted by notes while their requests are on the wire: each dies of its note,
/// but a request it had started sending is finished first, so the connection stays in step
/// and the mount keeps working for everyone else. Eight writers at once fill the pipe to the
/// server (256 KiB), so some are blocked in the middle of a 64 KiB Twrite when the note comes.
fn notes_mid_write_keep_the_mount() -> Check {
    in_child(|| {
        let m = scratch()?;
        let server = start_ramfs(&m, 0)?;
        for round in 0..4u64 {
            let mut writers = Vec::new();
            for i in 0..8 {
                let path = format!("{m}/w{round}-{i}");
                writers.push(match process::rfork(RFPROC | RFFDG)? {
                    0 => {
                        let r = (|| -> rt::Result<()> {
                            let fd = fs::create(&path, OWRITE, 0o644)?;
                            let data = vec![i as u8; 1 << 20];
                            loop {
                                io::pwrite(fd, &data, 0)?;
                            }
                        })();
                        process::exits(r.err().as_ref().map_or("no error", |e| e.msg()))
                    }
                    pid => pid,
                });
            }
            process::sleep(40 + 13 * round)?;
            for &w in &writers {
                // A writer that already ended is reported below with its exit string.
                let _ = process::postnote(w, "interrupt");
            }
            // Each dies of its note ("interrupt"), in whatever order.
            while !writers.is_empty() {
                let e = process::await_child()?;
                ensure!(writers.contains(&e.pid), "pid {} exited: {}", e.pid, e.msg);
                ensure!(
                    e.msg == "interrupt",
                    "writer {} ended with {:?}",
                    e.pid,
                    e.msg
                );
                writers.retain(|&w| w != e.pid);
            }
        }
        // The mount still answers.
        write_file(&format!("{m}/after"), b"still in step")?;
        ensure!(
            fs::read_file(&format!("{m}/after"))? == b"still in step",
            "read back after the interrupted writers"
        );
        fs::unmount(None, &m)?;
        process::postnote(server, "kill")?;
        process::wait_for(server)?;
        Ok(())
    })
}

fn server_sends_garbage() -> Check {
    in_child(|| {
        let m = scratch()?;
        let (client, server) = io::pipe()?;
        let pid = match process::rfork(RFPROC | RFFDG)? {
            0 => {
                // Answer Tversion properly, then send a frame whose size is absurd.
                let _ = io::close(client);
                let mut buf = vec![0u8; 8192];
                let _ = io::read(server, &mut buf);
                let rversion = ninep::Fcall {
                    tag: ninep::NOTAG,
                    msg: ninep::Msg::Rversion {
                        msize: 8192,
                        version: "9P2000".into(),
                    },
                };
                let _ = io::write(
                    server,
                    &rversion
                        .to_vec(ninep::Dialect::V9P2000, 8192)
                        .unwrap_or_default(),
                );
                let _ = io::read(server, &mut buf);
                let _ = io::write(server, &[0xff, 0xff, 0xff, 0x7f, 105, 0, 0]);
                let _ = io::read(server, &mut buf);
                process::exits("")
            }
            pid => pid,
        };
        io::close(server)?;
        expect_err(
            "mount of a broken server",
            fs::mount(client, &m, MREPL, ""),
            "malformed",
        )?;
        io::close(client)?;
        process::wait_for(pid)?;
        Ok(())
    })
}

/// Reads a 16 MiB file through a mount with `msize`; returns MiB/s.
fn throughput(msize: u32) -> rt::Result<u64> {
    let m = scratch()?;
    let server = start_ramfs(&m, msize)?;
    let path = format!("{m}/big");
    write_file(&path, &vec![1u8; 16 << 20])?;
    let fd = fs::open(&path, OREAD)?;
    let mut buf = vec![0u8; 1 << 20];
    let t0 = rt::sys::nsec();
    let mut total = 0u64;
    loop {
        let n = io::read(fd, &mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let ns = rt::sys::nsec() - t0;
    io::close(fd)?;
    fs::unmount(None, &m)?;
    process::postnote(server, "kill")?;
    process::wait_for(server)?;
    fs::remove(&m)?;
    Ok(((u128::from(total) * 1_000_000_000 / u128::from(ns.max(1))) >> 20) as u64)
}

fn bench() -> Check {
    match process::rfork(RFPROC | RFFDG | RFNAMEG)? {
        0 => {
            let r = (|| -> rt::Result<()> {
                let small = throughput(8 * 1024 + ninep::IOHDRSZ)?;
                let large = throughput(64 * 1024 + ninep::IOHDRSZ)?;
                println!(
                    "9P read through the mount: msize 8 KiB {small} MiB/s, 64 KiB {large} MiB/s, ratio {}.{:02}",
                    large / small.max(1),
                    large * 100 / small.max(1) % 100
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
}

const CASES: &[testkit::Case] = &[
    ("files_through_a_mount", files_through_a_mount),
    ("sixteen_mib_and_two_readers", sixteen_mib_and_two_readers),
    ("server_killed_mid_read", server_killed_mid_read),
    ("server_sends_garbage", server_sends_garbage),
    (
        "notes_mid_write_keep_the_mount",
        notes_mid_write_keep_the_mount,
    ),
];

fn main() -> rt::Result<()> {
    let args = &rt::env::args()[1..];
    if args.len() == 1 && args[0] == "bench" {
        return bench();
    }
    testkit::run("ninetest", CASES, args)
}
