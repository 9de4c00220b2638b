#!/usr/bin/python3
"""Hostile clients for the hostile-client suite: loopback only, bounded in
count and time.

  flood   (--unix PATH | --tcp HOST:PORT) [--tls] --count N --hold S
          [--half] [--ready FILE] [--stop FILE]
      Opens up to N connections as fast as it can and holds them for S
      seconds (or until --stop FILE exists), then closes them all. With
      --half each sends half a request line and then nothing. Prints one
      JSON line: how many were opened, refused at once (a 503 or a close
      within the first read), failed to connect, and still open at the end.

  waiters --unix PATH --uuid U --count N [--hold S] [--ready FILE]
      Opens N long polls GET /v1/instances/U/wait?timeout=600, holds them
      S seconds, then closes every one without reading an answer. Prints
      JSON: opened, answered early (with their status codes).
"""
import argparse
import json
import os
import select
import socket
import ssl
import sys
import time

MAX_COUNT = 5000
MAX_HOLD = 120


def unix_connect(path):
    """A UNIX socket answers EAGAIN while its backlog is full: retry for
    up to 2 s, as a blocking client would wait."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    end = time.monotonic() + 2
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            if time.monotonic() >= end:
                s.close()
                raise
            time.sleep(0.005)


def connect(args, ctx):
    if args.unix:
        s = unix_connect(args.unix)
    else:
        host, port = args.tcp.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("loopback only")
        s = socket.create_connection((host, int(port)), timeout=2)
    if ctx is not None and not args.raw_tls:
        # A full handshake: the server must have accepted and answered.
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.setblocking(False)
    return s


def first_status(data):
    if data.startswith(b"HTTP/1."):
        try:
            return int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return -1
    return 0


def flood(args):
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
    socks, refused, failed, statuses = [], 0, 0, {}
    deadline = time.monotonic() + min(args.hold, MAX_HOLD)
    for _ in range(min(args.count, MAX_COUNT)):
        if time.monotonic() >= deadline:
            break
        try:
            s = connect(args, ctx)
            if args.half:
                s.send(b"GET /v1/hea")
            socks.append(s)
        except (OSError, ssl.SSLError):
            failed += 1
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("%d\n" % len(socks))
    # Hold; whatever the server closes or answers meanwhile is a refusal.
    live = set(socks)
    while live and time.monotonic() < deadline:
        if args.stop and os.path.exists(args.stop):
            break
        r, _, _ = select.select(list(live), [], [], 0.2)
        for s in r:
            try:
                data = s.recv(4096)
            except ssl.SSLWantReadError:
                continue
            except (OSError, ssl.SSLError):
                data = b""
            code = first_status(data)
            if code:
                statuses[str(code)] = statuses.get(str(code), 0) + 1
            refused += 1
            live.discard(s)
            s.close()
    still = len(live)
    for s in live:
        s.close()
    print(json.dumps({"opened": len(socks), "refused": refused, "failed": failed,
                      "statuses": statuses, "still_open": still}))


def waiters(args):
    socks, early = [], {}
    req = ("GET /v1/instances/%s/wait?timeout=600 HTTP/1.1\r\nHost: vtpmd\r\n\r\n"
           % args.uuid).encode()
    for _ in range(min(args.count, MAX_COUNT)):
        try:
            s = unix_connect(args.unix)
            s.setblocking(True)
            s.sendall(req)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            early["connect_error"] = early.get("connect_error", 0) + 1
    if args.ready:
        with open(args.ready, "w") as f:
            f.write("%d\n" % len(socks))
    deadline = time.monotonic() + min(args.hold, MAX_HOLD)
    live = set(socks)
    while live and time.monotonic() < deadline:
        r, _, _ = select.select(list(live), [], [], 0.2)
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            code = first_status(data)
            early[str(code)] = early.get(str(code), 0) + 1
            live.discard(s)
    for s in socks:
        s.close()
    print(json.dumps({"opened": len(socks), "answered": early}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flood")
    f.add_argument("--unix")
    f.add_argument("--tcp")
    f.add_argument("--tls", action="store_true")
    f.add_argument("--raw-tls", action="store_true",
                   help="with --tls: connect but never start the handshake")
    f.add_argument("--cert")
    f.add_argument("--key")
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--hold", type=float, required=True)
    f.add_argument("--half", action="store_true")
    f.add_argument("--ready")
    f.add_argument("--stop")
    w = sub.add_parser("waiters")
    w.add_argument("--unix", required=True)
    w.add_argument("--uuid", required=True)
    w.add_argument("--count", type=int, required=True)
    w.add_argument("--hold", type=float, default=2)
    w.add_argument("--ready")
    args = p.parse_args()
    if args.cmd == "flood":
        if bool(args.unix) == bool(args.tcp):
            p.error("one of --unix and --tcp")
        flood(args)
    else:
        waiters(args)


if __name__ == "__main__":
    sys.exit(main())
