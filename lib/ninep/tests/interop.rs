//! Interop with third-party 9P2000 implementations from PyPI (see `support/pyvenv.rs`):
//! frames exchanged with python-9p, which wraps plan9port's own codec, and our client against
//! aio9p's example server.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use ninep::client::{Client, Error};
use ninep::{Dialect, Fcall, Msg, ORDWR, OREAD, OWRITE};
use support::arbitrary::Rng;
use support::pyvenv::{Child, python};

const PY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py");

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Sends frames to plan9port's codec and returns what it re-encoded (or its refusal).
fn through_plan9port(frames: &[Vec<u8>]) -> Vec<String> {
    let mut child = Child(
        Command::new(python())
            .arg(format!("{PY_DIR}/frames.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs"),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let input: String = frames.iter().map(|f| hex(f) + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = BufReader::new(child.0.stdout.take().unwrap());
    let lines: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
    writer.join().unwrap().unwrap();
    lines
}

#[test]
fn plan9port_codec_reads_and_rewrites_our_frames_byte_for_byte() {
    let mut rng = Rng::new(0x9F);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for _ in 0..3000 {
        let mut f = rng.fcall(Dialect::V9P2000);
        // python-9p's wrapper keeps offsets and lengths in plan9port's signed vlong range (so it
        // cannot even send the "don't touch" length ~0 of a wstat); stay inside it.
        const VLONG_MAX: u64 = i64::MAX as u64;
        match &mut f.msg {
            Msg::Tread { offset, .. } | Msg::Twrite { offset, .. } => {
                *offset = (*offset).min(VLONG_MAX)
            }
            Msg::Rstat { stat } | Msg::Twstat { stat, .. } => {
                stat.length = stat.length.min(VLONG_MAX)
            }
            _ => {}
        }
        let mut v = Vec::new();
        f.encode_vec(Dialect::V9P2000, &mut v).unwrap();
        frames.push(v);
    }
    let back = through_plan9port(&frames);
    assert_eq!(back.len(), frames.len());
    for (sent, got) in frames.iter().zip(&back) {
        let f = Fcall::decode(sent, Dialect::V9P2000).unwrap();
        assert!(!got.starts_with("ERR"), "plan9port refused {f:?}: {got}");
        assert_eq!(&unhex(got), sent, "{f:?}");
    }
}

#[test]
fn plan9port_codec_and_ours_refuse_the_same_bad_frames() {
    let good = Fcall::new(
        1,
        Msg::Twalk {
            fid: 1,
            newfid: 2,
            wnames: vec!["a".into()],
        },
    )
    .to_vec(Dialect::V9P2000, 8192)
    .unwrap();
    let mut cut = good[..good.len() - 1].to_vec();
    cut[0] -= 1;
    let mut seventeen = good.clone();
    seventeen[15] = 17;
    // Rerror with a trailing 9P2000.u errno: plan9port refuses it, we keep the errno (see
    // `fcall`'s module notes); both read the plain form.
    let rerror = Fcall::new(3, Msg::error("no"))
        .to_vec(Dialect::V9P2000, 8192)
        .unwrap();
    let mut rerror_u = rerror.clone();
    rerror_u.extend_from_slice(&2u32.to_le_bytes());
    rerror_u[0] += 4;
    let back = through_plan9port(&[
        good.clone(),
        cut.clone(),
        seventeen.clone(),
        rerror.clone(),
        rerror_u.clone(),
    ]);
    assert_eq!(unhex(&back[0]), good);
    assert!(back[1].starts_with("ERR") && Fcall::decode(&cut, Dialect::V9P2000).is_err());
    assert!(back[2].starts_with("ERR") && Fcall::decode(&seventeen, Dialect::V9P2000).is_err());
    assert_eq!(unhex(&back[3]), rerror);
    assert!(back[4].starts_with("ERR"), "{}", back[4]);
    assert_eq!(
        Fcall::decode(&rerror_u, Dialect::V9P2000).unwrap().msg,
        Msg::Rerror {
            ename: "no".into(),
            errno: Some(2)
        }
    );
}

#[test]
fn our_client_against_aio9p() {
    let mut child = Child(
        Command::new(python())
            .arg(format!("{PY_DIR}/aio9p_server.py"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("aio9p prints its port");
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut c = Client::connect(stream, 1 << 20).expect("version");
    // aio9p caps msize at 65535.
    assert_eq!(c.msize(), 65535);
    assert_eq!(c.dialect(), Dialect::V9P2000);
    // aio9p forgets its tree on every attach, so everything happens under this one.
    let (root, qid) = c.attach("glenda", "").unwrap();
    assert!(qid.is_dir());
    assert_eq!(c.stat(root).unwrap().name, "/");

    let (f, _) = c.walk(root, &[]).unwrap();
    c.create(f, "hello", 0o644, ORDWR).unwrap();
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.write(f, 0, &data).unwrap(), data.len());
    assert_eq!(c.read_all(f).unwrap(), data);
    c.clunk(f).unwrap();

    let (d, _) = c.walk(root, &[]).unwrap();
    c.create(d, "dir", ninep::DMDIR | 0o755, OREAD).unwrap();
    c.clunk(d).unwrap();

    let (f, q) = c.walk(root, &["hello"]).unwrap();
    assert!(!q.unwrap().is_dir());
    let st = c.stat(f).unwrap();
    assert_eq!((&*st.name, st.length), ("hello", data.len() as u64));
    c.open(f, OREAD).unwrap();
    assert_eq!(c.read(f, 10, 5).unwrap(), &data[10..15]);
    c.clunk(f).unwrap();

    let (d, _) = c.walk(root, &[]).unwrap();
    c.open(d, OREAD).unwrap();
    let mut names: Vec<String> = c
        .read_dir(d)
        .unwrap()
        .into_iter()
        .map(|e| e.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "hello"]);
    c.clunk(d).unwrap();

    // aio9p's Rerror carries an errno after the string even in 9P2000: the client keeps both.
    match c.walk(root, &["missing"]) {
        Err(Error::Remote { ename, errno }) => {
            assert_eq!(ename, "No such file or directory");
            assert_eq!(errno, Some(2));
        }
        other => panic!("expected Rerror, got {other:?}"),
    }
    // The connection is still in step after the error.
    let (f, _) = c.walk(root, &["hello"]).unwrap();
    c.remove(f).unwrap();
    assert!(matches!(
        c.walk(root, &["hello"]),
        Err(Error::Remote { .. })
    ));
    let (f, _) = c.walk(root, &[]).unwrap();
    c.create(f, "w", 0o600, OWRITE).unwrap();
    assert_eq!(c.write(f, 0, b"x").unwrap(), 1);
}
