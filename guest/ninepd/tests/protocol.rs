//! ninepd at the protocol level: version negotiation, many clients and many requests in flight,
//! flush, msize 8 KiB and 1 MiB with a 32 MiB file, malformed frames, and a clean stop.

mod support;

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ninep::client::Client;
use ninep::{Dialect, Fcall, Msg, NOTAG, ORDWR, OREAD, OWRITE};
use support::{TempDir, checksum, client, ename, pattern, server};

fn raw(srv: &ninepd::Server) -> TcpStream {
    let s = TcpStream::connect(srv.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn send(s: &mut TcpStream, tag: u16, msg: Msg<'_>) {
    s.write_all(
        &Fcall::new(tag, msg)
            .to_vec(Dialect::V9P2000, 1 << 21)
            .unwrap(),
    )
    .unwrap();
}

fn recv(s: &mut TcpStream) -> Option<ninep::OwnedFcall> {
    let mut buf = Vec::new();
    match ninep::io::read_frame(s, 1 << 21, &mut buf) {
        Ok(true) => Some(Fcall::decode(&buf, Dialect::V9P2000).unwrap().into_owned()),
        _ => None,
    }
}

fn version(s: &mut TcpStream, msize: u32, v: &str) -> Msg<'static> {
    send(
        s,
        NOTAG,
        Msg::Tversion {
            msize,
            version: v.into(),
        },
    );
    recv(s).unwrap().msg
}

#[test]
fn version_negotiation() {
    let t = TempDir::new("version");
    let srv = server(t.path(), ninepd::Options::default());
    let mut s = raw(&srv);
    // Requests before Tversion are refused.
    send(&mut s, 1, Msg::Tstat { fid: 0 });
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Rerror { .. }));
    assert_eq!(
        version(&mut s, 8192, "9P2000"),
        Msg::Rversion {
            msize: 8192,
            version: "9P2000".into()
        }
    );
    // The server never raises the client's msize, and lowers it to its own.
    assert_eq!(
        version(&mut s, u32::MAX, "9P2000"),
        Msg::Rversion {
            msize: ninepd::DEFAULT_MSIZE,
            version: "9P2000".into()
        }
    );
    // 9P2000.u is answered with plain 9P2000; an unknown version with "unknown".
    assert_eq!(
        version(&mut s, 65536, "9P2000.u"),
        Msg::Rversion {
            msize: 65536,
            version: "9P2000".into()
        }
    );
    assert!(matches!(
        version(&mut s, 65536, "9P1"),
        Msg::Rversion { version, .. } if version == "unknown"
    ));
    assert!(matches!(
        version(&mut s, 100, "9P2000"),
        Msg::Rerror { ename, .. } if ename.contains("too small")
    ));
    // Tversion resets the session: fids attached before it are gone.
    version(&mut s, 8192, "9P2000");
    send(
        &mut s,
        1,
        Msg::Tattach {
            fid: 5,
            afid: ninep::NOFID,
            uname: "u".into(),
            aname: "".into(),
            n_uname: ninep::NONUNAME,
        },
    );
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Rattach { .. }));
    version(&mut s, 8192, "9P2000");
    send(&mut s, 2, Msg::Tstat { fid: 5 });
    assert!(
        matches!(recv(&mut s).unwrap().msg, Msg::Rerror { ename, .. } if ename == "unknown fid")
    );
}

fn read_back(msize: u32, file_len: usize) -> (Duration, u64) {
    let t = TempDir::new("big");
    let data = pattern(file_len, msize as u64);
    fs::write(t.path().join("big"), &data).unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let (mut c, root) = client(&srv, msize);
    assert_eq!(c.msize(), msize);
    let (f, _) = c.walk(root, &["big"]).unwrap();
    let (_, iounit) = c.open(f, OREAD).unwrap();
    assert_eq!(iounit, msize - 24);
    let start = Instant::now();
    let got = c.read_all(f).unwrap();
    let took = start.elapsed();
    assert_eq!(got.len(), data.len());
    assert_eq!(checksum(&got), checksum(&data));
    (took, checksum(&got))
}

#[test]
fn a_32_mib_file_reads_back_at_msize_8k_and_1m() {
    const LEN: usize = 32 << 20;
    for msize in [8192, 1 << 20] {
        let (took, sum) = read_back(msize, LEN);
        println!(
            "ninepd: read 32 MiB at msize {msize}: {:.1} ms, {:.0} MiB/s (checksum {sum:016x})",
            took.as_secs_f64() * 1e3,
            32.0 / took.as_secs_f64()
        );
    }
}

#[test]
fn writes_at_msize_1m_fill_the_file() {
    let t = TempDir::new("bigwrite");
    let srv = server(t.path(), ninepd::Options::default());
    let (mut c, root) = client(&srv, 1 << 20);
    let data = pattern(5 << 20, 9);
    let (d, _) = c.walk(root, &[]).unwrap();
    c.create(d, "w", 0o644, OWRITE).unwrap();
    assert_eq!(c.write(d, 0, &data).unwrap(), data.len());
    c.clunk(d).unwrap();
    assert_eq!(
        checksum(&fs::read(t.path().join("w")).unwrap()),
        checksum(&data)
    );
}

#[test]
fn many_clients_in_parallel() {
    let t = TempDir::new("parallel");
    let srv = server(t.path(), ninepd::Options::default());
    std::thread::scope(|scope| {
        for i in 0..12u64 {
            let srv = &srv;
            scope.spawn(move || {
                let (mut c, root) = client(srv, 65536);
                let name = format!("client-{i}");
                let data = pattern(200_000 + i as usize * 1000, i);
                let (f, _) = c.walk(root, &[]).unwrap();
                c.create(f, &name, 0o644, ORDWR).unwrap();
                c.write(f, 0, &data).unwrap();
                assert_eq!(checksum(&c.read_all(f).unwrap()), checksum(&data));
                c.clunk(f).unwrap();
                for _ in 0..20 {
                    let (d, _) = c.walk(root, &[]).unwrap();
                    c.open(d, OREAD).unwrap();
                    let names: HashSet<_> = c
                        .read_dir(d)
                        .unwrap()
                        .into_iter()
                        .map(|e| e.name.into_owned())
                        .collect();
                    assert!(names.contains(&name));
                    c.clunk(d).unwrap();
                }
            });
        }
    });
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 12);
}

/// Attaches on a raw connection and opens `name` on fid 2 for reading.
fn raw_session(srv: &ninepd::Server, msize: u32, name: &str) -> TcpStream {
    let mut s = raw(srv);
    version(&mut s, msize, "9P2000");
    send(
        &mut s,
        0,
        Msg::Tattach {
            fid: 1,
            afid: ninep::NOFID,
            uname: "u".into(),
            aname: "".into(),
            n_uname: ninep::NONUNAME,
        },
    );
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Rattach { .. }));
    send(
        &mut s,
        0,
        Msg::Twalk {
            fid: 1,
            newfid: 2,
            wnames: vec![name.to_string().into()],
        },
    );
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Rwalk { .. }));
    send(
        &mut s,
        0,
        Msg::Topen {
            fid: 2,
            mode: OREAD,
        },
    );
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Ropen { .. }));
    s
}

#[test]
fn many_requests_in_flight_on_one_connection() {
    let t = TempDir::new("inflight");
    let data = pattern(4 << 20, 3);
    fs::write(t.path().join("f"), &data).unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let mut s = raw_session(&srv, 65536, "f");
    // 64 reads on the wire before the first reply is read; each answered once, by tag.
    for tag in 0..64u16 {
        send(
            &mut s,
            tag,
            Msg::Tread {
                fid: 2,
                offset: u64::from(tag) * 65000,
                count: 65000,
            },
        );
    }
    let mut seen = HashSet::new();
    for _ in 0..64 {
        let r = recv(&mut s).unwrap();
        let Msg::Rread { data: got } = r.msg else {
            panic!("expected Rread, got {:?}", r.msg)
        };
        let off = r.tag as usize * 65000;
        assert_eq!(&got[..], &data[off..off + 65000]);
        assert!(seen.insert(r.tag), "tag {} answered twice", r.tag);
    }
    // A duplicate tag while the first is in flight would be refused; sequential reuse is fine.
    send(&mut s, 7, Msg::Tstat { fid: 2 });
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Rstat { .. }));
}

#[test]
fn flush_is_answered_after_the_flushed_reply_or_instead_of_it() {
    let t = TempDir::new("flush");
    fs::write(t.path().join("f"), pattern(1 << 20, 4)).unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let mut s = raw_session(&srv, 1 << 20, "f");
    for round in 0..50u16 {
        let tag = round * 2;
        send(
            &mut s,
            tag,
            Msg::Tread {
                fid: 2,
                offset: 0,
                count: 1 << 19,
            },
        );
        send(&mut s, tag + 1, Msg::Tflush { oldtag: tag });
        let first = recv(&mut s).unwrap();
        if first.tag == tag {
            assert!(matches!(first.msg, Msg::Rread { .. }));
            let second = recv(&mut s).unwrap();
            assert_eq!((second.tag, second.msg), (tag + 1, Msg::Rflush));
        } else {
            // Flushed before it ran: only the Rflush comes.
            assert_eq!((first.tag, first.msg), (tag + 1, Msg::Rflush));
        }
    }
    // A flush of a tag not in flight is answered at once.
    send(&mut s, 500, Msg::Tflush { oldtag: 4321 });
    assert_eq!(recv(&mut s).unwrap().msg, Msg::Rflush);
    // And nothing stray is left on the wire.
    send(&mut s, 501, Msg::Tstat { fid: 2 });
    let r = recv(&mut s).unwrap();
    assert_eq!(r.tag, 501);
}

#[test]
fn malformed_frames_get_rerror_or_a_closed_connection() {
    let t = TempDir::new("malformed");
    fs::write(t.path().join("f"), b"x").unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let mut s = raw_session(&srv, 8192, "f");

    // Bodies that do not parse: Rerror with the frame's tag, and the connection goes on.
    let bad_bodies: Vec<Vec<u8>> = vec![
        vec![9, 0, 0, 0, 110, 3, 0, 1, 0],           // Twalk cut short
        vec![7, 0, 0, 0, 12, 3, 0],                  // 9P2000.L Tlopen: unknown type
        vec![7, 0, 0, 0, 106, 3, 0],                 // Terror is illegal
        vec![12, 0, 0, 0, 120, 3, 0, 2, 0, 0, 0, 0], // Tclunk with a trailing byte
        vec![17, 0, 0, 0, 110, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0, 17, 0], // 17 walk elements
        vec![13, 0, 0, 0, 124, 3, 0, 2, 0, 0, 0, 0, 0],
    ];
    for frame in &bad_bodies {
        s.write_all(frame).unwrap();
        let r = recv(&mut s).expect("an answer, not a closed connection");
        assert_eq!(r.tag, 3);
        assert!(
            matches!(&r.msg, Msg::Rerror { ename, .. } if ename.starts_with("ninepd: 9P:")),
            "{:?}",
            r.msg
        );
    }
    send(
        &mut s,
        9,
        Msg::Tread {
            fid: 2,
            offset: 0,
            count: 10,
        },
    );
    assert!(matches!(recv(&mut s).unwrap().msg, Msg::Rread { .. }));

    // Sizes that make the stream impossible to follow close the connection.
    for prefix in [3u32, 0, 8193, u32::MAX] {
        let mut s = raw_session(&srv, 8192, "f");
        s.write_all(&prefix.to_le_bytes()).unwrap();
        s.write_all(&[0u8; 16]).unwrap();
        assert!(
            recv(&mut s).is_none(),
            "size {prefix}: connection left open"
        );
    }
    // A frame cut off by the client's close, and random garbage, do not hurt the server.
    let mut s = raw(&srv);
    s.write_all(&[50, 0, 0, 0, 100, 0xFF]).unwrap();
    drop(s);
    let mut x = 12345u64;
    for _ in 0..20 {
        let mut s = raw_session(&srv, 8192, "f");
        let garbage: Vec<u8> = (0..200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = s.write_all(&garbage);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let (mut c, root) = client(&srv, 8192);
    assert_eq!(c.stat(root).unwrap().name, "/");
}

#[test]
fn stop_closes_everything_and_returns_when_idle() {
    let t = TempDir::new("stop");
    fs::write(t.path().join("f"), pattern(8 << 20, 5)).unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let addr = srv.local_addr();
    let (mut idle, root) = client(&srv, 8192);
    let (f, _) = idle.walk(root, &["f"]).unwrap();
    idle.open(f, OREAD).unwrap();
    // A client streaming reads while the server stops.
    let busy = std::thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        let mut c = Client::connect(s, 1 << 20).unwrap();
        let (root, _) = c.attach("u", "").unwrap();
        let (f, _) = c.walk(root, &["f"]).unwrap();
        c.open(f, OREAD).unwrap();
        let mut reads = 0;
        while c.read_all(f).is_ok() {
            reads += 1;
        }
        reads
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(srv.connections() >= 2);
    let start = Instant::now();
    srv.stop();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(srv.connections(), 0);
    busy.join().unwrap();
    assert!(idle.read(f, 0, 10).is_err());
    assert!(TcpStream::connect(addr).is_err());
    srv.stop(); // a second stop is harmless
    drop(srv);
}

#[test]
fn bind_reports_bad_roots_and_options() {
    let t = TempDir::new("bind");
    fs::write(t.path().join("file"), b"").unwrap();
    let e = ninepd::Server::bind("127.0.0.1:0", t.path().join("missing"), Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let e =
        ninepd::Server::bind("127.0.0.1:0", t.path().join("file"), Default::default()).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    let small = ninepd::Options {
        msize: 100,
        ..Default::default()
    };
    assert!(ninepd::Server::bind("127.0.0.1:0", t.path(), small).is_err());
    let srv = server(t.path(), Default::default());
    let e = ninepd::Server::bind(srv.local_addr(), t.path(), Default::default()).unwrap_err();
    assert!(e.to_string().contains("listen"), "{e}");
    let (mut c, root) = client(&srv, 8192);
    assert_eq!(ename(c.walk(root, &["nope"])), "file does not exist");
}

#[test]
fn the_command_line() {
    let exe = env!("CARGO_BIN_EXE_ninepd");
    let out = std::process::Command::new(exe)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--listen"));
    let out = std::process::Command::new(exe)
        .args(["--root", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen ADDR:PORT is required"));
    let out = std::process::Command::new(exe)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--root",
            "/nonexistent-ninepd-root",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-ninepd-root"));

    // Serve a directory from the real binary and talk to it.
    let t = TempDir::new("cli");
    fs::write(t.path().join("hello"), b"hi").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(exe)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--msize",
            "65560",
            "--readonly",
        ])
        .arg("--root")
        .arg(t.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stream = (0..200)
        .find_map(|_| {
            TcpStream::connect(("127.0.0.1", port))
                .map_err(|_| std::thread::sleep(Duration::from_millis(10)))
                .ok()
        })
        .expect("ninepd listens");
    let mut c = Client::connect(stream, 1 << 20).unwrap();
    assert_eq!(c.msize(), 65560);
    let (root, _) = c.attach("u", "").unwrap();
    let (f, _) = c.walk(root, &["hello"]).unwrap();
    assert_eq!(ename(c.open(f, OWRITE)), "read-only file system");
    c.open(f, OREAD).unwrap();
    assert_eq!(c.read_all(f).unwrap(), b"hi");
    child.kill().unwrap();
    child.wait().unwrap();
}
