//! A deterministic generator of arbitrary 9P messages and byte mutations for the property and
//! fuzz tests (no external crates, so the tests build fast and run on stable Rust).

#![allow(dead_code)]

use std::borrow::Cow;

use ninep::{Dialect, Dir, Fcall, MAXWELEM, Msg, NONUNAME, Qid};

/// xorshift64*: small, fast, and reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// An integer that is often at an edge (0, 1, all ones) and otherwise random.
    pub fn u64(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            _ => self.next(),
        }
    }

    pub fn u32(&mut self) -> u32 {
        self.u64() as u32
    }

    pub fn u16(&mut self) -> u16 {
        self.u64() as u16
    }

    pub fn u8(&mut self) -> u8 {
        self.u64() as u8
    }

    /// A string of up to `max` characters, sometimes multi-byte UTF-8.
    pub fn string(&mut self, max: u64) -> String {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| match self.below(8) {
                0 => 'é',
                1 => '語',
                2 => '/',
                _ => (b'a' + self.below(26) as u8) as char,
            })
            .collect()
    }

    pub fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }

    pub fn qid(&mut self) -> Qid {
        Qid {
            ty: self.u8(),
            version: self.u32(),
            path: self.u64(),
        }
    }

    pub fn dir(&mut self, d: Dialect) -> Dir<'static> {
        let u = d == Dialect::V9P2000U;
        Dir {
            ty: self.u16(),
            dev: self.u32(),
            qid: self.qid(),
            mode: self.u32(),
            atime: self.u32(),
            mtime: self.u32(),
            length: self.u64(),
            name: self.string(20).into(),
            uid: self.string(8).into(),
            gid: self.string(8).into(),
            muid: self.string(8).into(),
            extension: if u { self.string(10).into() } else { "".into() },
            n_uid: if u { self.u32() } else { NONUNAME },
            n_gid: if u { self.u32() } else { NONUNAME },
            n_muid: if u { self.u32() } else { NONUNAME },
        }
    }

    /// An arbitrary message of any type, valid for dialect `d` (fields that `d` does not carry
    /// hold the values decoding gives them).
    pub fn fcall(&mut self, d: Dialect) -> Fcall<'static> {
        let u = d == Dialect::V9P2000U;
        let s = |r: &mut Rng, max| -> Cow<'static, str> { r.string(max).into() };
        let n_uname = if u { self.u32() } else { NONUNAME };
        let msg = match self.below(27) {
            0 => Msg::Tversion {
                msize: self.u32(),
                version: s(self, 10),
            },
            1 => Msg::Rversion {
                msize: self.u32(),
                version: s(self, 10),
            },
            2 => Msg::Tauth {
                afid: self.u32(),
                uname: s(self, 10),
                aname: s(self, 10),
                n_uname,
            },
            3 => Msg::Rauth { aqid: self.qid() },
            4 => Msg::Tattach {
                fid: self.u32(),
                afid: self.u32(),
                uname: s(self, 10),
                aname: s(self, 10),
                n_uname,
            },
            5 => Msg::Rattach { qid: self.qid() },
            6 => Msg::Rerror {
                ename: s(self, 30),
                errno: if u { Some(self.u32()) } else { None },
            },
            7 => Msg::Tflush { oldtag: self.u16() },
            8 => Msg::Rflush,
            9 => Msg::Twalk {
                fid: self.u32(),
                newfid: self.u32(),
                wnames: (0..self.below(MAXWELEM as u64 + 1))
                    .map(|_| s(self, 12))
                    .collect(),
            },
            10 => Msg::Rwalk {
                wqids: (0..self.below(MAXWELEM as u64 + 1))
                    .map(|_| self.qid())
                    .collect(),
            },
            11 => Msg::Topen {
                fid: self.u32(),
                mode: self.u8(),
            },
            12 => Msg::Ropen {
                qid: self.qid(),
                iounit: self.u32(),
            },
            13 => Msg::Tcreate {
                fid: self.u32(),
                name: s(self, 12),
                perm: self.u32(),
                mode: self.u8(),
                extension: if u { s(self, 12) } else { "".into() },
            },
            14 => Msg::Rcreate {
                qid: self.qid(),
                iounit: self.u32(),
            },
            15 => Msg::Tread {
                fid: self.u32(),
                offset: self.u64(),
                count: self.u32(),
            },
            16 => Msg::Rread {
                data: self.bytes(64).into(),
            },
            17 => Msg::Twrite {
                fid: self.u32(),
                offset: self.u64(),
                data: self.bytes(64).into(),
            },
            18 => Msg::Rwrite { count: self.u32() },
            19 => Msg::Tclunk { fid: self.u32() },
            20 => Msg::Rclunk,
            21 => Msg::Tremove { fid: self.u32() },
            22 => Msg::Rremove,
            23 => Msg::Tstat { fid: self.u32() },
            24 => Msg::Rstat { stat: self.dir(d) },
            25 => Msg::Twstat {
                fid: self.u32(),
                stat: self.dir(d),
            },
            _ => Msg::Rwstat,
        };
        Fcall::new(self.u16(), msg)
    }

    /// A copy of `frame` damaged in one of several ways a broken or hostile peer might.
    pub fn mutate(&mut self, frame: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        let rounds = 1 + self.below(3);
        for _ in 0..rounds {
            match self.below(7) {
                0 if !f.is_empty() => {
                    let i = self.below(f.len() as u64) as usize;
                    f[i] ^= 1 << self.below(8);
                }
                1 if !f.is_empty() => {
                    let i = self.below(f.len() as u64) as usize;
                    f[i] = self.next() as u8;
                }
                2 => {
                    let n = self.below(f.len() as u64 + 1) as usize;
                    f.truncate(n);
                }
                3 => {
                    let i = self.below(f.len() as u64 + 1) as usize;
                    let extra = self.bytes(8);
                    f.splice(i..i, extra);
                }
                4 if f.len() >= 9 => {
                    // Corrupt a plausible length field (after the header) with an edge value.
                    let i = 7 + self.below(f.len() as u64 - 8) as usize;
                    let v: u16 = match self.below(3) {
                        0 => 0xFFFF,
                        1 => 0,
                        _ => self.u16(),
                    };
                    f[i..i + 2].copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
        // Most of the time keep the size prefix consistent so the body parser is exercised.
        if f.len() >= 4 && self.below(4) != 0 {
            let n = f.len() as u32;
            f[..4].copy_from_slice(&n.to_le_bytes());
        }
        f
    }
}
