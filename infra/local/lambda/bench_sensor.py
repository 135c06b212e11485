#!/usr/bin/env python3
"""Benchmark of the in-function sensor (a benchmark, not a test).

Runs the same handler (tests/e2e/sensor_handlers/app.py `busy`: 5 lookups,
2 connections, 1 process, 10 file opens) N times under the Lambda stand-in,
first without the sensor (no extension, no wrapper), then with it, in the
same run, and prints:
- the invocation duration (delivery of the event to the runtime's response,
  as the stand-in measures it) p50 and p99 of each, and the added latency;
- the extension's time from start to registered, and its RSS at the end;
- the events it shipped.

With --node-ric (the entry point `bash infra/local/lambda/node-ric.sh path`
prints), the same is measured for Node.js (tests/e2e/sensor_handlers/
node_app.js `busy` and `flood`, under AWS's Node.js runtime client).

Usage: bench_sensor.py --extension target/release/fnwatch-sensor [--n 300]
                       [--node-ric .../aws-lambda-ric/bin/index.mjs]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)

    def loop():
        while True:
            c, _ = s.accept()
            c.close()

    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def run(work, n, port, extension, handler="busy", plan=None, node_ric=None):
    os.makedirs(work, exist_ok=True)
    plan = plan or [{"label": "b", "invoke": {"port": port, "tmp": os.path.join(work, "f")}} for _ in range(n)]
    with open(os.path.join(work, "plan.json"), "w") as f:
        json.dump(plan, f)
    cmd = [sys.executable, os.path.join(HERE, "standin.py"), "--plan", os.path.join(work, "plan.json"),
           "--results", os.path.join(work, "results.jsonl"), "--task-dir",
           os.path.join(ROOT, "tests/e2e/sensor_handlers"), "--handler", ("node_app." if node_ric else "app.") + handler, "--timeout", "10",
           "--work", work, "--function", "bench"]
    if node_ric:
        cmd += ["--node-ric", node_ric]
    if extension:
        cmd += ["--extension", extension, "--wrapper", os.path.join(ROOT, "sensor/hooks/fnwatch-wrapper")]
    subprocess.run(cmd, check=True)
    rows = [json.loads(l) for l in open(os.path.join(work, "results.jsonl"))]
    ok = [r for r in rows if r.get("status") == "success"][5:]
    durs = [r["duration_ms"] for r in ok]
    own = [r["response"]["ms"] for r in ok if isinstance(r.get("response"), dict) and "ms" in r["response"]]
    return rows, (durs, own)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--extension", required=True)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--node-ric", help="also measure Node.js, with AWS's Node.js runtime client at this entry point")
    a = p.parse_args()
    port = server()
    print("== Python (awslambdaric)")
    measure(a, port, None)
    if a.node_ric:
        print("== Node.js (aws-lambda-ric)")
        measure(a, port, os.path.abspath(a.node_ric))


def measure(a, port, node_ric):
    with tempfile.TemporaryDirectory() as d:
        _, base = run(os.path.join(d, "base"), a.n, port, None, node_ric=node_ric)
        rows, sens = run(os.path.join(d, "sensor"), a.n, port, os.path.abspath(a.extension), node_ric=node_ric)
        events = sum(1 for _ in open(os.path.join(d, "sensor", "extension-stdout.log")))
        # Throughput: 3 invocations each sending 20,000 events as fast as the hook can.
        frows, _ = run(os.path.join(d, "flood"), 3, port, os.path.abspath(a.extension), "flood",
                       [{"label": "f", "invoke": {"n": 20000}} for _ in range(3)], node_ric=node_ric)
        flines = [json.loads(l) for l in open(os.path.join(d, "flood", "extension-stdout.log"))]
    reg = [r["extension_registered_ms"] for r in rows if "extension_registered_ms" in r]
    rss = [r for r in rows if "extension_rss_kb" in r]
    print("invocations measured: %d without, %d with the sensor (first 5 of each skipped)" % (len(base[0]), len(sens[0])))
    (base, base_own), (sens, sens_own) = base, sens
    print("invocation duration (the stand-in's clock, its HTTP included):")
    for name, xs in (("without sensor", base), ("with sensor", sens)):
        print("  %-15s p50 %7.3f ms  p99 %7.3f ms  mean %7.3f ms" % (name, pct(xs, 50), pct(xs, 99), statistics.mean(xs)))
    print("  added           p50 %7.3f ms  p99 %7.3f ms" % (pct(sens, 50) - pct(base, 50), pct(sens, 99) - pct(base, 99)))
    if base_own and sens_own:
        print("the handler's own time (its clock, inside the runtime):")
        for name, xs in (("without sensor", base_own), ("with sensor", sens_own)):
            print("  %-15s p50 %7.3f ms  p99 %7.3f ms  mean %7.3f ms" % (name, pct(xs, 50), pct(xs, 99), statistics.mean(xs)))
        print("  added           p50 %7.3f ms  p99 %7.3f ms" % (pct(sens_own, 50) - pct(base_own, 50), pct(sens_own, 99) - pct(base_own, 99)))
    print("extension start to registered: %s ms" % reg)
    if rss:
        print("extension RSS at the end: %.1f MB (peak %.1f MB)" % (rss[-1]["extension_rss_kb"] / 1024, rss[-1]["extension_hwm_kb"] / 1024))
    print("events shipped: %d (%.1f per invocation)" % (events, events / max(1, a.n)))
    inv = [r for r in frows if r.get("label") == "f"]
    bad = [r for r in inv if r.get("status") != "success"]
    if bad:
        print("flood: invocations that failed: %s" % bad)
    sent = sum(r["response"]["sent"] for r in inv if r.get("status") == "success")
    secs = sum(r["duration_ms"] for r in inv) / 1000.0
    sensor = [e for e in flines if e.get("type") == "invocation"][-1]["sensor"]
    dns = sum(1 for e in flines if e.get("type") == "dns")
    print("flood: %d events sent by the hook in %.2f s of invocations; %d shipped (%.0f/s), "
          "buffer drops %d, hook drops %d (as of the last invocation's event)"
          % (sent, secs, dns, dns / secs, sensor["buffer_dropped"], sensor["hook_dropped"]))


if __name__ == "__main__":
    main()
