#!/usr/bin/env python3
"""Kinesis worker benchmark, in one run:

1. Through the emulator: telemetry from `fnwatch simulate` is put on a
   kinesalite stream (boto3, not timed), then one `fnwatch ingest --kinesis`
   worker (release build) reads it into a fresh local lake. Timed from the
   worker's start until the lake holds every event (polled with `fnwatch sql`);
   the worker's CPU time and peak memory come from /proc.
2. Without the emulator: the decode+write path alone, pinned to one core
   (`taskset -c 0`), replaying records from memory through the same worker
   code (benches/kinesis_replay.rs), --replay-records of them, once per
   --mix: `sample` (tests/data/make_sample.py, as the ingest bench) and
   `fleet` (tests/data/make_fleet.py: --functions functions in 25 accounts),
   the same inputs as benches/ingest_vs_duckdb.py makes.

    cargo build --release
    python3 benches/kinesis_worker.py [--invocations 60000] [--shards 4]
        [--replay-records 1000000] [--mix sample,fleet] [--functions 2000]
        [--fnwatch target/release/fnwatch]

Target (issue): the decode+write path sustains at least 200,000 records/s on
one core, with worker memory under 512 MB.
"""

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    print("  $ " + " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def lake_events(fnwatch, lake):
    if not (lake / "events" / "_delta_log").is_dir():
        return 0
    out = subprocess.run(
        [fnwatch, "sql", "--lake", str(lake), "--format", "csv", "SELECT count(*) FROM events"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()
    return int(out[-1])


def proc_figures(pid):
    """(CPU seconds, peak RSS MB) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tck
    peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cpu, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invocations", type=int, default=60000, help="simulated invocations (default 60000, about 250k records)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--replay-records", type=int, default=1_000_000)
    ap.add_argument("--fnwatch", default=str(REPO / "target/release/fnwatch"))
    ap.add_argument("--workdir", default=str(REPO / "target/bench-kinesis"))
    ap.add_argument("--mix", default="sample,fleet",
                    help="inputs of the replay, comma-separated: sample, fleet (default both)")
    ap.add_argument("--functions", type=int, default=2000, help="functions in the fleet mix (default 2000)")
    ap.add_argument("--skip-emulator", action="store_true", help="only the replay")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "benches"))
    import ingest_vs_duckdb as inputs  # the same generated inputs as the ingest bench
    mixes = [m.strip() for m in a.mix.split(",") if m.strip()]
    unknown = [m for m in mixes if m not in inputs.GENERATORS]
    if unknown or not mixes:
        ap.error(f"--mix: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(inputs.GENERATORS)}")
    fnwatch = a.fnwatch
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    emu = None
    if not a.skip_emulator:
        print("telemetry:", flush=True)
        tel = work / "telemetry"
        run([fnwatch, "simulate", "--out", str(tel), "--seed", "9", "--start", "2026-11-20", "--days", "1",
             "--invocations-per-day", str(a.invocations), "--attack-days", "0"], stdout=subprocess.DEVNULL)
        files = sorted(str(p) for p in tel.glob("*.jsonl.gz"))
        records = 0
        for f in files:
            with gzip.open(f, "rb") as fh:
                records += sum(1 for line in fh if line.strip())
        ref = work / "reference-lake"
        run([fnwatch, "ingest", "--lake", str(ref), "--no-progress", *files], stdout=subprocess.DEVNULL)
        want = lake_events(fnwatch, ref)
        print(f"  {records:,} records, {want:,} events", flush=True)

        print("emulator:", flush=True)
        kdir = work / "kinesalite"
        port = free_port()
        script = REPO / "infra/local/kinesis/kinesalite.sh"
        run(["bash", str(script), "start", str(kdir), "--port", str(port)], stdout=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        tool = [sys.executable, str(REPO / "tests/e2e/kinesis_tool.py"), "--endpoint", endpoint]
        try:
            run(tool + ["create", "bench", "--shards", str(a.shards)], env=env, stdout=subprocess.DEVNULL)
            t = time.time()
            for f in files:
                run(tool + ["put", "bench", "--file", f], env=env, stdout=subprocess.DEVNULL)
            print(f"  put {records:,} records in {time.time() - t:.1f} s (boto3; not timed)", flush=True)

            print("worker through the emulator:", flush=True)
            lake = work / "lake"
            log = open(work / "worker.log", "w")
            t0 = time.time()
            w = subprocess.Popen([fnwatch, "ingest", "--lake", str(lake), "--kinesis", "bench",
                                  "--endpoint-url", endpoint, "--region", "us-east-1",
                                  "--flush-interval", "5s", "--idle-poll", "200ms"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=log)
            cpu = peak = 0.0
            while True:
                time.sleep(0.5)
                if w.poll() is not None:
                    sys.exit(f"the worker stopped early; see {work / 'worker.log'}")
                cpu, peak = proc_figures(w.pid)
                n = lake_events(fnwatch, lake)
                if n >= want:
                    break
                if time.time() - t0 > 1800:
                    w.kill()
                    sys.exit("timed out")
            secs = time.time() - t0
            w.terminate()
            w.wait(60)
            got = lake_events(fnwatch, lake)
            assert got == want, f"lake holds {got} events, expected {want}"
            emu = {"records": records, "seconds": secs, "records_per_s": records / secs,
                   "cpu_s": cpu, "cpu_s_per_million": cpu / (records / 1e6), "peak_mb": peak}
            print(f"  {records:,} records in {secs:.1f} s = {records / secs:,.0f} records/s (polling granularity 0.5 s); "
                  f"worker CPU {cpu:.1f} s ({cpu / (records / 1e6):.1f} CPU-s per million records), peak memory {peak:.0f} MB", flush=True)
        finally:
            subprocess.run(["bash", str(script), "stop", str(kdir)], stdout=subprocess.DEVNULL)

    print("decode+write path, one core, replaying records from memory:", flush=True)
    # Built first on every core; then only the run is pinned to one.
    run(["cargo", "bench", "--bench", "kinesis_replay", "--no-run"], cwd=REPO, stdout=subprocess.DEVNULL)
    cache = work.parent / "bench-inputs"
    cache.mkdir(parents=True, exist_ok=True)
    replays = {}
    for mix in mixes:
        data = inputs.ensure_input(cache, a.replay_records, mix, a.functions)
        cmd = ["cargo", "bench", "--bench", "kinesis_replay", "--",
               "--records", str(a.replay_records), "--shards", str(a.shards), "--input", str(data)]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", "0"] + cmd
        print("  $ " + " ".join(cmd), flush=True)
        out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
        line = [l for l in out.splitlines() if l.startswith("kinesis replay:")][-1]
        label = mix if mix == "sample" else f"fleet of {a.functions:,} functions"
        replays[label] = line
        print(f"  {label}: {line}", flush=True)
    (work / "results.json").write_text(json.dumps({"emulator": emu, "replay": replays}, indent=2))
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
