#!/usr/bin/python3
"""An oslo.messaging notification listener for vtpmd's status notifications.

Listens on Target(exchange=EXCHANGE, topic=TOPIC) exactly as any OpenStack
consumer would (oslo.messaging, driver rabbit), and appends one JSON line per
notification received to OUT: {"priority", "event_type", "publisher_id",
"payload", "message_id"}. Writes OUT.ready once listening. Stops on SIGTERM.

Usage: status_listener.py --url amqp://127.0.0.1:PORT/ --out FILE
           [--exchange vtpmd] [--topic notifications] [--pool NAME]
"""
import argparse
import json
import signal
import sys
import threading
import warnings

warnings.filterwarnings("ignore")

from oslo_url import oslo_url  # noqa: E402 (after the filter)


class Endpoint:
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def _write(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        line = json.dumps({"priority": priority, "publisher_id": publisher_id,
                           "event_type": event_type, "payload": payload,
                           "message_id": metadata.get("message_id"),
                           "timestamp": metadata.get("timestamp")})
        with self.lock:
            with open(self.out, "a") as f:
                f.write(line + "\n")

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._write("INFO", ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._write("ERROR", ctxt, publisher_id, event_type, payload, metadata)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--exchange", default="vtpmd")
    ap.add_argument("--topic", default="notifications")
    ap.add_argument("--pool", default=None)
    a = ap.parse_args()
    from oslo_config import cfg
    import oslo_messaging
    conf = cfg.ConfigOpts()
    conf([], project="status_listener")
    transport = oslo_messaging.get_notification_transport(conf, url=oslo_url(a.url))
    target = oslo_messaging.Target(exchange=a.exchange, topic=a.topic)
    listener = oslo_messaging.get_notification_listener(
        transport, [target], [Endpoint(a.out)], executor="threading",
        pool=a.pool)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    listener.start()
    open(a.out + ".ready", "w").close()
    while not stop.wait(0.2):
        pass
    listener.stop()
    listener.wait()
    transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
