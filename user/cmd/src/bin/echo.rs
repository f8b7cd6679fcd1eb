//! echo: prints its arguments separated by spaces; `-n` leaves out the newline.

#![no_std]
#![no_main]

use rt::io;
use rt::string::String;

rt::entry!(main);

fn main() -> rt::Result<()> {
    let mut args = &rt::env::args()[1..];
    let newline = match args.first() {
        Some(a) if a == "-n" => {
            args = &args[1..];
            false
        }
        _ => true,
    };
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(a);
    }
    if newline {
        out.push('\n');
    }
    io::write(io::STDOUT, out.as_bytes()).map_err(|e| e.context("write"))?;
    Ok(())
}
