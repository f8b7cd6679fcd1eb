//! The third-party 9P client for interop tests: `python-9p` from PyPI (the `py9p` module, a
//! Python client over plan9port's C codec), installed at a pinned version into a virtualenv in
//! the cache (`<cache>/py9p-<version>/`).

use crate::{Error, Result, deps, progress};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned PyPI release.
pub const VERSION: &str = "0.1.0";

/// The venv's Python with `py9p` importable, installing it on first use.
pub fn python(cache: &Path) -> Result<PathBuf> {
    let venv = cache.join(format!("py9p-{VERSION}"));
    let python = venv.join("bin").join("python3");
    let works = |py: &Path| {
        Command::new(py)
            .args(["-c", "import py9p"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&python) {
        return Ok(python);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    let _lock = crate::lock_file(&cache.join(".py9p.lock"))?;
    if works(&python) {
        return Ok(python);
    }
    deps::ensure(deps::PYTHON_VENV, "the python-9p interop client")?;
    // Debian's python3 lacks ensurepip unless python3-venv is installed; `python3` alone does
    // not prove it is.
    let venv_ok = Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !venv_ok {
        deps::install(&["python3-venv"], "the python-9p interop client")?;
    }
    progress(&format!(
        "installing python-9p {VERSION} from PyPI into {}",
        venv.display()
    ));
    let _ = std::fs::remove_dir_all(&venv);
    let run = |cmd: &mut Command, what: &str| -> Result<()> {
        let out = cmd
            .output()
            .map_err(|e| Error::new(format!("{what}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            &format!("python-9p=={VERSION}"),
        ]),
        "pip install python-9p",
    )?;
    if works(&python) {
        Ok(python)
    } else {
        Err(Error::new(format!(
            "python-9p {VERSION} installed but `import py9p` fails in {}",
            venv.display()
        )))
    }
}
