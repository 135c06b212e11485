#!/usr/bin/env python3
"""Benchmark of the in-function sensor (a benchmark, not a test).

Runs the same handler (tests/e2e/sensor_handlers/app.py `busy`: 5 lookups,
2 connections, 1 process, 10 file opens, each kind timed inside the
handler) in three sandboxes of the Lambda stand-in that live side by side:
two without the sensor (no extension, no wrapper) and one with it. After
WARMUP invocations of each, the stand-ins take turns one invocation at a
time (`--paced`), in an order that rotates every round, so that each round
puts the three under the same load of the machine; and prints:
- the added latency per invocation: the median and p99 of the per-round
  differences (with the sensor minus without), for the invocation duration
  as the stand-in measures it (event delivered to response received) and
  for the handler's own time (its clock, inside the runtime); beside them
  the same differences between the two sandboxes without the sensor (the
  machine's own noise: an overhead below it cannot be resolved);
- the hook's in-process cost per hooked call: the per-round difference of
  the time each kind of call took inside the handler, divided by the calls;
- the extension's time from start to registered, and its RSS at the end;
- the events it shipped, and a flood's throughput.

With --node-ric (the entry point `bash infra/local/lambda/node-ric.sh path`
prints), the same is measured for Node.js (tests/e2e/sensor_handlers/
node_app.js `busy` and `flood`, under AWS's Node.js runtime client).

Usage: bench_sensor.py --extension target/release/fnwatch-sensor
                       [--rounds 500] [--warmup 20] [--files-dir /dev/shm]
                       [--node-ric .../aws-lambda-ric/bin/index.mjs]
"""

import argparse
import itertools
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


CALLS = {"dns": 5, "connect": 2, "process": 1, "file": 10}


def standin_cmd(work, extension, handler, node_ric, paced=False):
    cmd = [sys.executable, os.path.join(HERE, "standin.py"), "--plan", os.path.join(work, "plan.json"),
           "--results", os.path.join(work, "results.jsonl"), "--task-dir",
           os.path.join(ROOT, "tests/e2e/sensor_handlers"), "--handler", ("node_app." if node_ric else "app.") + handler, "--timeout", "10",
           "--work", work, "--function", "bench"]
    if node_ric:
        cmd += ["--node-ric", node_ric]
    if extension:
        cmd += ["--extension", extension, "--wrapper", os.path.join(ROOT, "sensor/hooks/fnwatch-wrapper")]
    if paced:
        cmd += ["--paced"]
    return cmd


def rows_of(work):
    return [json.loads(l) for l in open(os.path.join(work, "results.jsonl"))]


def run(work, n, port, extension, handler="busy", plan=None, node_ric=None):
    os.makedirs(work, exist_ok=True)
    plan = plan or [{"label": "b", "invoke": {"port": port, "tmp": os.path.join(work, "f")}} for _ in range(n)]
    with open(os.path.join(work, "plan.json"), "w") as f:
        json.dump(plan, f)
    subprocess.run(standin_cmd(work, extension, handler, node_ric), check=True)
    return rows_of(work)


def interleaved(d, port, extension, node_ric, rounds, warmup, files_dir=None):
    """Runs `busy` in three live sandboxes (A and A' without the sensor, S
    with it), one invocation at a time in turn, the order rotating every
    round; returns their invocation rows (warm-up left out), in step."""
    names = [("A", None), ("A2", None), ("S", extension)]
    procs = {}
    for name, ext in names:
        work = os.path.join(d, name)
        os.makedirs(work, exist_ok=True)
        n = warmup + rounds
        with open(os.path.join(work, "plan.json"), "w") as f:
            tmp = os.path.join(files_dir or work, name + "-f")
            json.dump([{"label": "b", "invoke": {"port": port, "tmp": tmp}}] * n, f)
        procs[name] = subprocess.Popen(standin_cmd(work, ext, "busy", node_ric, paced=True),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def step(name):
        p = procs[name]
        p.stdin.write("go\n")
        p.stdin.flush()
        if p.stdout.readline().strip() != "done":
            raise SystemExit("the stand-in %s stopped" % name)

    orders = list(itertools.permutations([n for n, _ in names]))
    for name, _ in names:
        for _ in range(warmup):
            step(name)
    for i in range(rounds):
        for name in orders[i % len(orders)]:
            step(name)
    for p in procs.values():
        p.stdin.close()
    for name, p in procs.items():
        if p.wait() != 0:
            raise SystemExit("the stand-in %s failed" % name)
    out = {}
    for name, _ in names:
        rows = rows_of(os.path.join(d, name))
        inv = [r for r in rows if "request_id" in r]
        bad = [r for r in inv if r.get("status") != "success"]
        if bad:
            raise SystemExit("%s: invocations failed: %s" % (name, bad[:3]))
        out[name] = (rows, inv[warmup:])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--extension", required=True)
    p.add_argument("--rounds", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--files-dir", help="where the handler writes its 10 files (default: the stand-in's work folder, on the temporary folder's file system)")
    p.add_argument("--node-ric", help="also measure Node.js, with AWS's Node.js runtime client at this entry point")
    a = p.parse_args()
    port = server()
    print("== Python (awslambdaric)")
    measure(a, port, None)
    if a.node_ric:
        print("== Node.js (aws-lambda-ric)")
        measure(a, port, os.path.abspath(a.node_ric))


def diffs(xs, ys):
    return [y - x for x, y in zip(xs, ys)]


def line(name, ds, unit="ms", scale=1.0):
    ds = [v * scale for v in ds]
    return "  %-34s median %+8.3f  p90 %+8.3f  p99 %+8.3f  (p1 %+8.3f) %s" % (
        name, statistics.median(ds), pct(ds, 90), pct(ds, 99), pct(ds, 1), unit)


def measure(a, port, node_ric):
    ext = os.path.abspath(a.extension)
    with tempfile.TemporaryDirectory() as d:
        runs = interleaved(d, port, ext, node_ric, a.rounds, a.warmup, a.files_dir)
        events = sum(1 for _ in open(os.path.join(d, "S", "extension-stdout.log")))
        # Throughput: 3 invocations each sending 20,000 events as fast as the hook can.
        frows = run(os.path.join(d, "flood"), 3, port, ext, "flood",
                    [{"label": "f", "invoke": {"n": 20000}} for _ in range(3)], node_ric=node_ric)
        flines = [json.loads(l) for l in open(os.path.join(d, "flood", "extension-stdout.log"))]
    rows, sens = runs["S"]
    _, base = runs["A"]
    _, base2 = runs["A2"]
    n = len(sens)
    print("rounds: %d (after %d warm-up invocations of each sandbox); load average %s"
          % (n, a.warmup, " ".join("%.2f" % x for x in os.getloadavg())))
    dur = {k: [r["duration_ms"] for r in v] for k, v in (("A", base), ("A2", base2), ("S", sens))}
    own = {k: [r["response"]["ms"] for r in v] for k, v in (("A", base), ("A2", base2), ("S", sens))}
    print("each sandbox (ms):")
    for k, label in (("A", "without sensor"), ("A2", "without sensor (2)"), ("S", "with sensor")):
        print("  %-20s duration p50 %7.3f p99 %7.3f | handler's own p50 %7.3f p99 %7.3f"
              % (label, pct(dur[k], 50), pct(dur[k], 99), pct(own[k], 50), pct(own[k], 99)))
    print("added latency per invocation, per-round differences (ms):")
    print(line("duration: with - without", diffs(dur["A"], dur["S"])))
    print(line("duration: without(2) - without", diffs(dur["A"], dur["A2"])))
    print(line("handler's own: with - without", diffs(own["A"], own["S"])))
    print(line("handler's own: without(2) - without", diffs(own["A"], own["A2"])))
    print("the hook's in-process cost per hooked call, per-round differences (us):")
    for kind, calls in CALLS.items():
        ws = [r["response"]["ns"][kind] / calls for r in sens]
        wo = [r["response"]["ns"][kind] / calls for r in base]
        wo2 = [r["response"]["ns"][kind] / calls for r in base2]
        print(line("%s (x%d): with - without" % (kind, calls), diffs(wo, ws), "us", 1e-3))
        print(line("%s (x%d): without(2) - without" % (kind, calls), diffs(wo, wo2), "us", 1e-3))
    reg = [r["extension_registered_ms"] for r in rows if "extension_registered_ms" in r]
    rss = [r for r in rows if "extension_rss_kb" in r]
    print("extension start to registered: %s ms" % reg)
    if rss:
        print("extension RSS at the end: %.1f MB (peak %.1f MB)" % (rss[-1]["extension_rss_kb"] / 1024, rss[-1]["extension_hwm_kb"] / 1024))
    total = a.warmup + n
    print("events shipped: %d (%.1f per invocation)" % (events, events / max(1, total)))
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
