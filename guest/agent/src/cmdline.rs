//! The agent's options, read from the kernel command line (`/proc/cmdline`).
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `fsvm.part=N` | partition of the disk to serve (0: the whole disk) | 0 |
//! | `fsvm.disk=NAME` | the disk, as named under `/dev` | `vda` |
//! | `fsvm.port=P` | TCP port of the 9P server | 564 |
//! | `fsvm.ip=A.B.C.D[/LEN]` | eth0's address and prefix length | `10.0.2.15/24` |
//! | `fsvm.gw=A.B.C.D` or `none` | default route | `10.0.2.2` |
//! | `fsvm.msize=N` | largest 9P message the server accepts | the server's default |
//!
//! Other kernel parameters are ignored; an unknown `fsvm.` option or a bad value is an error, so
//! that a typo does not silently serve the wrong partition. A repeated option takes the last
//! value, as the kernel's own parameters do.

use core::fmt;
use std::net::Ipv4Addr;

/// The 9P port when `fsvm.port` is absent (IANA's port for 9P, `564/tcp`).
pub const DEFAULT_PORT: u16 = 564;
/// eth0's address when `fsvm.ip` is absent: the guest address of QEMU's user network and of our NAT.
pub const DEFAULT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// eth0's prefix length when `fsvm.ip` has none.
pub const DEFAULT_PREFIX: u8 = 24;
/// The default route when `fsvm.gw` is absent: the router of QEMU's user network and of our NAT.
pub const DEFAULT_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The disk when `fsvm.disk` is absent: the first virtio-blk device.
pub const DEFAULT_DISK: &str = "vda";
/// The highest partition number accepted (Linux's limit for a virtio-blk disk's minors).
pub const MAX_PARTITION: u32 = 255;
/// The smallest `fsvm.msize` accepted: a 9P message must hold at least a Twalk's worth of names.
pub const MIN_MSIZE: u32 = 4096;

/// The agent's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Partition number; 0 means the whole disk.
    pub part: u32,
    /// Disk name under `/dev` (`vda`).
    pub disk: String,
    /// TCP port of the 9P server.
    pub port: u16,
    /// eth0's IPv4 address.
    pub ip: Ipv4Addr,
    /// eth0's prefix length (0 to 32).
    pub prefix: u8,
    /// Default route, if any.
    pub gateway: Option<Ipv4Addr>,
    /// Largest 9P message size, if not the server's default.
    pub msize: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            part: 0,
            disk: DEFAULT_DISK.to_string(),
            port: DEFAULT_PORT,
            ip: DEFAULT_IP,
            prefix: DEFAULT_PREFIX,
            gateway: Some(DEFAULT_GATEWAY),
            msize: None,
        }
    }
}

impl Options {
    /// The block device to mount: `/dev/vda` for partition 0, else `/dev/vdaN` (`/dev/nvme0n1pN`
    /// for disk names that end in a digit, as Linux names them).
    pub fn device_path(&self) -> String {
        match self.part {
            0 => format!("/dev/{}", self.disk),
            n if self.disk.ends_with(|c: char| c.is_ascii_digit()) => {
                format!("/dev/{}p{n}", self.disk)
            }
            n => format!("/dev/{}{n}", self.disk),
        }
    }

    /// eth0's netmask, from the prefix length.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }
}

/// A bad `fsvm.` option: which one, its value, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdlineError {
    /// The parameter as written (`fsvm.part=x`).
    pub param: String,
    /// What a valid value looks like.
    pub expected: &'static str,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel command line: bad option `{}`: expected {}",
            self.param, self.expected
        )
    }
}

impl std::error::Error for CmdlineError {}

/// Parses the `fsvm.*` options out of a kernel command line; absent options take their defaults.
pub fn parse(cmdline: &str) -> Result<Options, CmdlineError> {
    let mut opts = Options::default();
    for param in cmdline.split_ascii_whitespace() {
        let Some(rest) = param.strip_prefix("fsvm.") else {
            continue;
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        let bad = |expected| CmdlineError {
            param: param.to_string(),
            expected,
        };
        match key {
            "part" => {
                opts.part = value
                    .parse()
                    .ok()
                    .filter(|&n| n <= MAX_PARTITION)
                    .ok_or_else(|| bad("a partition number from 0 (whole disk) to 255"))?;
            }
            "disk" => {
                let ok = !value.is_empty()
                    && value.len() <= 32
                    && value.starts_with(|c: char| c.is_ascii_lowercase())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
                if !ok {
                    return Err(bad("a disk name under /dev such as vda"));
                }
                opts.disk = value.to_string();
            }
            "port" => {
                opts.port = value
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("a TCP port from 1 to 65535"))?;
            }
            "ip" => {
                let (addr, prefix) = match value.split_once('/') {
                    Some((a, p)) => (a, p.parse().ok().filter(|&p| p <= 32)),
                    None => (value, Some(DEFAULT_PREFIX)),
                };
                let expected =
                    "an IPv4 address with an optional prefix length, such as 10.0.2.15/24";
                opts.ip = addr.parse().map_err(|_| bad(expected))?;
                opts.prefix = prefix.ok_or_else(|| bad(expected))?;
            }
            "gw" => {
                opts.gateway = match value {
                    "none" => None,
                    v => Some(v.parse().map_err(|_| bad("an IPv4 address or `none`"))?),
                };
            }
            "msize" => {
                opts.msize = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|&m| m >= MIN_MSIZE)
                        .ok_or_else(|| bad("a 9P message size of at least 4096 bytes"))?,
                );
            }
            _ => {
                return Err(bad(
                    "one of fsvm.part, fsvm.disk, fsvm.port, fsvm.ip, fsvm.gw, fsvm.msize",
                ));
            }
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent() {
        let o = parse("console=ttyS0 quiet panic=-1 reboot=t virtio_mmio.device=512@0xfeb00e00:12")
            .unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(o.device_path(), "/dev/vda");
        assert_eq!(o.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(o.gateway, Some(DEFAULT_GATEWAY));
    }

    #[test]
    fn all_options() {
        let o = parse(
            "quiet fsvm.part=2 fsvm.port=5640 fsvm.ip=192.168.7.9/16 fsvm.gw=none fsvm.msize=524288 fsvm.disk=vdb\n",
        )
        .unwrap();
        assert_eq!(o.part, 2);
        assert_eq!(o.port, 5640);
        assert_eq!(o.ip, Ipv4Addr::new(192, 168, 7, 9));
        assert_eq!(o.prefix, 16);
        assert_eq!(o.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(o.gateway, None);
        assert_eq!(o.msize, Some(524288));
        assert_eq!(o.device_path(), "/dev/vdb2");
    }

    #[test]
    fn last_value_wins_and_edges() {
        let o = parse("fsvm.part=1 fsvm.part=0 fsvm.ip=10.1.2.3 fsvm.gw=10.1.2.1").unwrap();
        assert_eq!(o.part, 0);
        assert_eq!(o.prefix, DEFAULT_PREFIX);
        assert_eq!(o.gateway, Some(Ipv4Addr::new(10, 1, 2, 1)));
        assert_eq!(parse("fsvm.part=255").unwrap().part, 255);
        assert_eq!(parse("fsvm.port=65535").unwrap().port, 65535);
        assert_eq!(
            parse("fsvm.ip=1.2.3.4/0").unwrap().netmask(),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            parse("fsvm.ip=1.2.3.4/32").unwrap().netmask(),
            Ipv4Addr::BROADCAST
        );
        assert_eq!(parse("fsvm.msize=4096").unwrap().msize, Some(4096));
    }

    #[test]
    fn partition_names_follow_linux() {
        let mut o = parse("fsvm.part=3 fsvm.disk=nvme0n1").unwrap();
        assert_eq!(o.device_path(), "/dev/nvme0n1p3");
        o.part = 0;
        assert_eq!(o.device_path(), "/dev/nvme0n1");
    }

    #[test]
    fn bad_values_are_errors_naming_the_option() {
        for bad in [
            "fsvm.part=x",
            "fsvm.part=-1",
            "fsvm.part=256",
            "fsvm.part=",
            "fsvm.part",
            "fsvm.port=0",
            "fsvm.port=65536",
            "fsvm.port=http",
            "fsvm.ip=10.0.2",
            "fsvm.ip=10.0.2.15/33",
            "fsvm.ip=10.0.2.15/",
            "fsvm.ip=::1",
            "fsvm.gw=router",
            "fsvm.msize=100",
            "fsvm.msize=big",
            "fsvm.disk=",
            "fsvm.disk=../sda",
            "fsvm.disk=VDA",
            "fsvm.disk=1vda",
            "fsvm.prat=1",
        ] {
            let err = parse(&format!("quiet {bad} panic=-1")).expect_err(bad);
            assert_eq!(err.param, bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn other_parameters_are_not_ours() {
        // `fsvmx.part` and `xfsvm.part` are someone else's; only the `fsvm.` prefix is ours.
        assert_eq!(
            parse("fsvmx.part=9 xfsvm.part=9 fsvm").unwrap(),
            Options::default()
        );
    }
}
