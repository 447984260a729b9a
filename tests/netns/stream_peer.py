#!/usr/bin/env python3
"""One end of a TCP byte stream that reports exactly how it ended.

Stock nc exits 0 on a reset connection; tests that must tell "an error" from
"the end of the stream" use this instead. Plain blocking socket calls (libc
connect/accept/send/recv), so the diskwire shim sees an ordinary program.

  stream_peer.py send --connect ADDR:PORT --input FILE [--rate BYTES_PER_S]
  stream_peer.py recv --listen ADDR:PORT --output FILE

At the end it prints one JSON line to stdout:
  {"role": ..., "bytes": N, "result": "complete" | "error", "errno": "ECONNRESET"}
Exit status: 0 complete, 4 socket error, 2 bad arguments.
"""

import argparse
import errno
import json
import socket
import sys
import time

CHUNK = 64 * 1024


def endpoint(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {text!r}")
    return host, int(port)


def report(role, count, error=None):
    result = {"role": role, "bytes": count,
              "result": "error" if error else "complete"}
    if error:
        result["errno"] = errno.errorcode.get(error.errno, str(error.errno))
        result["message"] = str(error)
    print(json.dumps(result), flush=True)
    return 4 if error else 0


def send(args):
    sent = 0
    try:
        sock = socket.create_connection(args.connect)
        start = time.monotonic()
        with open(args.input, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                if args.rate:
                    delay = start + sent / args.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # Rate limit, not synchronisation.
                sock.sendall(chunk)
                sent += len(chunk)
        sock.shutdown(socket.SHUT_WR)
        # The stream is complete when the peer has read it all and closed.
        while sock.recv(CHUNK):
            pass
        sock.close()
    except OSError as e:
        return report("send", sent, e)
    return report("send", sent)


def recv(args):
    got = 0
    try:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(args.listen)
        server.listen(1)
        conn, _ = server.accept()
        server.close()
        with open(args.output, "wb") as out:
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break
                out.write(data)
                out.flush()
                got += len(data)
        conn.close()
    except OSError as e:
        return report("recv", got, e)
    return report("recv", got)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("send")
    s.add_argument("--connect", type=endpoint, required=True)
    s.add_argument("--input", required=True)
    s.add_argument("--rate", type=float, default=0)
    r = sub.add_parser("recv")
    r.add_argument("--listen", type=endpoint, required=True)
    r.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    return send(args) if args.role == "send" else recv(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
