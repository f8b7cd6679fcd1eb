"""Runs aio9p's in-memory example server (Simple9P2000) on a TCP port of 127.0.0.1.

Prints the port on stdout once listening, then serves until killed. Note the example's quirks,
which the Rust test works with: it forgets its tree on every Tattach, and its Rerror carries a
9P2000.u errno after the string even on a 9P2000 connection.
"""

import asyncio
import sys

from aio9p.example.simple import Simple9P2000
from aio9p.protocol import Py9PServer


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Py9PServer(Simple9P2000(65535)), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
