#!/usr/bin/env python3
"""An independent Kinesis producer and admin client for fnwatch's tests.

It uses boto3 (not fnwatch's Rust code) against a Kinesis endpoint, normally
kinesalite started by infra/local/kinesis/kinesalite.sh. Region us-east-1;
when AWS_ACCESS_KEY_ID is not set, dummy credentials (test/test).

    kinesis_tool.py --endpoint URL create STREAM --shards N
    kinesis_tool.py --endpoint URL split STREAM --shard SHARD_ID
    kinesis_tool.py --endpoint URL merge STREAM --shard A --adjacent B
    kinesis_tool.py --endpoint URL shards STREAM
    kinesis_tool.py --endpoint URL put STREAM --file F.jsonl[.gz] [--batch 500]
    kinesis_tool.py --endpoint URL put-raw STREAM --partition-key K --data-file F
    kinesis_tool.py --endpoint URL count STREAM
    kinesis_tool.py --endpoint URL list-streams

Output (stdout) is JSON, except `count`, which prints a bare number.
"""

import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

REGION = "us-east-1"
WAIT_SECONDS = 30
# PutRecords limits: 500 records and 5 MiB (data plus partition keys) a call.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256
MAX_PUT_ATTEMPTS = 20


def client(endpoint):
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    kwargs = {}
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["aws_access_key_id"] = "test"
        kwargs["aws_secret_access_key"] = "test"
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"max_attempts": 10, "mode": "standard"}),
        **kwargs,
    )


def out(value):
    print(json.dumps(value))


def wait_active(kinesis, stream):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            status = kinesis.describe_stream_summary(StreamName=stream)[
                "StreamDescriptionSummary"
            ]["StreamStatus"]
        except kinesis.exceptions.ResourceNotFoundException:
            status = "NOT FOUND"
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            sys.exit(f"kinesis_tool: stream {stream} is {status}, not ACTIVE, after {WAIT_SECONDS} s")
        time.sleep(0.1)


def list_shards(kinesis, stream):
    shards = []
    resp = kinesis.list_shards(StreamName=stream)
    shards.extend(resp["Shards"])
    while resp.get("NextToken"):
        resp = kinesis.list_shards(NextToken=resp["NextToken"])
        shards.extend(resp["Shards"])
    return shards


def shard_json(s):
    closed = "EndingSequenceNumber" in s["SequenceNumberRange"]
    return {
        "id": s["ShardId"],
        "parent": s.get("ParentShardId"),
        "adjacent_parent": s.get("AdjacentParentShardId"),
        "state": "closed" if closed else "open",
        "starting_hash_key": s["HashKeyRange"]["StartingHashKey"],
        "ending_hash_key": s["HashKeyRange"]["EndingHashKey"],
    }


def cmd_create(kinesis, a):
    kinesis.create_stream(StreamName=a.stream, ShardCount=a.shards)
    wait_active(kinesis, a.stream)
    out({"created": a.stream, "shards": [shard_json(s) for s in list_shards(kinesis, a.stream)]})


def cmd_split(kinesis, a):
    wait_active(kinesis, a.stream)
    shard = next((s for s in list_shards(kinesis, a.stream) if s["ShardId"] == a.shard), None)
    if shard is None:
        sys.exit(f"kinesis_tool: stream {a.stream} has no shard {a.shard}")
    start = int(shard["HashKeyRange"]["StartingHashKey"])
    end = int(shard["HashKeyRange"]["EndingHashKey"])
    if end <= start:
        sys.exit(f"kinesis_tool: shard {a.shard} covers one hash key; it cannot be split")
    # The upper child starts at the middle of the range: [start, mid) and [mid, end].
    mid = (start + end) // 2 + 1
    kinesis.split_shard(StreamName=a.stream, ShardToSplit=a.shard, NewStartingHashKey=str(mid))
    wait_active(kinesis, a.stream)
    children = [shard_json(s) for s in list_shards(kinesis, a.stream) if s.get("ParentShardId") == a.shard]
    out({"split": a.shard, "new_starting_hash_key": str(mid), "children": children})


def cmd_merge(kinesis, a):
    wait_active(kinesis, a.stream)
    kinesis.merge_shards(StreamName=a.stream, ShardToMerge=a.shard, AdjacentShardToMerge=a.adjacent)
    wait_active(kinesis, a.stream)
    children = [
        shard_json(s)
        for s in list_shards(kinesis, a.stream)
        if s.get("ParentShardId") in (a.shard, a.adjacent)
        and s.get("AdjacentParentShardId") in (a.shard, a.adjacent)
    ]
    out({"merged": [a.shard, a.adjacent], "children": children})


def cmd_shards(kinesis, a):
    out([shard_json(s) for s in list_shards(kinesis, a.stream)])


def read_lines(path):
    """The non-empty lines of a file (gzip when it starts with gzip's magic
    bytes), as bytes, without their line ending."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def partition_key(line):
    """The line's "request_id", else its "function" (a JSON object's field,
    when a non-empty string or a number), else a hash of the line."""
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        for field in ("request_id", "function"):
            v = obj.get(field)
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, float)):
                v = str(v)
            if isinstance(v, str) and v:
                return v[:MAX_PARTITION_KEY_CHARS]
    return hashlib.sha256(line).hexdigest()


def put_batch(kinesis, stream, entries):
    """Puts entries with PutRecords, re-sending only those that failed.
    Returns how many entries were re-sent."""
    retried = 0
    pending = entries
    for attempt in range(MAX_PUT_ATTEMPTS):
        resp = kinesis.put_records(StreamName=stream, Records=pending)
        if resp.get("FailedRecordCount", 0) == 0:
            return retried
        failed = [e for e, r in zip(pending, resp["Records"]) if r.get("ErrorCode")]
        codes = sorted({r["ErrorCode"] for r in resp["Records"] if r.get("ErrorCode")})
        print(
            f"kinesis_tool: {len(failed)} of {len(pending)} records failed ({', '.join(codes)}); re-sending them",
            file=sys.stderr,
        )
        retried += len(failed)
        pending = failed
        time.sleep(min(0.05 * 2**attempt, 2.0))
    sys.exit(f"kinesis_tool: {len(pending)} records still failed after {MAX_PUT_ATTEMPTS} attempts")


def cmd_put(kinesis, a):
    if not 1 <= a.batch <= MAX_BATCH_RECORDS:
        sys.exit(f"kinesis_tool: --batch must be 1 to {MAX_BATCH_RECORDS}")
    put = 0
    retried = 0
    batch, batch_bytes = [], 0
    for line in read_lines(a.file):
        key = partition_key(line)
        size = len(line) + len(key.encode())
        if batch and (len(batch) >= a.batch or batch_bytes + size > MAX_BATCH_BYTES):
            retried += put_batch(kinesis, a.stream, batch)
            put += len(batch)
            batch, batch_bytes = [], 0
        batch.append({"Data": line, "PartitionKey": key})
        batch_bytes += size
    if batch:
        retried += put_batch(kinesis, a.stream, batch)
        put += len(batch)
    out({"put": put, "retried": retried})


def cmd_put_raw(kinesis, a):
    with open(a.data_file, "rb") as f:
        data = f.read()
    resp = kinesis.put_record(StreamName=a.stream, PartitionKey=a.partition_key, Data=data)
    out({"shard_id": resp["ShardId"], "sequence_number": resp["SequenceNumber"]})


def cmd_count(kinesis, a):
    total = 0
    for shard in list_shards(kinesis, a.stream):
        it = kinesis.get_shard_iterator(
            StreamName=a.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            resp = kinesis.get_records(ShardIterator=it, Limit=10000)
            total += len(resp["Records"])
            it = resp.get("NextShardIterator")  # None at the end of a closed shard
            # An open shard: at its current end when a read comes back empty
            # and not behind the tip.
            if not resp["Records"] and resp.get("MillisBehindLatest", 0) == 0:
                break
    print(total)


def cmd_list_streams(kinesis, a):
    names = []
    resp = kinesis.list_streams()
    names.extend(resp["StreamNames"])
    while resp.get("HasMoreStreams") and names:
        resp = kinesis.list_streams(ExclusiveStartStreamName=names[-1])
        names.extend(resp["StreamNames"])
    out(names)


def main():
    p = argparse.ArgumentParser(description="Independent Kinesis producer and admin client (boto3).")
    p.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:4567")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("create", help="create a stream and wait until it is ACTIVE")
    s.add_argument("stream")
    s.add_argument("--shards", type=int, required=True)
    s.set_defaults(func=cmd_create)

    s = sub.add_parser("split", help="split a shard at the middle of its hash key range")
    s.add_argument("stream")
    s.add_argument("--shard", required=True)
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("merge", help="merge two adjacent shards")
    s.add_argument("stream")
    s.add_argument("--shard", required=True)
    s.add_argument("--adjacent", required=True)
    s.set_defaults(func=cmd_merge)

    s = sub.add_parser("shards", help="print the stream's shards as JSON")
    s.add_argument("stream")
    s.set_defaults(func=cmd_shards)

    s = sub.add_parser("put", help="put each non-empty line of a (.gz) file as one record")
    s.add_argument("stream")
    s.add_argument("--file", required=True)
    s.add_argument("--batch", type=int, default=MAX_BATCH_RECORDS)
    s.set_defaults(func=cmd_put)

    s = sub.add_parser("put-raw", help="put one record of arbitrary bytes")
    s.add_argument("stream")
    s.add_argument("--partition-key", required=True)
    s.add_argument("--data-file", required=True)
    s.set_defaults(func=cmd_put_raw)

    s = sub.add_parser("count", help="count the records of every shard, oldest to current end")
    s.add_argument("stream")
    s.set_defaults(func=cmd_count)

    s = sub.add_parser("list-streams", help="print the stream names as JSON")
    s.set_defaults(func=cmd_list_streams)

    a = p.parse_args()
    try:
        a.func(client(a.endpoint), a)
    except (ClientError, BotoCoreError) as e:
        sys.exit(f"kinesis_tool: {a.cmd}: {e}")


if __name__ == "__main__":
    main()
