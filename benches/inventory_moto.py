#!/usr/bin/env python3
"""Function inventory benchmark: `fnwatch inventory` of many functions
against moto's server.

1. moto's server (infra/local/s3/moto-s3.sh, all services) is started on a
   free port; boto3 creates --functions functions over functions/10 roles
   (tests/e2e/inventory_aws.py bulk: two shared managed policies and one
   inline policy per role, an SQS trigger on every tenth function, a
   resource-policy permission on every fifth). Not timed.
2. `fnwatch inventory` runs --runs times into a fresh local lake; each run is
   timed from start to exit, and its summary gives the API calls it made
   (by call). The lake is then checked: one row per function per run.

    cargo build --release      # or use the dev build: --fnwatch target/debug/fnwatch
    python3 benches/inventory_moto.py [--functions 1000] [--runs 2] [--concurrency 8]
        [--fnwatch target/release/fnwatch]

The issue asks for the time and the number of API calls for 1,000 functions;
moto answers each call from one Python process, so the time is mostly moto's.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--functions", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--fnwatch", default=str(REPO / "target/release/fnwatch"))
    a = ap.parse_args()
    if not Path(a.fnwatch).exists():
        sys.exit(f"{a.fnwatch} not found: cargo build --release (or pass --fnwatch target/debug/fnwatch)")
    work = Path(tempfile.mkdtemp(prefix="fnwatch-inventory-bench-"))
    port = free_port()
    moto = REPO / "infra/local/s3/moto-s3.sh"
    (work / "moto").mkdir(exist_ok=True)
    subprocess.run(["bash", str(moto), "start", str(work / "moto"), "--port", str(port)],
                   check=True, stdout=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, str(REPO / "tests/e2e/inventory_aws.py"), "bulk", endpoint, str(a.functions)],
            check=True, capture_output=True, text=True,
        ).stdout
        print(f"created in moto: {out.strip()} ({time.time() - t0:.1f} s, not timed)")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        lake = work / "lake"
        for run in range(1, a.runs + 1):
            cmd = [a.fnwatch, "inventory", "--lake", str(lake), "--region", "us-east-1",
                   "--endpoint-url", endpoint, "--concurrency", str(a.concurrency)]
            t0 = time.time()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            elapsed = time.time() - t0
            if r.returncode != 0:
                sys.exit(f"fnwatch inventory failed:\n{r.stdout}\n{r.stderr}")
            calls = re.search(r"^API calls: ([\d,]+) in ([\d.]+) s \((.*)\)$", r.stdout, re.M)
            print(f"run {run}: {elapsed:.2f} s wall for {a.functions:,} functions "
                  f"(collect {calls.group(2)} s), {calls.group(1)} API calls: {calls.group(3)}")
            for line in r.stdout.splitlines():
                if line.startswith("problems"):
                    print("  " + line)
        q = subprocess.run(
            [a.fnwatch, "sql", "--lake", str(lake), "--format", "json",
             "SELECT count(*) AS n, count(DISTINCT time) AS runs FROM events WHERE type = 'function_config'"],
            check=True, capture_output=True, text=True,
        ).stdout
        row = json.loads(q)[0]
        ok = row["n"] == a.functions * a.runs and row["runs"] == a.runs
        print(f"lake: {row['n']:,} function_config rows over {row['runs']} runs "
              f"({'one per function per run' if ok else 'MISMATCH'})")
        if not ok:
            sys.exit(1)
    finally:
        subprocess.run(["bash", str(moto), "stop", str(work / "moto")], stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
