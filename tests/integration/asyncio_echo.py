"""An asyncio echo server and client (non-blocking connect, epoll), for the
tests of connections opened while the network is down.

  asyncio_echo.py server --listen ADDR:PORT [--names FILE]
  asyncio_echo.py client --connect ADDR:PORT --conns N --size BYTES [--rate B/s]

The server echoes every connection until its end of file. With --names,
each side appends a line per connection to FILE: the server
"server local=ADDR:PORT peer=ADDR:PORT" from getsockname/getpeername of the
accepted socket, the client "client local=... peer=..." of its own. The client opens
N connections one after another and, on each, sends BYTES of deterministic
data and reads them back; it prints one JSON line: {"ok": N, "errors": [...],
"connect_ms": [...]} and exits 0 only when every echo was exact.
"""

import argparse
import asyncio
import json
import random
import sys
import time


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


NAMES = None


def note_names(role, writer):
    if NAMES:
        sock = writer.get_extra_info("socket")
        local, peer = sock.getsockname()[:2], sock.getpeername()[:2]
        with open(NAMES, "a") as f:
            f.write(f"{role} local={local[0]}:{local[1]} peer={peer[0]}:{peer[1]}\n")


async def echo(reader, writer):
    note_names("server", writer)
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def serve(addr):
    host, port = split(addr)
    server = await asyncio.start_server(echo, host, port)
    async with server:
        await server.serve_forever()


async def one(addr, size, seed, rate):
    host, port = split(addr)
    data = random.Random(seed).randbytes(size)
    started = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 60)
    connect_ms = (time.monotonic() - started) * 1000
    note_names("client", writer)
    got = bytearray()

    async def read_back():
        while len(got) < size:
            chunk = await reader.read(65536)
            if not chunk:
                break
            got.extend(chunk)

    reading = asyncio.create_task(read_back())
    chunk = 64 * 1024 if rate else size
    for offset in range(0, size, chunk):
        writer.write(data[offset:offset + chunk])
        await writer.drain()
        if rate:
            await asyncio.sleep(chunk / rate)
    await asyncio.wait_for(reading, 60)
    writer.close()
    await writer.wait_closed()
    if bytes(got) != data:
        raise RuntimeError(f"echo of {len(got)} bytes differs from the {size} sent")
    return connect_ms


async def client(addr, conns, size, rate):
    report = {"ok": 0, "errors": [], "connect_ms": []}
    for i in range(conns):
        try:
            report["connect_ms"].append(round(await one(addr, size, seed=i, rate=rate), 1))
            report["ok"] += 1
        except Exception as e:  # reported, and the exit status says it
            report["errors"].append(f"connection {i}: {type(e).__name__}: {e}")
    print(json.dumps(report), flush=True)
    return report["ok"] == conns


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--listen")
    parser.add_argument("--connect")
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--rate", type=int, default=0, help="bytes/s; 0: at once")
    parser.add_argument("--names")
    args = parser.parse_args()
    global NAMES
    NAMES = args.names
    if args.role == "server":
        asyncio.run(serve(args.listen))
        return 0
    return 0 if asyncio.run(client(args.connect, args.conns, args.size, args.rate)) else 1


if __name__ == "__main__":
    sys.exit(main())
