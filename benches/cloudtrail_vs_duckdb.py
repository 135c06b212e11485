#!/usr/bin/env python3
"""CloudTrail benchmark: `fnwatch ingest` of CloudTrail log files against DuckDB, same files.

    cargo build --release
    python3 benches/cloudtrail_vs_duckdb.py [--records 1000000] [--functions 2000]
                                            [--fnwatch target/release/fnwatch] [--repeat 3]
                                            [--workdir target/bench-cloudtrail] [--keep]

1. Makes (or reuses) an S3 export of a trail: AWSLogs/<account>/CloudTrail/
   <region>/YYYY/MM/DD/*.json.gz, gzip files of 5,000 records each as
   CloudTrail writes them ({"Records": [...]}), for a fleet of --functions
   functions: calls of the functions' role sessions on S3, DynamoDB, SQS,
   Secrets Manager, KMS and SSM (with the requestParameters AWS documents,
   some with `resources`, some denied), and one record in ten of other
   identities (console users, AWS services, IAM users), which both tools
   leave out.
2. Times `fnwatch ingest --lake <fresh dir> --no-progress <export>`, then
   counts the lake's events.
3. Times DuckDB (the `duckdb` Python package, in its own process) reading the
   same gzip files with `read_json`, unnesting `Records`, keeping the calls
   of assumed-role sessions, and writing the columns fnwatch derives (time,
   function, account, region, service, action, resource, error code, source
   IP, user agent, event id) to one zstd Parquet file.
4. Repeats 2 and 3 `--repeat` times, alternating, and reports each tool's
   median and the ratio (the timing and RSS helpers are those of
   benches/ingest_vs_duckdb.py).

Not the same work: fnwatch also builds resource ARNs from requestParameters
for the services the contract lists, keeps the unknown members of each
record in `extra`, sorts by (function, time), partitions by date and
commits to a Delta table; DuckDB parses and writes one file.
Needs: `pip install duckdb`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_vs_duckdb as common  # noqa: E402  (timing, RSS, counting helpers)

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
PER_FILE = 5000
LAMBDA_UA = ("Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#5.10.209-220.804.amzn2.x86_64 "
             "md/arch#x86_64 lang/python#3.12.1 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 "
             "cfg/retry-mode#legacy Botocore/1.34.34")
NODE_UA = ("aws-sdk-nodejs/3.490.0 ua/2.0 os/linux#5.10 lang/js md/nodejs#20.10.0 api/s3#3.490.0 "
           "exec-env/AWS_Lambda_nodejs20.x")

DUCKDB_SQL = """
COPY (
  SELECT CAST(r->>'$.eventTime' AS TIMESTAMPTZ) AS time,
         regexp_extract(r->>'$.userIdentity.arn', 'assumed-role/[^/]+/(.+)$', 1) AS function,
         r->>'$.recipientAccountId' AS account,
         r->>'$.awsRegion' AS region,
         split_part(r->>'$.eventSource', '.', 1) AS service,
         r->>'$.eventName' AS action,
         r->>'$.resources[0].ARN' AS resource,
         r->>'$.errorCode' AS error_code,
         r->>'$.sourceIPAddress' AS source_ip,
         r->>'$.userAgent' AS user_agent,
         r->>'$.eventID' AS event_id
  FROM (SELECT unnest(Records) AS r
        FROM read_json({src}, format='auto', columns={{'Records': 'JSON[]'}},
                       compression='gzip', maximum_object_size=1073741824))
  WHERE r->>'$.userIdentity.type' = 'AssumedRole'
) TO {out} (FORMAT parquet, COMPRESSION zstd)
"""


def die(msg: str) -> None:
    print(f"cloudtrail_vs_duckdb: error: {msg}", file=sys.stderr)
    sys.exit(2)


def call(rng: random.Random, n: int, t: float, fn: str) -> dict:
    """One call of a function's role session, as CloudTrail records it."""
    kind = rng.randrange(6)
    bucket, table = f"{fn}-data", f"{fn}-table"
    if kind == 0:
        src, action, params = "s3", "GetObject", {"bucketName": bucket, "key": f"in/{n % 9973}.json",
                                                 "Host": f"{bucket}.s3.amazonaws.com"}
    elif kind == 1:
        src, action, params = "dynamodb", rng.choice(["GetItem", "PutItem", "Query"]), {"tableName": table}
    elif kind == 2:
        src, action, params = "sqs", "SendMessage", {
            "queueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{fn}-jobs"}
    elif kind == 3:
        src, action, params = "secretsmanager", "GetSecretValue", {"secretId": f"prod/{fn}/db"}
    elif kind == 4:
        src, action, params = "kms", "Decrypt", {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    else:
        src, action, params = "ssm", "GetParameter", {"name": f"/prod/{fn}/config", "withDecryption": True}
    r = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE{zlib.crc32(fn.encode()) & 0xffff:04X}:{fn}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{fn}-role/{fn}",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLEKEY",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{fn}-role",
                                  "accountId": ACCOUNT, "userName": f"{fn}-role"},
                "attributes": {"creationDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t - 600)),
                               "mfaAuthenticated": "false"},
            },
        },
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
        "eventSource": f"{src}.amazonaws.com",
        "eventName": action,
        "awsRegion": REGION,
        "sourceIPAddress": f"3.{80 + n % 40}.{n % 251}.{n % 197}",
        "userAgent": LAMBDA_UA if n % 3 else NODE_UA,
        "requestParameters": params,
        "responseElements": None,
        "requestID": f"R{n:012d}",
        "eventID": f"{n:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
        "readOnly": action.startswith(("Get", "Query", "Decrypt")),
        "eventType": "AwsApiCall",
        "managementEvent": src in ("kms", "secretsmanager", "ssm"),
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management" if src in ("kms", "secretsmanager", "ssm") else "Data",
    }
    if src == "s3":
        r["resources"] = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{params['key']}"},
                          {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
    if n % 97 == 0:
        r["errorCode"] = "AccessDenied"
        r["errorMessage"] = "User is not authorized to perform this action"
    return r


def other(rng: random.Random, n: int, t: float) -> dict:
    """A record of another identity: a console user, an AWS service, an IAM user."""
    who = rng.randrange(3)
    identity = (
        {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/dev{n % 17}", "accountId": ACCOUNT,
         "userName": f"dev{n % 17}"},
        {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
        {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT},
    )[who]
    return {
        "eventVersion": "1.08", "userIdentity": identity,
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
        "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "awsRegion": REGION,
        "sourceIPAddress": "lambda.amazonaws.com" if who == 1 else "203.0.113.5",
        "userAgent": "lambda.amazonaws.com" if who == 1 else "aws-cli/2.15.10",
        "requestParameters": {"roleSessionName": f"s{n}"}, "responseElements": None,
        "eventID": f"{n:08x}-1111-4000-8000-{rng.getrandbits(48):012x}",
        "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
        "recipientAccountId": ACCOUNT, "eventCategory": "Management",
    }


def ensure_export(workdir: Path, records: int, functions: int) -> tuple[Path, int]:
    """The export folder and its number of function calls, made once per parameters."""
    export = workdir / f"export-{records}-{functions}"
    meta = export / "meta.json"
    want = {"records": records, "functions": functions, "generator": hash_self()}
    if meta.exists():
        have = json.loads(meta.read_text())
        if {k: have.get(k) for k in want} == want:
            print(f"input: reusing {export}")
            return export, have["calls"]
    if export.exists():
        shutil.rmtree(export)
    print(f"input: writing {records:,} records for {functions:,} functions to {export}", flush=True)
    t0 = time.perf_counter()
    rng = random.Random(2026)
    fleet = [f"fn-{i:05d}-{rng.choice(['api', 'worker', 'etl', 'cron', 'hook'])}" for i in range(functions)]
    start = 1_795_392_000.0  # 2026-11-23T00:00:00Z
    calls = 0
    n = 0
    file_no = 0
    while n < records:
        batch = []
        for _ in range(min(PER_FILE, records - n)):
            t = start + n * (86_400.0 / records)
            if rng.random() < 0.1:
                batch.append(other(rng, n, t))
            else:
                batch.append(call(rng, n, t, rng.choice(fleet)))
                calls += 1
            n += 1
        day = time.strftime("%Y/%m/%d", time.gmtime(t))
        stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime(t))
        d = export / "AWSLogs" / ACCOUNT / "CloudTrail" / REGION / day
        d.mkdir(parents=True, exist_ok=True)
        name = f"{ACCOUNT}_CloudTrail_{REGION}_{stamp}_{file_no:08x}.json.gz"
        with gzip.open(d / name, "wt", compresslevel=6) as f:
            json.dump({"Records": batch}, f, separators=(",", ":"))
        file_no += 1
    want["calls"] = calls
    meta.write_text(json.dumps(want) + "\n")
    print(f"  {file_no:,} files, {common.disk_bytes(export):,} bytes gzip, {calls:,} function calls, "
          f"took {time.perf_counter() - t0:.1f} s")
    return export, calls


def hash_self() -> str:
    import hashlib
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def bench_fnwatch(fnwatch: Path, export: Path, workdir: Path, time_bin: str | None) -> dict:
    lake = workdir / "lake-fnwatch"
    if lake.exists():
        shutil.rmtree(lake)
    cmd = [str(fnwatch), "ingest", "--lake", str(lake), "--no-progress", str(export / "AWSLogs")]
    print(f"\nfnwatch:\n  $ {shlex.join(cmd)}", flush=True)
    run = common.timed(cmd, workdir / "fnwatch-ingest.log", time_bin)
    if run.rc != 0:
        die(f"fnwatch ingest exited with {run.rc}; last lines of {run.log}:\n{common.tail(run.log)}")
    print("  " + common.tail(run.log, 8).replace("\n", "\n  "))
    r = subprocess.run([str(fnwatch), "sql", "--lake", str(lake), "--format", "csv",
                        "SELECT count(*) FROM events"], capture_output=True, text=True)
    n = common.parse_count(r.stdout) if r.returncode == 0 else None
    if n is None:
        die(f"could not count the lake's events:\n{r.stderr or r.stdout}")
    return {"tool": "fnwatch", "events": n, "seconds": run.seconds, "bytes": common.disk_bytes(lake),
            "rss_kb": run.rss_kb, "out": lake}


def bench_duckdb(export: Path, workdir: Path, time_bin: str | None) -> dict:
    out = workdir / "duckdb.parquet"
    out.unlink(missing_ok=True)
    result = workdir / "duckdb-result.json"
    pattern = str(export / "AWSLogs" / "**" / "*.json.gz")
    sql = DUCKDB_SQL.format(src=common.sql_str(pattern), out=common.sql_str(str(out)))
    print(f"\nDuckDB (python duckdb):{sql}", flush=True)
    cmd = [sys.executable, "-c", common.DUCKDB_CHILD, pattern, str(out), str(result), sql]
    run = common.timed(cmd, workdir / "duckdb.log", time_bin)
    if run.rc != 0:
        die(f"DuckDB exited with {run.rc}; last lines of {run.log}:\n{common.tail(run.log)}")
    r = subprocess.run([sys.executable, "-c", common.DUCKDB_COUNT, str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"counting the parquet rows failed:\n{r.stderr}")
    return {"tool": "DuckDB", "events": int(r.stdout.strip()), "seconds": run.seconds,
            "bytes": common.disk_bytes(out), "rss_kb": run.rss_kb, "out": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="CloudTrail records (default 1000000)")
    ap.add_argument("--functions", type=int, default=2000, help="functions in the fleet (default 2000)")
    ap.add_argument("--fnwatch", help="the fnwatch binary (default: target/release/fnwatch)")
    ap.add_argument("--workdir", help="export, lake, parquet and logs (default: target/bench-cloudtrail)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of both tools, alternating (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the lake and the parquet file afterwards")
    a = ap.parse_args()
    if a.records < 1 or a.functions < 1 or a.repeat < 1:
        ap.error("--records, --functions and --repeat must be at least 1")
    print(f"command: {shlex.join([sys.executable] + sys.argv)}")
    try:
        import duckdb  # noqa: F401
    except ImportError:
        die(f"the python `duckdb` package is not installed; {shlex.quote(sys.executable)} -m pip install duckdb")
    fnwatch = Path(a.fnwatch).resolve() if a.fnwatch else ROOT / "target" / "release" / "fnwatch"
    if not (fnwatch.is_file() and os.access(fnwatch, os.X_OK)):
        die(f"no fnwatch binary at {fnwatch}; build it with `cargo build --release` or pass --fnwatch PATH")
    workdir = Path(a.workdir).resolve() if a.workdir else ROOT / "target" / "bench-cloudtrail"
    workdir.mkdir(parents=True, exist_ok=True)
    time_bin = common.gnu_time()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}")

    export, calls = ensure_export(workdir, a.records, a.functions)
    rounds = []
    for i in range(a.repeat):
        print(f"\n== round {i + 1} of {a.repeat}", flush=True)
        rounds.append([bench_fnwatch(fnwatch, export, workdir, time_bin),
                       bench_duckdb(export, workdir, time_bin)])
    f, d = (common.median_run([r[k] for r in rounds]) for k in range(2))
    print(f"\ninput: {a.records:,} records ({calls:,} function calls), {a.functions:,} functions")
    for r in (f, d):
        rss = "-" if r["rss_kb"] is None else f"{r['rss_kb'] / 1024:.0f} MB"
        print(f"  {r['tool']:8} {r['events']:>10,} rows  {r['seconds']:8.2f} s  "
              f"{r['events'] / r['seconds']:>12,.0f} records/s  {r['bytes']:>12,} bytes  peak RSS {rss}")
    for i, (rf, rd) in enumerate(rounds, 1):
        print(f"  round {i}: fnwatch {rf['seconds']:.2f} s, DuckDB {rd['seconds']:.2f} s, "
              f"ratio {rd['seconds'] / rf['seconds']:.2f}x")
    print(f"\nfnwatch / DuckDB: records/s {d['seconds'] / f['seconds']:.2f}x")
    status = 0
    for r in (f, d):
        if r["events"] != calls:
            print(f"WARNING: {r['tool']} holds {r['events']:,} rows, the export has {calls:,} calls",
                  file=sys.stderr)
            status = 1
    if not a.keep:
        shutil.rmtree(f["out"], ignore_errors=True)
        Path(d["out"]).unlink(missing_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
