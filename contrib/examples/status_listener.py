#!/usr/bin/python3
"""A starting point for tooling that reacts to vtpmd's status notifications.

vtpmd publishes one notification per step of an instance's vTPM life
(docs/status.md): vtpm.create.start/.end/.error and
vtpm.delete.start/.end/.error, on the topic exchange "vtpmd" with routing
keys notifications.info and notifications.error, in oslo.messaging's
format. Any oslo.messaging notification listener receives them; this is
one, written to be copied and changed.

It prints one line per event (or one JSON object per line with --json)
and, with --exec, runs a program for each event with the event in its
environment (VTPM_EVENT, VTPM_INSTANCE_UUID, VTPM_UUID, VTPM_DOMAIN,
VTPM_STATE, VTPM_ERROR_CODE, VTPM_ERROR_MESSAGE, VTPM_HOST): e.g. register
a new vTPM with Keylime's verifier on vtpm.create.end.

It listens with its own pool (--pool, default "vtpm-status-example"), so
it gets its own queue and a copy of every event without taking events
away from other consumers (oslo.messaging without a pool shares the
queue "notifications.info" with every other pool-less listener).

Usage:
  status_listener.py --url rabbit://user:pass@broker:5672/ [--json]
      [--exchange vtpmd] [--topic notifications] [--pool NAME]
      [--instance UUID] [--count N] [--exec PROGRAM]
The URL may also be amqp://... (read as RabbitMQ). Stops on SIGINT/SIGTERM.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading


def rabbit_url(url):
    """oslo.messaging reads amqp:// as AMQP 1.0; RabbitMQ is rabbit://."""
    if url.startswith("amqp://"):
        rest = url[len("amqp://"):]
        if "@" not in rest.split("/")[0]:
            rest = "guest:guest@" + rest
        return "rabbit://" + rest
    return url


class VtpmEndpoint:
    """oslo.messaging calls info() or error() with each notification."""

    def __init__(self, args, done):
        self.args = args
        self.done = done
        self.seen = 0
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.handle("INFO", publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self.handle("ERROR", publisher_id, event_type, payload, metadata)

    def handle(self, priority, publisher_id, event_type, payload, metadata):
        if not event_type.startswith("vtpm.") or not isinstance(payload, dict):
            return  # not vtpmd's
        if self.args.instance and payload.get("instance_uuid") != self.args.instance:
            return
        with self.lock:
            if self.args.count and self.seen >= self.args.count:
                return  # delivered while stopping: not ours to show
            err = payload.get("error") or {}
            if self.args.json:
                print(json.dumps({"priority": priority, "publisher_id": publisher_id,
                                  "event_type": event_type, "payload": payload,
                                  "timestamp": metadata.get("timestamp"),
                                  "message_id": metadata.get("message_id")},
                                 sort_keys=True), flush=True)
            else:
                line = "%s %s %s instance=%s state=%s vtpm=%s domain=%s" % (
                    metadata.get("timestamp"), publisher_id, event_type,
                    payload.get("instance_uuid"), payload.get("state"),
                    payload.get("vtpm_uuid"), payload.get("vtpm_domain"))
                if err:
                    line += " error=%s: %s" % (err.get("code"), err.get("message"))
                print(line, flush=True)
            if self.args.exec:
                env = dict(os.environ,
                           VTPM_EVENT=event_type,
                           VTPM_INSTANCE_UUID=str(payload.get("instance_uuid") or ""),
                           VTPM_UUID=str(payload.get("vtpm_uuid") or ""),
                           VTPM_DOMAIN=str(payload.get("vtpm_domain") or ""),
                           VTPM_STATE=str(payload.get("state") or ""),
                           VTPM_HOST=str(payload.get("host") or ""),
                           VTPM_ERROR_CODE=str(err.get("code") or ""),
                           VTPM_ERROR_MESSAGE=str(err.get("message") or ""))
                # No shell: the program and the event's values stay apart.
                rc = subprocess.call([self.args.exec], env=env)
                if rc != 0:
                    print("%s exited %d for %s" % (self.args.exec, rc, event_type),
                          file=sys.stderr, flush=True)
            self.seen += 1
            if self.args.count and self.seen >= self.args.count:
                self.done.set()


def main():
    ap = argparse.ArgumentParser(description="Follow vtpmd's status notifications.")
    ap.add_argument("--url", required=True, help="the broker, rabbit:// or amqp://")
    ap.add_argument("--exchange", default="vtpmd")
    ap.add_argument("--topic", default="notifications")
    ap.add_argument("--pool", default="vtpm-status-example")
    ap.add_argument("--instance", help="only this instance UUID")
    ap.add_argument("--count", type=int, default=0, help="exit after N events")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--exec", help="program run for each event")
    args = ap.parse_args()

    from oslo_config import cfg
    import oslo_messaging

    conf = cfg.ConfigOpts()
    conf([], project="vtpm-status-listener")
    transport = oslo_messaging.get_notification_transport(conf, url=rabbit_url(args.url))
    target = oslo_messaging.Target(exchange=args.exchange, topic=args.topic)
    done = threading.Event()
    listener = oslo_messaging.get_notification_listener(
        transport, [target], [VtpmEndpoint(args, done)], executor="threading",
        pool=args.pool)
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    listener.start()
    print("listening exchange=%s topic=%s pool=%s" % (args.exchange, args.topic, args.pool),
          file=sys.stderr, flush=True)
    while not done.wait(0.2):
        pass
    listener.stop()
    listener.wait()
    transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
