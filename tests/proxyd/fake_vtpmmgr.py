#!/usr/bin/python3
"""A fake of Xen's vtpmmgr management interface behind a pty, for tests.

It answers the way stubdom/vtpmmgr/vtpm_cmd_handler.c does, byte for byte:

- big-endian header: tag u16, paramSize u32, ordinal u32 (request);
  tag u16, size u32, status u32 (response)
- management requests (tag 0x01C2) pass only when the connection holds the
  admin flag; otherwise tag + 3 (0x01C5) with status 1. Unknown ordinals:
  tag + 3 with status 10; unknown tags: tag + 3 with status 30.
- exact-length checks (status 3, answered with tag 0x01C4), bad group index
  (2), group not unsealed (1), VTPM_DEL of an unknown or open vTPM (9)
- VTPM_NEW makes a random version-4 UUID (or takes the caller's in the
  30-byte form) and never checks for duplicates
- VTPM_LIST answers at most --page UUIDs (254: what fits the Xen TPM
  ring's page), after the total
- GROUP_NEW and GROUP_DEL are counted as "forbidden" (vtpm-proxyd must
  never send them) and fail with status 9.

Over a pty there are no message boundaries, so paramSize frames requests
(vtpm-proxyd always sends paramSize equal to the message length; the real
dispatcher uses the transport's length). A "connection" is one open of the
pty's slave by the client: the fake notices the client closing it (POLLHUP
on the master), drops answers still pending then (as the TPM driver does
on close), and takes the admin switch anew for the next connection.

Control socket (one line per request, one line of reply):
  admin on|off          admin flag for connections opened from now on
  slow MS [N]           delay the next N answers (0 = all) by MS ms
  fail STATUS [N]       the next N management commands fail with STATUS
  garbage KIND [N]      the next N answers are garbage: random, tag, size,
                        short (announces more bytes than it sends)
  silent [N]            the next N commands get no answer at all
  target ORDINAL|any    slow, fail, garbage and silent hit only this
                        ordinal (VTPM_NEW, ...); default any
  open UUID | close UUID  a vTPM whose stub domain is connected (DEL: 9)
  add UUID [GROUP]      a vTPM made behind the client's back
  drop UUID             a vTPM lost behind the client's back
  addgroup | delgroup IDX | seal IDX on|off
  restart               vtpmmgr restarts (--tpm2: it keeps nothing)
  list                  JSON: groups, vTPMs, counters
  ok                    (no-op)
Effects of a command happen before its answer is delayed, garbled or
dropped, as they would in vtpmmgr.

Usage:
  fake_vtpmmgr.py serve --link PATH --ctl SOCK [--groups N] [--page N]
                        [--no-admin] [--tpm2] [--sealed IDX]
  fake_vtpmmgr.py ctl SOCK COMMAND...
"""

import argparse
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
import tty
import uuid as uuidlib

TAG_REQ = 0x01C1
TAG_REQ2 = 0x01C2
TAG_RSP = 0x01C4
TAG_TPM_RQU = 0x00C1

ORD = {
    0x02000101: "GROUP_LIST",
    0x02000102: "GROUP_NEW",
    0x02000103: "GROUP_DEL",
    0x02000104: "GROUP_ACTIVATE",
    0x02000105: "GROUP_REGISTER",
    0x02000106: "GROUP_UPDATE",
    0x02000107: "GROUP_SHOW",
    0x02000201: "VTPM_LIST",
    0x02000204: "VTPM_NEW",
    0x02000205: "VTPM_DEL",
}

ST_AUTHFAIL, ST_BADINDEX, ST_BAD_PARAMETER, ST_FAIL = 1, 2, 3, 9
ST_BAD_ORDINAL, ST_BADTAG = 10, 30
MAX_REQ = 4096  # one page of the Xen TPM ring


def log(msg):
    sys.stderr.write("fake-vtpmmgr: %s\n" % msg)
    sys.stderr.flush()


def hdr(tag, size, status):
    return struct.pack(">HII", tag, size, status)


def rsp(status=0, body=b""):
    if status:
        body = b""  # CMD_END drops the body of a failed command
    return hdr(TAG_RSP, 10 + len(body), status) + body


def new_uuid():
    b = bytearray(os.urandom(16))
    b[6] = 0x40 | (b[6] & 0x0F)  # gen_random_uuid()
    b[8] = 0x80 | (b[8] & 0x3F)
    return bytes(b)


class Group:
    def __init__(self):
        self.uuid = new_uuid()
        self.key = os.urandom(256)
        self.seq = random.randint(0, 1000)
        self.seals = [os.urandom(20) for _ in range(random.randint(0, 3))]
        self.kerns = [os.urandom(20) for _ in range(random.randint(0, 3))]
        self.sealed = False  # True: not unsealed (g_mgr->groups[i].v == NULL)
        self.vtpms = []  # a list: vtpmmgr never checks for duplicates

    def show(self):
        out = self.uuid + self.key + struct.pack(">Q", self.seq)
        out += struct.pack(">I", len(self.seals)) + b"".join(self.seals)
        out += struct.pack(">I", len(self.kerns)) + b"".join(self.kerns)
        return out


class Fake:
    def __init__(self, args):
        self.args = args
        self.groups = [Group() for _ in range(args.groups)]
        for i in args.sealed or []:
            self.groups[i].sealed = True
        self.admin = not args.no_admin
        self.open = set()
        self.slow_ms, self.slow_n = 0, 0
        self.fail_status, self.fail_n = 0, 0
        self.garbage_kind, self.garbage_n = None, 0
        self.silent_n = 0
        self.target = None  # the faults hit only this ordinal's name
        self.forbidden = 0
        self.commands = {}
        self.bad_requests = 0
        self.connections = 0
        self.connected = False
        self.conn_admin = False
        self.buf = b""

    # ---- the protocol ----------------------------------------------

    def find(self, u):
        for g in self.groups:
            if u in g.vtpms:
                return g
        return None

    def unpack_group(self, req, need):
        """UNPACK_GROUP: a status, or the group."""
        if len(req) < 14:
            return ST_BAD_PARAMETER, None
        idx = struct.unpack(">I", req[10:14])[0]
        if idx >= len(self.groups):
            return ST_BADINDEX, None
        g = self.groups[idx]
        if g.sealed:
            return ST_AUTHFAIL, None
        return 0, g

    def manage(self, ordinal, req):
        name = ORD.get(ordinal)
        n = len(req)
        if name == "GROUP_LIST":
            if n != 10:
                return rsp(ST_BAD_PARAMETER)
            return rsp(0, struct.pack(">I", len(self.groups)))
        if name == "GROUP_SHOW":
            st, g = self.unpack_group(req, 14)
            if st:
                return rsp(st)
            if n != 14:
                return rsp(ST_BAD_PARAMETER)
            return rsp(0, g.show())
        if name == "VTPM_LIST":
            st, g = self.unpack_group(req, 14)
            if st:
                return rsp(st)
            if n < 18:
                return rsp(ST_BAD_PARAMETER)
            offset = struct.unpack(">I", req[14:18])[0]  # no UNPACK_DONE
            body = struct.pack(">I", len(g.vtpms))
            if offset <= len(g.vtpms):
                body += b"".join(g.vtpms[offset:offset + self.args.page])
            return rsp(0, body)
        if name == "VTPM_NEW":
            st, g = self.unpack_group(req, 14)
            if st:
                return rsp(st)
            if n == 30:
                u = req[14:30]
            elif n == 14:
                u = new_uuid()
            else:
                return rsp(ST_BAD_PARAMETER)
            g.vtpms.append(u)
            log("created vtpm=%s group=%d form=%d" %
                (uuidlib.UUID(bytes=u), self.groups.index(g), n))
            return rsp(0, u)
        if name == "VTPM_DEL":
            if n != 26:
                return rsp(ST_BAD_PARAMETER)
            u = req[10:26]
            g = self.find(u)
            if g is None or u in self.open:
                return rsp(ST_FAIL)
            g.vtpms.remove(u)
            log("deleted vtpm=%s" % uuidlib.UUID(bytes=u))
            return rsp(0)
        if name in ("GROUP_NEW", "GROUP_DEL"):
            self.forbidden += 1
            log("FORBIDDEN %s received" % name)
            return rsp(ST_FAIL)
        if name is not None:
            return rsp(ST_FAIL)  # real commands this fake does not model
        return hdr(TAG_REQ2 + 3, 10, ST_BAD_ORDINAL)

    def handle(self, req):
        tag, _, ordinal = struct.unpack(">HII", req[:10])
        name = ORD.get(ordinal, "0x%08x" % ordinal)
        self.commands[name] = self.commands.get(name, 0) + 1
        if tag == TAG_REQ2:
            if not self.conn_admin:
                out = hdr(tag + 3, 10, ST_AUTHFAIL)
            elif self.fail_n and ordinal in ORD and self.hit(ordinal):
                self.fail_n -= 1
                out = rsp(self.fail_status)
            else:
                out = self.manage(ordinal, req)
        elif tag == TAG_REQ:
            out = hdr(tag + 3, 10, ST_BAD_ORDINAL)  # vTPM commands: not modelled
        else:
            out = hdr((tag + 3) & 0xFFFF, 10, ST_BADTAG)
        status = struct.unpack(">I", out[6:10])[0]
        log("conn=%d cmd=%s len=%d status=%d" % (self.connections, name, len(req), status))
        return out

    def hit(self, ordinal):
        return self.target is None or ORD.get(ordinal) == self.target

    def garble(self, out):
        kind, self.garbage_n = self.garbage_kind, self.garbage_n - 1
        if kind == "tag":
            return struct.pack(">H", 0x00C4) + out[2:]
        if kind == "size":
            return out[:2] + struct.pack(">I", 9000) + out[6:]
        if kind == "short":
            return out[:2] + struct.pack(">I", len(out) + 16) + out[6:]
        return os.urandom(random.randint(1, 64))

    # ---- the pty ---------------------------------------------------

    def on_connect(self):
        self.connected = True
        self.connections += 1
        self.conn_admin = self.admin
        self.buf = b""

    def on_disconnect(self):
        if self.connected:
            self.connected = False
            self.buf = b""

    def hup(self, master):
        p = select.poll()
        p.register(master, select.POLLIN)
        ev = p.poll(0)
        return bool(ev) and (ev[0][1] & select.POLLHUP) and not (ev[0][1] & select.POLLIN)

    def answer(self, master, out, ordinal=None):
        if ordinal is not None and not self.hit(ordinal):
            self.write(master, out)
            return
        if self.silent_n:
            self.silent_n -= 1
            log("silent: no answer")
            return
        if self.slow_ms:
            if self.slow_n:
                self.slow_n -= 1
                if self.slow_n == 0:
                    delay, self.slow_ms = self.slow_ms, 0
                else:
                    delay = self.slow_ms
            else:
                delay = self.slow_ms
            end = time.monotonic() + delay / 1000.0
            while time.monotonic() < end:
                time.sleep(0.005)
                if self.hup(master):
                    log("client closed the device; answer dropped")
                    self.on_disconnect()
                    return
        if self.garbage_n:
            out = self.garble(out)
        self.write(master, out)

    def write(self, master, out):
        try:
            os.write(master, out)
        except OSError as e:
            log("write failed: %s" % e)

    def on_data(self, master, data):
        self.buf += data
        while len(self.buf) >= 10:
            size = struct.unpack(">I", self.buf[2:6])[0]
            if size < 10 or size > MAX_REQ:
                # Cannot be framed: answer like a too-short request and
                # drop what is buffered.
                self.bad_requests += 1
                log("unframeable request size=%d" % size)
                self.buf = b""
                self.answer(master, hdr(TAG_TPM_RQU + 3, 10, ST_BAD_PARAMETER))
                return
            if len(self.buf) < size:
                return
            req, self.buf = self.buf[:size], self.buf[size:]
            ordinal = struct.unpack(">I", req[6:10])[0]
            self.answer(master, self.handle(req), ordinal)

    # ---- control -----------------------------------------------------

    def control(self, line):
        w = line.split()
        if not w:
            return "error empty command"
        c, a = w[0], w[1:]
        if c == "ok":
            return "ok"
        if c == "admin":
            self.admin = a[0] == "on"
            return "ok"
        if c == "slow":
            self.slow_ms = int(a[0])
            self.slow_n = int(a[1]) if len(a) > 1 else 0
            return "ok"
        if c == "fail":
            self.fail_status = int(a[0])
            self.fail_n = int(a[1]) if len(a) > 1 else 1
            return "ok"
        if c == "garbage":
            self.garbage_kind = a[0]
            self.garbage_n = int(a[1]) if len(a) > 1 else 1
            return "ok"
        if c == "target":
            self.target = None if a[0] == "any" else a[0]
            return "ok"
        if c == "silent":
            self.silent_n = int(a[0]) if a else 1
            return "ok"
        if c in ("open", "close", "add", "drop"):
            u = uuidlib.UUID(a[0]).bytes
            if c == "open":
                self.open.add(u)
            elif c == "close":
                self.open.discard(u)
            elif c == "add":
                self.groups[int(a[1]) if len(a) > 1 else 0].vtpms.append(u)
            else:
                g = self.find(u)
                if g is None:
                    return "error no such vtpm"
                g.vtpms.remove(u)
            return "ok"
        if c == "addgroup":
            self.groups.append(Group())
            return "ok %d" % (len(self.groups) - 1)
        if c == "delgroup":
            del self.groups[int(a[0])]
            return "ok"
        if c == "seal":
            self.groups[int(a[0])].sealed = a[1] == "on"
            return "ok"
        if c == "restart":
            if self.args.tpm2:
                self.groups = [Group() for _ in range(self.args.groups)]
            self.open = set()
            return "ok"
        if c == "list":
            return json.dumps({
                "groups": [{"uuid": str(uuidlib.UUID(bytes=g.uuid)),
                            "sealed": g.sealed,
                            "vtpms": [str(uuidlib.UUID(bytes=u)) for u in g.vtpms]}
                           for g in self.groups],
                "forbidden": self.forbidden,
                "commands": self.commands,
                "connections": self.connections,
                "bad_requests": self.bad_requests,
            })
        return "error unknown command %s" % c


def serve(args):
    fake = Fake(args)
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    os.close(slave)  # the client's opens are the connections
    if os.path.lexists(args.link):
        os.unlink(args.link)
    os.symlink(name, args.link)
    if os.path.exists(args.ctl):
        os.unlink(args.ctl)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(args.ctl)
    ctl.listen(8)
    clients = {}

    def stop(*_):
        for p in (args.link, args.ctl):
            try:
                os.unlink(p)
            except OSError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("fake vtpmmgr ready pty=%s link=%s" % (name, args.link), flush=True)

    poller = select.poll()
    poller.register(master, select.POLLIN)
    poller.register(ctl, select.POLLIN)
    while True:
        events = poller.poll(1000)
        for fd, ev in events:
            if fd == master:
                if ev & select.POLLIN:
                    if not fake.connected:
                        fake.on_connect()
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if data:
                        fake.on_data(master, data)
                elif ev & select.POLLHUP:
                    fake.on_disconnect()
                    time.sleep(0.005)  # nobody has the slave open
            elif fd == ctl.fileno():
                c, _ = ctl.accept()
                clients[c.fileno()] = [c, b""]
                poller.register(c, select.POLLIN)
            elif fd in clients:
                c, buf = clients[fd]
                data = c.recv(4096)
                if not data:
                    poller.unregister(fd)
                    c.close()
                    del clients[fd]
                    continue
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        reply = fake.control(line.decode())
                    except (IndexError, ValueError) as e:
                        reply = "error %s" % e
                    log("control %r -> %s" % (line.decode(), reply[:80]))
                    c.sendall(reply.encode() + b"\n")
                clients[fd][1] = buf


def ctl(args):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(args.sock)
    s.sendall((" ".join(args.command) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        data = s.recv(65536)
        if not data:
            break
        buf += data
    reply = buf.decode().strip()
    print(reply)
    return 1 if reply.startswith("error") else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--link", required=True, help="symlink to the pty's slave")
    s.add_argument("--ctl", required=True, help="control socket path")
    s.add_argument("--groups", type=int, default=1)
    s.add_argument("--page", type=int, default=254)
    s.add_argument("--no-admin", action="store_true")
    s.add_argument("--tpm2", action="store_true")
    s.add_argument("--sealed", type=int, action="append")
    c = sub.add_parser("ctl")
    c.add_argument("sock")
    c.add_argument("command", nargs="+")
    args = ap.parse_args()
    if args.mode == "serve":
        serve(args)
        return 0
    return ctl(args)


if __name__ == "__main__":
    sys.exit(main())
