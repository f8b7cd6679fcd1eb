//! Encode/decode tests of every message, with known bytes from `intro(5)`'s layouts, round
//! trips in both dialects, and malformed frames beside each good one.

mod support;

use std::borrow::Cow;

use ninep::{
    DMDIR, Dialect, Dir, DirEntries, Error, Fcall, FrameReader, MAXWELEM, Msg, MsgType, NOFID,
    NONUNAME, NOTAG, QTDIR, Qid, RREAD_HEADER_LEN, TWRITE_HEADER_LEN, frame_len, put_rread_header,
    put_twrite_header,
};
use support::arbitrary::Rng;

const P: Dialect = Dialect::V9P2000;
const U: Dialect = Dialect::V9P2000U;

fn enc(f: &Fcall<'_>, d: Dialect) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode_vec(d, &mut v).expect("encodes");
    v
}

fn sample_dir() -> Dir<'static> {
    Dir {
        qid: Qid {
            ty: QTDIR,
            version: 7,
            path: 0x1122_3344_5566_7788,
        },
        mode: DMDIR | 0o755,
        atime: 1,
        mtime: 2,
        length: 0,
        name: "usr".into(),
        uid: "glenda".into(),
        gid: "sys".into(),
        muid: "glenda".into(),
        ..Dir::default()
    }
}

#[test]
fn tversion_has_the_documented_layout() {
    let f = Fcall::new(
        NOTAG,
        Msg::Tversion {
            msize: 8192,
            version: "9P2000".into(),
        },
    );
    let bytes = enc(&f, P);
    let mut want = vec![19, 0, 0, 0, 100, 0xFF, 0xFF, 0x00, 0x20, 0, 0, 6, 0];
    want.extend_from_slice(b"9P2000");
    assert_eq!(bytes, want);
    assert_eq!(Fcall::decode(&bytes, P).unwrap(), f);
}

#[test]
fn twalk_and_rstat_layouts() {
    let f = Fcall::new(
        1,
        Msg::Twalk {
            fid: 2,
            newfid: 3,
            wnames: vec!["a".into(), "bc".into()],
        },
    );
    assert_eq!(
        enc(&f, P),
        [
            24, 0, 0, 0, 110, 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2, 0, 1, 0, b'a', 2, 0, b'b', b'c'
        ]
    );
    // Rstat: n[2] then the stat, which starts with its own size[2] = n - 2.
    let rstat = enc(&Fcall::new(5, Msg::Rstat { stat: sample_dir() }), P);
    let n = u16::from_le_bytes([rstat[7], rstat[8]]) as usize;
    let size = u16::from_le_bytes([rstat[9], rstat[10]]) as usize;
    assert_eq!(n, rstat.len() - 9);
    assert_eq!(size, n - 2);
    // 2+4+13+4+4+4+8 fixed bytes plus four strings.
    assert_eq!(size, 39 + (2 + 3) + (2 + 6) + (2 + 3) + (2 + 6));
}

#[test]
fn every_message_round_trips_in_both_dialects() {
    let mut rng = Rng::new(1);
    for d in [P, U] {
        for _ in 0..3000 {
            let f = rng.fcall(d);
            let bytes = enc(&f, d);
            assert_eq!(f.encoded_len(d).unwrap(), bytes.len());
            let back = Fcall::decode(&bytes, d).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!(back, f);
            assert_eq!(back.clone().into_owned(), f);
            // Encoding into an exact slice gives the same bytes.
            let mut buf = vec![0u8; bytes.len()];
            assert_eq!(f.encode(d, &mut buf).unwrap(), bytes.len());
            assert_eq!(buf, bytes);
        }
    }
}

#[test]
fn decoding_borrows_from_the_frame() {
    let f = Fcall::new(
        9,
        Msg::Rread {
            data: Cow::Owned(vec![1, 2, 3]),
        },
    );
    let bytes = enc(&f, P);
    match Fcall::decode(&bytes, P).unwrap().msg {
        Msg::Rread {
            data: Cow::Borrowed(d),
        } => assert_eq!(d, &[1, 2, 3]),
        other => panic!("expected a borrowed Rread, got {other:?}"),
    }
}

#[test]
fn every_truncation_of_every_message_is_an_error() {
    let mut rng = Rng::new(2);
    for d in [P, U] {
        for _ in 0..300 {
            let bytes = enc(&rng.fcall(d), d);
            for cut in 0..bytes.len() {
                let short = &bytes[..cut];
                assert!(Fcall::decode(short, d).is_err(), "cut at {cut}");
                // Also with the size prefix rewritten to match the shorter frame.
                if cut >= 4 {
                    let mut fixed = short.to_vec();
                    fixed[..4].copy_from_slice(&(cut as u32).to_le_bytes());
                    match Fcall::decode(&fixed, d) {
                        Err(_) => {}
                        // Only messages whose last field is optional in 9P2000 (Rerror's errno)
                        // or that end in data of a length we cut can still parse; they must then
                        // re-encode to exactly the bytes given.
                        Ok(f) => assert_eq!(enc(&f, d), fixed),
                    }
                }
            }
        }
    }
}

#[test]
fn bad_headers_are_errors() {
    let good = enc(&Fcall::new(1, Msg::Tclunk { fid: 4 }), P);
    assert_eq!(Fcall::decode(&good, P).unwrap().msg, Msg::Tclunk { fid: 4 });

    let mut small = good.clone();
    small[..4].copy_from_slice(&6u32.to_le_bytes());
    assert_eq!(
        Fcall::decode(&small, P),
        Err(Error::FrameTooShort { size: 6 })
    );

    let mut big = good.clone();
    big[..4].copy_from_slice(&12u32.to_le_bytes());
    assert_eq!(
        Fcall::decode(&big, P),
        Err(Error::SizeMismatch {
            declared: 12,
            actual: 11
        })
    );

    let mut unknown = good.clone();
    unknown[4] = 106; // Terror is not a legal message
    assert_eq!(Fcall::decode(&unknown, P), Err(Error::UnknownType(106)));
    unknown[4] = 12; // 9P2000.L Tlopen
    assert_eq!(Fcall::decode(&unknown, P), Err(Error::UnknownType(12)));

    let mut trailing = good.clone();
    trailing.push(0);
    trailing[..4].copy_from_slice(&12u32.to_le_bytes());
    assert_eq!(
        Fcall::decode(&trailing, P),
        Err(Error::TrailingBytes {
            msg_type: MsgType::Tclunk as u8,
            count: 1
        })
    );
    assert!(Fcall::decode(&[], P).is_err());
}

#[test]
fn strings_must_be_utf8_and_fit() {
    let good = enc(
        &Fcall::new(
            1,
            Msg::Tcreate {
                fid: 1,
                name: "ab".into(),
                perm: 0o644,
                mode: 0,
                extension: "".into(),
            },
        ),
        P,
    );
    assert!(Fcall::decode(&good, P).is_ok());
    let mut bad = good.clone();
    bad[13] = 0xFF; // first byte of the name
    assert_eq!(
        Fcall::decode(&bad, P),
        Err(Error::InvalidUtf8 { field: "name" })
    );
    let mut long = good.clone();
    long[11..13].copy_from_slice(&400u16.to_le_bytes());
    assert_eq!(
        Fcall::decode(&long, P),
        Err(Error::Truncated { field: "name" })
    );

    let huge = "x".repeat(70_000);
    let f = Fcall::new(1, Msg::error(huge.as_str()));
    assert_eq!(
        f.encoded_len(P),
        Err(Error::StringTooLong {
            field: "ename",
            len: 70_000
        })
    );
}

#[test]
fn walks_are_limited_to_maxwelem() {
    let names: Vec<Cow<'_, str>> = (0..=MAXWELEM).map(|_| Cow::Borrowed("a")).collect();
    let f = Fcall::new(
        1,
        Msg::Twalk {
            fid: 1,
            newfid: 2,
            wnames: names[..MAXWELEM].to_vec(),
        },
    );
    let ok = enc(&f, P);
    assert!(Fcall::decode(&ok, P).is_ok());
    let too_many = Fcall::new(
        1,
        Msg::Twalk {
            fid: 1,
            newfid: 2,
            wnames: names.clone(),
        },
    );
    assert_eq!(too_many.encoded_len(P), Err(Error::TooManyWalkElements(17)));
    // A hand-made frame with nwname = 17 (and the names present) is refused before parsing them.
    let mut frame = ok.clone();
    frame[15..17].copy_from_slice(&17u16.to_le_bytes());
    frame.extend_from_slice(&[1, 0, b'a']);
    let n = frame.len() as u32;
    frame[..4].copy_from_slice(&n.to_le_bytes());
    assert_eq!(
        Fcall::decode(&frame, P),
        Err(Error::TooManyWalkElements(17))
    );
    // The same for nwqid = 0xFFFF in an Rwalk: no allocation of 65535 qids.
    let rwalk = [9, 0, 0, 0, 111, 0, 0, 0xFF, 0xFF];
    assert_eq!(
        Fcall::decode(&rwalk, P),
        Err(Error::TooManyWalkElements(0xFFFF))
    );
}

#[test]
fn stat_sizes_must_agree() {
    let good = enc(&Fcall::new(5, Msg::Rstat { stat: sample_dir() }), P);
    assert!(Fcall::decode(&good, P).is_ok());
    // The inner size one too small: the stat's fields overrun it.
    let mut inner = good.clone();
    let size = u16::from_le_bytes([inner[9], inner[10]]);
    inner[9..11].copy_from_slice(&(size - 1).to_le_bytes());
    assert!(Fcall::decode(&inner, P).is_err());
    // The outer count one too big: runs past the frame.
    let mut outer = good.clone();
    let n = u16::from_le_bytes([outer[7], outer[8]]);
    outer[7..9].copy_from_slice(&(n + 1).to_le_bytes());
    assert_eq!(
        Fcall::decode(&outer, P),
        Err(Error::Truncated { field: "stat" })
    );
    // A 9P2000.u stat is not a 9P2000 stat (and vice versa).
    let ustat = enc(&Fcall::new(5, Msg::Rstat { stat: sample_dir() }), U);
    assert!(matches!(
        Fcall::decode(&ustat, P),
        Err(Error::StatSizeMismatch { .. })
    ));
    assert!(Fcall::decode(&good, U).is_err());
}

#[test]
fn rerror_tolerates_exactly_a_trailing_errno_in_9p2000() {
    let plain = enc(&Fcall::new(3, Msg::error("file does not exist")), P);
    assert_eq!(
        Fcall::decode(&plain, P).unwrap().msg,
        Msg::Rerror {
            ename: "file does not exist".into(),
            errno: None
        }
    );
    // What aio9p sends on a 9P2000 connection: ename then errno[4].
    let mut with_errno = plain.clone();
    with_errno.extend_from_slice(&2u32.to_le_bytes());
    let n = with_errno.len() as u32;
    with_errno[..4].copy_from_slice(&n.to_le_bytes());
    assert_eq!(
        Fcall::decode(&with_errno, P).unwrap().msg,
        Msg::Rerror {
            ename: "file does not exist".into(),
            errno: Some(2)
        }
    );
    // Any other amount of trailing bytes is malformed.
    for extra in [1usize, 3, 5, 8] {
        let mut bad = plain.clone();
        bad.extend(std::iter::repeat_n(0u8, extra));
        let n = bad.len() as u32;
        bad[..4].copy_from_slice(&n.to_le_bytes());
        assert_eq!(
            Fcall::decode(&bad, P),
            Err(Error::TrailingBytes {
                msg_type: 107,
                count: extra
            }),
            "{extra} trailing bytes"
        );
    }
    // 9P2000 encoding never emits the errno; 9P2000.u always does.
    let f = Fcall::new(
        3,
        Msg::Rerror {
            ename: "x".into(),
            errno: Some(5),
        },
    );
    assert_eq!(enc(&f, P).len(), 7 + 3);
    assert_eq!(enc(&f, U).len(), 7 + 3 + 4);
}

#[test]
fn dialect_dependent_fields() {
    let f = Fcall::new(
        1,
        Msg::Tattach {
            fid: 0,
            afid: NOFID,
            uname: "u".into(),
            aname: "".into(),
            n_uname: 1000,
        },
    );
    let bytes = enc(&f, P);
    let p = Fcall::decode(&bytes, P).unwrap();
    let Msg::Tattach { n_uname, .. } = p.msg else {
        panic!()
    };
    assert_eq!(n_uname, NONUNAME);
    assert_eq!(Fcall::decode(&enc(&f, U), U).unwrap(), f);
    assert_eq!(
        Dialect::from_version_string("9P2000.u"),
        Some(Dialect::V9P2000U)
    );
    assert_eq!(Dialect::from_version_string("9P2000"), Some(P));
    assert_eq!(Dialect::from_version_string("9P2000.L"), Some(P));
    assert_eq!(Dialect::from_version_string("9P1"), None);
}

#[test]
fn encoding_into_a_small_buffer_fails_cleanly() {
    let f = Fcall::new(1, Msg::Rstat { stat: sample_dir() });
    let need = f.encoded_len(P).unwrap();
    let mut buf = vec![0u8; need - 1];
    assert_eq!(
        f.encode(P, &mut buf),
        Err(Error::BufferTooSmall {
            need,
            have: need - 1
        })
    );
    assert_eq!(
        f.to_vec(P, 64),
        Err(Error::FrameTooBig {
            size: need as u64,
            msize: 64
        })
    );
    assert_eq!(f.to_vec(P, 8192).unwrap().len(), need);
}

#[test]
fn directory_reads_hold_whole_entries() {
    let mut data = Vec::new();
    let mut a = sample_dir();
    a.name = "a".into();
    let mut b = sample_dir();
    b.name = "bee".into();
    a.encode_vec(P, &mut data).unwrap();
    b.encode_vec(P, &mut data).unwrap();
    let got: Vec<_> = DirEntries::new(&data, P).map(|d| d.unwrap()).collect();
    assert_eq!(got, vec![a.clone(), b]);
    // A partial trailing entry is an error, reported once.
    let cut = &data[..data.len() - 3];
    let got: Vec<_> = DirEntries::new(cut, P).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], Ok(a));
    assert!(got[1].is_err());
    let (_, used) = Dir::decode(&data, P).unwrap();
    assert!(Dir::decode_exact(&data, P).is_err());
    assert!(Dir::decode_exact(&data[..used], P).is_ok());
}

#[test]
fn dont_touch_is_all_ones_and_empty() {
    let d = Dir::dont_touch();
    assert_eq!(d.mode, u32::MAX);
    assert_eq!(d.length, u64::MAX);
    assert!(d.name.is_empty() && d.uid.is_empty());
    let f = Fcall::new(1, Msg::Twstat { fid: 1, stat: d });
    assert_eq!(Fcall::decode(&enc(&f, P), P).unwrap(), f);
}

#[test]
fn rread_header_matches_the_encoder() {
    let data = b"hello".to_vec();
    let f = Fcall::new(
        77,
        Msg::Rread {
            data: data.clone().into(),
        },
    );
    let mut buf = vec![0u8; RREAD_HEADER_LEN + data.len()];
    put_rread_header(&mut buf, 77, data.len() as u32).unwrap();
    buf[RREAD_HEADER_LEN..].copy_from_slice(&data);
    assert_eq!(buf, enc(&f, P));
    assert!(put_rread_header(&mut [0u8; 5], 1, 1).is_err());

    let f = Fcall::new(
        5,
        Msg::Twrite {
            fid: 9,
            offset: 1 << 40,
            data: data.clone().into(),
        },
    );
    let mut buf = vec![0u8; TWRITE_HEADER_LEN + data.len()];
    put_twrite_header(&mut buf, 5, 9, 1 << 40, data.len() as u32).unwrap();
    buf[TWRITE_HEADER_LEN..].copy_from_slice(&data);
    assert_eq!(buf, enc(&f, P));
    assert!(put_twrite_header(&mut [0u8; 22], 1, 1, 0, 0).is_err());
}

#[test]
fn frame_len_checks_msize() {
    assert_eq!(frame_len(&[], 8192), Ok(None));
    assert_eq!(frame_len(&[1, 0, 0], 8192), Ok(None));
    assert_eq!(frame_len(&[11, 0, 0, 0], 8192), Ok(Some(11)));
    assert_eq!(
        frame_len(&[6, 0, 0, 0], 8192),
        Err(Error::FrameTooShort { size: 6 })
    );
    assert_eq!(
        frame_len(&0x2001u32.to_le_bytes(), 8192),
        Err(Error::FrameTooBig {
            size: 0x2001,
            msize: 8192
        })
    );
    assert_eq!(frame_len(&0x2000u32.to_le_bytes(), 8192), Ok(Some(8192)));
}

#[test]
fn frame_reader_reassembles_a_stream_in_any_pieces() {
    let mut rng = Rng::new(3);
    let fcalls: Vec<_> = (0..200).map(|_| rng.fcall(P)).collect();
    let mut stream = Vec::new();
    for f in &fcalls {
        f.encode_vec(P, &mut stream).unwrap();
    }
    let mut reader = FrameReader::new(1 << 20);
    let mut got = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let n = (1 + rng.below(40) as usize).min(stream.len() - pos);
        reader.push(&stream[pos..pos + n]);
        pos += n;
        while let Some(frame) = reader.next_frame().unwrap() {
            got.push(Fcall::decode(frame, P).unwrap().into_owned());
        }
        assert!(reader.wanted().unwrap() > 0);
    }
    assert_eq!(got, fcalls);
    assert_eq!(reader.buffered(), 0);

    let mut small = FrameReader::new(256);
    small.push(&1000u32.to_le_bytes());
    assert_eq!(
        small.next_frame(),
        Err(Error::FrameTooBig {
            size: 1000,
            msize: 256
        })
    );
}
