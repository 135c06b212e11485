#!/usr/bin/env python3
"""Models benchmark: `fnwatch train` / `fnwatch detect` against DuckDB features +
scikit-learn's IsolationForest, on the same generated lake, in one run.

    CARGO_TARGET_DIR=target/rel cargo build --release
    python3 benches/models_vs_isolation_forest.py [--fnwatch target/rel/release/fnwatch]
        [--per-day 200000] [--workdir target/bench-models] [--keep]
        [--mix sample,fleet] [--functions 2000]

Each --mix is measured in turn, in the same run: `sample` is the simulator's
telemetry with its attacks (below); `fleet` is tests/data/make_fleet.py's
fleet-shaped telemetry over the same 6 days (no attacks: speed, and benign
invocations flagged).

1. `fnwatch simulate` writes 6 days of telemetry (attacks on the last day only),
   `--per-day` invocations a day, and `fnwatch ingest` loads it into a lake
   (not timed: both sides read the same lake).
2. fnwatch: `train` on days 1-5 (1,000,000 invocations at the default size),
   then `detect` on days 5-6 to an alerts file. Wall time of each process.
3. The peer, in its own process: DuckDB reads the lake's Parquet files and
   builds the same per-invocation numeric features fnwatch's numeric model
   uses (log duration, CPU share, log peak memory, log bytes out/in, log counts
   of DNS lookups, connections, child processes, file accesses and API calls,
   cold start) for both windows; IsolationForest (100 trees, default settings)
   is fitted on the training window and `score_samples` scores the detection
   window. Its alert threshold is set on the training scores so it flags
   10 per 100,000 training invocations: the false-positive budget of the
   product's target.
4. Quality on day 6 for both: recall per attack class (an attacked invocation
   counts when flagged; for fnwatch, a medium+ alert naming its request_id)
   and benign invocations flagged per 100,000.

Needs: `pip install duckdb scikit-learn numpy`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PEER = r'''
import sys, time, json
import duckdb, numpy as np
from sklearn.ensemble import IsolationForest
lake, t0, t1, d0, d1, out = sys.argv[1:7]
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET threads TO 2")
def features(a, b):
    q = f"""
    WITH ev AS (
      SELECT * FROM read_parquet('{lake}/events/**/*.parquet', hive_partitioning = true)
      WHERE type <> 'log' AND time >= TIMESTAMPTZ '{a}' AND time < TIMESTAMPTZ '{b}'
    ), per AS (
      SELECT request_id,
        max(CASE WHEN type = 'invocation' THEN duration_ms END) AS duration_ms,
        max(CASE WHEN type = 'invocation' THEN cpu_ms END) AS cpu_ms,
        max(CASE WHEN type = 'invocation' THEN max_memory_mb END) AS mem,
        max(CASE WHEN type = 'invocation' THEN init_ms END) IS NOT NULL AS cold,
        count(*) FILTER (WHERE type = 'invocation') AS inv,
        coalesce(sum(bytes_out), 0) AS bytes_out, coalesce(sum(bytes_in), 0) AS bytes_in,
        count(*) FILTER (WHERE type = 'dns') AS dns, count(*) FILTER (WHERE type = 'network') AS net,
        count(*) FILTER (WHERE type = 'process') AS proc, count(*) FILTER (WHERE type = 'file') AS file,
        count(*) FILTER (WHERE type = 'api_call') AS api
      FROM ev GROUP BY request_id
    )
    SELECT request_id, ln(1 + duration_ms), coalesce(least(cpu_ms / nullif(duration_ms, 0), 2), 0.3),
      ln(1 + coalesce(mem, 0)), ln(1 + bytes_out), ln(1 + bytes_in), ln(1 + dns), ln(1 + net),
      ln(1 + proc), ln(1 + file), ln(1 + api), cold::DOUBLE
    FROM per WHERE inv > 0
    """
    rows = con.execute(q).fetchall()
    ids = [r[0] for r in rows]
    x = np.array([r[1:] for r in rows], dtype=np.float64)
    return ids, x
_, xtrain = features(t0, t1)
ids, xdet = features(d0, d1)
feat = time.perf_counter()
forest = IsolationForest(n_estimators=100, random_state=0, n_jobs=2).fit(xtrain)
train_scores = forest.score_samples(xtrain)
threshold = float(np.quantile(train_scores, 1e-4))
fit = time.perf_counter()
scores = forest.score_samples(xdet)
end = time.perf_counter()
flagged = [i for i, s in zip(ids, scores) if s < threshold]
json.dump({"features_s": feat - start, "fit_s": fit - feat, "score_s": end - fit, "total_s": end - start,
           "train_rows": int(xtrain.shape[0]), "detect_rows": len(ids), "flagged": flagged}, open(out, "w"))
'''


def run(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    return time.perf_counter() - t


def make_lake(a, mix: str, wd: Path) -> tuple[Path, Path | None]:
    """The lake of one mix (made once per size and seed with --keep), and the
    labels file of the simulator's attacks (None for the fleet mix)."""
    fw = a.fnwatch
    tel, lake = wd / "telemetry", wd / "lake"
    stamp = wd / (f"made-{a.per_day}-{a.seed}" if mix == "sample" else f"made-fleet{a.functions}-{a.per_day}-{a.seed}")
    if not (a.keep and stamp.exists()):
        shutil.rmtree(wd, ignore_errors=True)
        wd.mkdir(parents=True)
        if mix == "sample":
            print(f"simulating 6 days x {a.per_day:,} invocations ...", file=sys.stderr)
            run([fw, "simulate", "--out", str(tel), "--seed", a.seed, "--start", "2026-11-20", "--days", "6",
                 "--invocations-per-day", str(a.per_day), "--attacks-per-class", "60"], stdout=subprocess.DEVNULL)
        else:
            # make_fleet.py writes about 5.2 events per invocation, from 2026-11-20 on.
            events = a.per_day * 6 * 52 // 10
            print(f"generating a fleet of {a.functions:,} functions, 6 days, {events:,} events ...", file=sys.stderr)
            tel.mkdir(parents=True)
            run([sys.executable, str(ROOT / "tests" / "data" / "make_fleet.py"), "--events", str(events),
                 "--seed", a.seed, "--functions", str(a.functions), "--hours", "144",
                 "--out", str(tel / "fleet.jsonl.gz")], stderr=subprocess.DEVNULL)
        print("ingesting ...", file=sys.stderr)
        run([fw, "ingest", "--lake", str(lake), str(tel)], stdout=subprocess.DEVNULL)
        stamp.touch()
    shutil.rmtree(lake / "_models", ignore_errors=True)
    shutil.rmtree(lake / "alerts", ignore_errors=True)
    labels = tel / "_labels.jsonl"
    return lake, labels if mix == "sample" else None


def bench_mix(a, mix: str) -> dict:
    fw = a.fnwatch
    wd = Path(a.workdir) / mix
    lake, labels_file = make_lake(a, mix, wd)
    t0, t1 = "2026-11-20T00:00:00Z", "2026-11-25T00:00:00Z"
    d0, d1 = "2026-11-24T00:00:00Z", "2026-11-26T00:00:00Z"
    train_s = run([fw, "train", "--lake", str(lake), "--from", t0, "--to", t1], stdout=subprocess.DEVNULL)
    alerts = wd / "alerts.jsonl"
    detect_s = run([fw, "detect", "--lake", str(lake), "--from", d0, "--to", d1, "--no-store",
                    "--format", "jsonl", "--output", str(alerts)], stdout=subprocess.DEVNULL)
    peer_out = wd / "peer.json"
    peer_wall = run([sys.executable, "-c", PEER, str(lake), t0, t1, d0, d1, str(peer_out)])
    peer = json.loads(peer_out.read_text())
    n_train, n_detect = peer["train_rows"], peer["detect_rows"]
    label = "simulator" if mix == "sample" else f"fleet of {a.functions:,} functions"

    print(f"\n== mix: {label}; lake {lake}")
    print(f"training window: {n_train:,} invocations; detection window: {n_detect:,} invocations")
    print(f"fnwatch train : {train_s:6.2f} s  ({n_train / train_s:,.0f} invocations/s)")
    print(f"fnwatch detect: {detect_s:6.2f} s  ({n_detect / detect_s:,.0f} invocations/s, lake to alerts file)")
    print(f"peer (DuckDB features + IsolationForest): {peer_wall:6.2f} s wall "
          f"(features {peer['features_s']:.2f} s, fit {peer['fit_s']:.2f} s, score {peer['score_s']:.2f} s); "
          f"{(n_train + n_detect) / peer_wall:,.0f} invocations/s end to end")
    print(f"ratio, peer wall / fnwatch train+detect: {peer_wall / (train_s + detect_s):.2f}x")

    fw_flagged = set()
    kinds = Counter()
    for line in alerts.read_text().splitlines():
        al = json.loads(line)
        if al["severity"] in ("medium", "high", "critical") and al["request_id"]:
            fw_flagged.add(al["request_id"])
            kinds[al["kind"]] += 1
    if labels_file is None:
        # No labelled attacks in the fleet mix (but make_sample.py's scanner
        # payloads in some API Gateway event samples, and each function's rare
        # actions and commands first seen in the window).
        print(f"no labelled attacks in this mix; invocations flagged medium+ per 100k: fnwatch "
              f"{len(fw_flagged) * 100_000 / max(n_detect, 1):.1f} "
              f"({', '.join(f'{k} {v}' for k, v in kinds.most_common())}), "
              f"iforest {len(peer['flagged']) * 100_000 / max(n_detect, 1):.1f}")
    else:
        labels = [json.loads(l) for l in labels_file.read_text().splitlines() if l.strip()]
        attacked = {l["request_id"]: l["class"] for l in labels if l["label"] == "attack"}

        def quality(flagged: set[str]) -> tuple[dict[str, str], float]:
            per = defaultdict(lambda: [0, 0])
            for r, c in attacked.items():
                per[c][0] += 1
                per[c][1] += r in flagged
            fp = len([r for r in flagged if r not in attacked])
            benign = n_detect - len(attacked)
            return {c: f"{v[1]}/{v[0]}" for c, v in sorted(per.items())}, fp * 100_000 / max(benign, 1)

        fw_q, fw_fp = quality(fw_flagged)
        if_q, if_fp = quality(set(peer["flagged"]))
        print(f"{'class':<24} {'fnwatch':>10} {'iforest':>10}")
        for c in sorted(fw_q):
            print(f"{c:<24} {fw_q[c]:>10} {if_q.get(c, '-'):>10}")
        print(f"{'benign flagged /100k':<24} {fw_fp:>10.1f} {if_fp:>10.1f}")
    peer_detect = peer["score_s"] + peer["features_s"] * n_detect / max(n_train + n_detect, 1)
    return {"label": label, "train_ips": n_train / train_s, "detect_ips": n_detect / detect_s,
            "peer_detect_ips": n_detect / peer_detect, "ratio": peer_wall / (train_s + detect_s)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fnwatch", default=str(ROOT / "target" / "rel" / "release" / "fnwatch"))
    ap.add_argument("--per-day", type=int, default=200_000, help="invocations a day (default 200000)")
    ap.add_argument("--workdir", default=str(ROOT / "target" / "bench-models"))
    ap.add_argument("--seed", default="99")
    ap.add_argument("--keep", action="store_true", help="reuse the generated lake of an earlier run")
    ap.add_argument("--mix", default="sample,fleet",
                    help="comma-separated: `sample` (fnwatch simulate, with attacks) and `fleet` "
                         "(tests/data/make_fleet.py, --functions functions, no attacks); default both")
    ap.add_argument("--functions", type=int, default=2000, help="functions in the fleet mix (default 2000)")
    a = ap.parse_args()
    mixes = [m.strip() for m in a.mix.split(",") if m.strip()]
    if not mixes or any(m not in ("sample", "fleet") for m in mixes):
        ap.error("--mix: choose from sample, fleet")
    print(f"machine: {os.cpu_count()} cores")
    results = [bench_mix(a, m) for m in mixes]
    print("\n== both mixes, this run (peer detect: its scoring plus its share of the feature query)")
    for r in results:
        print(f"  {r['label']:<28} train {r['train_ips']:>9,.0f}/s  detect {r['detect_ips']:>9,.0f}/s  "
              f"peer detect {r['peer_detect_ips']:>9,.0f}/s ({r['detect_ips'] / r['peer_detect_ips']:.2f}x)  "
              f"peer wall / fnwatch train+detect {r['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
