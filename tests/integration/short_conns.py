#!/usr/bin/env python3
"""Short connections for the bounded-volume test.

  short_conns.py serve ADDR:PORT        accept forever; read to EOF, echo, close
  short_conns.py dial ADDR:PORT N       N connections, one after another
  short_conns.py hold ADDR:PORT         one connection, held until killed
"""

import socket
import sys
import threading
import time


def serve(addr):
    host, port = addr.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(64)

    def handle(conn):
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(data)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def dial(addr, count):
    host, port = addr.rsplit(":", 1)
    for i in range(count):
        with socket.create_connection((host, int(port))) as s:
            payload = f"connection {i}\n".encode() * 10
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            if got != payload:
                sys.exit(f"connection {i}: echo mismatch")


def hold(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(b"held\n")
    print("connected", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    {"serve": lambda: serve(sys.argv[2]), "dial": lambda: dial(sys.argv[2], int(sys.argv[3])),
     "hold": lambda: hold(sys.argv[2])}[sys.argv[1]]()
