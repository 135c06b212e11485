#!/usr/bin/env bash
# kinesis-mock (npm package `kinesis-local`, the Scala.js build of
# etspaceman/kinesis-mock: Node.js only, no Java) as a second local stand-in
# for Kinesis. Where kinesalite takes volume, kinesis-mock follows AWS more
# closely: ListShards pages with MaxResults/NextToken, parents close with
# ChildShards, UpdateShardCount exists. It slows down past ~10k records per
# shard, so the tests use it for small streams.
#
# Usage:
#   bash infra/local/kinesis/kinesis-mock.sh install
#   bash infra/local/kinesis/kinesis-mock.sh start DIR --port PORT
#   bash infra/local/kinesis/kinesis-mock.sh stop DIR
#
# install  npm-installs kinesis-local 0.6.2 into
#          ${FNWATCH_TOOLS:-$HOME/.cache/fnwatch/tools}/kinesis-mock (outside the
#          repository) unless it is there; safe to run concurrently (flock).
# start    installs when needed, stops an instance started from DIR, starts
#          one in the background with plain HTTP on 127.0.0.1:PORT (its TLS
#          port is PORT+1, with the package's own certificate), streams
#          created and resharded at once, and waits (up to 60 s) until it
#          answers ListStreams; prints `ready`.
# stop     ends the instance started from DIR (TERM, then KILL after 5 s).
#
# Files in DIR: kinesis-mock.log, kinesis-mock.pid.
set -euo pipefail

PROG="kinesis-mock.sh"
VERSION="0.6.2"
TOOLS="${FNWATCH_TOOLS:-$HOME/.cache/fnwatch/tools}"
PREFIX="$TOOLS/kinesis-mock"
MAIN="$PREFIX/node_modules/kinesis-local/main.js"
# shellcheck source=infra/local/lib/proc.sh
. "$(cd "$(dirname "$0")/.." && pwd -P)/lib/proc.sh"

die() { echo "$PROG: $*" >&2; exit 1; }

usage() {
    cat >&2 <<'USAGE'
usage: bash infra/local/kinesis/kinesis-mock.sh install
       bash infra/local/kinesis/kinesis-mock.sh start DIR --port PORT
       bash infra/local/kinesis/kinesis-mock.sh stop DIR
USAGE
    exit 2
}

installed() {
    [ -f "$MAIN" ] && command -v node >/dev/null 2>&1 &&
        grep -q "\"version\" *: *\"$VERSION\"" "$PREFIX/node_modules/kinesis-local/package.json"
}

do_install() {
    command -v npm >/dev/null 2>&1 || die "Node.js and npm are needed (apt-get install nodejs npm)"
    installed && return 0
    mkdir -p "$TOOLS"
    exec 9>"$TOOLS/.kinesis-mock.lock"
    flock 9
    if ! installed; then
        local stage="$PREFIX.staging.$$"
        rm -rf "$stage" && mkdir -p "$stage"
        echo '{"name":"fnwatch-kinesis-mock","private":true}' >"$stage/package.json"
        echo "$PROG: installing kinesis-local $VERSION with npm into $PREFIX" >&2
        (cd "$stage" && npm install --no-audit --no-fund --no-update-notifier --loglevel=error \
            "kinesis-local@$VERSION" >&2) || { rm -rf "$stage"; die "npm install kinesis-local@$VERSION failed"; }
        rm -rf "$PREFIX" && mv "$stage" "$PREFIX"
        installed || die "kinesis-local $VERSION installed in $PREFIX but not found"
    fi
    exec 9>&-
}

answers() {
    "${PYTHON:-python3}" - "$PORT" <<'PYEOF' >/dev/null 2>&1
import json, sys, urllib.request
req = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/", data=b"{}", method="POST",
    headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Kinesis_20131202.ListStreams",
        "X-Amz-Date": "20200101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0",
    })
with urllib.request.urlopen(req, timeout=2) as r:
    sys.exit(0 if "StreamNames" in json.load(r) else 1)
PYEOF
}

do_start() {
    [ -n "$PORT" ] || die "start needs --port PORT"
    installed || do_install
    stop_pidfile "$DIR/kinesis-mock.pid" "kinesis-local"
    echo "---- $(date -u +%Y-%m-%dT%H:%M:%SZ) start --port $PORT" >>"$DIR/kinesis-mock.log"
    KINESIS_MOCK_CERT_PATH="$PREFIX/node_modules/kinesis-local/server.json" \
    KINESIS_MOCK_PLAIN_PORT="$PORT" KINESIS_MOCK_TLS_PORT="$((PORT + 1))" \
    CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
    SHARD_LIMIT=1000 LOG_LEVEL=WARN \
        nohup node "$MAIN" >>"$DIR/kinesis-mock.log" 2>&1 </dev/null &
    local pid=$! i
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$DIR/kinesis-mock.pid"
    for i in $(seq 1 300); do   # up to 60 s
        alive "$pid" || { tail -n 40 "$DIR/kinesis-mock.log" >&2; die "kinesis-mock exited"; }
        if answers; then
            echo ready
            return 0
        fi
        sleep 0.2
    done
    stop_pidfile "$DIR/kinesis-mock.pid" "kinesis-local"
    tail -n 40 "$DIR/kinesis-mock.log" >&2 || true
    die "no answer on 127.0.0.1:$PORT after 60 s"
}

[ $# -ge 1 ] || usage
CMD="$1"
shift
DIR=""
PORT=""
case "$CMD" in
    install) [ $# -eq 0 ] || usage; do_install; exit 0 ;;
    start|stop) [ $# -ge 1 ] || usage; DIR="$1"; shift ;;
    *) usage ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ "$CMD" = start ] && [ $# -ge 2 ] || usage; PORT="$2"; shift 2 ;;
        *) usage ;;
    esac
done
if [ -n "$PORT" ]; then
    [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65534 ] || die "bad port: $PORT"
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
if [ "$CMD" = start ]; then do_start; else stop_pidfile "$DIR/kinesis-mock.pid" "kinesis-local"; fi
