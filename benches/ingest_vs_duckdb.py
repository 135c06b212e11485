#!/usr/bin/env python3
"""Ingest benchmark: `fnwatch ingest` against DuckDB's JSON-to-Parquet, on the same file.

    cargo build --release
    python3 benches/ingest_vs_duckdb.py [--events 2000000] [--fnwatch target/release/fnwatch]
                                        [--repeat 3] [--workdir target/bench-ingest] [--keep]
                                        [--skip-fnwatch]

1. Makes (or reuses, when one with the same events, seed and generator exists)
   a plain JSON Lines file of N native events with tests/data/make_sample.py.
2. Times `fnwatch ingest --lake <fresh dir> --no-progress FILE`, then reads the
   event count back with `fnwatch sql`.
3. Times DuckDB (the `duckdb` Python package, in its own process) copying the
   same file, with a typed column for every field of the contract, to one
   zstd Parquet file, then counts its rows.
4. Repeats 2 and 3 `--repeat` times (alternating, so both tools see the same
   machine), and reports each tool's median time and the ratio of the medians
   beside every round's own ratio: a shared 2-core machine drifts by several
   percent between runs, and one round alone can land anywhere in that range.
   Each round first reads the input and the binary once, so neither tool
   pays for reading them from disk.

Each tool runs in its own child process: seconds are the wall time of that
process (time.perf_counter around it, start-up included), peak RSS is that
process's max resident set (GNU `/usr/bin/time -f %M` when present, else a
small Python wrapper that reports getrusage(RUSAGE_CHILDREN)). Bytes on disk
are all files under the lake folder (data, Delta log, everything), and the
Parquet file for DuckDB.

Not the same work: fnwatch also validates every event against the contract,
derives the DNS columns, sorts by (function, time), partitions by date and
commits to a Delta table; DuckDB only parses and writes one file.
Needs: `pip install duckdb`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATORS = {"sample": ROOT / "tests" / "data" / "make_sample.py",
              "fleet": ROOT / "tests" / "data" / "make_fleet.py"}
SEED = 2026

# Every field of the contract's native events (shared/spec/telemetry.md, section 2),
# typed as the lake types them (ingest/src/schema.rs).
DUCKDB_COLUMNS = {
    "type": "VARCHAR",
    "time": "TIMESTAMPTZ",
    "function": "VARCHAR",
    "request_id": "VARCHAR",
    "account": "VARCHAR",
    "region": "VARCHAR",
    "version": "VARCHAR",
    # invocation
    "duration_ms": "DOUBLE",
    "billed_ms": "BIGINT",
    "cpu_ms": "DOUBLE",
    "memory_mb": "BIGINT",
    "max_memory_mb": "BIGINT",
    "init_ms": "DOUBLE",
    "timeout_ms": "BIGINT",
    "status": "VARCHAR",
    "error_type": "VARCHAR",
    "trigger": "VARCHAR",
    "event_bytes": "BIGINT",
    "event": "JSON",
    # dns
    "query": "VARCHAR",
    "qtype": "VARCHAR",
    "rcode": "VARCHAR",
    "answers": "VARCHAR[]",
    # process
    "exe": "VARCHAR",
    "args": "VARCHAR[]",
    "cmdline": "VARCHAR",
    "parent_exe": "VARCHAR",
    # network
    "direction": "VARCHAR",
    "protocol": "VARCHAR",
    "remote_ip": "VARCHAR",
    "remote_port": "INTEGER",
    "remote_host": "VARCHAR",
    "bytes_out": "BIGINT",
    "bytes_in": "BIGINT",
    # file
    "path": "VARCHAR",
    "op": "VARCHAR",
    # api_call
    "service": "VARCHAR",
    "action": "VARCHAR",
    "resource": "VARCHAR",
    "error_code": "VARCHAR",
    # function_config
    "runtime": "VARCHAR",
    "handler": "VARCHAR",
    "role_arn": "VARCHAR",
    "permissions": "VARCHAR[]",
    "triggers": "VARCHAR[]",
    "layers": "VARCHAR[]",
    "code_sha256": "VARCHAR",
}

# Runs in the DuckDB child process: argv = input, output parquet, result json.
DUCKDB_CHILD = r"""
import json, sys, time
import duckdb
src, out, result, sql = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.perf_counter()
con = duckdb.connect()
rows = con.execute(sql).fetchall()
con.close()
copy_s = time.perf_counter() - t0
with open(result, "w") as f:
    json.dump({"copy_seconds": copy_s, "copy_result": rows[0][0] if rows else None,
               "duckdb_version": duckdb.__version__}, f)
"""

DUCKDB_COUNT = r"""
import sys, duckdb
print(duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [sys.argv[1]]).fetchone()[0])
"""

# Fallback peak-RSS wrapper: runs argv[2:], writes ru_maxrss of its children (KiB) to argv[1].
RSS_WRAPPER = r"""
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if sys.platform == "darwin":
    kb //= 1024
open(sys.argv[1], "w").write(str(kb))
sys.exit(rc)
"""


def die(msg: str) -> None:
    print(f"ingest_vs_duckdb: error: {msg}", file=sys.stderr)
    sys.exit(2)


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def duckdb_sql(src: Path, out: Path) -> str:
    cols = ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in DUCKDB_COLUMNS.items())
    return (f"COPY (SELECT * FROM read_json({sql_str(str(src))}, format='newline_delimited', "
            f"columns={{{cols}}})) TO {sql_str(str(out))} (FORMAT parquet, COMPRESSION zstd)")


def gnu_time() -> str | None:
    """/usr/bin/time, if it is GNU time (understands -f and -o)."""
    p = "/usr/bin/time"
    if not os.access(p, os.X_OK):
        return None
    try:
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as tf:
            r = subprocess.run([p, "-f", "%M", "-o", tf.name, "true"], capture_output=True, timeout=10)
            return p if r.returncode == 0 and tf.read().strip().isdigit() else None
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    def __init__(self, seconds: float, rss_kb: int | None, rc: int, log: Path):
        self.seconds, self.rss_kb, self.rc, self.log = seconds, rss_kb, rc, log


def timed(cmd: list[str], log: Path, time_bin: str | None) -> Run:
    """Runs cmd in its own process; wall seconds, peak RSS (KiB), exit code. Output goes to log."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss", delete=False) as tf:
        rss_file = tf.name
    if time_bin:
        wrapped = [time_bin, "-f", "%M", "-o", rss_file] + cmd
    else:
        wrapped = [sys.executable, "-c", RSS_WRAPPER, rss_file] + cmd
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        rc = subprocess.call(wrapped, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
    rss = None
    try:
        # GNU time writes "Command exited with non-zero status N" first when the command fails.
        lines = [ln.strip() for ln in Path(rss_file).read_text().splitlines() if ln.strip()]
        if lines and lines[-1].isdigit():
            rss = int(lines[-1])
    finally:
        os.unlink(rss_file)
    return Run(seconds, rss, rc, log)


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            fp = os.path.join(dirpath, f)
            if not os.path.islink(fp):
                total += os.path.getsize(fp)
    return total


def generator_digest(mix: str) -> str:
    h = hashlib.sha256()
    for g in ([GENERATORS["sample"]] if mix == "sample" else [GENERATORS["sample"], GENERATORS[mix]]):
        h.update(g.read_bytes())
    return h.hexdigest()[:16]


def ensure_input(workdir: Path, events: int, mix: str, functions: int) -> Path:
    """The input file, made once per (mix, events, seed, generator version)."""
    name = f"events-{events}-seed{SEED}" if mix == "sample" else f"fleet{functions}-{events}-seed{SEED}"
    data = workdir / f"{name}.jsonl"
    meta = data.with_suffix(".meta.json")
    want = {"events": events, "seed": SEED, "generator_sha256": generator_digest(mix)}
    if data.exists() and meta.exists():
        try:
            have = json.loads(meta.read_text())
        except ValueError:
            have = {}
        if all(have.get(k) == v for k, v in want.items()) and have.get("bytes") == data.stat().st_size:
            print(f"input: reusing {data} ({have['bytes']:,} bytes)")
            return data
    cmd = [sys.executable, str(GENERATORS[mix]), "--events", str(events), "--seed", str(SEED), "--out", str(data)]
    if mix == "fleet":
        cmd += ["--functions", str(functions)]
    print(f"input: generating {data}\n  $ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        data.unlink(missing_ok=True)
        die(f"{GENERATORS[mix].name} failed (exit {r.returncode}):\n{r.stderr}")
    for ln in r.stderr.splitlines():
        if ln.startswith(("native events", "average line length")):
            print(f"  {ln}")
    print(f"  took {time.perf_counter() - t0:.1f} s")
    want["bytes"] = data.stat().st_size
    meta.write_text(json.dumps(want) + "\n")
    return data


def parse_count(csv_text: str) -> int | None:
    """The single number in `fnwatch sql --format csv` output (a header row, then the value)."""
    rows = [r for r in csv.reader(io.StringIO(csv_text)) if r]
    for row in reversed(rows):
        if len(row) == 1:
            v = row[0].strip().strip('"')
            if v.isdigit():
                return int(v)
    return None


def bench_fnwatch(fnwatch: Path, data: Path, workdir: Path, time_bin: str | None) -> dict:
    lake = workdir / "lake-fnwatch"
    if lake.exists():
        shutil.rmtree(lake)
    cmd = [str(fnwatch), "ingest", "--lake", str(lake), "--no-progress", str(data)]
    print(f"\nfnwatch:\n  $ {shlex.join(cmd)}", flush=True)
    run = timed(cmd, workdir / "fnwatch-ingest.log", time_bin)
    if run.rc != 0:
        die(f"fnwatch ingest exited with {run.rc}; last lines of {run.log}:\n{tail(run.log)}")
    print("  " + tail(run.log, 12).replace("\n", "\n  "))
    count_cmd = [str(fnwatch), "sql", "--lake", str(lake), "--format", "csv", "SELECT count(*) FROM events"]
    print(f"  $ {shlex.join(count_cmd)}", flush=True)
    r = subprocess.run(count_cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"fnwatch sql exited with {r.returncode}:\n{r.stderr.strip() or r.stdout.strip()}")
    n = parse_count(r.stdout)
    if n is None:
        die(f"could not read a count from fnwatch sql output:\n{r.stdout}")
    return {"tool": "fnwatch", "events": n, "seconds": run.seconds, "bytes": disk_bytes(lake),
            "rss_kb": run.rss_kb, "out": lake}


def bench_duckdb(data: Path, workdir: Path, time_bin: str | None) -> dict:
    out = workdir / "duckdb.parquet"
    out.unlink(missing_ok=True)
    result = workdir / "duckdb-result.json"
    result.unlink(missing_ok=True)
    sql = duckdb_sql(data, out)
    print(f"\nDuckDB (python duckdb, {sys.executable}):\n  {sql}", flush=True)
    cmd = [sys.executable, "-c", DUCKDB_CHILD, str(data), str(out), str(result), sql]
    run = timed(cmd, workdir / "duckdb.log", time_bin)
    if run.rc != 0:
        die(f"DuckDB exited with {run.rc}; last lines of {run.log}:\n{tail(run.log)}")
    info = json.loads(result.read_text())
    r = subprocess.run([sys.executable, "-c", DUCKDB_COUNT, str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"counting the parquet rows failed:\n{r.stderr}")
    n = int(r.stdout.strip())
    print(f"  duckdb {info['duckdb_version']}: COPY itself took {info['copy_seconds']:.2f} s "
          f"(process: {run.seconds:.2f} s), wrote {info['copy_result']} rows")
    return {"tool": "DuckDB", "events": n, "seconds": run.seconds, "bytes": disk_bytes(out),
            "rss_kb": run.rss_kb, "out": out}


def median_run(runs: list[dict]) -> dict:
    """A middle run with the median time of all runs (the mean of the two middle
    ones for an even count) and the largest peak RSS of all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    mid = dict(ordered[(len(ordered) - 1) // 2])
    mid["seconds"] = statistics.median(r["seconds"] for r in runs)
    rss = [r["rss_kb"] for r in runs if r["rss_kb"] is not None]
    mid["rss_kb"] = max(rss) if rss else None
    # A round that lost events must not hide behind the others.
    mid["events"] = min(r["events"] for r in runs)
    return mid


def fmt_int(n: float | None) -> str:
    return "-" if n is None else f"{n:,.0f}"


def warm_page_cache(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            buf = bytearray(8 << 20)
            while f.readinto(buf):
                pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2_000_000, help="native events in the input (default 2000000)")
    ap.add_argument("--fnwatch", help="the fnwatch binary (default: target/release/fnwatch of this repository)")
    ap.add_argument("--workdir", help="input file, lake, parquet and logs (default: target/bench-ingest of this repository)")
    ap.add_argument("--keep", action="store_true", help="keep the lake and the parquet file afterwards")
    ap.add_argument("--skip-fnwatch", action="store_true", help="only run DuckDB (to test this script)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of both tools, alternating; figures are each tool's median (default 3)")
    ap.add_argument("--mix", default="sample,fleet",
                    help="the shapes of input, comma-separated: `sample` (tests/data/make_sample.py: 8 functions "
                         "in one account, a third api_call events) and `fleet` (tests/data/make_fleet.py: "
                         "--functions functions in 25 accounts, dns 35%%, network 30%%, invocation 20%%, file 8%%, "
                         "api_call 5%%, process 2%%); default both, in that order")
    ap.add_argument("--functions", type=int, default=2000, help="functions in the fleet mix (default 2000)")
    a = ap.parse_args()
    a.mix = [m.strip() for m in a.mix.split(",") if m.strip()]
    bad = [m for m in a.mix if m not in GENERATORS]
    if bad or not a.mix:
        ap.error(f"--mix: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(GENERATORS)}")
    if a.functions < 1:
        ap.error("--functions must be at least 1")
    if a.events < 1:
        ap.error("--events must be at least 1")
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")

    print(f"command: {shlex.join([sys.executable] + sys.argv)}")
    try:
        import duckdb  # noqa: F401  (only to fail early; the work runs in a child process)
    except ImportError:
        die(f"the python `duckdb` package is not installed for {sys.executable}; "
            f"install it with: {shlex.quote(sys.executable)} -m pip install duckdb")

    # Defaults are in this repository; paths given on the command line are as usual relative to the cwd.
    fnwatch = Path(a.fnwatch).resolve() if a.fnwatch else ROOT / "target" / "release" / "fnwatch"
    if not a.skip_fnwatch and not (fnwatch.is_file() and os.access(fnwatch, os.X_OK)):
        die(f"no fnwatch binary at {fnwatch}; build it with `cargo build --release` "
            f"or pass --fnwatch PATH (or --skip-fnwatch)")
    workdir = Path(a.workdir).resolve() if a.workdir else ROOT / "target" / "bench-ingest"
    workdir.mkdir(parents=True, exist_ok=True)

    time_bin = gnu_time()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}; "
          f"peak RSS via {time_bin + ' -f %M' if time_bin else 'getrusage(RUSAGE_CHILDREN) wrapper'}")

    summary = []
    status = 0
    for mix in a.mix:
        label = mix if mix == "sample" else f"fleet of {a.functions:,} functions"
        print(f"\n==== mix: {label}", flush=True)
        data = ensure_input(workdir, a.events, mix, a.functions)
        st, row = bench_mix(a, data, label, fnwatch, workdir, time_bin)
        status = max(status, st)
        summary.append(row)
    if len(summary) > 1 and not a.skip_fnwatch:
        print("\n==== both mixes, this run")
        for label, ratio_eps, ratio_bpe, f_eps, f_rss in summary:
            print(f"  {label:<28} fnwatch {fmt_int(f_eps)} events/s, {ratio_eps:.2f}x DuckDB's events/s, "
                  f"{ratio_bpe:.2f}x its bytes/event, peak RSS {f_rss}")
    return status


def bench_mix(a, data: Path, label: str, fnwatch: Path, workdir: Path, time_bin: str | None):
    input_bytes = data.stat().st_size
    rounds = []
    for i in range(a.repeat):
        print(f"\n== {label}: round {i + 1} of {a.repeat}", flush=True)
        # The input (and the binary) into the page cache first, so the tool
        # that runs first does not pay for reading them from disk: the kernel
        # may have dropped them since the last use.
        warm_page_cache([data] + ([] if a.skip_fnwatch else [fnwatch]))
        one = []
        if not a.skip_fnwatch:
            one.append(bench_fnwatch(fnwatch, data, workdir, time_bin))
        one.append(bench_duckdb(data, workdir, time_bin))
        rounds.append(one)
    results = [median_run([r[k] for r in rounds]) for k in range(len(rounds[0]))]

    print(f"\nmix {label}; input: {a.events:,} events, {input_bytes:,} bytes "
          f"({input_bytes / a.events:.0f} bytes/event)")
    if a.repeat > 1:
        print(f"seconds: each tool's median of {a.repeat} rounds; peak RSS: the largest of them")
    print()
    hdr = ["tool", "events", "seconds", "events/s", "bytes on disk", "bytes/event", "peak RSS MB"]
    rows = []
    for r in results:
        r["eps"] = r["events"] / r["seconds"] if r["seconds"] > 0 else float("nan")
        r["bpe"] = r["bytes"] / r["events"] if r["events"] else float("nan")
        rows.append([r["tool"], fmt_int(r["events"]), f"{r['seconds']:.2f}", fmt_int(r["eps"]),
                     fmt_int(r["bytes"]), f"{r['bpe']:.1f}",
                     "-" if r["rss_kb"] is None else f"{r['rss_kb'] / 1024:.0f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(hdr)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(hdr, widths))))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))

    status = 0
    for r in results:
        if r["events"] != a.events:
            print(f"\nWARNING: {r['tool']} holds {r['events']:,} events, the input has {a.events:,}", file=sys.stderr)
            status = 1
    row = None
    if len(results) == 2:
        f, d = results
        if a.repeat > 1:
            print()
            for i, (rf, rd) in enumerate(rounds, 1):
                print(f"  round {i}: fnwatch {rf['seconds']:.2f} s, DuckDB {rd['seconds']:.2f} s, "
                      f"events/s {rd['seconds'] / rf['seconds']:.2f}x")
        print(f"\nfnwatch / DuckDB: events/s {f['eps'] / d['eps']:.2f}x, bytes/event {f['bpe'] / d['bpe']:.2f}x"
              + ("" if f["rss_kb"] is None or d["rss_kb"] is None else
                 f", peak RSS {f['rss_kb'] / d['rss_kb']:.2f}x"))
        row = (label, f["eps"] / d["eps"], f["bpe"] / d["bpe"], f["eps"],
               "-" if f["rss_kb"] is None else f"{f['rss_kb'] / 1024:.0f} MB")

    if not a.keep:
        for r in results:
            p = r["out"]
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        (workdir / "duckdb-result.json").unlink(missing_ok=True)
    else:
        print("\nkept: " + ", ".join(str(r["out"]) for r in results))
    return status, row


if __name__ == "__main__":
    sys.exit(main())
