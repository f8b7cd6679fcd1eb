//! sh: the shell (a first version: words, `cd`, `exit`, background `&`, running programs from
//! `/bin` and waiting for them).

#![no_std]
#![no_main]

use rt::process::{self, RFFDG, RFNOTEG, RFPROC};
use rt::string::String;
use rt::vec::Vec;
use rt::{eprintln, fs, io, print};

rt::entry!(main);

fn run(words: &[String], background: bool) -> rt::Result<()> {
    let path = if words[0].contains('/') {
        words[0].clone()
    } else {
        rt::format!("/bin/{}", words[0])
    };
    let flags = if background {
        RFPROC | RFFDG | RFNOTEG
    } else {
        RFPROC | RFFDG
    };
    match process::rfork(flags)? {
        0 => {
            let e = process::exec(&path, words);
            eprintln!(
                "sh: {}: {}",
                words[0],
                e.msg().rsplit(": ").next().unwrap_or(e.msg())
            );
            process::exits(e.msg())
        }
        pid if background => {
            print!("{pid}\n");
            Ok(())
        }
        pid => loop {
            match process::await_child() {
                Ok(e) if e.pid == pid => return Ok(()),
                Ok(_) => {}
                Err(e) if e.msg() == rt::notes::INTERRUPTED => {}
                Err(e) => return Err(e),
            }
        },
    }
}

fn main() -> rt::Result<()> {
    let _ = fs::open("/dev/consctl", fs::OWRITE).and_then(|fd| io::write(fd, b"notegroup"));
    rt::notes::set_handler(|note| {
        if note == rt::notes::INTERRUPT {
            rt::notes::Action::Continue
        } else {
            rt::notes::Action::Die
        }
    });
    let mut cwd = String::from("/");
    loop {
        print!("{cwd} $ ");
        io::flush_stdout();
        let line = match io::read_line(io::STDIN) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) if e.msg() == rt::notes::INTERRUPTED => continue,
            Err(e) => return Err(e),
        };
        let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let background = words.last().is_some_and(|w| w == "&");
        if background {
            words.pop();
        }
        let Some(cmd) = words.first() else { continue };
        match cmd.as_str() {
            "exit" => return Ok(()),
            "cd" => {
                let to = words.get(1).cloned().unwrap_or_else(|| String::from("/"));
                match fs::chdir(&to) {
                    Ok(()) => {
                        cwd = if to.starts_with('/') || to.starts_with('#') {
                            to
                        } else if cwd.ends_with('/') {
                            rt::format!("{cwd}{to}")
                        } else {
                            rt::format!("{cwd}/{to}")
                        }
                    }
                    Err(e) => eprintln!("sh: cd: {e}"),
                }
            }
            _ => {
                if let Err(e) = run(&words, background) {
                    eprintln!("sh: {e}");
                }
            }
        }
    }
}
