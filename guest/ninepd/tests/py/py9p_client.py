"""Drives ninepd with python-9p's client (plan9port's codec, multiplexed tags).

Usage: py9p_client.py PORT MSIZE. Prints one "key=value" line per check for the Rust test.
"""

import sys
import threading
import zlib

import py9p
from py9p import Client, Dir, Qid, RemoteError

port, msize = int(sys.argv[1]), int(sys.argv[2])
c = Client.connect_tcp("127.0.0.1", port, msize=msize, timeout=30)
r = c.negotiate()
print(f"msize={r.msize}")
print(f"version={r.version}")
c.attach(0, uname="glenda")


def read_all(fid):
    out, off = b"", 0
    while True:
        data = c.read(fid, offset=off)
        if not data:
            return out
        out += data
        off += len(data)


def listing(fid):
    data = read_all(fid)
    names = []
    while data:
        n = int.from_bytes(data[:2], "little") + 2
        names.append(py9p.decode_dir(data[:n]).name)
        data = data[n:]
    return sorted(names)


# List the root.
c.walk(0, 1, [])
c.open(1, py9p.OREAD)
print("root=" + ",".join(listing(1)))
c.clunk(1)

# Read a file.
c.walk(0, 2, "hello.txt")
c.open(2, py9p.OREAD)
print("hello=" + read_all(2).decode())
st = c.stat(2)
print(f"hello.length={st.length}")
c.clunk(2)

# Create, write, read back.
c.walk(0, 3, [])
c.create(3, "from-python.txt", 0o644, py9p.ORDWR)
payload = b"written by python-9p\n" * 1000
off = 0
while off < len(payload):
    off += c.write(3, payload[off : off + c.msize - py9p.IOHDRSZ], offset=off)
print(f"readback={read_all(3) == payload}")
c.clunk(3)

# A directory, then remove it.
c.walk(0, 4, [])
qid, _ = c.create(4, "pydir", py9p.DMDIR | 0o755, py9p.OREAD)
print(f"pydir.isdir={bool(qid.type & py9p.QTDIR)}")
c.remove(4)

# Rename with wstat. python-9p cannot send the "don't touch" length ~0 (it keeps lengths in
# plan9port's signed range), so it restates the current length.
c.walk(0, 5, "from-python.txt")
cur = c.stat(5)
c.wstat(
    5,
    Dir(
        type=0xFFFF,
        dev=0xFFFFFFFF,
        qid=Qid(0xFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF),
        mode=0xFFFFFFFF,
        atime=0xFFFFFFFF,
        mtime=0xFFFFFFFF,
        length=cur.length,
        name="renamed.txt",
    ),
)
print(f"renamed={c.stat(5).name}")
c.clunk(5)

# Errors come back as Plan 9 strings.
try:
    c.walk(0, 6, "no-such-file")
    print("missing=found")
except RemoteError as e:
    print(f"missing={e}")

# Many requests in flight on one connection: threads share the multiplexed client.
c.walk(0, 7, "big")
c.open(7, py9p.OREAD)
chunk = c.msize - py9p.IOHDRSZ
size = c.stat(7).length
parts = {}


def reader(i, n):
    for k in range(i, (size + chunk - 1) // chunk, n):
        parts[k] = c.read(7, count=chunk, offset=k * chunk)


threads = [threading.Thread(target=reader, args=(i, 8)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
data = b"".join(parts[k] for k in sorted(parts))
print(f"big.crc={zlib.crc32(data)}")
print(f"big.len={len(data)}")
c.close()
