#!/usr/bin/python3
"""Bursts of genuine-shaped Nova notifications, and the invariant checker
of vtpmd's fault tests (tests/integration/fault-*.sh).

Emitting through Nova's own code costs ~2 s of Python start-up per
process, far too slow for bursts of hundreds of events. So the burst
re-publishes copies of the genuine notifications that Nova's own code
wrote into tests/fixtures/nova/ (tests/tools/gen-nova-fixtures.py: the
"boot" create.start/create.end and "delete" delete.start/delete.end, in
the legacy and the versioned format, for host compute1), with a fresh
instance UUID substituted and a fresh oslo message_id, published to
Nova's exchange with the same routing keys and properties (persistent,
as kombu publishes them).

  fault_burst.py burst --url URL --fixtures DIR --seed S --instances N
        [--deleted FRACTION] [--malformed M] [--max-size BYTES]
        --plan FILE
      Publishes the burst (each instance: create.start, create.end and,
      for the deleted ones, delete.start and delete.end; in both formats,
      or only one of them for some instances; instances interleaved at
      random, each instance's own events in order) in one AMQP
      transaction, and writes FILE: {"seed", "instances": {uuid:
      "live"|"deleted"}, "malformed": M}. With --malformed, M malformed
      messages of many kinds are interleaved.

  fault_burst.py send --url URL --fixtures DIR EVENT:UUID...
      Publishes copies (both formats) for the given instances, with
      publisher confirms. EVENT: create.start, create.end, delete.start,
      delete.end, or delete (delete.start then delete.end).

  fault_burst.py prebind --url URL [--exchange vtpmd]
        [--queues notifications.info,notifications.error] [--wait S]
      Connects as soon as the broker is back and declares the status
      exchange and the oslo listener's queues as vtpmd and oslo.messaging
      declare them (topic exchange and queues, not durable), bound by
      their names: status notifications published before the listener
      has reconnected wait there instead of being dropped as unroutable.

  fault_burst.py check --plan FILE [--plan FILE...] [--failed FILE...]
        --vtpmctl PATH
        --socket PATH --images DIR [--fake-ctl PORT] [--status FILE]
        [--show N]
      Checks the invariants after quiescence, prints a summary line and
      exits 1 with every violation listed:
        engine: health busy == 0
        live instance: ctl list state ready with a vTPM UUID, exactly one
          libvirt domain, running, not an orphan, carrying that vTPM
          UUID; its image file present
        deleted instance: not listed, no domain, no image
        failed instance (every one of a --failed plan): state failed with
          an error and no vTPM UUID, no domain, no image
        nothing else: no domain nor image beyond the live instances'
        fake proxy (--fake-ctl): its live vTPM UUIDs are exactly the live
          instances' vTPM UUIDs, each for the right instance, none twice
        status (--status, the oslo listener's JSON lines): at least one
          vtpm.create.end per instance, one vtpm.delete.end per deleted;
          for a failed one a vtpm.create.error and no vtpm.create.end
        --show N: ctl show of N instances of the last plan (all if fewer):
          ready with the domain XML / failed / 404
"""
import argparse
import json
import os
import random
import subprocess
import sys
import urllib.request
import uuid

KINDS = ("create.start", "create.end", "delete.start", "delete.end")
SCENARIO = {"create.start": "boot", "create.end": "boot",
            "delete.start": "delete", "delete.end": "delete"}


def load_templates(fixdir):
    idx = json.load(open(os.path.join(fixdir, "index.json")))
    tpl = {}
    for m in idx["messages"]:
        kind = m["expect"]["kind"]
        if kind not in KINDS or m["scenario"] != SCENARIO[kind]:
            continue
        key = (kind, m["format"])
        if key in tpl:
            continue
        with open(os.path.join(fixdir, m["file"]), encoding="utf-8") as f:
            body = f.read()
        tpl[key] = {"routing_key": m["routing_key"], "body": body,
                    "uuid": m["expect"]["instance_uuid"],
                    "content_type": m["content_type"],
                    "content_encoding": m["content_encoding"]}
    for k in KINDS:
        for fmt in ("legacy", "versioned"):
            if (k, fmt) not in tpl:
                raise SystemExit("fixtures lack %s %s" % (k, fmt))
    return tpl, idx["this_host"]


def copy_of(t, inst):
    outer = json.loads(t["body"])
    inner = json.loads(outer["oslo.message"].replace(t["uuid"], inst))
    inner["message_id"] = str(uuid.uuid4())
    outer["oslo.message"] = json.dumps(inner)
    return json.dumps(outer).encode()


def malformed(rng, tpl, inst, max_size):
    """One malformed message (routing key, body bytes, content type)."""
    good = tpl[("create.start", "versioned")]
    leg = tpl[("create.start", "legacy")]
    outer = json.loads(good["body"])
    inner = json.loads(outer["oslo.message"].replace(good["uuid"], inst))
    kind = rng.randrange(14)
    rk = good["routing_key"]
    ctype = "application/json"
    if kind == 0:
        body = b"this is not json"
    elif kind == 1:
        body = b""
    elif kind == 2:
        body = b"[1, 2, 3]"
    elif kind == 3:  # wrong envelope version
        body = json.dumps({"oslo.version": "1.0", "oslo.message": json.dumps(inner)}).encode()
    elif kind == 4:  # envelope whose message is not JSON
        body = json.dumps({"oslo.version": "2.0", "oslo.message": "{nope"}).encode()
    elif kind == 5:  # bad instance UUIDs
        inner["payload"]["nova_object.data"]["uuid"] = rng.choice(
            ["not-a-uuid", "../../../etc/passwd", inst + "/../x", inst[:-1], "", "a" * 300,
             "00000000-0000-0000-0000-000000000000"])
        body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()
    elif kind == 6:  # oversize
        body = b'{"pad": "' + b"x" * (max_size + 1024) + b'"}'
    elif kind == 7:  # invalid UTF-8
        body = copy_of(good, inst).replace(inst.encode(), b"\xff\xfe\xc3(" + inst[4:].encode())
    elif kind == 8:  # truncated
        b = copy_of(good, inst)
        body = b[:rng.randrange(1, len(b) - 1)]
    elif kind == 9:  # embedded NUL
        b = copy_of(good, inst)
        i = rng.randrange(len(b))
        body = b[:i] + b"\0" + b[i:]
    elif kind == 10:  # nested too deep
        body = b"[" * 5000 + b"]" * 5000
    elif kind == 11:  # wrong content type
        body = copy_of(good, inst)
        ctype = "text/plain"
    elif kind == 12:  # payload not an object
        inner["payload"] = "nothing here"
        body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()
    else:  # legacy copy without an event_type
        lo = json.loads(leg["body"])
        li = json.loads(lo["oslo.message"].replace(leg["uuid"], inst))
        del li["event_type"]
        lo["oslo.message"] = json.dumps(li)
        body = json.dumps(lo).encode()
        rk = leg["routing_key"]
    return rk, body, ctype


def cmd_burst(a):
    import pika
    tpl, _ = load_templates(a.fixtures)
    rng = random.Random(a.seed)
    plan = {}
    seqs = []
    for _ in range(a.instances):
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        deleted = rng.random() < a.deleted
        plan[u] = "deleted" if deleted else "live"
        r = rng.random()
        fmts = ["legacy", "versioned"] if r < 0.7 else (["legacy"] if r < 0.85 else ["versioned"])
        seq = []
        for k in KINDS[:4 if deleted else 2]:
            for f in fmts:
                seq.append(("good", k, f, u))
        seqs.append(seq)
    for _ in range(a.malformed):
        seqs.append([("bad", None, None, str(uuid.UUID(int=rng.getrandbits(128), version=4)))])
    msgs = []
    while seqs:
        i = rng.randrange(len(seqs))
        msgs.append(seqs[i].pop(0))
        if not seqs[i]:
            seqs[i] = seqs[-1]
            seqs.pop()
    conn = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = conn.channel()
    # One transaction for the burst: when tx.commit-ok comes, the broker
    # holds every message (routed, persistent), and publishing is fast.
    returned = []
    ch.add_on_return_callback(lambda *args: returned.append(args[1].routing_key))
    ch.tx_select()
    nbad = 0
    for what, k, f, u in msgs:
        if what == "good":
            t = tpl[(k, f)]
            rk, body, ctype, enc = t["routing_key"], copy_of(t, u), t["content_type"], \
                t["content_encoding"]
        else:
            rk, body, ctype = malformed(rng, tpl, u, a.max_size)
            enc = "utf-8"
            nbad += 1
        ch.basic_publish("nova", rk, body, pika.BasicProperties(
            content_type=ctype, content_encoding=enc, delivery_mode=2,
            priority=0), mandatory=True)
    ch.tx_commit()
    conn.close()
    if returned:
        raise SystemExit("%d messages unroutable (is vtpmd's queue bound?)" % len(returned))
    with open(a.plan, "w") as f:
        json.dump({"seed": a.seed, "instances": plan, "malformed": nbad}, f)
    nd = sum(1 for v in plan.values() if v == "deleted")
    print("burst seed=%d instances=%d live=%d deleted=%d messages=%d malformed=%d"
          % (a.seed, len(plan), len(plan) - nd, nd, len(msgs), nbad))
    return 0


def cmd_send(a):
    import pika
    tpl, _ = load_templates(a.fixtures)
    conn = pika.BlockingConnection(pika.URLParameters(a.url))
    ch = conn.channel()
    ch.confirm_delivery()
    for w in a.events:
        ev, _, u = w.partition(":")
        str(uuid.UUID(u))
        kinds = ["delete.start", "delete.end"] if ev == "delete" else [ev]
        for k in kinds:
            if k not in KINDS:
                raise SystemExit("unknown event %r" % ev)
            for f in ("legacy", "versioned"):
                t = tpl[(k, f)]
                ch.basic_publish("nova", t["routing_key"], copy_of(t, u), pika.BasicProperties(
                    content_type=t["content_type"], content_encoding=t["content_encoding"],
                    delivery_mode=2, priority=0), mandatory=True)
    conn.close()
    return 0


def cmd_prebind(a):
    """Connects as soon as the broker listens again, and declares the
    status exchange and an oslo notification listener's queues the way
    vtpmd and oslo.messaging declare them."""
    import time
    import pika
    deadline = time.monotonic() + a.wait
    while True:
        try:
            conn = pika.BlockingConnection(pika.URLParameters(a.url))
            break
        except pika.exceptions.AMQPError:
            if time.monotonic() > deadline:
                raise SystemExit("broker not back within %d s" % a.wait)
            time.sleep(0.05)
    ch = conn.channel()
    ch.exchange_declare(a.exchange, "topic", durable=False, auto_delete=False)
    for q in a.queues.split(","):
        ch.queue_declare(q, durable=False, auto_delete=False)
        ch.queue_bind(q, a.exchange, q)
    conn.close()
    print("prebound %s: %s" % (a.exchange, a.queues))
    return 0


def ctl(a, *args):
    p = subprocess.run([a.vtpmctl, "-s", a.socket, "--json"] + list(args),
                       capture_output=True, text=True, timeout=60)
    try:
        return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        return p.returncode, p.stdout


def cmd_check(a):
    want = {}
    last = {}
    for p in a.plan:
        last = json.load(open(p))["instances"]
        want.update(last)
    for p in a.failed or []:
        last = {u: "failed" for u in json.load(open(p))["instances"]}
        want.update(last)
    bad = []

    def err(msg):
        if len(bad) < 50:
            bad.append(msg)
        else:
            bad.append(None)

    rc, h = ctl(a, "health")
    if rc != 0 or not isinstance(h, dict) or h.get("busy") != 0 or h.get("status") != "ok":
        err("health: rc=%d %r" % (rc, h))
    rc, lst = ctl(a, "list")
    rc2, doms = ctl(a, "domains")
    if rc != 0 or rc2 != 0:
        print("FAIL ctl list rc=%d domains rc=%d" % (rc, rc2))
        return 1
    insts = {i["instance_uuid"]: i for i in lst["instances"]}
    dom_by = {}
    for d in doms["domains"]:
        dom_by.setdefault(d["instance_uuid"], []).append(d)
        if d["orphan"]:
            err("orphan domain %s" % d["name"])
    images = set(f for f in os.listdir(a.images) if not f.startswith("."))
    live = {u for u, s in want.items() if s == "live"}
    vt = {}
    for u, s in want.items():
        i = insts.get(u)
        ds = dom_by.get(u, [])
        img = u + ".img"
        if s == "live":
            if i is None or i["state"] != "ready" or not i["vtpm_uuid"]:
                err("live %s: %r" % (u, i))
                continue
            vt[u] = i["vtpm_uuid"]
            if len(ds) != 1:
                err("live %s: %d domains" % (u, len(ds)))
            elif not ds[0]["active"] or ds[0]["vtpm_uuid"] != i["vtpm_uuid"]:
                err("live %s: domain %r" % (u, ds[0]))
            if img not in images or i["image_path"] != os.path.join(a.images, img):
                err("live %s: image %r missing" % (u, i["image_path"]))
        elif s == "failed":
            if i is None or i["state"] != "failed" or i["vtpm_uuid"] or not i["error"]:
                err("failed %s: %r" % (u, i))
            if ds:
                err("failed %s: %d domains left" % (u, len(ds)))
            if img in images:
                err("failed %s: image left" % u)
        else:
            if i is not None:
                err("deleted %s still held: %r" % (u, i))
            if ds:
                err("deleted %s: %d domains left" % (u, len(ds)))
            if img in images:
                err("deleted %s: image left" % u)
    extra_img = images - {u + ".img" for u in live}
    if extra_img:
        err("images of no live instance: %s" % sorted(extra_img)[:5])
    extra_dom = set(dom_by) - live
    if extra_dom:
        err("domains of no live instance: %s" % sorted(extra_dom)[:5])
    failed = {u for u, s in want.items() if s == "failed"}
    extra_inst = set(insts) - live - failed
    if extra_inst:
        err("instances held beyond the live ones: %s" % sorted(extra_inst)[:5])
    nfake = -1
    if a.fake_ctl:
        with urllib.request.urlopen("http://127.0.0.1:%s/_fake/state" % a.fake_ctl,
                                    timeout=10) as r:
            st = json.load(r)
        fv = st["vtpms"]
        nfake = len(fv)
        fuuids = [v["uuid"].lower() for v in fv]
        if len(fuuids) != len(set(fuuids)):
            err("fake proxy: a vTPM UUID twice")
        finst = [v["instance_uuid"] for v in fv]
        if len(finst) != len(set(finst)):
            err("fake proxy: an instance with two vTPMs")
        if set(fuuids) != {v.lower() for v in vt.values()}:
            leaked = set(fuuids) - {v.lower() for v in vt.values()}
            missing = {v.lower() for v in vt.values()} - set(fuuids)
            err("fake proxy: leaked %d %s, missing %d %s" % (
                len(leaked), sorted(leaked)[:3], len(missing), sorted(missing)[:3]))
        for v in fv:
            if vt.get(v["instance_uuid"], "").lower() != v["uuid"].lower():
                err("fake proxy: %s held for %s" % (v["uuid"], v["instance_uuid"]))
    nstat = 0
    if a.status:
        ce, de, cx = {}, {}, {}
        for line in open(a.status):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            u = e.get("payload", {}).get("instance_uuid")
            if e.get("event_type") == "vtpm.create.end":
                ce[u] = ce.get(u, 0) + 1
            elif e.get("event_type") == "vtpm.delete.end":
                de[u] = de.get(u, 0) + 1
            elif e.get("event_type") == "vtpm.create.error":
                cx[u] = cx.get(u, 0) + 1
        for u, s in want.items():
            nstat += 1
            if s == "failed":
                if cx.get(u, 0) < 1 or ce.get(u, 0) > 0:
                    err("failed %s: create.error %d, create.end %d" % (
                        u, cx.get(u, 0), ce.get(u, 0)))
                continue
            if ce.get(u, 0) < 1:
                err("%s %s: no vtpm.create.end status" % (s, u))
            if s == "deleted" and de.get(u, 0) < 1:
                err("deleted %s: no vtpm.delete.end status" % u)
    nshow = 0
    if a.show:
        items = sorted(last.items())
        if a.show < len(items):
            items = random.Random(len(want)).sample(items, a.show)
        for u, s in items:
            rc, o = ctl(a, "show", u)
            nshow += 1
            if s == "live" and (rc != 0 or o.get("state") != "ready" or
                                not o.get("domain_xml")):
                err("show live %s: rc=%d %r" % (u, rc, str(o)[:200]))
            if s == "failed" and (rc != 0 or o.get("state") != "failed"):
                err("show failed %s: rc=%d %r" % (u, rc, str(o)[:200]))
            if s == "deleted" and (rc == 0 or not isinstance(o, dict) or o.get("status") != 404):
                err("show deleted %s: rc=%d %r" % (u, rc, str(o)[:200]))
    print("check instances=%d live=%d failed=%d deleted=%d domains=%d images=%d fake_live=%d "
          "status_checked=%d shown=%d violations=%d" % (
              len(want), len(live), len(failed), len(want) - len(live) - len(failed), len(doms["domains"]),
              len(images), nfake, nstat, nshow, len(bad)))
    for b in bad:
        print("  " + (b if b else "... more"))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("burst")
    b.add_argument("--url", required=True)
    b.add_argument("--fixtures", required=True)
    b.add_argument("--seed", type=int, required=True)
    b.add_argument("--instances", type=int, required=True)
    b.add_argument("--deleted", type=float, default=0.4)
    b.add_argument("--malformed", type=int, default=0)
    b.add_argument("--max-size", type=int, default=65536)
    b.add_argument("--plan", required=True)
    e = sub.add_parser("send")
    e.add_argument("--url", required=True)
    e.add_argument("--fixtures", required=True)
    e.add_argument("events", nargs="+")
    pb = sub.add_parser("prebind")
    pb.add_argument("--url", required=True)
    pb.add_argument("--exchange", default="vtpmd")
    pb.add_argument("--queues", default="notifications.info,notifications.error")
    pb.add_argument("--wait", type=int, default=180)
    c = sub.add_parser("check")
    c.add_argument("--plan", action="append", default=[])
    c.add_argument("--failed", action="append", default=[])
    c.add_argument("--vtpmctl", required=True)
    c.add_argument("--socket", required=True)
    c.add_argument("--images", required=True)
    c.add_argument("--fake-ctl")
    c.add_argument("--status")
    c.add_argument("--show", type=int, default=0, metavar="N")
    a = ap.parse_args()
    return {"burst": cmd_burst, "send": cmd_send, "prebind": cmd_prebind,
            "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
