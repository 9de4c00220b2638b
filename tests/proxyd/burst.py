#!/usr/bin/python3
"""Concurrent create/delete bursts against vtpm-proxyd, and the checks
that follow a crash (stdlib only). Used by crash.sh and proxyd-e2e.sh.

  burst.py burst BASE CREATES DELETES OUT   POST each instance of the file
        CREATES twice and DELETE each vTPM of DELETES, 16 at a time; write
        what came back (status, UUID; null when the connection died) to OUT
  burst.py retry BASE CREATES               POST every instance again: each
        must get the UUID recorded for it (exit 1 otherwise)
  burst.py check BASE FAKE_LIST OUT...      after a restart: compare
        vtpm-proxyd's records with vtpmmgr's live set (FAKE_LIST: the
        fake's "list" JSON) and the answers of the bursts; print the
        orphans; exit 1 with the reasons when an invariant fails
"""

import http.client
import json
import queue
import sys
import threading
import urllib.parse


def call(base, method, path, body=None):
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)
    except (OSError, http.client.HTTPException, ValueError):
        return None, None
    finally:
        c.close()


def burst(base, creates_file, deletes_file, out):
    creates = [l.strip() for l in open(creates_file) if l.strip()]
    deletes = [l.strip() for l in open(deletes_file) if l.strip()]
    jobs = queue.Queue()
    for i in creates:
        jobs.put(("create", i))
    for u in deletes:
        jobs.put(("delete", u))
    for i in creates:
        jobs.put(("create", i))  # a retry racing the first
    results, lock = [], threading.Lock()

    def worker():
        while True:
            try:
                op, key = jobs.get_nowait()
            except queue.Empty:
                return
            if op == "create":
                st, body = call(base, "POST", "/v1/vtpms",
                                {"instance_uuid": key, "host": "compute-burst"})
                r = {"op": op, "instance": key, "status": st,
                     "uuid": body.get("uuid") if st == 201 and body else None}
            else:
                st, _ = call(base, "DELETE", "/v1/vtpms/" + key)
                r = {"op": op, "uuid": key, "status": st}
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(results, open(out, "w"))


def check(base, fake_list, outs):
    bad = []
    st, body = call(base, "GET", "/v1/vtpms")
    if st != 200:
        print("GET /v1/vtpms: %s" % st)
        return 1
    recs = body["vtpms"]
    rec_uuids = [r["uuid"] for r in recs]
    fake = json.load(open(fake_list))
    live = [u for g in fake["groups"] for u in g["vtpms"]]
    by_instance = {}
    for r in recs:
        if r["instance_uuid"] in by_instance:
            bad.append("instance %s has two records" % r["instance_uuid"])
        by_instance[r["instance_uuid"]] = r["uuid"]
    if len(set(live)) != len(live):
        bad.append("vtpmmgr holds duplicates")
    missing = set(rec_uuids) - set(live)
    if missing:
        bad.append("records without a vTPM (lost): %s" % sorted(missing))
    for out in outs:
        for r in json.load(open(out)):
            if r["op"] == "create" and r["status"] == 201:
                # Answered 201: the record was durable before the answer.
                if by_instance.get(r["instance"]) != r["uuid"]:
                    bad.append("201 %s for %s not recorded (record: %s)" %
                               (r["uuid"], r["instance"], by_instance.get(r["instance"])))
            if r["op"] == "delete" and r["status"] == 204:
                if r["uuid"] in rec_uuids or r["uuid"] in live:
                    bad.append("204 for %s, yet it is still there" % r["uuid"])
    for b in bad:
        print("FAIL: " + b, file=sys.stderr)
    for u in sorted(set(live) - set(rec_uuids)):
        print(u)
    return 1 if bad else 0


def retry(base, creates_file):
    st, body = call(base, "GET", "/v1/vtpms")
    if st != 200:
        print("GET /v1/vtpms: %s" % st, file=sys.stderr)
        return 1
    recorded = {v["instance_uuid"]: v["uuid"] for v in body["vtpms"]}
    rc = 0
    for i in (l.strip() for l in open(creates_file) if l.strip()):
        if i not in recorded:
            continue
        st, body = call(base, "POST", "/v1/vtpms",
                        {"instance_uuid": i, "host": "compute-burst"})
        if st != 201 or body.get("uuid") != recorded[i]:
            print("FAIL: retry of %s: %s %s, recorded %s" % (i, st, body, recorded[i]),
                  file=sys.stderr)
            rc = 1
    return rc


def main():
    if sys.argv[1] == "burst":
        burst(*sys.argv[2:6])
        return 0
    if sys.argv[1] == "retry":
        return retry(sys.argv[2], sys.argv[3])
    return check(sys.argv[2], sys.argv[3], sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
