#!/usr/bin/env bash
# moto's server (PyPI `moto[server]`) as the local stand-in for Amazon S3, for
# the tests of `s3://` lakes. It speaks the S3 REST API with the conditional
# writes a lake needs (If-None-Match: * on PutObject and on
# CompleteMultipartUpload), keeps everything in memory, and accepts any
# access keys.
#
# Usage:
#   bash infra/local/s3/moto-s3.sh start DIR --port PORT [--bucket NAME]...
#   bash infra/local/s3/moto-s3.sh stop DIR
#
# start   installs moto[server] with infra/local/install-python-tools.sh when
#         python3 cannot import it, stops an instance already started from
#         DIR, starts one in the background on 127.0.0.1:PORT only, waits (up
#         to 30 s) until it answers, creates each --bucket, and prints `ready`.
# stop    ends the server started from DIR (TERM, then KILL after 5 s).
#         Stopping one that is not running is not an error.
#
# Files in DIR: moto-s3.log (appended to across restarts), moto-s3.pid.
#
# Clients: endpoint http://127.0.0.1:PORT, path-style addressing, region
# us-east-1, any keys. For fnwatch: AWS_ENDPOINT_URL_S3=http://127.0.0.1:PORT
# AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
# AWS_REGION=us-east-1.
set -euo pipefail

PROG="moto-s3.sh"
PY="${PYTHON:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd -P)"
# shellcheck source=infra/local/lib/proc.sh
. "$HERE/../lib/proc.sh"

die() { echo "$PROG: $*" >&2; exit 1; }

usage() {
    cat >&2 <<'USAGE'
usage: bash infra/local/s3/moto-s3.sh start DIR --port PORT [--bucket NAME]...
       bash infra/local/s3/moto-s3.sh stop DIR
USAGE
    exit 2
}

# Answers an S3 ListBuckets call, and creates the buckets asked for (boto3
# comes with moto).
s3_call() {
    "$PY" - "$PORT" "$@" <<'PYEOF'
import sys
import boto3
from botocore.config import Config

port, buckets = sys.argv[1], sys.argv[2:]
s3 = boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
)
s3.list_buckets()
for b in buckets:
    s3.create_bucket(Bucket=b)
PYEOF
}

do_start() {
    [ -n "$PORT" ] || die "start needs --port PORT"
    if ! "$PY" -c "import moto.server, boto3" >/dev/null 2>&1; then
        bash "$HERE/../install-python-tools.sh" >&2 || die "could not install moto[server]"
    fi
    stop_pidfile "$DIR/moto-s3.pid" "moto.server"
    echo "---- $(date -u +%Y-%m-%dT%H:%M:%SZ) start --port $PORT" >>"$DIR/moto-s3.log"
    nohup "$PY" -m moto.server -H 127.0.0.1 -p "$PORT" >>"$DIR/moto-s3.log" 2>&1 </dev/null &
    local pid=$! i
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$DIR/moto-s3.pid"
    for i in $(seq 1 150); do   # up to 30 s
        if ! alive "$pid"; then
            rm -f "$DIR/moto-s3.pid"
            tail -n 40 "$DIR/moto-s3.log" >&2 || true
            die "moto's server exited"
        fi
        if s3_call >/dev/null 2>&1; then
            if ! s3_call "${BUCKETS[@]}"; then
                stop_pidfile "$DIR/moto-s3.pid" "moto.server"
                die "could not create buckets ${BUCKETS[*]}"
            fi
            echo ready
            return 0
        fi
        sleep 0.2
    done
    stop_pidfile "$DIR/moto-s3.pid" "moto.server"
    tail -n 40 "$DIR/moto-s3.log" >&2 || true
    die "no answer on 127.0.0.1:$PORT after 30 s"
}

[ $# -ge 2 ] || usage
CMD="$1"
DIR="$2"
shift 2
PORT=""
BUCKETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ "$CMD" = start ] && [ $# -ge 2 ] || usage; PORT="$2"; shift 2 ;;
        --bucket) [ "$CMD" = start ] && [ $# -ge 2 ] || usage; BUCKETS+=("$2"); shift 2 ;;
        *) usage ;;
    esac
done
if [ -n "$PORT" ]; then
    [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "bad port: $PORT"
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
case "$CMD" in
    start) do_start ;;
    stop) stop_pidfile "$DIR/moto-s3.pid" "moto.server" ;;
    *) usage ;;
esac
