//! The program's arguments and environment, as `exec` passed them.

use alloc::string::String;
use alloc::vec::Vec;
use spin::Once;

static ARGS: Once<Vec<String>> = Once::new();
static ENV: spin::Mutex<Vec<(String, String)>> = spin::Mutex::new(Vec::new());

/// Reads the strings the kernel left at `sp` (argc, argv..., NULL, envp..., NULL).
///
/// # Safety
/// `sp` must be the initial stack pointer of the program, as exec built it.
pub unsafe fn init(sp: *const u64) {
    crate::heap::init();
    // SAFETY: Forwarded from the caller: the layout at `sp` is the kernel's exec layout, whose
    // strings are NUL-terminated UTF-8 (the kernel only accepts UTF-8 arguments).
    unsafe {
        let argc = *sp as usize;
        let cstr = |p: u64| {
            let p = p as *const u8;
            let mut n = 0;
            while *p.add(n) != 0 {
                n += 1;
            }
            String::from_utf8_lossy(core::slice::from_raw_parts(p, n)).into_owned()
        };
        let argv: Vec<String> = (0..argc).map(|i| cstr(*sp.add(1 + i))).collect();
        let mut env = Vec::new();
        let mut e = sp.add(argc + 2);
        while *e != 0 {
            let s = cstr(*e);
            if let Some((k, v)) = s.split_once('=') {
                env.push((String::from(k), String::from(v)));
            }
            e = e.add(1);
        }
        ARGS.call_once(|| argv);
        *ENV.lock() = env;
    }
}

/// The arguments, `args()[0]` being the program's name.
pub fn args() -> &'static [String] {
    ARGS.get().map_or(&[], Vec::as_slice)
}

/// The program's name (the last element of `argv[0]`).
pub fn program() -> &'static str {
    args()
        .first()
        .map_or("?", |a| a.rsplit('/').next().unwrap_or(a))
}

/// The value of an environment variable.
pub fn var(name: &str) -> Option<String> {
    ENV.lock()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Sets an environment variable (passed on by `process::exec`).
pub fn set_var(name: &str, value: &str) {
    let mut env = ENV.lock();
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = String::from(value),
        None => env.push((String::from(name), String::from(value))),
    }
}

/// Removes an environment variable.
pub fn remove_var(name: &str) {
    ENV.lock().retain(|(k, _)| k != name);
}

/// The environment as `NAME=value` strings.
pub fn vars() -> Vec<String> {
    ENV.lock()
        .iter()
        .map(|(k, v)| alloc::format!("{k}={v}"))
        .collect()
}
