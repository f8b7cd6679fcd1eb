//! init (pid 1): starts the console shell, starts it again if it dies, and reaps every orphan
//! the kernel hands it.

#![no_std]
#![no_main]

use rt::eprintln;
use rt::process::{self, RFFDG, RFNOTEG, RFPROC};
use rt::string::String;

rt::entry!(main);

const SHELL: &str = "/bin/sh";

fn start_shell() -> rt::Result<u64> {
    // The shell gets a note group of its own: ^C goes to it and its jobs, never to init.
    match process::rfork(RFPROC | RFFDG | RFNOTEG)? {
        0 => {
            let e = process::exec(SHELL, &[String::from("sh"), String::from("-i")]);
            eprintln!("init: {e}");
            process::exits(e.msg())
        }
        pid => Ok(pid),
    }
}

fn main() -> rt::Result<()> {
    rt::env::set_var("PATH", "/bin");
    rt::env::set_var("HOME", "/");
    loop {
        let shell = start_shell()?;
        loop {
            match process::await_child() {
                Ok(e) if e.pid == shell => {
                    if !e.msg.is_empty() {
                        eprintln!("init: shell exited: {}", e.msg);
                    }
                    break;
                }
                Ok(_) => {} // an orphan, reaped
                Err(e) => {
                    eprintln!("init: await: {e}");
                    break;
                }
            }
        }
        // Do not spin if the shell cannot start at all.
        let _ = process::sleep(100);
    }
}
