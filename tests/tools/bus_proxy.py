#!/usr/bin/python3
"""A TCP proxy between a client and the broker that a test can break.

  bus_proxy.py --listen-port-file F --target 127.0.0.1:PORT --control FILE

Writes the port it listens on (loopback) to F. Every 50 ms it reads FILE
(if present) and removes it; commands, one per line:

  cut BYTES   forward BYTES more bytes from the broker, then drop every
              connection (both sockets closed): a cut in the middle of a
              frame when a large message is on its way
  freeze      stop forwarding in both directions, sockets left open (a
              broker that vanished without a FIN: only heartbeats notice)
  thaw        forward again
  close       drop every connection now, and refuse new ones
  open        accept connections again

Prints one line per event on stdout ("accepted", "cut", "dropped", ...).
"""
import argparse
import os
import selectors
import socket
import sys
import time


class Proxy:
    def __init__(self, target, control):
        self.target = target
        self.control = control
        self.sel = selectors.DefaultSelector()
        self.pairs = {}  # socket -> (peer socket, direction "up"|"down")
        self.frozen = False
        self.refusing = False
        self.cut_budget = None  # bytes broker->client left before a cut

    def log(self, msg):
        print(msg, flush=True)

    def listen(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.setblocking(False)
        self.sel.register(self.ls, selectors.EVENT_READ, "listen")
        return self.ls.getsockname()[1]

    def accept(self):
        c, _ = self.ls.accept()
        if self.refusing:
            c.close()
            self.log("refused")
            return
        try:
            u = socket.create_connection(self.target, timeout=5)
        except OSError as e:
            c.close()
            self.log("upstream failed %s" % e)
            return
        for s in (c, u):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pairs[c] = (u, "up")
        self.pairs[u] = (c, "down")
        if not self.frozen:
            self.sel.register(c, selectors.EVENT_READ, "data")
            self.sel.register(u, selectors.EVENT_READ, "data")
        self.log("accepted")

    def drop(self, s):
        peer, _ = self.pairs.pop(s, (None, None))
        for x in (s, peer):
            if x is None:
                continue
            self.pairs.pop(x, None)
            try:
                self.sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    def drop_all(self, why):
        for s in list(self.pairs):
            if s in self.pairs:
                self.drop(s)
        self.log(why)

    def forward(self, s):
        peer, direction = self.pairs[s]
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop(s)
            self.log("closed by %s" % ("client" if direction == "up" else "broker"))
            return
        if direction == "down" and self.cut_budget is not None:
            if len(data) >= self.cut_budget:
                self.send_all(peer, data[:self.cut_budget])
                self.cut_budget = None
                self.drop_all("cut")
                return
            self.cut_budget -= len(data)
        self.send_all(peer, data)

    def send_all(self, s, data):
        s.setblocking(True)
        try:
            s.sendall(data)
        except OSError:
            pass
        s.setblocking(False)

    def set_frozen(self, frozen):
        self.frozen = frozen
        for s in self.pairs:
            try:
                if frozen:
                    self.sel.unregister(s)
                else:
                    self.sel.register(s, selectors.EVENT_READ, "data")
            except (KeyError, ValueError):
                pass
        self.log("frozen" if frozen else "thawed")

    def commands(self):
        try:
            with open(self.control) as f:
                lines = f.read().splitlines()
            os.unlink(self.control)
        except FileNotFoundError:
            return
        for line in lines:
            w = line.split()
            if not w:
                continue
            if w[0] == "cut":
                self.cut_budget = int(w[1])
                self.log("cut armed %d" % self.cut_budget)
            elif w[0] == "freeze":
                self.set_frozen(True)
            elif w[0] == "thaw":
                self.set_frozen(False)
            elif w[0] == "close":
                self.refusing = True
                self.drop_all("dropped")
            elif w[0] == "open":
                self.refusing = False
                self.log("open")

    def run(self):
        while True:
            for key, _ in self.sel.select(0.05):
                if key.data == "listen":
                    self.accept()
                elif key.fileobj in self.pairs:
                    self.forward(key.fileobj)
            self.commands()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port-file", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--control", required=True)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    p = Proxy((host, int(port)), a.control)
    lp = p.listen()
    tmp = a.listen_port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % lp)
    os.rename(tmp, a.listen_port_file)
    try:
        p.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
