//! srv: posts a channel in `/srv` so that anyone can open (and mount) it: a file opened
//! read-write, or a network connection dialled from a Plan 9 dial string
//! (`tcp!10.0.2.2!5640`, through `/net/tcp/clone`). `srv -r name` removes a posting.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use cmd::args;
use cmd::output::{complain, finish};
use rt::{fs, io};

rt::entry!(main);

const USAGE: &str = "srv file|net!host!port name | srv -r name";

/// Dials `net!host!port` as Plan 9 does: a connection from the clone file, `connect` on its
/// control file, then its data file.
fn dial(addr: &str) -> rt::Result<u64> {
    let mut parts = addr.splitn(2, '!');
    let net = parts.next().unwrap_or("tcp");
    let dest = parts
        .next()
        .ok_or_else(|| rt::Error(format!("{addr}: bad dial string")))?;
    let dir = ["/net", "#ip"]
        .iter()
        .map(|root| format!("{root}/{net}"))
        .find(|d| fs::stat(d).is_ok())
        .ok_or_else(|| rt::Error(format!("dial {addr}: /net/{net}: file does not exist")))?;
    let ctl = fs::open(&format!("{dir}/clone"), fs::ORDWR)?;
    let r = (|| {
        let mut buf = [0u8; 32];
        let n = io::read(ctl, &mut buf).map_err(|e| e.context(format!("{dir}/clone")))?;
        let conn = String::from(String::from_utf8_lossy(&buf[..n]).trim());
        io::write(ctl, format!("connect {dest}").as_bytes())
            .map_err(|e| e.context(format!("dial {addr}")))?;
        fs::open(&format!("{dir}/{conn}/data"), fs::ORDWR)
    })();
    let _ = io::close(ctl);
    r
}

fn main() -> rt::Result<()> {
    let a = args::parse(USAGE, "r", "");
    if a.has('r') {
        let [name] = a.rest.as_slice() else {
            args::usage(USAGE)
        };
        return finish(
            fs::remove(&format!("/srv/{name}"))
                .err()
                .map(|e| complain(e.0)),
        );
    }
    let [source, name] = a.rest.as_slice() else {
        args::usage(USAGE)
    };
    if name.contains('/') {
        return finish(Some(complain(format!("{name}: a name in /srv has no /"))));
    }
    let fd = if source.contains('!') {
        dial(source)
    } else {
        fs::open(source, fs::ORDWR)
    };
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) => return finish(Some(complain(e.0))),
    };
    let path = format!("/srv/{name}");
    let r = fs::create(&path, fs::OWRITE, 0o600).and_then(|post| {
        let w = io::write(post, format!("{fd}").as_bytes()).map_err(|e| e.context(&path));
        let _ = io::close(post);
        w.map(|_| ())
    });
    let _ = io::close(fd);
    finish(r.err().map(|e| complain(e.0)))
}
