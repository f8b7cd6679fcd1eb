//! Reading a command's inputs: a named file, or standard input for `-`.

use alloc::string::String;
use alloc::vec::Vec;
use rt::{fs, io};

/// An open input.
pub struct Input {
    fd: u64,
    owned: bool,
    /// The name messages use.
    pub name: String,
}

impl Input {
    /// Opens `path` for reading (`-` is standard input); the error names the file.
    pub fn open(path: &str) -> rt::Result<Input> {
        if path == "-" {
            return Ok(Input {
                fd: io::STDIN,
                owned: false,
                name: String::from("standard input"),
            });
        }
        let fd = fs::open(path, fs::OREAD)?;
        Ok(Input {
            fd,
            owned: true,
            name: String::from(path),
        })
    }

    /// Reads the next chunk into `buf`; 0 at the end.
    pub fn read(&mut self, buf: &mut [u8]) -> rt::Result<usize> {
        io::read(self.fd, buf).map_err(|e| e.context(&self.name))
    }

    /// Reads everything that is left.
    pub fn read_all(&mut self) -> rt::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = alloc::vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Calls `f` on each chunk until the end.
    pub fn for_each_chunk(&mut self, mut f: impl FnMut(&[u8])) -> rt::Result<()> {
        let mut buf = alloc::vec![0u8; 64 * 1024];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            f(&buf[..n]);
        }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        if self.owned {
            let _ = io::close(self.fd);
        }
    }
}

/// The operands, or `-` if there are none.
pub fn operands_or_stdin(rest: &[String]) -> Vec<String> {
    if rest.is_empty() {
        alloc::vec![String::from("-")]
    } else {
        rest.to_vec()
    }
}
