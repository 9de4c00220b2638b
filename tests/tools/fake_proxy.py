#!/usr/bin/python3
"""Fake Keylime-VM vTPM proxy for vtpmd's tests (stdlib only).

It speaks both proxy APIs of vtpmd's contract and counts the vTPM UUIDs it
has handed out and not had back ("live"), so a test can prove none leak:

  v1      POST   /v1/vtpms {"instance_uuid", "host"} -> 201 {"uuid"} for a new
                 instance, 200 with the same UUID for one it already has
          DELETE /v1/vtpms/<uuid> -> 204, or 404 when unknown
          GET    /v1/vtpms        -> {"vtpms": [{uuid, instance_uuid, host, created_at}]}
          GET    /v1/health       -> {"status": "ok"}
  legacy  GET    <any other path> -> 200 {"uuid"}: a fresh UUID every time and
                 no release, like the original proxy (so they stay live)

Usage:
  fake_proxy.py --port-file FILE [--control-port-file FILE]
                [--cert PEM --key PEM [--client-ca PEM]] [--faults JSON]
                [--log FILE]

  Binds 127.0.0.1:0 and writes the port to --port-file once listening
  (atomically: wait for the file). With --cert/--key it serves HTTPS;
  with --client-ca it requires a client certificate signed by that CA
  (mTLS). --control-port-file starts a second, plain-HTTP listener that
  serves only the /_fake endpoints and stays up during an outage.

Control endpoints (on both listeners; JSON in and out):
  GET  /_fake/state    {"live": N, "vtpms": [...], "counters": {...},
                        "faults": {...}, "outage": bool}
  POST /_fake/faults   merges switches into the current set:
         latency_ms              delay before every API answer
         fail_next, fail_status  the next N API requests get fail_status
                                 (default 503) with a JSON error body
         garbage_next            next N: 200/201 with a body that is not JSON
         bad_uuid_next           next N: 200/201 with {"uuid": <not a UUID>}
         huge_next               next N: 200/201 with a 1 MiB body
         drop_next               next N: connection closed, nothing done
         drop_after_commit_next  next N: the work is done (a vTPM created or
                                 released), then the connection is closed
                                 without an answer (a lost response)
         hang_next               next N: request read, never answered (until
                                 the client gives up)
         fault_methods           list like ["POST"]: the counted faults only
                                 hit these methods (default: all)
         uuid_case               "upper": answer UUIDs in upper case
  POST /_fake/reset    clears every switch (vTPMs and counters stay)
  POST /_fake/clear    forgets all vTPMs and zeroes the counters
  POST /_fake/outage   {"seconds": S}: close the API listener (connections
                       are refused) for S seconds, then listen again on
                       the same port; {"on": true} until {"on": false}

Counters: requests (API requests), post, delete, list, legacy_get,
created, released, idempotent (POSTs answered with an existing vTPM),
not_found, faults (fault answers served), tls_failures.

Example:
  python3 fake_proxy.py --port-file $T/port &
  port=$(cat $T/port)
  curl -s -X POST -d '{"fail_next": 2}' http://127.0.0.1:$port/_fake/faults
  curl -s http://127.0.0.1:$port/_fake/state
"""

import argparse
import json
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_BODY = 64 * 1024
COUNTED_FAULTS = ("fail_next", "garbage_next", "bad_uuid_next", "huge_next",
                  "drop_next", "drop_after_commit_next", "hang_next")
COUNTERS = ("requests", "post", "delete", "list", "legacy_get", "created",
            "released", "idempotent", "not_found", "faults", "tls_failures")


def default_faults():
    f = {k: 0 for k in COUNTED_FAULTS}
    f.update(latency_ms=0, fail_status=503, fault_methods=None, uuid_case="lower")
    return f


class State:
    def __init__(self, log):
        self.lock = threading.Lock()
        self.vtpms = {}        # uuid -> record
        self.by_instance = {}  # instance uuid -> uuid
        self.counters = {k: 0 for k in COUNTERS}
        self.faults = default_faults()
        self.outage = False
        self.log = log

    def count(self, name):
        with self.lock:
            self.counters[name] += 1

    def take_fault(self, method):
        """Returns the counted fault to apply to this request, if any."""
        with self.lock:
            methods = self.faults.get("fault_methods")
            if methods and method not in methods:
                return None
            for k in COUNTED_FAULTS:
                if self.faults.get(k, 0) > 0:
                    self.faults[k] -= 1
                    self.counters["faults"] += 1
                    return k
        return None

    def snapshot(self):
        with self.lock:
            return {
                "live": len(self.vtpms),
                "vtpms": sorted(self.vtpms.values(), key=lambda v: v["created_at"]),
                "counters": dict(self.counters),
                "faults": dict(self.faults),
                "outage": self.outage,
            }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-keylime-proxy/1"
    control_only = False  # set on the control listener's subclass

    # --- plumbing --------------------------------------------------------
    @property
    def st(self):
        return self.server.state

    def log_message(self, fmt, *args):
        self.st.log("%s %s" % (self.address_string(), fmt % args))

    def send_json(self, code, obj, close=False):
        body = json.dumps(obj).encode()
        self.send_raw(code, body, "application/json", close)

    def send_raw(self, code, body, ctype="application/json", close=False):
        self.send_response(code)
        if body or code not in (204, 304):
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(body)

    def read_body(self):
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n < 0 or n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n)

    def drop(self):
        """Closes the connection without a word."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def hang(self):
        """Never answers; returns when the client closes (or after 10 min)."""
        deadline = time.monotonic() + 600
        sock = self.connection
        while time.monotonic() < deadline:
            r, _, _ = select.select([sock], [], [], 0.2)
            if r:
                # Whatever the client sends now is not worth keeping.
                try:
                    if not sock.recv(4096):
                        break
                except ssl.SSLWantReadError:
                    continue
                except (OSError, ValueError):
                    break
        self.close_connection = True

    def fmt_uuid(self, u):
        return u.upper() if self.st.faults.get("uuid_case") == "upper" else u

    # --- dispatch --------------------------------------------------------
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    def dispatch(self, method):
        path = self.path.split("?", 1)[0]
        if path.startswith("/_fake/"):
            return self.control(method, path)
        if self.control_only:
            return self.send_json(404, {"error": "control listener: /_fake/ only"})
        self.st.count("requests")
        latency = self.st.faults.get("latency_ms", 0)
        if latency:
            time.sleep(latency / 1000.0)
        fault = self.st.take_fault(method)
        if fault == "drop_next":
            return self.drop()
        if fault == "hang_next":
            return self.hang()
        if fault == "fail_next":
            code = int(self.st.faults.get("fail_status", 503))
            return self.send_json(code, {"error": "injected failure %d" % code})
        try:
            if path == "/v1/vtpms" and method == "POST":
                return self.v1_create(fault)
            if path.startswith("/v1/vtpms/") and method == "DELETE":
                return self.v1_delete(path[len("/v1/vtpms/"):], fault)
            if path == "/v1/vtpms" and method == "GET":
                self.st.count("list")
                with self.st.lock:
                    vt = sorted(self.st.vtpms.values(), key=lambda v: v["created_at"])
                return self.send_json(200, {"vtpms": vt})
            if path == "/v1/health" and method == "GET":
                return self.send_json(200, {"status": "ok"})
            if not path.startswith("/v1/") and method == "GET":
                return self.legacy_get(fault)
        except ValueError as e:
            return self.send_json(400, {"error": str(e)}, close=True)
        return self.send_json(405 if path.startswith("/v1/vtpms") else 404,
                              {"error": "no such endpoint: %s %s" % (method, path)})

    def success_fault(self, fault):
        """Answers instead of a success when a body fault is due."""
        if fault == "garbage_next":
            self.send_raw(201, b"<html><body>502 Bad Gateway\x01\xff</body></html>\n", "text/html")
            return True
        if fault == "bad_uuid_next":
            self.send_json(201, {"uuid": "../../etc/passwd-0000-0000-000000000000"})
            return True
        if fault == "huge_next":
            self.send_raw(201, b'{"uuid": "' + b"a" * (1024 * 1024) + b'"}')
            return True
        return False

    # --- v1 --------------------------------------------------------------
    def v1_create(self, fault):
        self.st.count("post")
        raw = self.read_body()
        try:
            req = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": "body is not JSON"})
        if not isinstance(req, dict):
            return self.send_json(400, {"error": "body is not a JSON object"})
        inst, host = req.get("instance_uuid"), req.get("host")
        if not isinstance(inst, str) or not UUID_RE.match(inst):
            return self.send_json(400, {"error": "instance_uuid is not a UUID"})
        if not isinstance(host, str) or not host:
            return self.send_json(400, {"error": "host missing"})
        if self.success_fault(fault):
            return
        inst = inst.lower()
        with self.st.lock:
            u = self.st.by_instance.get(inst)
            existing = u is not None
            if not existing:
                u = str(uuid.uuid4())
                self.st.vtpms[u] = {"uuid": u, "instance_uuid": inst, "host": host,
                                    "created_at": datetime.now(timezone.utc).isoformat()}
                self.st.by_instance[inst] = u
                self.st.counters["created"] += 1
            else:
                self.st.counters["idempotent"] += 1
        if fault == "drop_after_commit_next":
            return self.drop()
        self.send_json(200 if existing else 201, {"uuid": self.fmt_uuid(u)})

    def v1_delete(self, u, fault):
        self.st.count("delete")
        if not UUID_RE.match(u):
            return self.send_json(400, {"error": "not a UUID"})
        u = u.lower()
        with self.st.lock:
            rec = self.st.vtpms.pop(u, None)
            if rec:
                self.st.by_instance.pop(rec["instance_uuid"], None)
                self.st.counters["released"] += 1
            else:
                self.st.counters["not_found"] += 1
        if fault == "drop_after_commit_next":
            return self.drop()
        if rec is None:
            return self.send_json(404, {"error": "no such vTPM"})
        self.send_raw(204, b"")

    # --- legacy ----------------------------------------------------------
    def legacy_get(self, fault):
        self.st.count("legacy_get")
        if self.success_fault(fault):
            return
        u = str(uuid.uuid4())
        with self.st.lock:
            self.st.vtpms[u] = {"uuid": u, "instance_uuid": None, "host": None,
                                "created_at": datetime.now(timezone.utc).isoformat()}
            self.st.counters["created"] += 1
        if fault == "drop_after_commit_next":
            return self.drop()
        self.send_json(200, {"uuid": self.fmt_uuid(u)})

    # --- control ---------------------------------------------------------
    def control(self, method, path):
        try:
            raw = self.read_body()
            args = json.loads(raw) if raw.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("expected a JSON object")
        except ValueError as e:
            return self.send_json(400, {"error": str(e)})
        if path == "/_fake/state" and method == "GET":
            return self.send_json(200, self.st.snapshot())
        if path == "/_fake/faults" and method == "POST":
            unknown = set(args) - set(default_faults())
            if unknown:
                return self.send_json(400, {"error": "unknown switches: %s" % sorted(unknown)})
            with self.st.lock:
                self.st.faults.update(args)
                faults = dict(self.st.faults)
            return self.send_json(200, {"faults": faults})
        if path == "/_fake/reset" and method == "POST":
            with self.st.lock:
                self.st.faults = default_faults()
            return self.send_json(200, {"faults": default_faults()})
        if path == "/_fake/clear" and method == "POST":
            with self.st.lock:
                self.st.vtpms.clear()
                self.st.by_instance.clear()
                self.st.counters = {k: 0 for k in COUNTERS}
            return self.send_json(200, {"live": 0})
        if path == "/_fake/outage" and method == "POST":
            on = bool(args.get("on", True))
            seconds = float(args.get("seconds", 0) or 0)
            self.send_json(200, {"outage": on, "seconds": seconds})
            self.wfile.flush()
            # In another thread: stopping the listener from one of its own
            # handlers would wait on itself.
            threading.Thread(target=self.server.app.set_outage, args=(on, seconds),
                             daemon=True).start()
            return None
        return self.send_json(404, {"error": "no such control endpoint"})


class ControlHandler(Handler):
    control_only = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # bursts of connections must not hit SYN drops

    def handle_error(self, request, client_address):
        # A client that gave up (timeout, cancel) is part of the tests.
        exc = sys.exc_info()[1]
        self.state.log("connection from %s ended: %s" % (client_address[0], exc))

    def __init__(self, addr, handler, app, tls_ctx):
        self.app = app
        self.state = app.state
        self.tls_ctx = tls_ctx
        super().__init__(addr, handler)

    @staticmethod
    def linger(sock):
        # Closing at once would answer the client's next bytes with a
        # reset that can overtake the TLS alert already sent (and the
        # client would see "connection reset" instead of the reason). Half
        # close and drain instead, as careful servers do.
        try:
            raw = socket.socket(fileno=sock.detach())
        except (OSError, ValueError):
            return
        try:
            raw.settimeout(2)
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(4096):
                pass
        except OSError:
            pass
        finally:
            raw.close()

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so
        # a client that never completes it blocks nobody else.
        if self.tls_ctx is not None:
            request.settimeout(30)
            request = self.tls_ctx.wrap_socket(request, server_side=True,
                                               do_handshake_on_connect=False)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self.state.count("tls_failures")
                self.state.log("TLS handshake failed from %s: %s" % (client_address[0], e))
                self.linger(request)
                return
            request.settimeout(None)
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.tls_ctx is not None:
                try:
                    request.close()
                except OSError:
                    pass


class App:
    def __init__(self, args):
        self.args = args
        self.logf = open(args.log, "a", buffering=1) if args.log else sys.stderr
        self.state = State(self.log)
        self.tls_ctx = None
        if args.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
            if args.client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(args.client_ca)
            self.tls_ctx = ctx
        self.port = None
        self.server = None
        self.outage_lock = threading.Lock()
        self.outage_gen = 0

    def log(self, msg):
        self.logf.write("fake_proxy: %s\n" % msg)

    def start_api(self):
        self.server = Server(("127.0.0.1", self.port or 0), Handler, self, self.tls_ctx)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop_api(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def set_outage(self, on, seconds):
        with self.outage_lock:
            self.outage_gen += 1
            gen = self.outage_gen
            if on and not self.state.outage:
                self.stop_api()
                self.state.outage = True
                self.log("outage: listener closed" + (" for %gs" % seconds if seconds else ""))
            elif not on and self.state.outage:
                self.start_api()
                self.state.outage = False
                self.log("outage over: listening again on port %d" % self.port)
        if on and seconds > 0:
            time.sleep(seconds)
            with self.outage_lock:
                # A later switch has taken over.
                if gen != self.outage_gen or not self.state.outage:
                    return
                self.start_api()
                self.state.outage = False
                self.log("outage over: listening again on port %d" % self.port)


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    p = argparse.ArgumentParser(description="Fake Keylime-VM vTPM proxy for tests.")
    p.add_argument("--port-file", required=True)
    p.add_argument("--control-port-file")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    p.add_argument("--faults", help="initial switches, JSON")
    p.add_argument("--log")
    args = p.parse_args()
    if bool(args.cert) != bool(args.key) or (args.client_ca and not args.cert):
        p.error("--cert and --key go together; --client-ca needs them")

    app = App(args)
    if args.faults:
        app.state.faults.update(json.loads(args.faults))
    app.start_api()
    if args.control_port_file:
        ctl = Server(("127.0.0.1", 0), ControlHandler, app, None)
        threading.Thread(target=ctl.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        write_atomic(args.control_port_file, "%d\n" % ctl.server_address[1])
    write_atomic(args.port_file, "%d\n" % app.port)
    app.log("listening on 127.0.0.1:%d (%s)" % (app.port, "https" if app.tls_ctx else "http"))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
