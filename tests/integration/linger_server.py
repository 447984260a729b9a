#!/usr/bin/env python3
"""A server that closes a connection with bytes still in flight and lives on
(the HTTP/1.0 pattern): accepts one connection, writes FILE to it, optionally
shuts it down, closes it, writes "closed" to --closed-file, then sleeps until
killed.

  linger_server.py --listen ADDR:PORT --input FILE --closed-file PATH
                   [--shutdown] [--abort] [--exit-on PATH]

--abort closes with SO_LINGER 0 (a reset) instead of an orderly close.
--exit-on: exit (normally) once PATH exists instead of sleeping forever.
"""

import argparse
import os
import socket
import struct
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--closed-file", required=True)
    parser.add_argument("--shutdown", action="store_true")
    parser.add_argument("--abort", action="store_true")
    parser.add_argument("--exit-on")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(1)
    conn, _ = listener.accept()
    with open(args.input, "rb") as f:
        conn.sendall(f.read())
    if args.shutdown:
        conn.shutdown(socket.SHUT_WR)
    if args.abort:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    with open(args.closed_file, "w") as f:
        f.write("closed\n")
    while not (args.exit_on and os.path.exists(args.exit_on)):
        time.sleep(0.05)


if __name__ == "__main__":
    main()
