#!/usr/bin/python3
"""Plays systemd's side of sd_notify(3) for tests: binds a datagram
socket (a path, or @name in the abstract namespace) and appends every
datagram received to OUT as one line, its newlines written as '|'.
Writes OUT.ready once bound. Stops on SIGTERM.

Usage: notify_reader.py SOCKET OUT
"""
import os
import signal
import socket
import sys


def main():
    addr, out = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    open(out + ".ready", "w").close()
    with open(out, "a", buffering=1) as f:
        while True:
            data = s.recv(4096)
            f.write(data.decode("utf-8", "replace").replace("\n", "|") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
