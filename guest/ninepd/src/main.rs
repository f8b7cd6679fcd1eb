//! `ninepd --listen ADDR:PORT --root DIR [--msize N] [--readonly]`: serve DIR over 9P2000.

use std::process::ExitCode;

const USAGE: &str = "usage: ninepd --listen ADDR:PORT --root DIR [--msize N] [--readonly]";

fn parse(args: &[String]) -> Result<(String, String, ninepd::Options), String> {
    let mut listen = None;
    let mut root = None;
    let mut opts = ninepd::Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--listen" => listen = Some(value("--listen")?),
            "--root" => root = Some(value("--root")?),
            "--msize" => {
                let v = value("--msize")?;
                opts.msize = v
                    .parse()
                    .map_err(|_| format!("--msize {v}: not a number of bytes"))?;
            }
            "--readonly" => opts.readonly = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let listen = listen.ok_or("--listen ADDR:PORT is required")?;
    let root = root.ok_or("--root DIR is required")?;
    Ok((listen, root, opts))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, root, opts) = match parse(&args) {
        Ok(p) => p,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ninepd: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match ninepd::Server::bind(listen.as_str(), &root, opts) {
        Ok(server) => {
            eprintln!(
                "ninepd: serving {root} on {} (msize {}{})",
                server.local_addr(),
                opts.msize,
                if opts.readonly { ", read-only" } else { "" }
            );
            server.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
