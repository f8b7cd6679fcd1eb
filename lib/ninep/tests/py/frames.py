"""Round-trips 9P frames through python-9p (plan9port's codec).

Reads one hex frame per line on stdin; for each, prints the hex of the frame py9p re-encodes
from what it decoded, or "ERR <reason>" if py9p refuses it.
"""

import sys

import py9p

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        msg = py9p.decode_message(bytes.fromhex(line))
        print(py9p.encode_message(msg).hex(), flush=True)
    except Exception as e:  # noqa: BLE001 - report any refusal to the Rust side
        print("ERR", type(e).__name__, str(e).replace("\n", " "), flush=True)
