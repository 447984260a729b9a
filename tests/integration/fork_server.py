#!/usr/bin/env python3
"""A stock forking server (socketserver.ForkingTCPServer: accept, fork, the
parent closes its copy at once, the child serves): each connection gets FILE,
written at --rate bytes/s, then the child shuts down and closes.

  fork_server.py --listen ADDR:PORT --input FILE --rate BYTES_PER_S
"""

import argparse
import socketserver
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--rate", type=float, required=True)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            chunk = 64 * 1024
            start = time.monotonic()
            sent = 0
            with open(args.input, "rb") as f:
                while data := f.read(chunk):
                    self.request.sendall(data)
                    sent += len(data)
                    ahead = sent / args.rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)

    socketserver.ForkingTCPServer.allow_reuse_address = True
    with socketserver.ForkingTCPServer((host, int(port)), Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
