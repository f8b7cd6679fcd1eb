//! The VM configuration: one value holding the device set, memory size, vCPUs, kernel, initrd,
//! command line and NAT options, parsed from `vmrunkernel` arguments and the files they name.
//!
//! ```text
//! vmrunkernel [-m SIZE] [-N CPUS] [-i INITRD] [-k CMDLINE-FILE] [-c EXTRA]
//!             [-f DISK [--ro]] [-n NET-OPTIONS-FILE [--mac MAC] [--mrg-rxbuf]] KERNEL
//! ```
//!
//! The flags follow Akaros' vmrunkernel (reference/akaros.md §2.1) without its traps: every
//! option is checked, and an error names the option and the bad value. Files are read through
//! [`FileSource`], so this module is pure logic. The net options file has one option per line,
//! `#` comments and blank lines allowed (akaros.md §2.2, DESIGN.md section 4):
//!
//! ```text
//! dhcp                    # answer the guest's DHCP requests
//! snoop                   # log every frame
//! no_outbound             # refuse the guest's connections beyond the router (default: dial them)
//! nat_timeout = 300       # seconds before an idle mapping is dropped
//! port:tcp:5640:564       # forward host port 5640 to guest port 564
//! ```
//!
//! Devices get virtio-mmio slots in a fixed order (console, then disk, then network card) and
//! IRQs counted from 1 (Linux 5.16+ rejects IRQ 0 for virtio-mmio), skipping the ISA lines the
//! guest itself claims without ACPI: 2 (the 8259 cascade, requested by Linux at boot) and 3 and 4
//! (the 8250 serial ports of the guest's console). So the console is IRQ 1, the disk 5, the card 6.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::layout::{GuestLayout, IOAPIC_PINS, MIB, VIRTIO_MMIO_SIZE};
use crate::virtio::mmio::cmdline_announcement;
use crate::virtio::net::DEFAULT_MAC;

/// Guest memory when `-m` is not given.
pub const DEFAULT_MEMORY: u64 = 256 * MIB;
/// ISA IRQs a virtio device must not use (see the module header).
pub const RESERVED_IRQS: [u32; 4] = [0, 2, 3, 4];

/// A bad option: which one, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The option (`-m`, `port:tcp:...` in a file, ...).
    pub option: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vmrunkernel: {}: {}", self.option, self.message)
    }
}

fn error(option: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        option: option.into(),
        message: message.into(),
    }
}

/// Reads the files options name.
pub trait FileSource {
    /// The whole file at `path`, or a message saying why not.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String>;
}

/// A transport protocol of a port forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A static forward from a host port to a guest port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortForward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Port on the host.
    pub host_port: u16,
    /// Port in the guest.
    pub guest_port: u16,
}

/// NAT options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatOptions {
    /// Answer DHCP.
    pub dhcp: bool,
    /// Log frames.
    pub snoop: bool,
    /// Do not dial the guest's outbound TCP connections (they are dropped instead).
    pub no_outbound: bool,
    /// Idle timeout of a mapping, in seconds (0: the NAT's default).
    pub timeout_secs: u32,
    /// Static forwards.
    pub forwards: Vec<PortForward>,
}

/// What a device slot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// virtio-console on the VMM's stdin and stdout.
    Console,
    /// virtio-blk backed by the file at `path`.
    Block {
        /// The file (for example `#sd/sdE0/data`).
        path: String,
        /// Refuse writes.
        read_only: bool,
    },
    /// virtio-net into the NAT.
    Net {
        /// The card's MAC.
        mac: [u8; 6],
        /// Offer mergeable receive buffers.
        mergeable: bool,
    },
}

/// A device with its place on the bus and its interrupt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// What it is.
    pub kind: DeviceKind,
    /// Guest-physical base of its registers.
    pub base: u64,
    /// Its IRQ (= IOAPIC pin).
    pub irq: u32,
}

/// A whole VM configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// The kernel file (vmlinux or bzImage).
    pub kernel: String,
    /// The initrd file.
    pub initrd: Option<String>,
    /// Guest memory in bytes.
    pub memory: u64,
    /// vCPUs.
    pub cpus: u32,
    /// The user's command line (file and extra text), before the device announcements.
    pub cmdline: String,
    /// Devices in slot order.
    pub devices: Vec<DeviceConfig>,
    /// NAT options, when there is a network card.
    pub nat: Option<NatOptions>,
    /// A line typed to the guest's console when the console's input ends (`-e`): a guest
    /// agent's shutdown command, so that the guest stops cleanly when whoever fed its console
    /// is gone.
    pub eof_line: Option<String>,
}

impl VmConfig {
    /// The command line the guest gets: the user's, then one `virtio_mmio.device=` per device.
    pub fn kernel_cmdline(&self) -> String {
        let mut s = self.cmdline.clone();
        for d in &self.devices {
            if let Some(a) = cmdline_announcement(VIRTIO_MMIO_SIZE, d.base, d.irq) {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(&a);
            }
        }
        s
    }

    /// The guest's address map (always `Ok` for a configuration from [`parse_args`]).
    pub fn layout(&self) -> Result<GuestLayout, crate::layout::BadMemorySize> {
        GuestLayout::new(self.memory)
    }
}

/// Parses a size: bytes, or a number with K, M or G (powers of 1024), or 0x-prefixed hex.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n = match num.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => num.parse().ok()?,
    };
    n.checked_mul(mult)
}

/// Parses a MAC written as six colon-separated hex bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 {
        return None; // too many bytes, or a multicast address
    }
    Some(mac)
}

/// Parses a net options file.
pub fn parse_nat_options(text: &str, file: &str) -> Result<NatOptions, ConfigError> {
    let mut o = NatOptions::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let here = || format!("{file}:{}: {line}", n + 1);
        if line == "dhcp" {
            o.dhcp = true;
        } else if line == "snoop" {
            o.snoop = true;
        } else if line == "no_outbound" {
            o.no_outbound = true;
        } else if let Some(v) = line.strip_prefix("nat_timeout") {
            let v = v
                .trim_start()
                .strip_prefix('=')
                .map(str::trim)
                .ok_or_else(|| error(&here(), "expected nat_timeout = SECONDS"))?;
            o.timeout_secs = v
                .parse()
                .map_err(|_| error(&here(), format!("'{v}' is not a number of seconds")))?;
        } else if let Some(rest) = line.strip_prefix("port:") {
            let f: Vec<&str> = rest.split(':').collect();
            let [proto, host, guest] = f[..] else {
                return Err(error(&here(), "expected port:tcp|udp:HOSTPORT:GUESTPORT"));
            };
            let protocol = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return Err(error(&here(), format!("unknown protocol '{proto}'"))),
            };
            let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0);
            let (Some(host_port), Some(guest_port)) = (port(host), port(guest)) else {
                return Err(error(&here(), "ports must be numbers from 1 to 65535"));
            };
            if o.forwards
                .iter()
                .any(|f| f.protocol == protocol && f.host_port == host_port)
            {
                return Err(error(
                    &here(),
                    format!("host port {host_port} is forwarded twice"),
                ));
            }
            o.forwards.push(PortForward {
                protocol,
                host_port,
                guest_port,
            });
        } else {
            return Err(error(&here(), "unknown option"));
        }
    }
    Ok(o)
}

fn text_file(files: &mut dyn FileSource, option: &str, path: &str) -> Result<String, ConfigError> {
    let bytes = files
        .read_file(path)
        .map_err(|e| error(option, format!("{path}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| error(option, format!("{path}: not UTF-8 text")))
}

/// Parses `vmrunkernel` arguments (without the program name).
pub fn parse_args(args: &[&str], files: &mut dyn FileSource) -> Result<VmConfig, ConfigError> {
    let mut memory = DEFAULT_MEMORY;
    let mut cpus = 1u32;
    let (mut initrd, mut cmdline_file, mut extra, mut disk, mut net_file, mut mac) =
        (None, None, None, None, None, None);
    let (mut read_only, mut mergeable) = (false, false);
    let mut eof_line = None;
    let mut kernel = None;
    let mut it = args.iter().copied();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| error(name, "needs a value"));
        match a {
            "-m" | "--memsize" => {
                let v = value(a)?;
                memory = parse_size(v)
                    .ok_or_else(|| error(a, format!("'{v}' is not a size (like 512M or 1G)")))?;
                if let Err(e) = GuestLayout::new(memory) {
                    return Err(error(a, e.to_string()));
                }
            }
            "-N" | "--num_cores" => {
                let v = value(a)?;
                cpus = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=crate::mptable::MAX_CPUS).contains(&n))
                    .ok_or_else(|| {
                        error(
                            a,
                            format!(
                                "'{v}' is not a vCPU count from 1 to {}",
                                crate::mptable::MAX_CPUS
                            ),
                        )
                    })?;
            }
            "-i" | "--initrd" => initrd = Some(value(a)?.to_string()),
            "-k" | "--cmdline" => cmdline_file = Some(value(a)?),
            "-c" | "--cmdline_extra" => extra = Some(value(a)?),
            "-f" | "--image_file" => disk = Some(value(a)?.to_string()),
            "--ro" => read_only = true,
            "-n" | "--net" => net_file = Some(value(a)?),
            "--mac" => {
                let v = value(a)?;
                mac = Some(parse_mac(v).ok_or_else(|| {
                    error(
                        a,
                        format!("'{v}' is not a unicast MAC like 52:54:00:12:34:56"),
                    )
                })?);
            }
            "--mrg-rxbuf" => mergeable = true,
            "-e" | "--eof-line" => {
                let v = value(a)?;
                if v.is_empty() || v.contains(['\n', '\r']) {
                    return Err(error(a, "needs one non-empty line"));
                }
                eof_line = Some(v.to_string());
            }
            _ if a.starts_with('-') => return Err(error(a, "unknown option")),
            _ if kernel.is_some() => return Err(error(a, "only one kernel may be given")),
            _ => kernel = Some(a.to_string()),
        }
    }
    let kernel = kernel.ok_or_else(|| error("KERNEL", "no kernel given"))?;
    if read_only && disk.is_none() {
        return Err(error("--ro", "needs a disk (-f)"));
    }
    if (mac.is_some() || mergeable) && net_file.is_none() {
        return Err(error(
            if mac.is_some() {
                "--mac"
            } else {
                "--mrg-rxbuf"
            },
            "needs a network (-n)",
        ));
    }
    let mut cmdline = match cmdline_file {
        // Newlines separate options in the file; Linux wants one line.
        Some(p) => text_file(files, "-k", p)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    };
    if let Some(e) = extra {
        if !cmdline.is_empty() {
            cmdline.push(' ');
        }
        cmdline.push_str(e.trim());
    }
    let nat = match net_file {
        Some(p) => Some(parse_nat_options(&text_file(files, "-n", p)?, p)?),
        None => None,
    };

    let mut kinds = alloc::vec![DeviceKind::Console];
    if let Some(path) = disk {
        kinds.push(DeviceKind::Block { path, read_only });
    }
    if nat.is_some() {
        kinds.push(DeviceKind::Net {
            mac: mac.unwrap_or(DEFAULT_MAC),
            mergeable,
        });
    }
    let mut irqs = (1..u32::from(IOAPIC_PINS)).filter(|i| !RESERVED_IRQS.contains(i));
    let devices = kinds
        .into_iter()
        .enumerate()
        .map(|(slot, kind)| {
            let base = GuestLayout::virtio_mmio_base(slot as u64)
                .ok_or_else(|| error("devices", "too many"))?;
            let irq = irqs
                .next()
                .ok_or_else(|| error("devices", "more devices than free IRQs"))?;
            Ok(DeviceConfig { kind, base, irq })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    Ok(VmConfig {
        kernel,
        initrd,
        memory,
        cpus,
        cmdline,
        devices,
        nat,
        eof_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Files(HashMap<&'static str, &'static str>);

    impl FileSource for Files {
        fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
            self.0
                .get(path)
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| "file does not exist".into())
        }
    }

    fn files() -> Files {
        Files(HashMap::from([
            ("cmdline", " console=hvc0\n quiet\n fsvm.part=1\n"),
            (
                "net",
                "# fsvm\ndhcp\nnat_timeout = 300\nport:tcp:5640:564  # 9P\n\n",
            ),
            ("badnet", "dhcp\nport:tcp:99999:564\n"),
        ]))
    }

    fn parse(args: &[&str]) -> Result<VmConfig, ConfigError> {
        parse_args(args, &mut files())
    }

    #[test]
    fn the_fsvm_invocation() {
        let c = parse(&[
            "-m",
            "512M",
            "-k",
            "cmdline",
            "-c",
            "fsvm.port=564",
            "-f",
            "#sd/sdE0/data",
            "-n",
            "net",
            "-i",
            "initrd.gz",
            "-e",
            "SHUTDOWN",
            "vmlinux",
        ])
        .unwrap();
        assert_eq!(c.eof_line.as_deref(), Some("SHUTDOWN"));
        assert_eq!(
            (c.memory, c.cpus, c.kernel.as_str(), c.initrd.as_deref()),
            (512 * MIB, 1, "vmlinux", Some("initrd.gz"))
        );
        assert_eq!(c.cmdline, "console=hvc0 quiet fsvm.part=1 fsvm.port=564");
        let irqs: Vec<u32> = c.devices.iter().map(|d| d.irq).collect();
        assert_eq!(irqs, [1, 5, 6]);
        assert_eq!(
            c.devices[1].kind,
            DeviceKind::Block {
                path: "#sd/sdE0/data".into(),
                read_only: false
            }
        );
        let nat = c.nat.as_ref().unwrap();
        assert!(nat.dhcp && !nat.snoop && nat.timeout_secs == 300);
        assert_eq!(
            nat.forwards,
            [PortForward {
                protocol: Protocol::Tcp,
                host_port: 5640,
                guest_port: 564
            }]
        );
        assert_eq!(
            c.kernel_cmdline(),
            "console=hvc0 quiet fsvm.part=1 fsvm.port=564 virtio_mmio.device=4K@0xd0000000:1 \
             virtio_mmio.device=4K@0xd0001000:5 virtio_mmio.device=4K@0xd0002000:6"
        );
        assert_eq!(c.layout().unwrap().memory(), 512 * MIB);
    }

    #[test]
    fn minimal_invocation_has_just_a_console() {
        let c = parse(&["bzImage"]).unwrap();
        assert_eq!(c.memory, DEFAULT_MEMORY);
        assert_eq!(c.devices.len(), 1);
        assert_eq!(c.kernel_cmdline(), "virtio_mmio.device=4K@0xd0000000:1");
    }

    #[test]
    fn errors_name_the_bad_option() {
        let cases: [(&[&str], &str); 16] = [
            (&["-m", "12Q", "k"], "-m"),
            (&["-m", "1M", "k"], "-m"),
            (&["-m"], "-m"),
            (&["-N", "0", "k"], "-N"),
            (&["-e", "", "k"], "-e"),
            (&["-e", "SHUT\nDOWN", "k"], "-e"),
            (&["-e"], "-e"),
            (&["-N", "x", "k"], "-N"),
            (&["-k", "missing", "k"], "-k"),
            (&["-n", "badnet", "k"], "badnet:2: port:tcp:99999:564"),
            (&["--mac", "01:00:00:00:00:01", "-n", "net", "k"], "--mac"),
            (&["--mac", "52:54:00:12:34:56", "k"], "--mac"),
            (&["--ro", "k"], "--ro"),
            (&["-x", "k"], "-x"),
            (&["k", "k2"], "k2"),
            (&[], "KERNEL"),
        ];
        for (args, option) in cases {
            let e = parse(args).unwrap_err();
            assert_eq!(e.option, option, "{args:?}: {e}");
            assert!(e.to_string().starts_with("vmrunkernel: "));
        }
        assert_eq!(
            parse(&["-k", "missing", "k"]).unwrap_err().to_string(),
            "vmrunkernel: -k: missing: file does not exist"
        );
    }

    #[test]
    fn net_options_file_errors() {
        for (text, msg) in [
            ("bogus", "unknown option"),
            ("nat_timeout 5", "expected"),
            ("nat_timeout = soon", "not a number"),
            ("port:sctp:1:2", "unknown protocol"),
            ("port:tcp:1", "expected"),
            ("port:tcp:0:2", "ports"),
            ("port:tcp:80:80\nport:tcp:80:81", "twice"),
        ] {
            let e = parse_nat_options(text, "f").unwrap_err();
            assert!(e.message.contains(msg), "{text}: {e}");
            assert!(e.option.starts_with("f:"), "{text}: {e}");
        }
        assert_eq!(
            parse_nat_options("port:udp:53:53 # dns", "f")
                .unwrap()
                .forwards[0]
                .protocol,
            Protocol::Udp
        );
    }

    #[test]
    fn sizes_and_macs() {
        assert_eq!(parse_size("512M"), Some(512 * MIB));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("0x2000000"), Some(32 * MIB));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999G"), None);
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("52:54:00:12:34:5g"), None);
        assert_eq!(parse_mac("52:54:00:12:34:"), None);
    }
}
