//! ninepd on a temporary tree, driven by our client: walk, open, read, write, create, remove,
//! stat and wstat, with the error each bad request gets, and the confinement of `..` and
//! symbolic links to the served root.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use ninep::{DMDIR, Dir, ORCLOSE, ORDWR, OREAD, OTRUNC, OWRITE};
use support::{TempDir, client, ename, server};

#[test]
fn browse_read_write_create_remove() {
    let t = TempDir::new("basic");
    fs::create_dir(t.path().join("sub")).unwrap();
    fs::write(t.path().join("hello.txt"), b"hello, world\n").unwrap();
    fs::write(t.path().join("sub/inner"), b"inner").unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let (mut c, root) = client(&srv, 8192);

    let st = c.stat(root).unwrap();
    assert_eq!(st.name, "/");
    assert!(st.mode & DMDIR != 0 && st.qid.is_dir());
    assert_eq!(st.qid.path, fs::metadata(t.path()).unwrap().ino());

    let (d, _) = c.walk(root, &[]).unwrap();
    c.open(d, OREAD).unwrap();
    let mut names: Vec<String> = c
        .read_dir(d)
        .unwrap()
        .into_iter()
        .map(|e| e.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hello.txt", "sub"]);
    c.clunk(d).unwrap();

    let (f, q) = c.walk(root, &["hello.txt"]).unwrap();
    let meta = fs::metadata(t.path().join("hello.txt")).unwrap();
    assert_eq!(q.unwrap().path, meta.ino());
    let st = c.stat(f).unwrap();
    assert_eq!((st.length, &*st.name), (13, "hello.txt"));
    assert_eq!(st.uid, meta.uid().to_string());
    assert_eq!(st.mtime as i64, meta.mtime());
    c.open(f, OREAD).unwrap();
    assert_eq!(c.read_all(f).unwrap(), b"hello, world\n");
    assert_eq!(c.read(f, 7, 100).unwrap(), b"world\n");
    assert_eq!(c.read(f, 1000, 100).unwrap(), b"");
    c.clunk(f).unwrap();

    let (f, _) = c.walk_path(root, "sub/inner").unwrap();
    c.open(f, ORDWR).unwrap();
    assert_eq!(c.write(f, 5, b" and more").unwrap(), 9);
    c.clunk(f).unwrap();
    assert_eq!(
        fs::read(t.path().join("sub/inner")).unwrap(),
        b"inner and more"
    );

    let (f, _) = c.walk(root, &["sub"]).unwrap();
    let (q, iounit) = c.create(f, "new.bin", 0o640, OWRITE).unwrap();
    assert!(!q.is_dir() && iounit == 8192 - 24);
    c.write(f, 0, &[7u8; 20_000]).unwrap();
    c.clunk(f).unwrap();
    assert_eq!(
        fs::read(t.path().join("sub/new.bin")).unwrap(),
        vec![7u8; 20_000]
    );
    let perm = fs::metadata(t.path().join("sub/new.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(perm & 0o777, 0o640);

    let (f, _) = c.walk(root, &[]).unwrap();
    let (q, _) = c.create(f, "newdir", DMDIR | 0o755, OREAD).unwrap();
    assert!(q.is_dir());
    assert!(t.path().join("newdir").is_dir());
    c.clunk(f).unwrap();

    let (f, _) = c.walk_path(root, "sub/new.bin").unwrap();
    c.remove(f).unwrap();
    assert!(!t.path().join("sub/new.bin").exists());
    let (f, _) = c.walk(root, &["newdir"]).unwrap();
    c.remove(f).unwrap();
    assert!(!t.path().join("newdir").exists());
}

#[test]
fn bad_requests_get_plan9_errors() {
    let t = TempDir::new("errors");
    fs::create_dir(t.path().join("sub")).unwrap();
    fs::write(t.path().join("sub/f"), b"x").unwrap();
    fs::write(t.path().join("file"), b"x").unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let (mut c, root) = client(&srv, 8192);

    assert_eq!(ename(c.walk(root, &["nope"])), "file does not exist");
    // A walk that fails after its first element returns a short Rwalk.
    assert!(matches!(
        c.walk(root, &["sub", "nope"]),
        Err(ninep::client::Error::WalkStopped { name }) if name == "nope"
    ));
    assert!(matches!(
        c.walk(root, &["file", "x"]),
        Err(ninep::client::Error::WalkStopped { name }) if name == "x"
    ));
    let (file, _) = c.walk(root, &["file"]).unwrap();
    assert_eq!(ename(c.walk(file, &["x"])), "not a directory");
    assert_eq!(ename(c.walk(root, &["a/b"])), "invalid file name");

    let (d, _) = c.walk(root, &["sub"]).unwrap();
    assert_eq!(ename(c.open(d, OWRITE)), "is a directory");
    assert_eq!(ename(c.create(d, "f", 0o644, OWRITE)), "file exists");
    assert_eq!(ename(c.create(d, "..", 0o644, OWRITE)), "invalid file name");
    assert_eq!(ename(c.read(d, 0, 10)), "file not open");
    let (d2, _) = c.walk(d, &[]).unwrap();
    assert_eq!(ename(c.remove(d2)), "directory not empty");
    c.open(d, OREAD).unwrap();
    assert_eq!(ename(c.walk(d, &["f"])), "cannot walk an open fid");
    assert_eq!(ename(c.open(d, OREAD)), "fid already open");
    assert_eq!(ename(c.read(d, 5, 100)), "bad offset in directory read");

    let (f, _) = c.walk(root, &["file"]).unwrap();
    assert_eq!(ename(c.create(f, "x", 0o644, OWRITE)), "not a directory");
    c.open(f, OREAD).unwrap();
    assert_eq!(ename(c.write(f, 0, b"y")), "file not open for writing");
    assert_eq!(ename(c.stat(999)), "unknown fid");
    assert_eq!(ename(c.clunk(999)), "unknown fid");
    let (r2, _) = c.walk(root, &[]).unwrap();
    assert_eq!(
        ename(c.remove(r2)),
        "permission denied: the root cannot be changed"
    );
    // Attaching to a fid in use is refused; the session goes on.
    let err = c.rpc(ninep::Msg::Tattach {
        fid: root,
        afid: ninep::NOFID,
        uname: "u".into(),
        aname: "".into(),
        n_uname: ninep::NONUNAME,
    });
    assert_eq!(ename(err), "fid already in use");
    let err = c.rpc(ninep::Msg::Tauth {
        afid: 77,
        uname: "u".into(),
        aname: "".into(),
        n_uname: ninep::NONUNAME,
    });
    assert_eq!(ename(err), "authentication not required");
    assert_eq!(c.stat(root).unwrap().name, "/");
}

#[test]
fn dotdot_and_symlinks_stay_inside_the_root() {
    let outside = TempDir::new("outside");
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    let t = TempDir::new("confine");
    let root_path = t.path();
    fs::create_dir_all(root_path.join("etc")).unwrap();
    fs::create_dir_all(root_path.join("usr/share")).unwrap();
    fs::write(root_path.join("usr/share/zone"), b"inside").unwrap();
    // Absolute links resolve against the served root, as in a chroot.
    symlink("/usr/share/zone", root_path.join("etc/localtime")).unwrap();
    // A link to the real outside directory: inside the root that path does not exist.
    symlink(outside.path(), root_path.join("escape")).unwrap();
    // Relative links that climb too far stop at the root.
    symlink("../../../../..", root_path.join("etc/up")).unwrap();
    symlink("loop2", root_path.join("loop1")).unwrap();
    symlink("loop1", root_path.join("loop2")).unwrap();
    symlink("missing", root_path.join("dangling")).unwrap();

    let srv = server(root_path, ninepd::Options::default());
    let (mut c, root) = client(&srv, 8192);
    let root_qid = c.stat(root).unwrap().qid;

    let (f, q) = c.walk(root, &["..", "..", ".."]).unwrap();
    assert_eq!(q, Some(root_qid));
    c.clunk(f).unwrap();

    let (f, _) = c.walk_path(root, "etc/localtime").unwrap();
    c.open(f, OREAD).unwrap();
    assert_eq!(c.read_all(f).unwrap(), b"inside");
    assert_eq!(c.stat(f).unwrap().name, "localtime");
    c.clunk(f).unwrap();

    assert_eq!(ename(c.walk(root, &["escape"])), "file does not exist");
    assert_eq!(
        ename(c.walk_path(root, &format!("escape/{}", "secret"))),
        "file does not exist"
    );
    let (f, q) = c.walk_path(root, "etc/up").unwrap();
    assert_eq!(q, Some(root_qid));
    let (g, _) = c.walk(f, &["usr", "share", "zone"]).unwrap();
    c.open(g, OREAD).unwrap();
    assert_eq!(c.read_all(g).unwrap(), b"inside");
    assert_eq!(
        ename(c.walk(root, &["loop1"])),
        "too many levels of symbolic links"
    );
    assert_eq!(ename(c.walk(root, &["dangling"])), "file does not exist");

    // Links that cannot be followed are still listed, as themselves.
    let (d, _) = c.walk(root, &[]).unwrap();
    c.open(d, OREAD).unwrap();
    let mut names: Vec<String> = c
        .read_dir(d)
        .unwrap()
        .into_iter()
        .map(|e| e.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dangling", "escape", "etc", "loop1", "loop2", "usr"]
    );
}

#[test]
fn wstat_renames_truncates_chmods_and_syncs() {
    let t = TempDir::new("wstat");
    fs::write(t.path().join("a"), b"0123456789").unwrap();
    fs::write(t.path().join("other"), b"").unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let (mut c, root) = client(&srv, 8192);
    let (f, _) = c.walk(root, &["a"]).unwrap();

    let mut d = Dir::dont_touch();
    d.length = 4;
    d.mode = 0o600;
    d.mtime = 1_000_000_000;
    c.wstat(f, &d).unwrap();
    let meta = fs::metadata(t.path().join("a")).unwrap();
    assert_eq!(meta.len(), 4);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.mtime(), 1_000_000_000);

    let mut d = Dir::dont_touch();
    d.name = "b".into();
    c.wstat(f, &d).unwrap();
    assert!(t.path().join("b").exists() && !t.path().join("a").exists());
    assert_eq!(c.stat(f).unwrap().name, "b");

    // A wstat that changes nothing is a sync request.
    c.wstat(f, &Dir::dont_touch()).unwrap();

    let mut d = Dir::dont_touch();
    d.name = "other".into();
    assert_eq!(ename(c.wstat(f, &d)), "file exists");
    let mut d = Dir::dont_touch();
    d.mode = DMDIR | 0o755;
    assert_eq!(
        ename(c.wstat(f, &d)),
        "permission denied: the directory bit cannot be changed"
    );
    let mut d = Dir::dont_touch();
    d.uid = "nobody-else".into();
    assert_eq!(
        ename(c.wstat(f, &d)),
        "permission denied: the owner cannot be changed"
    );
    // Nothing of a refused wstat is applied.
    let mut d = Dir::dont_touch();
    d.length = 0;
    d.name = "x/y".into();
    assert_eq!(ename(c.wstat(f, &d)), "invalid file name");
    assert_eq!(fs::metadata(t.path().join("b")).unwrap().len(), 4);
}

#[test]
fn open_modes_truncate_and_remove_on_close() {
    let t = TempDir::new("modes");
    fs::write(t.path().join("t"), b"long contents").unwrap();
    fs::write(t.path().join("tmp"), b"x").unwrap();
    let srv = server(t.path(), ninepd::Options::default());
    let (mut c, root) = client(&srv, 8192);
    let (f, _) = c.walk(root, &["t"]).unwrap();
    c.open(f, OWRITE | OTRUNC).unwrap();
    assert_eq!(ename(c.read(f, 0, 10)), "file not open for reading");
    c.clunk(f).unwrap();
    assert_eq!(fs::read(t.path().join("t")).unwrap(), b"");

    let (f, _) = c.walk(root, &["tmp"]).unwrap();
    c.open(f, OREAD | ORCLOSE).unwrap();
    assert!(t.path().join("tmp").exists());
    c.clunk(f).unwrap();
    assert!(!t.path().join("tmp").exists());
}

#[test]
fn readonly_refuses_every_change() {
    let t = TempDir::new("ro");
    fs::write(t.path().join("f"), b"data").unwrap();
    let srv = server(
        t.path(),
        ninepd::Options {
            readonly: true,
            ..Default::default()
        },
    );
    let (mut c, root) = client(&srv, 8192);
    let (f, _) = c.walk(root, &["f"]).unwrap();
    assert_eq!(ename(c.open(f, OWRITE)), "read-only file system");
    assert_eq!(ename(c.open(f, OREAD | OTRUNC)), "read-only file system");
    let mut d = Dir::dont_touch();
    d.length = 0;
    assert_eq!(ename(c.wstat(f, &d)), "read-only file system");
    c.open(f, OREAD).unwrap();
    assert_eq!(c.read_all(f).unwrap(), b"data");
    let (d, _) = c.walk(root, &[]).unwrap();
    assert_eq!(
        ename(c.create(d, "new", 0o644, OWRITE)),
        "read-only file system"
    );
    let (g, _) = c.walk(root, &["f"]).unwrap();
    assert_eq!(ename(c.remove(g)), "read-only file system");
    assert_eq!(fs::read(t.path().join("f")).unwrap(), b"data");
}

#[test]
fn large_directories_are_read_in_whole_entries() {
    let t = TempDir::new("bigdir");
    for i in 0..500 {
        fs::write(t.path().join(format!("file-with-a-long-name-{i:04}")), b"").unwrap();
    }
    let srv = server(t.path(), ninepd::Options::default());
    // A small msize forces many reads, each ending on an entry boundary.
    let (mut c, root) = client(&srv, 512);
    let (d, _) = c.walk(root, &[]).unwrap();
    c.open(d, OREAD).unwrap();
    let entries = c.read_dir(d).unwrap();
    assert_eq!(entries.len(), 500);
    // Reading again from 0 starts a fresh listing.
    let again = c.read(d, 0, 400).unwrap();
    assert!(!again.is_empty() && again.len() <= 400);
}
