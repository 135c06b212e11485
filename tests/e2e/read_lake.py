#!/usr/bin/env python3
"""An independent reader of an fnwatch lake, for the end-to-end tests.

    python3 tests/e2e/read_lake.py LAKE_DIR
    python3 tests/e2e/read_lake.py s3://BUCKET/PREFIX

Reads the two Delta tables of the lake with the PyPI `deltalake` package
(delta-rs's Python binding, not our Rust code) and prints one JSON object:

    {"events": {"<type>": count, ...}, "events_total": N, "dead_letters": N}

`LAKE_DIR/events` is partitioned by `date`; the reader takes the table's
files from the Delta log, so a file left out of a commit (or a commit that
lists a missing file) shows up here. Only types with at least one row are
listed. An `s3://` lake is read through delta-rs's own S3 client, configured
from the environment (AWS_ENDPOINT_URL_S3, AWS_ALLOW_HTTP, AWS_REGION and the
access keys), as fnwatch is.

Exit status: 0 on success, 2 when `deltalake`/`pyarrow` are missing (install
them with `bash infra/local/install-python-tools.sh`), 1 when the lake cannot
be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROG = "read_lake"


def fail(msg: str, code: int = 1) -> "NoReturn":  # noqa: F821
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(0 if len(argv) == 2 else 2)
    try:
        from deltalake import DeltaTable
        import pyarrow.compute as pc
    except ImportError as e:
        fail(
            f"the Python package `{e.name or 'deltalake'}` is not installed for {sys.executable}; "
            "install it with: bash infra/local/install-python-tools.sh "
            "(or: python3 -m pip install deltalake pyarrow)",
            2,
        )

    remote = "://" in argv[1]
    lake = argv[1].rstrip("/") if remote else Path(argv[1])
    if not remote and not lake.is_dir():
        fail(f"lake {lake} is not a directory")

    def open_table(name: str) -> "DeltaTable":
        path = f"{lake}/{name}" if remote else lake / name
        if not remote and not (path / "_delta_log").is_dir():
            fail(f"table {path} is not a Delta table (no _delta_log folder)")
        try:
            return DeltaTable(str(path))
        except Exception as e:  # deltalake raises several exception types
            fail(f"cannot open Delta table {path}: {e}")

    events = open_table("events")
    try:
        types = events.to_pyarrow_table(columns=["type"]).column("type")
    except Exception as e:
        fail(f"cannot read column `type` of {lake}/events: {e}")
    counts: dict[str, int] = {}
    for item in pc.value_counts(types).to_pylist():
        value, n = item["values"], int(item["counts"])
        if value is None:
            fail(f"{lake}/events has {n} rows with a null `type`")
        counts[str(value)] = n

    dead = open_table("dead_letters")
    try:
        # Counts rows from the Parquet files the log lists (not from log stats).
        dead_count = dead.to_pyarrow_dataset().count_rows()
    except Exception as e:
        fail(f"cannot read {lake}/dead_letters: {e}")

    out = {
        "events": dict(sorted(counts.items())),
        "events_total": sum(counts.values()),
        "dead_letters": int(dead_count),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
