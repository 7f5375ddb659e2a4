#!/usr/bin/env python3
"""Summarise mesh-proxy latency histograms from one or more /metrics endpoints.

Usage: metrics-summary.py NAME=http://127.0.0.1:17103/metrics ...

For every request_duration / upstream_duration series with a non-zero count, prints the count,
the mean, and p50 / p99 estimated from the histogram buckets (upper bound of the bucket that holds
the quantile, as Prometheus' histogram_quantile does without interpolation).
"""
import re
import sys
import urllib.request
from collections import defaultdict

LINE = re.compile(r'^(mesh_proxy_(request|upstream)_duration_seconds)_(bucket|sum|count)\{(.*)\} (\S+)$')


def labels(s):
    return dict(re.findall(r'(\w+)="([^"]*)"', s))


def fmt(sec):
    return f"{sec * 1e3:8.3f} ms" if sec != float("inf") else "     +Inf  "


print(f"{'sidecar':<12} {'metric':<9} {'direction':<9} {'destination':<22} {'route':<18} "
      f"{'count':>6} {'mean':>11} {'p50 <=':>11} {'p99 <=':>11}")
for arg in sys.argv[1:]:
    name, url = arg.split("=", 1)
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    series = defaultdict(lambda: {"buckets": [], "sum": 0.0, "count": 0})
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        lab = labels(m.group(4))
        le = lab.pop("le", None)
        key = (m.group(2), lab.get("direction", ""), lab.get("destination", ""), lab.get("route", ""))
        v = float(m.group(5))
        if m.group(3) == "bucket":
            series[key]["buckets"].append((float(le), v))
        elif m.group(3) == "sum":
            series[key]["sum"] = v
        else:
            series[key]["count"] = int(v)
    for key, s in sorted(series.items()):
        if s["count"] == 0:
            continue
        b = sorted(s["buckets"])

        def q(p):
            want = p * s["count"]
            for le, c in b:
                if c >= want:
                    return le
            return float("inf")

        kind, direction, dest, route = key
        print(f"{name:<12} {kind:<9} {direction:<9} {dest:<22} {route or '-':<18} {s['count']:>6} "
              f"{fmt(s['sum'] / s['count'])} {fmt(q(0.5))} {fmt(q(0.99))}")
