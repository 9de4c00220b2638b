#!/usr/bin/python3
"""A plain AMQP 0-9-1 client (pika) for the bus tests: sets up what a test
needs on the broker and publishes or reads raw messages.

  bus_amqp.py --url URL exchange NAME [--type topic] [--durable] [--auto-delete]
  bus_amqp.py --url URL delete-exchange NAME
  bus_amqp.py --url URL queue NAME [--durable] [--bind EXCHANGE:KEY ...]
  bus_amqp.py --url URL publish --exchange X --key K [--persistent]
                        [--body TEXT | --body-file F | --size N] [--count N]
                        [--content-type T] [--json-seq]
  bus_amqp.py --url URL dump QUEUE        # one line per message, then exits
  bus_amqp.py --url URL count QUEUE       # messages ready in QUEUE

Exit status 0 on success; a channel error (e.g. PRECONDITION_FAILED) is
printed and exits 3.
"""
import argparse
import json
import sys

import pika


def connect(url):
    scheme, rest = url.split("://", 1)
    hostpart, _, vhost = rest.partition("/")
    if "@" not in hostpart:
        hostpart = "guest:guest@" + hostpart
    params = pika.URLParameters("%s://%s/%s" % (scheme, hostpart, vhost or "%2F"))
    params.heartbeat = 0
    params.connection_attempts = 3
    params.retry_delay = 0.5
    return pika.BlockingConnection(params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("exchange")
    e.add_argument("name")
    e.add_argument("--type", default="topic")
    e.add_argument("--durable", action="store_true")
    e.add_argument("--auto-delete", action="store_true")
    de = sub.add_parser("delete-exchange")
    de.add_argument("name")
    q = sub.add_parser("queue")
    q.add_argument("name")
    q.add_argument("--durable", action="store_true")
    q.add_argument("--bind", action="append", default=[])
    p = sub.add_parser("publish")
    p.add_argument("--exchange", default="")
    p.add_argument("--key", required=True)
    p.add_argument("--persistent", action="store_true")
    p.add_argument("--body")
    p.add_argument("--body-file")
    p.add_argument("--size", type=int)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--content-type", default="application/json")
    p.add_argument("--json-seq", action="store_true",
                   help="body is {\"seq\": i} (i from 1)")
    d = sub.add_parser("dump")
    d.add_argument("queue")
    c = sub.add_parser("count")
    c.add_argument("queue")
    a = ap.parse_args()

    conn = connect(a.url)
    ch = conn.channel()
    try:
        if a.cmd == "exchange":
            ch.exchange_declare(a.name, exchange_type=a.type, durable=a.durable,
                                auto_delete=a.auto_delete)
        elif a.cmd == "delete-exchange":
            ch.exchange_delete(a.name)
        elif a.cmd == "queue":
            ch.queue_declare(a.name, durable=a.durable)
            for b in a.bind:
                ex, _, key = b.partition(":")
                ch.queue_bind(a.name, ex, routing_key=key)
        elif a.cmd == "publish":
            if a.body_file:
                with open(a.body_file, "rb") as f:
                    body = f.read()
            elif a.size is not None:
                body = b"x" * a.size
            else:
                body = (a.body or "").encode()
            props = pika.BasicProperties(
                content_type=a.content_type or None,
                delivery_mode=2 if a.persistent else 1)
            ch.confirm_delivery()
            for i in range(1, a.count + 1):
                b = json.dumps({"seq": i}).encode() if a.json_seq else body
                ch.basic_publish(a.exchange, a.key, b, props)
        elif a.cmd == "dump":
            while True:
                m, props, body = ch.basic_get(a.queue, auto_ack=True)
                if m is None:
                    break
                print(json.dumps({"routing_key": m.routing_key,
                                  "redelivered": m.redelivered,
                                  "content_type": props.content_type,
                                  "delivery_mode": props.delivery_mode,
                                  "headers": props.headers,
                                  "body": body.decode("utf-8", "replace")},
                                 default=str))
        elif a.cmd == "count":
            r = ch.queue_declare(a.queue, passive=True)
            print(r.method.message_count)
    except pika.exceptions.ChannelClosedByBroker as ex:
        print("channel closed: %s %s" % (ex.reply_code, ex.reply_text))
        return 3
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
