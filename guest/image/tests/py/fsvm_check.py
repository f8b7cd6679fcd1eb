"""Checks the filesystem VM's 9P server with python-9p (plan9port's codec), a client we did not write.

usage: fsvm_check.py PORT MSIZE EXPECT_JSON
EXPECT_JSON: {"top": [names of /], "files": {path: text}, "big": {"path": p, "size": n, "sha256": hex}}
Prints one line per check; exits 1 on the first mismatch.
"""

import hashlib
import json
import struct
import sys

import py9p
from py9p import Client

port, msize, expect = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
c = Client.connect_tcp("127.0.0.1", port, msize=msize, timeout=30)
c.negotiate()
c.attach(fid=0, uname="glenda")
chunk = c.msize - py9p.IOHDRSZ


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def read_all(fid):
    out, off = bytearray(), 0
    while True:
        data = c.read(fid, count=chunk, offset=off)
        if not data:
            return bytes(out)
        out += data
        off += len(data)


# The root directory: stat entries, each led by its 2-byte size.
c.walk(0, 1, "")
c.open(1, int(py9p.OREAD))
raw, names = read_all(1), []
while raw:
    (n,) = struct.unpack_from("<H", raw)
    names.append(py9p.decode_dir(raw[: 2 + n]).name)
    raw = raw[2 + n :]
c.clunk(1)
if sorted(names) != sorted(expect["top"]):
    fail(f"ls / gave {sorted(names)}")
print(f"ok ls / ({len(names)} entries)")

fid = 2
for path, text in expect["files"].items():
    c.walk(0, fid, path)
    c.open(fid, int(py9p.OREAD))
    got = read_all(fid).decode()
    c.clunk(fid)
    if got != text:
        fail(f"{path}: {got!r}")
    print(f"ok {path}")

big = expect["big"]
c.walk(0, fid, big["path"])
if c.stat(fid).length != big["size"]:
    fail(f"{big['path']}: stat length {c.stat(fid).length}")
c.open(fid, int(py9p.OREAD))
digest = hashlib.sha256(read_all(fid)).hexdigest()
c.clunk(fid)
if digest != big["sha256"]:
    fail(f"{big['path']}: sha256 {digest}")
print(f"ok {big['path']} sha256 at msize {c.msize}")
c.close()
