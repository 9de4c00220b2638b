#!/usr/bin/python3
"""Provisioning latency of a running vtpmd, from outside, through the broker.

Publishes genuine versioned instance.create.start notifications (a Nova
fixture with a fresh instance UUID each) for vtpmd's host to exchange
`nova`, and times each one until vtpmd's vtpm.create.end for that instance
arrives at a consumer of exchange `vtpmd`. Prints p50/p90/p99/max at a
steady rate, and the time to finish a burst. Run by bench/bench_provision.sh,
which starts the broker and vtpmd; not a test.

Usage: bench_provision.py --url amqp://127.0.0.1:PORT/ --fixture FILE
           --host HOST [--rate 50] [--steady 500] [--burst 1000]
"""
import argparse
import json
import threading
import time
import uuid

import pika


def params(url):
    p = pika.URLParameters(url)
    p.heartbeat = 0
    return p


class Consumer(threading.Thread):
    def __init__(self, url):
        super().__init__(daemon=True)
        self.conn = pika.BlockingConnection(params(url))
        self.ch = self.conn.channel()
        self.ch.exchange_declare("vtpmd", "topic", durable=False)
        q = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(q, "vtpmd", "notifications.info")
        self.ch.queue_bind(q, "vtpmd", "notifications.error")
        self.ch.basic_consume(q, self.on_msg, auto_ack=True)
        self.done = {}
        self.errors = 0
        self.cv = threading.Condition()

    def on_msg(self, ch, method, props, body):
        now = time.monotonic()
        msg = json.loads(json.loads(body)["oslo.message"])
        if msg["event_type"] == "vtpm.create.end":
            with self.cv:
                self.done.setdefault(msg["payload"]["instance_uuid"], now)
                self.cv.notify_all()
        elif msg["event_type"].endswith(".error"):
            self.errors += 1

    def run(self):
        self.ch.start_consuming()

    def wait_for(self, uuids, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while not all(u in self.done for u in uuids):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--steady", type=int, default=500)
    ap.add_argument("--burst", type=int, default=1000)
    a = ap.parse_args()

    raw = open(a.fixture).read()
    inner = json.loads(json.loads(raw)["oslo.message"])
    old_uuid = inner["payload"]["nova_object.data"]["uuid"]
    old_host = inner["publisher_id"].split(":", 1)[1]
    raw = raw.replace("nova-compute:" + old_host, "nova-compute:" + a.host)

    cons = Consumer(a.url)
    cons.start()
    pub = pika.BlockingConnection(params(a.url)).channel()
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2)

    def publish(u):
        pub.basic_publish("nova", "versioned_notifications.info",
                          raw.replace(old_uuid, u), props)

    # Warm-up.
    w = [str(uuid.uuid4()) for _ in range(20)]
    for u in w:
        publish(u)
    cons.wait_for(w, 30)

    # Steady rate.
    sent = {}
    t0 = time.monotonic()
    for i in range(a.steady):
        due = t0 + i / a.rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        u = str(uuid.uuid4())
        sent[u] = time.monotonic()
        publish(u)
    ok = cons.wait_for(list(sent), 60)
    lat = [(cons.done[u] - t) * 1000 for u, t in sent.items() if u in cons.done]
    print("steady %d creates at %.0f/s: %d done%s" % (a.steady, a.rate, len(lat),
                                                  "" if ok else " (TIMEOUT)"))
    print("  latency publish -> vtpm.create.end: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms"
          % (pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat)))

    # Burst.
    b = [str(uuid.uuid4()) for _ in range(a.burst)]
    t0 = time.monotonic()
    for u in b:
        publish(u)
    tp = time.monotonic() - t0
    ok = cons.wait_for(b, 120)
    t1 = max(cons.done[u] for u in b if u in cons.done)
    print("burst of %d creates: published in %.3f s, all vtpm.create.end in %.3f s%s"
          % (a.burst, tp, t1 - t0, "" if ok else " (TIMEOUT)"))
    print("  error statuses seen: %d" % cons.errors)


if __name__ == "__main__":
    main()
