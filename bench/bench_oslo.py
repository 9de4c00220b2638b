#!/usr/bin/python3
"""The oslo.messaging side of bench/bench-consume.sh: a notification
listener (driver rabbit, threading executor, defaults otherwise, durable
queues to match the persistent backlog) drains COUNT notifications from
the queue <topic>.info, which the benchmark filled beforehand, and prints
the rate from the first message to the last, as bench_consume does.

Usage: bench_oslo.py --url amqp://127.0.0.1:PORT/ --topic T --count N
"""
import argparse
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore")


def oslo_url(url):
    rest = url[len("amqp://"):]
    if "@" not in rest.split("/")[0]:
        rest = "guest:guest@" + rest
    return "rabbit://" + rest


class Endpoint:
    def __init__(self, count, done):
        self.count, self.done = count, done
        self.n, self.t0, self.t1 = 0, None, None
        self.lock = threading.Lock()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            if self.n == 0:
                self.t0 = time.monotonic()
                self.c0 = time.process_time()
            self.n += 1
            if self.n == self.count:
                self.t1 = time.monotonic()
                self.c1 = time.process_time()
                self.done.set()

    # The backlog holds every priority (create.error is ERROR): count all.
    audit = debug = warn = error = critical = sample = info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--exchange", default="bench_oslo")
    ap.add_argument("--count", type=int, required=True)
    a = ap.parse_args()
    from oslo_config import cfg
    import oslo_messaging
    conf = cfg.ConfigOpts()
    conf([], project="bench_oslo")
    transport = oslo_messaging.get_notification_transport(conf, url=oslo_url(a.url))
    conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    done = threading.Event()
    ep = Endpoint(a.count, done)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(exchange=a.exchange, topic=a.topic)], [ep],
        executor="threading")
    listener.start()
    ok = done.wait(3600)
    listener.stop()
    listener.wait()
    transport.cleanup()
    if not ok:
        print("bench_oslo: only %d of %d" % (ep.n, a.count), file=sys.stderr)
        return 1
    dt = ep.t1 - ep.t0
    print("result mode=oslo messages=%d seconds=%.3f rate=%.0f cpu_us=%.2f"
          % (ep.n, dt, ep.n / dt, (ep.c1 - ep.c0) * 1e6 / ep.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
