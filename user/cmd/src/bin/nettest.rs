//! nettest: checks the kernel's TCP (`#ip` at /net) over the loopback interface with a server
//! and a client in two processes: interfaces listed, 50 connections, callers waiting on a full
//! backlog, a 16 MiB transfer with a checksum, end of file when the peer closes, writes failing
//! after the peer resets, clear errors for bad dial strings, a refused connection failing at
//! once, a blocked read cut short by a note; UDP datagrams through a server in `headers` mode. Prints a line per case and `nettest: N passed, M failed`.
//!
//! - `nettest bench`: loopback throughput, round-trip time and connection setup time.
//! - `nettest mount DIAL DIR`: mounts the 9P server at DIAL (`tcp!10.0.2.2!5640`) on DIR (made
//!   if missing) and lists it, with the contents of small files.

#![no_std]
#![no_main]

use rt::fs::{self, MREPL, OREAD};
use rt::net::{self, Listener};
use rt::notes::{self, Action};
use rt::process::{self, RFFDG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{format, io, println, vec};

rt::entry!(main);

type Check = rt::Result<()>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(rt::Error(format!($($msg)*)));
        }
    };
}

/// Expects an error whose message contains every one of `want`.
fn expect_err<T: core::fmt::Debug>(what: &str, r: rt::Result<T>, want: &[&str]) -> Check {
    match r {
        Ok(v) => Err(rt::Error(format!("{what}: succeeded ({v:?})"))),
        Err(e) if want.iter().all(|w| e.msg().contains(w)) => Ok(()),
        Err(e) => Err(rt::Error(format!(
            "{what}: {:?}, expected {want:?}",
            e.msg()
        ))),
    }
}

fn fnv(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Runs `body` in a child process sharing our fds (so it can accept on our listener); the
/// child's error becomes its exit string.
fn child(body: impl FnOnce() -> Check) -> rt::Result<u64> {
    match process::rfork(RFPROC | RFFDG)? {
        0 => match body() {
            Ok(()) => process::exits(""),
            Err(e) => process::exits(e.msg()),
        },
        pid => Ok(pid),
    }
}

/// Waits for a child started by `child` and turns its exit string into a result.
fn join(pid: u64, what: &str) -> Check {
    let (e, _) = process::wait_for(pid)?;
    ensure!(e.msg.is_empty(), "{what}: {}", e.msg);
    Ok(())
}

/// A listener on a port the kernel picks, on the loopback address.
fn listener() -> rt::Result<(Listener, String)> {
    let l = net::announce("tcp!127.0.0.1!0")?;
    let port = l.port()?;
    Ok((l, format!("tcp!127.0.0.1!{port}")))
}

fn interfaces() -> Check {
    let ifcs = net::interfaces()?;
    ensure!(
        ifcs.first()
            .is_some_and(|l| l.starts_with("lo ") && l.contains("127.0.0.1/8")),
        "interfaces: {ifcs:?}"
    );
    let names: Vec<String> = fs::read_dir("/net/tcp")?
        .into_iter()
        .map(|d| String::from(d.name.as_ref()))
        .collect();
    ensure!(
        names.iter().any(|n| n == "clone"),
        "/net/tcp holds {names:?}"
    );
    Ok(())
}

/// An echo server: for `calls` connections, sends back what it reads until end of file.
fn echo_server(l: &Listener, calls: usize) -> Check {
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..calls {
        let (fd, remote) = l.accept()?;
        ensure!(
            remote.starts_with("tcp!127.0.0.1!"),
            "call {i} from {remote}"
        );
        loop {
            let n = io::read(fd, &mut buf)?;
            if n == 0 {
                break;
            }
            net::write_all(fd, &buf[..n])?;
        }
        io::close(fd)?;
    }
    Ok(())
}

fn fifty_connections() -> Check {
    let (l, addr) = listener()?;
    let server = child(|| echo_server(&l, 50))?;
    for i in 0..50 {
        let fd = net::dial(&addr)?;
        let msg = format!("hello {i}");
        net::write_all(fd, msg.as_bytes())?;
        let mut back = vec![0u8; msg.len()];
        net::read_exact(fd, &mut back)?;
        ensure!(back == msg.as_bytes(), "connection {i}: echo {back:?}");
        if i == 0 {
            let status = net::status(fd)?;
            ensure!(status.starts_with("Established"), "status {status:?}");
            let remote = net::remote(fd)?;
            ensure!(addr.ends_with(&remote), "remote {remote:?}, dialled {addr}");
            let local = net::local(fd)?;
            ensure!(local.starts_with("127.0.0.1!"), "local {local:?}");
        }
        io::close(fd)?;
    }
    join(server, "echo server")
}

fn full_backlog_makes_callers_wait() -> Check {
    const CALLS: usize = 40;
    let (l, addr) = listener()?;
    // The server is slow to start taking calls: more callers come than the backlog holds.
    let server = child(|| {
        process::sleep(300)?;
        let mut fds = Vec::new();
        for _ in 0..CALLS {
            let (fd, _) = l.accept()?;
            net::write_all(fd, b"k")?;
            fds.push(fd);
        }
        for fd in fds {
            io::close(fd)?;
        }
        Ok(())
    })?;
    let mut fds = Vec::new();
    for i in 0..CALLS {
        fds.push(net::dial(&addr).map_err(|e| e.context(format!("call {i}")))?);
    }
    for (i, fd) in fds.into_iter().enumerate() {
        let mut k = [0u8; 1];
        net::read_exact(fd, &mut k).map_err(|e| e.context(format!("call {i}")))?;
        io::close(fd)?;
    }
    join(server, "server")
}

fn pattern(i: usize) -> u8 {
    ((i as u32).wrapping_mul(2654435761) >> 13) as u8
}

fn sixteen_mib_with_checksum() -> Check {
    const LEN: usize = 16 << 20;
    let (l, addr) = listener()?;
    // The server reads the length, then that many bytes, and answers with their checksum.
    let server = child(|| {
        let (fd, _) = l.accept()?;
        let mut len = [0u8; 8];
        net::read_exact(fd, &mut len)?;
        let mut left = u64::from_le_bytes(len) as usize;
        let mut buf = vec![0u8; 256 * 1024];
        let mut h = FNV_START;
        while left > 0 {
            let want = left.min(buf.len());
            let n = io::read(fd, &mut buf[..want])?;
            ensure!(n > 0, "end of file with {left} bytes to go");
            h = fnv(h, &buf[..n]);
            left -= n;
        }
        net::write_all(fd, &h.to_le_bytes())?;
        io::close(fd)
    })?;
    let fd = net::dial(&addr)?;
    net::write_all(fd, &(LEN as u64).to_le_bytes())?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut h = FNV_START;
    for start in (0..LEN).step_by(chunk.len()) {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = pattern(start + i);
        }
        h = fnv(h, &chunk);
        net::write_all(fd, &chunk)?;
    }
    let mut sum = [0u8; 8];
    net::read_exact(fd, &mut sum)?;
    ensure!(
        u64::from_le_bytes(sum) == h,
        "checksum {:#x}, sent {h:#x}",
        u64::from_le_bytes(sum)
    );
    let mut more = [0u8; 1];
    ensure!(
        io::read(fd, &mut more)? == 0,
        "no end of file after the checksum"
    );
    io::close(fd)?;
    join(server, "checksum server")
}

fn end_of_file_when_peer_closes() -> Check {
    let (l, addr) = listener()?;
    let server = child(|| {
        let (fd, _) = l.accept()?;
        net::write_all(fd, b"bye")?;
        io::close(fd)
    })?;
    let fd = net::dial(&addr)?;
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    loop {
        let n = io::read(fd, &mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    ensure!(got == b"bye", "read {got:?}");
    ensure!(
        io::read(fd, &mut buf)? == 0,
        "a second read after end of file"
    );
    io::close(fd)?;
    join(server, "server")
}

fn write_after_reset_fails() -> Check {
    let (l, addr) = listener()?;
    // The server resets the connection as soon as it has it.
    let server = child(|| {
        let (fd, _) = l.accept()?;
        net::hangup(fd)?;
        io::close(fd)
    })?;
    let fd = net::dial(&addr)?;
    join(server, "server")?;
    let mut buf = [0u8; 16];
    expect_err("read after reset", io::read(fd, &mut buf), &["reset"])?;
    expect_err(
        "write after reset",
        io::write(fd, b"x"),
        &["reset", &addr[4..]],
    )?;
    io::close(fd)?;

    // A peer that closed and gets more data answers with a reset: the writer hears of it.
    let server = child(|| {
        let (fd, _) = l.accept()?;
        io::close(fd)
    })?;
    let fd = net::dial(&addr)?;
    join(server, "server")?;
    let mut result = Ok(0);
    for _ in 0..100 {
        result = io::write(fd, b"are you there?");
        if result.is_err() {
            break;
        }
        process::sleep(20)?;
    }
    expect_err("writes to a closed peer", result, &["reset"])?;
    io::close(fd)
}

fn bad_dial_strings() -> Check {
    expect_err(
        "short address",
        net::dial("tcp!1.2.3!5"),
        &["dial tcp!1.2.3!5", "bad address '1.2.3'"],
    )?;
    expect_err(
        "port out of range",
        net::dial("tcp!127.0.0.1!99999"),
        &["dial tcp!127.0.0.1!99999", "bad port '99999'"],
    )?;
    expect_err(
        "il",
        net::dial("il!127.0.0.1!5"),
        &["dial il!127.0.0.1!5", "protocol il is not supported"],
    )?;
    expect_err(
        "nonsense",
        net::dial("nonsense"),
        &["dial nonsense", "bad dial string"],
    )?;
    expect_err("no port", net::dial("tcp!127.0.0.1"), &["bad dial string"])?;
    expect_err(
        "announce a bad address",
        net::announce("tcp!10.9.8.7!5640"),
        &[
            "announce tcp!10.9.8.7!5640",
            "not an address of this machine",
        ],
    )?;
    let (_l, addr) = listener()?;
    expect_err("announce a port twice", net::announce(&addr), &["in use"])?;
    Ok(())
}

fn udp_datagrams() -> Check {
    let l = net::announce("udp!127.0.0.1!0")?;
    l.ctl("headers")?;
    let port = l.port()?;
    let data = l.data()?;
    // The server sends each datagram back, header and all.
    let server = child(|| {
        let mut buf = vec![0u8; 70_000];
        for i in 0..3 {
            let n = io::read(data, &mut buf)?;
            ensure!(n >= net::UDP_HEADER, "datagram {i}: {n} bytes, no header");
            ensure!(
                buf[..16] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
                "datagram {i} from {:?}",
                &buf[..16]
            );
            net::write_all(data, &buf[..n])?;
        }
        Ok(())
    })?;
    let fd = net::dial(&format!("udp!127.0.0.1!{port}"))?;
    let status = net::status(fd)?;
    ensure!(status == "Connected", "status {status:?}");
    // Datagrams keep their boundaries.
    io::write(fd, b"one")?;
    io::write(fd, b"two!!")?;
    let mut buf = vec![0u8; 70_000];
    let n = io::read(fd, &mut buf)?;
    ensure!(&buf[..n] == b"one", "first datagram {:?}", &buf[..n]);
    let n = io::read(fd, &mut buf)?;
    ensure!(&buf[..n] == b"two!!", "second datagram {:?}", &buf[..n]);
    let big: Vec<u8> = (0..60_000).map(pattern).collect();
    ensure!(
        io::write(fd, &big)? == big.len(),
        "short write of 60000 bytes"
    );
    let n = io::read(fd, &mut buf)?;
    ensure!(
        n == big.len() && buf[..n] == big[..],
        "60000-byte datagram came back as {n}"
    );
    join(server, "udp echo server")?;
    io::close(fd)?;
    io::close(data)?;
    let unannounced = net::announce("udp!127.0.0.1!0")?;
    let d = unannounced.data()?;
    expect_err(
        "write without a destination",
        io::write(d, b"x"),
        &["not connected"],
    )?;
    io::close(d)
}

fn refused_at_once() -> Check {
    // A port nobody listens on: take one, then stop listening.
    let (l, addr) = listener()?;
    drop(l);
    let t0 = rt::sys::nsec();
    expect_err(
        "dial a closed port",
        net::dial(&addr),
        &[&format!("dial {addr}"), "connection refused"],
    )?;
    let ms = (rt::sys::nsec() - t0) / 1_000_000;
    ensure!(ms < 2000, "refusal took {ms} ms");
    Ok(())
}

fn note_interrupts_read() -> Check {
    let (l, addr) = listener()?;
    // The server accepts and then says nothing until it is killed.
    let server = child(|| {
        let (_fd, _) = l.accept()?;
        process::sleep(60_000)?;
        Ok(())
    })?;
    let reader = child(|| {
        notes::set_handler(|_| Action::Continue);
        let fd = net::dial(&addr)?;
        let mut buf = [0u8; 8];
        match io::read(fd, &mut buf) {
            Err(e) if e.msg() == notes::INTERRUPTED => Ok(()),
            r => Err(rt::Error(format!("read returned {r:?}"))),
        }
    })?;
    process::sleep(300)?;
    process::postnote(reader, "wake")?;
    let r = join(reader, "reader");
    process::postnote(server, "kill")?;
    let _ = process::wait_for(server);
    r
}

/// A named case.
type Case = (&'static str, fn() -> Check);

/// Every case, by name.
const CASES: &[Case] = &[
    ("interfaces", interfaces),
    ("fifty_connections", fifty_connections),
    (
        "full_backlog_makes_callers_wait",
        full_backlog_makes_callers_wait,
    ),
    ("sixteen_mib_with_checksum", sixteen_mib_with_checksum),
    ("end_of_file_when_peer_closes", end_of_file_when_peer_closes),
    ("write_after_reset_fails", write_after_reset_fails),
    ("bad_dial_strings", bad_dial_strings),
    ("udp_datagrams", udp_datagrams),
    ("refused_at_once", refused_at_once),
    ("note_interrupts_read", note_interrupts_read),
];

/// Loopback throughput (a 64 MiB stream), round trips of one byte, connection setups.
fn bench() -> Check {
    const STREAM: usize = 64 << 20;
    const PINGS: usize = 2000;
    const SETUPS: usize = 200;
    let (l, addr) = listener()?;
    let server = child(|| {
        // 1: a sink that answers with one byte at end of stream.
        let (fd, _) = l.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = STREAM;
        while left > 0 {
            let n = io::read(fd, &mut buf)?;
            ensure!(n > 0, "stream ended early");
            left -= n.min(left);
        }
        net::write_all(fd, b"k")?;
        io::close(fd)?;
        // 2: echo single bytes.
        let (fd, _) = l.accept()?;
        let mut b = [0u8; 1];
        for _ in 0..PINGS {
            net::read_exact(fd, &mut b)?;
            net::write_all(fd, &b)?;
        }
        io::close(fd)?;
        // 3: take calls, greet and hang up.
        for _ in 0..SETUPS {
            let (fd, _) = l.accept()?;
            net::write_all(fd, b"!")?;
            io::close(fd)?;
        }
        Ok(())
    })?;
    let chunk = vec![0x5au8; 1 << 20];
    let fd = net::dial(&addr)?;
    let t0 = rt::sys::nsec();
    for _ in 0..STREAM / chunk.len() {
        net::write_all(fd, &chunk)?;
    }
    let mut k = [0u8; 1];
    net::read_exact(fd, &mut k)?;
    let ns = (rt::sys::nsec() - t0).max(1);
    io::close(fd)?;
    let mib_s = (STREAM as u64 * 1_000_000_000 / ns) as f64 / (1 << 20) as f64;
    println!(
        "nettest bench: loopback throughput {mib_s:.1} MiB/s ({} MiB in {} ms)",
        STREAM >> 20,
        ns / 1_000_000
    );

    let fd = net::dial(&addr)?;
    let t0 = rt::sys::nsec();
    let mut b = [7u8; 1];
    for _ in 0..PINGS {
        net::write_all(fd, &b)?;
        net::read_exact(fd, &mut b)?;
    }
    let ns = rt::sys::nsec() - t0;
    io::close(fd)?;
    println!(
        "nettest bench: loopback round trip {} us (1 byte, {PINGS} times)",
        ns / PINGS as u64 / 1000
    );

    let t0 = rt::sys::nsec();
    for _ in 0..SETUPS {
        let fd = net::dial(&addr)?;
        net::read_exact(fd, &mut b)?;
        io::close(fd)?;
    }
    let ns = rt::sys::nsec() - t0;
    println!(
        "nettest bench: connection setup {} us (dial, accept, 1 byte, close; {SETUPS} times)",
        ns / SETUPS as u64 / 1000
    );
    join(server, "bench server")
}

/// `nettest mount DIAL DIR`: mounts a 9P server reached over TCP and shows what it serves.
fn mount(dial: &str, dir: &str) -> Check {
    if fs::stat(dir).is_err() {
        fs::create(dir, OREAD, fs::DMDIR | 0o755).and_then(io::close)?;
    }
    let fd = net::dial(dial)?;
    fs::mount(fd, dir, MREPL, "")?;
    io::close(fd)?;
    println!("nettest: mounted {dial} on {dir}");
    for d in fs::read_dir(dir)? {
        println!("{} {}", d.name, d.length);
        if d.mode & fs::DMDIR == 0 && d.length <= 4096 {
            let path = format!("{dir}/{}", d.name);
            let fd = fs::open(&path, OREAD)?;
            let data = io::read_all(fd);
            io::close(fd)?;
            println!("{}", String::from_utf8_lossy(&data?).trim_end());
        }
    }
    Ok(())
}

fn main() -> rt::Result<()> {
    let args: Vec<&str> = rt::env::args()[1..].iter().map(String::as_str).collect();
    match args.as_slice() {
        ["bench"] => return bench(),
        ["mount", dial, dir] => return mount(dial, dir),
        ["mount", ..] => return Err(rt::Error::new("usage: nettest mount DIAL DIR")),
        _ => {}
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in CASES {
        if !args.is_empty() && !args.contains(name) {
            continue;
        }
        match case() {
            Ok(()) => {
                passed += 1;
                println!("nettest {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("nettest {name} ... FAILED: {e}");
            }
        }
    }
    println!("nettest: {passed} passed, {failed} failed");
    if failed > 0 {
        Err(rt::Error(format!("{failed} failed")))
    } else {
        Ok(())
    }
}
