#!/usr/bin/env python3
"""Hunts benchmark: every saved hunt and the full report in fnwatch (DataFusion)
against the same SQL in DuckDB over the same Parquet files, in one run.

    cargo build --release
    python3 benches/hunts_vs_duckdb.py [--events 10000000] [--fnwatch target/release/fnwatch]
        [--days 8] [--seed 7] [--repeat 3] [--workdir target/bench-hunts] [--keep] [--only NAME,...]

1. The lake (not timed; made once per (events, seed, days), reused with --keep):
   `fnwatch simulate` writes --days days from 2026-11-01 with about
   events / (days x 4.4) invocations a day (the simulator writes about 4.4
   events per invocation, log lines included; attacks on the last day),
   `fnwatch ingest --no-progress` loads them, `fnwatch train` learns days
   1..D-1 and `fnwatch detect` scores day D, so the `alerts` table the report
   reads exists. The telemetry files are deleted after ingest.
   The lake is freshly written and never compacted, so every Parquet file
   under events/ (and dead_letters/, alerts/) is live. This is checked before
   timing anything: the files on disk must be exactly the live files of each
   table's Delta log, and DuckDB's row count of each table must equal
   `fnwatch sql "SELECT count(*) FROM ..."`; otherwise the run aborts.
   (`fnwatch compact` would leave the removed files on disk, where a plain
   read_parquet would read them twice.)
2. For each hunt of queries/hunts/*.sql:
   fnwatch: `fnwatch sql --lake LAKE --file HUNT.sql --format csv --output /dev/null
   --param ...`. DuckDB: a fresh `python3 -c CHILD` process that imports
   duckdb, sets TimeZone = 'UTC', creates `events`, `dead_letters` and `alerts`
   as views over `read_parquet('LAKE/<table>/**/*.parquet', hive_partitioning =
   true, hive_types = {'date': 'VARCHAR'})` (the partition column is a string in
   the Delta schema; a table with no files yet becomes an empty view with the
   Delta schema's columns), runs queries/views.sql unchanged, then the hunt and
   fetches every row (fetchall).
3. The full report: `fnwatch report --lake LAKE --from D --to D+1 --baseline -7d
   --out DIR` (which also renders HTML with SVG charts, Markdown and JSON)
   against one DuckDB process running all of queries/reports/*.sql. If the
   binary has no `report` subcommand, the fnwatch side is the sum of the report
   queries run one by one through `fnwatch sql` (said in the output).

Parameters: "now" is the end of the simulated period (FNWATCH_NOW is set to it
for every fnwatch command). Relative defaults of a hunt's `-- @param` lines
(-7d, -24h, ...) are resolved against it here and passed as explicit --param
values; the DuckDB text is made by the same substitution as
analytics/src/params.rs (`${name}` -> timestamp string, number as is, else a
quoted string), then full-line comments and the final `;` are dropped as
`fnwatch sql` does. Report queries get from / to / baseline_from as
`fnwatch report` formats them (RFC 3339 with milliseconds).

Dialect: DuckDB runs the SQL as it is except for the rewrites listed in
REWRITES (printed with the queries they touched).

Timing: seconds are the wall time of the whole process on each side (process
start-up, opening the lake / importing duckdb and creating the views
included), the best of --repeat runs, the two sides alternating. The
"(start-up)" row times `SELECT 1` the same way; it is not counted in the
targets. "DuckDB in-proc" is the time inside the DuckDB process after the
import (connect, views, query, fetch). Both engines use their default thread
counts (one per core).

Checks: before timing, one untimed run of each side: fnwatch writes the result
as Parquet (`--format parquet`), the DuckDB child reads it and compares it with
its own result: the row counts (a mismatch is an error: exit 1) and the values
as multisets (numbers to 12 significant digits, timestamps in UTC, NULLs in
lists ignored for order; a difference is reported, not an error; "rounding"
when the only differences are one unit in the last decimal of a number, as
round() of a binary x.x5 gives: DataFusion rounds x * 10^d half away from
zero, DuckDB the exact value). For the report, the row count of each section
of fnwatch's JSON report is compared with DuckDB's, and each report query is
also run through `fnwatch sql` for the value check.

Targets (from the issue): every hunt within 1.5x DuckDB's time and the median
hunt faster than DuckDB. Missing them is not an error. Results are also
written to WORKDIR/results.json. Needs: `pip install duckdb`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
HUNTS = ROOT / "queries" / "hunts"
REPORTS = ROOT / "queries" / "reports"
VIEWS = ROOT / "queries" / "views.sql"
START = dt.date(2026, 11, 1)
EVENTS_PER_INVOCATION = 4.4  # measured: 320,789 events from 72,998 invocations (seed 7, 8 days)
TABLES = ("events", "dead_letters", "alerts")
STARTUP = "(start-up)"
SAME = {None: "-", True: "yes", False: "NO", "rounding": "rounding"}
REPORT = "full report"

# DuckDB rewrites: (what, regex, replacement, why). Applied to the DuckDB text only.
REWRITES = [
    ("regexp_like(s, p) -> regexp_matches(s, p)", r"\bregexp_like\s*\(", "regexp_matches(",
     "DuckDB has no regexp_like; regexp_matches is its unanchored match (same RE2 syntax)"),
]

# The DuckDB side, in its own process: argv[1] = spec JSON
# {"setup": [sql], "queries": [[name, sql]], "check": {name: fnwatch_result.parquet} | null,
#  "values": bool (return the rows as text too)}.
# Prints {"seconds", "duckdb_version", "threads", "queries": {name: {"rows", "columns", "check"?}}}.
CHILD = r'''
import json, sys, time
import duckdb
spec = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
con = duckdb.connect()
for s in spec["setup"]:
    con.execute(s)
out = {"queries": {}}
results = {}
for name, sql in spec["queries"]:
    cur = con.execute(sql)
    rows = cur.fetchall()
    out["queries"][name] = {"rows": len(rows), "columns": [d[0] for d in cur.description]}
    if spec.get("values"):
        out["queries"][name]["values"] = [[str(x) for x in r] for r in rows]
    if spec.get("check"):
        results[name] = rows
out["seconds"] = time.perf_counter() - t0
out["duckdb_version"] = duckdb.__version__
out["threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]
if spec.get("check"):
    import datetime, decimal
    def canon(v):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float, decimal.Decimal)):
            f = float(v)
            if f == f and abs(f) < 1e15 and f == int(f):
                return ("n", str(int(f)))
            return ("n", format(f, ".12g"))
        if isinstance(v, datetime.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
            return v.isoformat()
        if isinstance(v, (datetime.date, datetime.time, datetime.timedelta)):
            return str(v)
        if isinstance(v, (list, tuple)):
            items = [canon(x) for x in v]
            # DataFusion's array_sort puts NULLs first, DuckDB's last: compare without them.
            return ("list", tuple(x for x in items if x is not None), sum(x is None for x in items))
        if isinstance(v, dict):
            return ("struct", tuple(sorted((k, canon(x)) for k, x in v.items())))
        return repr(v)
    for name, path in spec["check"].items():
        q = out["queries"][name]
        cur = con.execute("SELECT * FROM read_parquet(?)", [path])
        theirs = cur.fetchall()
        their_cols = [d[0] for d in cur.description]
        mine = sorted((tuple(canon(x) for x in r) for r in results[name]), key=repr)
        other = sorted((tuple(canon(x) for x in r) for r in theirs), key=repr)
        c = {"fnwatch_rows": len(theirs), "same_values": mine == other,
             "same_columns": their_cols == q["columns"]}
        if mine != other and len(mine) == len(other):
            # Differences only in the last decimal of a number (e.g. round(x, 1) of a binary
            # x.x5: DataFusion rounds x * 10, DuckDB the exact value) count as rounding.
            def near(a, b):
                if a == b:
                    return True
                if isinstance(a, tuple) and isinstance(b, tuple) and a[:1] == b[:1] == ("n",):
                    dec = max(len(t.split(".")[1]) if "." in t and "e" not in t else 0 for t in (a[1], b[1]))
                    return abs(float(a[1]) - float(b[1])) <= 10.0 ** -dec * 1.000001
                if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
                    return all(near(x, y) for x, y in zip(a, b))
                return False
            if all(near(x, y) for x, y in zip(mine, other)):
                c["same_values"] = "rounding"
        if not c["same_columns"]:
            c["fnwatch_columns"] = their_cols
        if mine != other:
            a, b = set(map(repr, mine)), set(map(repr, other))
            c["only_duckdb"] = sorted(a - b)[:2]
            c["only_fnwatch"] = sorted(b - a)[:2]
        q["check"] = c
con.close()
json.dump(out, sys.stdout)
'''


class BenchError(Exception):
    pass


def die(msg: str) -> None:
    print(f"hunts_vs_duckdb: error: {msg}", file=sys.stderr)
    sys.exit(2)


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# ---- analytics/src/params.rs, mirrored --------------------------------------------------------

def declared(sql: str) -> list[tuple[str, str]]:
    """The `-- @param name = default  doc` lines: (name, default)."""
    out = []
    for line in sql.splitlines():
        rest = line.strip()
        if not rest.startswith("-- @param "):
            continue
        rest = rest[len("-- @param "):]
        if "=" not in rest:
            continue
        name, rest = rest.split("=", 1)
        rest = rest.strip()
        default = rest.split("  ", 1)[0].strip() if "  " in rest else rest
        out.append((name.strip(), default))
    return out


def used(sql: str) -> list[str]:
    out: list[str] = []
    rest = sql
    while "${" in rest:
        after = rest[rest.index("${") + 2:]
        if "}" not in after:
            break
        j = after.index("}")
        name = after[:j].strip()
        if name not in out:
            out.append(name)
        rest = after[j + 1:]
    return out


def relative_us(v: str) -> int | None:
    if not v.startswith("-"):
        return None
    body = v[1:]
    m = re.match(r"[0-9]*", body)
    num, unit = body[:m.end()], body[m.end():]
    if not unit or not num:
        return None
    units = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}
    if unit not in units:
        return None
    return -int(num) * units[unit]


def is_rust_f64(v: str) -> bool:
    # Rust's f64::from_str: no whitespace, no `_`; Python's float() otherwise agrees on these inputs.
    if not v or v != v.strip() or "_" in v:
        return False
    try:
        float(v)
        return True
    except ValueError:
        return False


def ts_us_text(us: int) -> str:
    """chrono's %Y-%m-%dT%H:%M:%S%.6fZ."""
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def literal(value: str, now_us: int) -> str:
    off = relative_us(value)
    if off is not None:
        return "'" + ts_us_text(now_us + off) + "'"
    if is_rust_f64(value) and not value.startswith("+"):
        return value
    return sql_str(value)


def substitute(sql: str, given: list[tuple[str, str]], now_us: int) -> str:
    values = dict(declared(sql))
    u = used(sql)
    for k, v in given:
        if k not in u:
            raise BenchError(f"parameter `{k}` is not used by the query (it takes: {', '.join(u) or 'none'})")
        values[k] = v
    out, rest = [], sql
    while "${" in rest:
        i = rest.index("${")
        out.append(rest[:i])
        after = rest[i + 2:]
        if "}" not in after:
            out.append(rest[i:])
            rest = ""
            break
        j = after.index("}")
        name = after[:j].strip()
        if name not in values:
            raise BenchError(f"the query needs parameter `{name}`")
        out.append(literal(values[name], now_us))
        rest = after[j + 1:]
    out.append(rest)
    return "".join(out)


def strip_comments_and_semicolon(q: str) -> str:
    body = [ln for ln in q.splitlines() if not ln.lstrip().startswith("--")]
    return "\n".join(body).strip().rstrip(";").strip()


def rewrite_for_duckdb(sql: str) -> tuple[str, list[str]]:
    applied = []
    for what, pattern, repl, _why in REWRITES:
        sql, n = re.subn(pattern, repl, sql)
        if n:
            applied.append(what)
    return sql, applied


# ---- the lake --------------------------------------------------------------------------------

def run_checked(cmd: list[str], env: dict, what: str, log: Path | None = None) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if log is not None:
        log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise BenchError(f"{what} exited with {r.returncode}:\n  $ {shlex.join(cmd)}\n"
                         + "\n".join((r.stderr or r.stdout).strip().splitlines()[-15:]))
    return r.stdout


def delta_type(t) -> str:
    simple = {"string": "VARCHAR", "long": "BIGINT", "integer": "INTEGER", "short": "SMALLINT",
              "byte": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN",
              "timestamp": "TIMESTAMPTZ", "timestamp_ntz": "TIMESTAMP", "date": "DATE", "binary": "BLOB"}
    if isinstance(t, str):
        if t in simple:
            return simple[t]
        m = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", t)
        if m:
            return f"DECIMAL({m.group(1)}, {m.group(2)})"
        raise BenchError(f"Delta type {t!r} is not mapped to DuckDB")
    if t.get("type") == "array":
        return delta_type(t["elementType"]) + "[]"
    if t.get("type") == "struct":
        return "STRUCT(" + ", ".join(f'"{f["name"]}" {delta_type(f["type"])}' for f in t["fields"]) + ")"
    if t.get("type") == "map":
        return f"MAP({delta_type(t['keyType'])}, {delta_type(t['valueType'])})"
    raise BenchError(f"Delta type {t!r} is not mapped to DuckDB")


def delta_state(table_dir: Path) -> dict:
    """Replays a Delta table's log: schema, partition columns, live data files (relative paths)."""
    log = table_dir / "_delta_log"
    live: set[str] = set()
    meta = None
    after = -1
    last_cp = log / "_last_checkpoint"
    if last_cp.exists():
        import duckdb
        cp = json.loads(last_cp.read_text())
        v, parts = cp["version"], cp.get("parts")
        files = ([str(log / f"{v:020}.checkpoint.{i:010}.{parts:010}.parquet") for i in range(1, parts + 1)]
                 if parts else [str(log / f"{v:020}.checkpoint.parquet")])
        con = duckdb.connect()
        live = {unquote(r[0]) for r in con.execute(
            "SELECT add.path FROM read_parquet(?, union_by_name = true) WHERE add.path IS NOT NULL",
            [files]).fetchall()}
        m = con.execute("SELECT metaData.schemaString, metaData.partitionColumns FROM read_parquet(?, "
                        "union_by_name = true) WHERE metaData.schemaString IS NOT NULL", [files]).fetchall()
        if m:
            meta = {"schemaString": m[-1][0], "partitionColumns": list(m[-1][1])}
        con.close()
        after = v
    for f in sorted(log.glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1):
        if not f.stem.isdigit() or int(f.stem) <= after:
            continue
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            a = json.loads(line)
            if "add" in a:
                live.add(unquote(a["add"]["path"]))
            elif "remove" in a:
                live.discard(unquote(a["remove"]["path"]))
            elif "metaData" in a:
                meta = a["metaData"]
    if meta is None:
        raise BenchError(f"no table metadata in {log}")
    fields = json.loads(meta["schemaString"])["fields"]
    on_disk = {p.relative_to(table_dir).as_posix() for p in table_dir.rglob("*.parquet")
               if "_delta_log" not in p.relative_to(table_dir).parts}
    return {"columns": [(f["name"], delta_type(f["type"])) for f in fields],
            "partitions": list(meta.get("partitionColumns") or []), "live": live, "on_disk": on_disk}


def duckdb_setup(lake: Path) -> tuple[list[str], dict]:
    """SET TimeZone, one view per table (read_parquet, or empty with the Delta columns), views.sql."""
    setup = ["SET TimeZone = 'UTC'", "SET enable_progress_bar = false"]
    tables = {}
    for t in TABLES:
        tdir = lake / t
        if not (tdir / "_delta_log").is_dir():
            tables[t] = {"state": "missing"}
            continue
        st = delta_state(tdir)
        if st["on_disk"] != st["live"]:
            extra, missing = st["on_disk"] - st["live"], st["live"] - st["on_disk"]
            raise BenchError(
                f"{tdir}: the Parquet files on disk are not the table's live files "
                f"({len(extra)} not live, e.g. {sorted(extra)[:2]}; {len(missing)} live but missing, "
                f"e.g. {sorted(missing)[:2]}). read_parquet would read the wrong data: the lake must be "
                f"freshly written and never compacted; run again without --keep.")
        types = dict(st["columns"])
        if st["live"]:
            opts = "hive_partitioning = true"
            if st["partitions"]:
                opts += ", hive_types = {" + ", ".join(
                    f"{sql_str(p)}: {sql_str(types.get(p, 'VARCHAR'))}" for p in st["partitions"]) + "}"
            setup.append(f"CREATE VIEW {t} AS SELECT * FROM read_parquet("
                         f"{sql_str(str(tdir) + '/**/*.parquet')}, {opts})")
            tables[t] = {"state": "parquet", "files": len(st["live"])}
        else:
            cols = ", ".join(f'CAST(NULL AS {ty}) AS "{n}"' for n, ty in st["columns"])
            setup.append(f"CREATE VIEW {t} AS SELECT {cols} WHERE false")
            tables[t] = {"state": "empty (no files: an empty view with the Delta schema's columns)", "files": 0}
    setup.append(VIEWS.read_text())
    return setup, tables


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ensure_lake(fw: str, workdir: Path, events: int, seed: int, days: int, keep: bool, env: dict) -> tuple[Path, dict]:
    per_day = max(1, round(events / (days * EVENTS_PER_INVOCATION)))
    home = workdir / f"lake-{events}-seed{seed}-days{days}"
    lake, stamp = home / "lake", home / "made.json"
    want = {"events_target": events, "seed": seed, "days": days, "start": START.isoformat(),
            "invocations_per_day": per_day}
    if keep and stamp.exists() and lake.is_dir():
        try:
            have = json.loads(stamp.read_text())
        except ValueError:
            have = {}
        if all(have.get(k) == v for k, v in want.items()):
            print(f"lake: reusing {lake} (--keep)", flush=True)
            return lake, have
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    tel = home / "telemetry"
    end = START + dt.timedelta(days=days)
    last = end - dt.timedelta(days=1)
    steps = [
        ("simulate", [fw, "simulate", "--out", str(tel), "--seed", str(seed), "--start", START.isoformat(),
                      "--days", str(days), "--invocations-per-day", str(per_day)]),
        ("ingest", [fw, "ingest", "--lake", str(lake)]
         + (["--no-progress"] if "--no-progress" in run_checked([fw, "ingest", "--help"], env, "ingest --help")
            else []) + [str(tel)]),
        ("train", [fw, "train", "--lake", str(lake), "--from", START.isoformat(), "--to", last.isoformat()]),
        ("detect", [fw, "detect", "--lake", str(lake), "--from", last.isoformat(), "--to", end.isoformat(),
                    "--output", os.devnull]),
    ]
    timings = {}
    for name, cmd in steps:
        print(f"lake: {name}\n  $ {shlex.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        out = run_checked(cmd, env, f"fnwatch {name}", home / f"{name}.log")
        timings[name] = round(time.perf_counter() - t0, 2)
        keep_lines = [ln for ln in out.splitlines() if ln.startswith(("Wrote ", "ingested ", "Stored ", "lake: "))]
        for ln in keep_lines[:3]:
            print(f"  {ln}")
        print(f"  ({timings[name]:.1f} s)", flush=True)
        if name == "ingest":
            shutil.rmtree(tel, ignore_errors=True)
    have = dict(want, setup_seconds=timings)
    stamp.write_text(json.dumps(have, indent=1) + "\n")
    return lake, have


# ---- running the two sides -------------------------------------------------------------------

def run_timed(cmd: list[str], env: dict, stdout: Path, stderr: Path) -> tuple[float, int]:
    with open(stdout, "wb") as fo, open(stderr, "wb") as fe:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env)
        return time.perf_counter() - t0, rc


def tail(path: Path, n: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no output)"


class Item:
    """One row of the table: a hunt, the report, or the start-up reference."""

    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind
        self.fn_cmds: list[list[str]] = []      # timed fnwatch processes (summed when several)
        self.fn_check_cmds: list[tuple[str, list[str], Path]] = []  # (query, cmd, parquet out)
        self.duck_queries: list[tuple[str, str]] = []
        self.rewrites: list[str] = []
        self.fn_times: list[float] = []
        self.duck_times: list[float] = []
        self.duck_inproc: list[float] = []
        self.fn_rows: int | None = None
        self.duck_rows: int | None = None
        self.same_values: bool | str | None = None  # True, False or "rounding"
        self.notes: list[str] = []
        self.error: str | None = None
        self.mismatch = False
        self.report_out: Path | None = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000, help="about this many events in the lake (default 10000000)")
    ap.add_argument("--days", type=int, default=8, help="simulated days (default 8; at least 2)")
    ap.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per side; the best counts (default 3)")
    ap.add_argument("--fnwatch", help="the fnwatch binary (default: target/release/fnwatch of this repository)")
    ap.add_argument("--workdir", help="lake, logs and results.json (default: target/bench-hunts of this repository)")
    ap.add_argument("--keep", action="store_true", help="keep the lake, and reuse one of the same events/seed/days")
    ap.add_argument("--only", help="comma-separated hunt names (file stems) to run; `report` for the report")
    a = ap.parse_args()
    if a.events < 1000 or a.days < 2 or a.repeat < 1:
        ap.error("--events must be at least 1000, --days at least 2, --repeat at least 1")

    command = shlex.join([sys.executable] + sys.argv)
    print(f"command: {command}")
    try:
        import duckdb
    except ImportError:
        die(f"the python `duckdb` package is not installed for {sys.executable}; "
            f"install it with: {shlex.quote(sys.executable)} -m pip install duckdb")
    fw_path = Path(a.fnwatch).resolve() if a.fnwatch else ROOT / "target" / "release" / "fnwatch"
    if not (fw_path.is_file() and os.access(fw_path, os.X_OK)):
        die(f"no fnwatch binary at {fw_path}; build it with `cargo build --release` or pass --fnwatch PATH")
    fw = str(fw_path)
    workdir = Path(a.workdir).resolve() if a.workdir else ROOT / "target" / "bench-hunts"
    workdir.mkdir(parents=True, exist_ok=True)
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()

    end = START + dt.timedelta(days=a.days)
    end_dt = dt.datetime(end.year, end.month, end.day)
    now_us = (end_dt - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    env = dict(os.environ, FNWATCH_NOW=end_dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    env.pop("RUST_LOG", None)
    only = {s.strip() for s in a.only.split(",")} if a.only else None

    try:
        fw_version = run_checked([fw, "--version"], env, "fnwatch --version").strip()
        print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
              f"duckdb {duckdb.__version__}, {fw_version} ({fw})", flush=True)
        lake, made = ensure_lake(fw, workdir, a.events, a.seed, a.days, a.keep, env)

        # -- the lake is what read_parquet sees -----------------------------------------------
        setup, table_info = duckdb_setup(lake)
        count_sql = "SELECT " + ", ".join(
            f"(SELECT count(*) FROM {t}) AS {t}" for t in TABLES if table_info[t]["state"] != "missing")
        fn_counts = run_checked([fw, "sql", "--lake", str(lake), "--format", "json", count_sql], env,
                                "fnwatch sql (row counts)")
        fn_counts = json.loads(fn_counts)[0]
        spec = runs / "counts.json"
        spec.write_text(json.dumps({"setup": setup, "queries": [["counts", count_sql]], "check": None,
                                    "values": True}))
        r = subprocess.run([sys.executable, "-c", CHILD, str(spec)], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise BenchError(f"DuckDB could not read the lake:\n{r.stderr.strip()[-2000:]}")
        duck_counts = dict(zip([t for t in TABLES if table_info[t]["state"] != "missing"],
                               json.loads(r.stdout)["queries"]["counts"]["values"][0]))
        for t, n in duck_counts.items():
            if int(fn_counts[t]) != int(n):
                raise BenchError(f"`{t}`: fnwatch counts {int(fn_counts[t]):,} rows, DuckDB's read_parquet "
                                 f"{int(n):,}: the Parquet files are not the table (compacted lake?); "
                                 f"run again without --keep")
        n_events = int(fn_counts["events"])
        lake_files = sum(len(list((lake / t).rglob("*.parquet"))) for t in TABLES if (lake / t).is_dir())
        print(f"lake: {lake}: {n_events:,} events ({made['days']} days x {made['invocations_per_day']:,} "
              f"invocations), " + ", ".join(f"{t} {int(duck_counts[t]):,} rows/"
                                            f"{table_info[t].get('files', 0)} files" for t in duck_counts)
              + f", {dir_bytes(lake) / 1e6:,.1f} MB; row counts of fnwatch and read_parquet agree", flush=True)
        for t, info in table_info.items():
            if info["state"] not in ("parquet",):
                print(f"  note: `{t}` in DuckDB: {info['state']}")

        # -- what to run ----------------------------------------------------------------------
        items: list[Item] = []
        if only is None:
            it = Item(STARTUP, "reference")
            it.fn_cmds = [[fw, "sql", "--lake", str(lake), "--format", "csv", "--output", os.devnull, "SELECT 1"]]
            it.duck_queries = [(STARTUP, "SELECT 1")]
            items.append(it)
        hunt_params: dict[str, dict] = {}
        for f in sorted(HUNTS.glob("*.sql")):
            if only is not None and f.stem not in only:
                continue
            text = f.read_text()
            given = []
            for name, default in declared(text):
                off = relative_us(default)
                if off is not None:
                    given.append((name, ts_us_text(now_us + off)))
            hunt_params[f.stem] = {**dict(declared(text)), **dict(given)}
            it = Item(f.stem, "hunt")
            pargs = [x for k, v in given for x in ("--param", f"{k}={v}")]
            base = [fw, "sql", "--lake", str(lake), "--file", str(f)]
            it.fn_cmds = [base + ["--format", "csv", "--output", os.devnull] + pargs]
            out = runs / f"{f.stem}.fnwatch.parquet"
            it.fn_check_cmds = [(f.stem, base + ["--format", "parquet", "--output", str(out)] + pargs, out)]
            sql, it.rewrites = rewrite_for_duckdb(strip_comments_and_semicolon(substitute(text, given, now_us)))
            it.duck_queries = [(f.stem, sql)]
            items.append(it)

        last = end_dt - dt.timedelta(days=1)
        ms = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731  (fnwatch's rfc3339_us)
        report_params = {"from": ms(last), "to": ms(end_dt), "baseline_from": ms(last - dt.timedelta(days=7))}
        if only is None or "report" in only:
            it = Item(REPORT, "report")
            has_report = subprocess.run([fw, "report", "--help"], capture_output=True, env=env).returncode == 0
            it.report_out = runs / "report"
            for f in sorted(REPORTS.glob("*.sql")):
                text = f.read_text()
                given = [(k, v) for k, v in report_params.items() if k in used(text)]
                pargs = [x for k, v in given for x in ("--param", f"{k}={v}")]
                base = [fw, "sql", "--lake", str(lake), "--file", str(f)]
                out = runs / f"report-{f.stem}.fnwatch.parquet"
                it.fn_check_cmds.append((f.stem, base + ["--format", "parquet", "--output", str(out)] + pargs, out))
                if not has_report:
                    it.fn_cmds.append(base + ["--format", "csv", "--output", os.devnull] + pargs)
                sql, rw = rewrite_for_duckdb(strip_comments_and_semicolon(substitute(text, given, now_us)))
                it.rewrites += [x for x in rw if x not in it.rewrites]
                it.duck_queries.append((f.stem, sql))
            if has_report:
                it.fn_cmds = [[fw, "report", "--lake", str(lake), "--from", report_params["from"][:19] + "Z",
                               "--to", report_params["to"][:19] + "Z", "--baseline", "-7d",
                               "--out", str(it.report_out)]]
            else:
                it.notes.append(f"this binary has no `report` subcommand: fnwatch time = the {len(it.fn_cmds)} "
                                f"queries of queries/reports/ run one by one with `fnwatch sql`")
            items.append(it)
        if not items:
            die("--only matched nothing")

        # -- run ------------------------------------------------------------------------------
        for it in items:
            print(f"\n{it.name}", flush=True)
            for c in it.fn_cmds[:1]:
                print(f"  fnwatch $ {shlex.join(c)}" + (f"  (+{len(it.fn_cmds) - 1} more)" if len(it.fn_cmds) > 1 else ""))
            if it.rewrites:
                print(f"  DuckDB rewrites: {'; '.join(it.rewrites)}")
            bench_item(it, setup, env, runs, a.repeat)
            if it.error:
                print(f"  ERROR: {it.error}")
            else:
                print(f"  fnwatch {min(it.fn_times):.3f} s, DuckDB {min(it.duck_times):.3f} s; rows "
                      f"{it.fn_rows} / {it.duck_rows}" + ("" if it.same_values is None else
                                                          f"; same values: {SAME[it.same_values]}"),
                      flush=True)
            for n in it.notes:
                print(f"  note: {n}")
    except BenchError as e:
        die(str(e))

    status = summarise(items, a, command, fw, fw_version, lake, made, n_events, table_info, hunt_params,
                       report_params, workdir)
    if not a.keep:
        shutil.rmtree(lake.parent, ignore_errors=True)
    else:
        print(f"kept: {lake}")
    return status


def bench_item(it: Item, setup: list[str], env: dict, runs: Path, repeat: int) -> None:
    slug = re.sub(r"[^a-z0-9_]+", "_", it.name.lower()).strip("_")
    # Untimed check run: fnwatch results as Parquet, DuckDB compares.
    check = {}
    for q, cmd, out in it.fn_check_cmds:
        out.unlink(missing_ok=True)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            it.error = f"fnwatch failed on {q} (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}"
            return
        check[q] = str(out)
    if it.report_out is not None and it.fn_cmds and it.fn_cmds[0][1] == "report":
        shutil.rmtree(it.report_out, ignore_errors=True)
        r = subprocess.run(it.fn_cmds[0], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            it.error = f"fnwatch report failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}"
            return
        js = sorted(it.report_out.glob("*.json"))
        if len(js) != 1:
            it.error = f"expected one JSON report in {it.report_out}, found {len(js)}"
            return
        report_sections = {k: len(v["rows"]) for k, v in json.loads(js[0].read_text())["sections"].items()}
    else:
        report_sections = None
    spec_check = runs / f"{slug}.check.json"
    spec_check.write_text(json.dumps({"setup": setup, "queries": it.duck_queries, "check": check or None}))
    r = subprocess.run([sys.executable, "-c", CHILD, str(spec_check)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        it.error = f"DuckDB failed: {r.stderr.strip()[-800:]}"
        return
    res = json.loads(r.stdout)["queries"]
    it.duck_rows = sum(q["rows"] for q in res.values())
    if it.kind == "reference":
        it.fn_rows = it.duck_rows = None
    elif report_sections is not None:
        it.fn_rows = sum(report_sections.values())
        for q, _sql in it.duck_queries:
            if report_sections.get(q) != res[q]["rows"]:
                it.mismatch = True
                it.notes.append(f"report section {q}: fnwatch report {report_sections.get(q)} rows, "
                                f"DuckDB {res[q]['rows']}")
        missing = set(report_sections) - {q for q, _ in it.duck_queries}
        if missing:
            it.notes.append(f"report sections without a queries/reports file: {sorted(missing)}")
    else:
        it.fn_rows = sum(res[q]["check"]["fnwatch_rows"] for q in check)
    if check:
        it.same_values = True
        for q in check:
            c = res[q]["check"]
            if c["fnwatch_rows"] != res[q]["rows"]:
                it.mismatch = True
                it.notes.append(f"{q}: fnwatch sql returns {c['fnwatch_rows']} rows, DuckDB {res[q]['rows']}")
            if c["same_values"] is not True:
                if c["same_values"] == "rounding":
                    it.same_values = it.same_values if it.same_values is False else "rounding"
                    what = "values differ only in the last decimal of a rounded number"
                else:
                    it.same_values = False
                    what = "values differ"
                it.notes.append(f"{q}: {what}; only in DuckDB e.g. {c.get('only_duckdb')}, "
                                f"only in fnwatch e.g. {c.get('only_fnwatch')}")
            if not c["same_columns"]:
                it.notes.append(f"{q}: column names differ: fnwatch {c.get('fnwatch_columns')}, "
                                f"DuckDB {res[q]['columns']}")
    if it.mismatch:
        it.notes.append("ROW COUNTS DIFFER")

    spec = runs / f"{slug}.json"
    spec.write_text(json.dumps({"setup": setup, "queries": it.duck_queries, "check": None}))
    duck_cmd = [sys.executable, "-c", CHILD, str(spec)]
    for i in range(repeat):
        total = 0.0
        for j, cmd in enumerate(it.fn_cmds):
            s, rc = run_timed(cmd, env, runs / f"{slug}.fnwatch.out", runs / f"{slug}.fnwatch.err")
            if rc != 0:
                it.error = f"fnwatch exited with {rc}: {tail(runs / f'{slug}.fnwatch.err')}"
                return
            total += s
        it.fn_times.append(total)
        s, rc = run_timed(duck_cmd, env, runs / f"{slug}.duckdb.out", runs / f"{slug}.duckdb.err")
        if rc != 0:
            it.error = f"DuckDB exited with {rc}: {tail(runs / f'{slug}.duckdb.err')}"
            return
        it.duck_times.append(s)
        it.duck_inproc.append(json.loads((runs / f"{slug}.duckdb.out").read_text())["seconds"])


def summarise(items, a, command, fw, fw_version, lake, made, n_events, table_info, hunt_params,
              report_params, workdir) -> int:
    import duckdb
    hdr = ["query", "fnwatch s", "DuckDB s", "ratio", "rows fnwatch/DuckDB", "same values", "DuckDB in-proc s"]
    rows, out_rows = [], []
    for it in items:
        ok = not it.error and it.fn_times and it.duck_times
        f = min(it.fn_times) if ok else None
        d = min(it.duck_times) if ok else None
        ratio = f / d if ok and d > 0 else None
        if it.kind == "reference":
            rc = "-"
        elif it.fn_rows is None:
            rc = "?"
        else:
            rc = f"{it.fn_rows:,}" if it.fn_rows == it.duck_rows else f"{it.fn_rows:,} != {it.duck_rows:,}"
        same = SAME[it.same_values]
        rows.append([it.name, "ERROR" if it.error else f"{f:.3f}", "" if not ok else f"{d:.3f}",
                     "" if ratio is None else f"{ratio:.2f}x", rc, same,
                     "" if not ok else f"{min(it.duck_inproc):.3f}"])
        out_rows.append({"query": it.name, "kind": it.kind, "fnwatch_s": f, "duckdb_s": d, "ratio": ratio,
                         "duckdb_inproc_s": min(it.duck_inproc) if ok else None,
                         "fnwatch_rows": it.fn_rows, "duckdb_rows": it.duck_rows, "rows_match": not it.mismatch,
                         "same_values": it.same_values, "fnwatch_runs_s": it.fn_times, "duckdb_runs_s": it.duck_times,
                         "dialect_rewrites": it.rewrites, "notes": it.notes, "error": it.error,
                         "fnwatch_command": shlex.join(it.fn_cmds[0]) if it.fn_cmds else None,
                         "fnwatch_processes": len(it.fn_cmds)})
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(hdr)]
    print(f"\n{n_events:,} events; best of {a.repeat}; wall time of each whole process (start-up included)\n")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(hdr, widths))))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))

    hunts = [o for o in out_rows if o["kind"] == "hunt" and o["ratio"] is not None]
    summary: dict = {}
    if hunts:
        ratios = [o["ratio"] for o in hunts]
        worst = max(hunts, key=lambda o: o["ratio"])
        over = [o["query"] for o in hunts if o["ratio"] > 1.5]
        med = statistics.median(ratios)
        summary = {"hunts": len(hunts), "median_ratio": med, "max_ratio": worst["ratio"], "max_ratio_query": worst["query"],
                   "every_hunt_within_1_5x": not over, "hunts_over_1_5x": over, "median_faster": med < 1.0}
        print(f"\nhunts: median ratio {med:.2f}x, max {worst['ratio']:.2f}x ({worst['query']})")
        print(f"target every hunt <= 1.5x DuckDB: {'met' if not over else 'NOT met (' + ', '.join(over) + ')'}")
        print(f"target median hunt < 1x DuckDB:   {'met' if med < 1.0 else 'NOT met'}")
    rep = next((o for o in out_rows if o["kind"] == "report" and o["ratio"] is not None), None)
    if rep:
        summary["report_ratio"] = rep["ratio"]
        how = ("one `fnwatch report` process, which also renders HTML, Markdown and JSON"
               if rep["fnwatch_processes"] == 1 else
               f"{rep['fnwatch_processes']} `fnwatch sql` processes: this binary has no `report`")
        print(f"full report: {rep['ratio']:.2f}x DuckDB ({how}); not counted in the hunt targets")
    used_rw = {}
    for it in items:
        for w in it.rewrites:
            used_rw.setdefault(w, []).append(it.name)
    print("\nDuckDB dialect rewrites:" + (" none" if not used_rw else ""))
    for what, _p, _r, why in REWRITES:
        if what in used_rw:
            print(f"  {what}: {why}; in {', '.join(used_rw[what])}")
    errors = [o for o in out_rows if o["error"]]
    mismatches = [o["query"] for o in out_rows if not o["rows_match"]]
    differ = [o["query"] for o in out_rows if o["same_values"] is False]
    rounding = [o["query"] for o in out_rows if o["same_values"] == "rounding"]
    if mismatches:
        print(f"ROW COUNTS DIFFER: {', '.join(mismatches)} (see the notes above)")
    if differ:
        print(f"values differ (same row counts): {', '.join(differ)} (see the notes above)")
    if rounding:
        print(f"values differ only in the last decimal of round(): {', '.join(rounding)} (DataFusion rounds "
              f"x * 10^d half away from zero, DuckDB the exact binary value: round(60000.45, 1) is 60000.5 vs "
              f"60000.4)")
    if errors:
        print(f"errors: {', '.join(o['query'] for o in errors)}")

    result = {"command": command, "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                             "python": platform.python_version()},
              "fnwatch": fw, "fnwatch_version": fw_version, "duckdb_version": duckdb.__version__,
              "repeat": a.repeat, "timing": "wall seconds of each whole process, start-up included; best of repeat",
              "lake": {"path": str(lake), "events": n_events, **made,
                       "tables": {t: i for t, i in table_info.items()}},
              "now": f"{(START + dt.timedelta(days=a.days)).isoformat()}T00:00:00Z",
              "hunt_params": hunt_params, "report_params": report_params,
              "dialect_rewrites": [{"rewrite": w, "why": why, "queries": used_rw.get(w, [])}
                                   for w, _p, _r, why in REWRITES],
              "rows": out_rows, "summary": summary}
    path = workdir / "results.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nresults: {path}")
    return 1 if errors or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
