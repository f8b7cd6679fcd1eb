//! Sequential read throughput through ninepd on the host, per msize, against reading the same
//! file directly (DESIGN.md section 8 asks for 64 KiB vs 8 KiB >= 4x).
//!
//! `cargo run --release -p ninepd --example readbench [MIB]` (default 64 MiB; the file is read
//! once before timing so both sides read from the page cache).

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::time::Instant;

use ninep::OREAD;
use ninep::client::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64);
    let dir = std::env::temp_dir().join(format!("ninepd-readbench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let path = dir.join("data");
    let data: Vec<u8> = (0..mib << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    fs::write(&path, &data)?;

    let start = Instant::now();
    let mut direct = Vec::with_capacity(data.len());
    fs::File::open(&path)?.read_to_end(&mut direct)?;
    let direct_s = start.elapsed().as_secs_f64();
    println!(
        "direct read    {mib} MiB: {:8.1} MiB/s",
        mib as f64 / direct_s
    );

    let server = ninepd::Server::bind("127.0.0.1:0", &dir, ninepd::Options::default())?;
    let mut rates = Vec::new();
    for msize in [8 << 10, 64 << 10, 1 << 20] {
        let stream = TcpStream::connect(server.local_addr())?;
        stream.set_nodelay(true)?;
        let mut c = Client::connect(stream, msize)?;
        let (root, _) = c.attach("bench", "")?;
        let (f, _) = c.walk(root, &["data"])?;
        c.open(f, OREAD)?;
        let start = Instant::now();
        let got = c.read_all(f)?;
        let s = start.elapsed().as_secs_f64();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "data read through 9P differs");
        let rate = mib as f64 / s;
        rates.push(rate);
        println!(
            "9P msize {:>7}: {:8.1} MiB/s  ({:.2} of direct, {} reads)",
            msize,
            rate,
            direct_s / s,
            (data.len() as u64).div_ceil(u64::from(c.iounit()))
        );
    }
    println!(
        "ratio msize 64 KiB / 8 KiB: {:.1}x; 1 MiB / 8 KiB: {:.1}x",
        rates[1] / rates[0],
        rates[2] / rates[0]
    );
    server.stop();
    fs::remove_dir_all(&dir)?;
    Ok(())
}
