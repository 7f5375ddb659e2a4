#!/usr/bin/env python3
"""Small HTTP/1.1 keep-alive client for the e2e tests and the demo.

Usage: load.py PROXY_PORT URL [--count N | --until-file PATH] [--conns C] [--header 'K: V']...

Sends absolute-form requests (`GET http://host/path`, as `curl -x` does) to 127.0.0.1:PROXY_PORT.
With --count, sends exactly N requests split over C connections; with --until-file, keeps sending
until PATH exists (bounded to 120 s). Prints one JSON object: requests, failures (a transport error
or a status other than --expect), statuses, instances (from the `x-instance` header), and
latency percentiles in ms.
"""
import argparse
import http.client
import json
import os
import threading
import time
from collections import Counter

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("url")
p.add_argument("--count", type=int, default=0)
p.add_argument("--until-file")
p.add_argument("--conns", type=int, default=1)
p.add_argument("--header", action="append", default=[])
p.add_argument("--expect", type=int, default=200)
p.add_argument("--method", default="GET")
a = p.parse_args()
headers = dict(h.split(": ", 1) for h in a.header)

lock = threading.Lock()
statuses, instances, errors = Counter(), Counter(), []
lat = []
sent = [0]


def take():
    with lock:
        if a.count:
            if sent[0] >= a.count:
                return False
        elif os.path.exists(a.until_file) or time.time() - t0 > 120:
            return False
        sent[0] += 1
        return True


def worker():
    conn = None
    while take():
        start = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
            conn.request(a.method, a.url, headers=headers)
            r = conn.getresponse()
            r.read()
            st, inst = r.status, r.getheader("x-instance", "-")
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure is counted
            st, inst = "error", "-"
            with lock:
                errors.append(repr(e))
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            lat.append((time.perf_counter() - start) * 1000)
            statuses[str(st)] += 1
            instances[inst] += 1


t0 = time.time()
threads = [threading.Thread(target=worker) for _ in range(a.conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()


def pct(q):
    return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else None


ok = statuses.get(str(a.expect), 0)
print(json.dumps({"requests": sum(statuses.values()), "failures": sum(statuses.values()) - ok,
                  "statuses": statuses, "instances": instances, "errors": errors[:5],
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99), "seconds": round(time.time() - t0, 2)}))
