#!/usr/bin/env bash
# kinesalite (an in-process Kinesis Data Streams emulator on Node.js) as the
# local stand-in for Kinesis, for the tests of `fnwatch ingest --kinesis`.
#
# Usage:
#   bash infra/local/kinesis/kinesalite.sh install
#   bash infra/local/kinesis/kinesalite.sh start DIR --port PORT [--persist]
#   bash infra/local/kinesis/kinesalite.sh stop DIR
#
# install  installs kinesalite 3.3.3 with npm into
#          ${FNWATCH_TOOLS:-$HOME/.cache/fnwatch/tools}/kinesalite (outside the
#          repository), unless it is already there; installs Node.js and npm
#          from Debian's packages first when they are missing. Safe to run
#          again and again, and from several processes at once (flock).
# start    installs when needed, then starts kinesalite in the background,
#          listening on 127.0.0.1:PORT only, with streams going from CREATING,
#          UPDATING and DELETING to the next state at once and a shard limit
#          of 1000. Waits (up to 30 s) until a ListStreams call is answered and
#          prints `ready`. An instance already started from DIR is stopped
#          first. With --persist the streams and records are kept in DIR/data
#          (LevelDB), so a stop and a start with --persist keep them;
#          without it they live in memory and go with the process.
# stop     ends the kinesalite started from DIR (TERM, then KILL after 5 s)
#          and removes DIR/kinesalite.pid. Stopping one that is not running is
#          not an error.
#
# Files in DIR: kinesalite.log (its stdout and stderr, appended to across
# restarts), kinesalite.pid, run-kinesalite.js (the launcher, rewritten on
# every start) and, with --persist, data/.
#
# Clients use http://127.0.0.1:PORT, region us-east-1 and any access keys
# (kinesalite checks that a request is signed, not the signature).
set -euo pipefail

PROG="kinesalite.sh"
VERSION="3.3.3"
TOOLS="${FNWATCH_TOOLS:-$HOME/.cache/fnwatch/tools}"
PREFIX="$TOOLS/kinesalite"

die() { echo "$PROG: $*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: bash infra/local/kinesis/kinesalite.sh install
       bash infra/local/kinesis/kinesalite.sh start DIR --port PORT [--persist]
       bash infra/local/kinesis/kinesalite.sh stop DIR
EOF
    exit 2
}

# ---------------------------------------------------------------- install

apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "cannot install $*; run as root: apt-get update && apt-get install -y $*"
    fi
    echo "$PROG: installing $* from Debian's packages (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; } ||
        die "could not install $*; run as root: apt-get update && apt-get install -y $*"
}

# Is kinesalite $VERSION installed in $PREFIX, with a LevelDB binding that
# loads (needed by --persist)?
installed() {
    [ -f "$PREFIX/node_modules/kinesalite/package.json" ] || return 1
    command -v node >/dev/null 2>&1 || return 1
    (cd "$PREFIX" && node -e '
        const v = require("./node_modules/kinesalite/package.json").version;
        if (v !== process.argv[1]) process.exit(1);
        require("./node_modules/leveldown");
    ' "$VERSION") >/dev/null 2>&1
}

do_install() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "$PROG: Node.js and npm are needed to run kinesalite; they are missing" >&2
        apt_install nodejs npm
    fi
    if installed; then
        echo "$PROG: kinesalite $VERSION already installed in $PREFIX" >&2
        return 0
    fi
    mkdir -p "$TOOLS"
    # One installer at a time; the others wait, then find it installed.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$TOOLS/.kinesalite.lock"
        flock 9
        if installed; then
            echo "$PROG: kinesalite $VERSION already installed in $PREFIX" >&2
            exec 9>&-
            return 0
        fi
    fi
    # Into a staging directory, then renamed into place, so a half-done
    # install is never taken for a finished one.
    local stage="$PREFIX.staging.$$"
    rm -rf "$stage"
    mkdir -p "$stage"
    # leveldown (kinesalite's LevelDB store, used by --path) has an install
    # script (node-gyp-build: it picks the prebuilt binary it ships, or
    # compiles one). npm 11 skips dependencies' install scripts unless
    # package.json's allowScripts allows them (`--allow-scripts` is refused in
    # project installs); older npm ignores the field and runs them anyway.
    cat >"$stage/package.json" <<EOF
{
  "name": "fnwatch-kinesalite",
  "private": true,
  "description": "kinesalite for fnwatch's tests (infra/local/kinesis/kinesalite.sh)",
  "dependencies": { "kinesalite": "$VERSION" },
  "allowScripts": { "leveldown": true }
}
EOF
    echo "$PROG: installing kinesalite $VERSION with npm into $PREFIX" >&2
    if ! (cd "$stage" && npm install --no-audit --no-fund --no-update-notifier \
            --loglevel=warn --foreground-scripts >&2); then
        rm -rf "$stage"
        die "npm install kinesalite@$VERSION failed"
    fi
    rm -rf "$PREFIX"
    mv "$stage" "$PREFIX"
    if ! installed; then
        (cd "$PREFIX" && node -e 'require("./node_modules/leveldown")') >&2 || true
        die "kinesalite $VERSION was installed in $PREFIX but does not load"
    fi
    exec 9>&-
    echo "$PROG: installed kinesalite $VERSION in $PREFIX" >&2
}

# ---------------------------------------------------------------- run

# Is process PID alive (a zombie is not)?
alive() {
    local state
    state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The pid of the kinesalite started from DIR, if it is still running (a
# reused pid of another program does not count).
pid_of() {
    local pid
    [ -s "$DIR/kinesalite.pid" ] || return 1
    pid="$(tr -dc '0-9' <"$DIR/kinesalite.pid")"
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/run-kinesalite.js" || return 1
    echo "$pid"
}

do_stop() {
    local pid i
    if pid="$(pid_of)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do   # up to 5 s
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            echo "$PROG: kinesalite (pid $pid) did not end on TERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do
                alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$DIR/kinesalite.pid"
}

# The launcher: kinesalite's own CLI listens on every interface, this one on
# 127.0.0.1 only. On TERM/INT it closes the LevelDB store before exiting.
write_launcher() {
    cat >"$DIR/run-kinesalite.js.tmp" <<'EOF'
// Written by infra/local/kinesis/kinesalite.sh; rewritten on every start.
// usage: node run-kinesalite.js PREFIX PORT [DATA_DIR]
"use strict";
const [prefix, port, dataDir] = process.argv.slice(2);
const kinesalite = require(prefix + "/node_modules/kinesalite");
const options = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 };
if (dataDir) options.path = dataDir;
const server = kinesalite(options);
server.on("error", (err) => { console.error("kinesalite: " + err.message); process.exit(1); });
server.listen(Number(port), "127.0.0.1", () => {
  const a = server.address();
  console.log("kinesalite: listening at http://%s:%s (%s)", a.address, a.port,
              dataDir ? "data in " + dataDir : "in memory");
});
let ending = false;
function end(signal) {
  if (ending) return;
  ending = true;
  console.log("kinesalite: %s, closing", signal);
  setTimeout(() => process.exit(0), 2000).unref();
  server.close(() => process.exit(0));
  if (server.closeAllConnections) server.closeAllConnections();
}
process.on("SIGTERM", () => end("SIGTERM"));
process.on("SIGINT", () => end("SIGINT"));
EOF
    mv "$DIR/run-kinesalite.js.tmp" "$DIR/run-kinesalite.js"
}

# Does 127.0.0.1:PORT answer a Kinesis ListStreams call? (Node's http, so no
# curl or boto3 is needed here.)
answers() {
    node -e '
        const http = require("http");
        const body = "{}";
        const req = http.request({
            host: "127.0.0.1", port: Number(process.argv[1]), method: "POST", path: "/",
            timeout: 2000,
            headers: {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "Kinesis_20131202.ListStreams",
                "X-Amz-Date": "20200101T000000Z",
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0",
                "Content-Length": Buffer.byteLength(body),
            },
        }, (res) => {
            let data = "";
            res.on("data", (c) => { data += c; });
            res.on("end", () => {
                try {
                    process.exit(res.statusCode === 200 && Array.isArray(JSON.parse(data).StreamNames) ? 0 : 1);
                } catch (e) { process.exit(1); }
            });
        });
        req.on("timeout", () => req.destroy());
        req.on("error", () => process.exit(1));
        req.end(body);
    ' "$PORT" >/dev/null 2>&1
}

# Is 127.0.0.1:PORT listened on by process PID? (The socket's inode must be
# one of PID's open files, so a port that another program holds does not
# count.)
port_bound() {
    local pid="$1" hex inode
    hex="$(printf '0100007F:%04X' "$PORT")"
    inode="$(awk -v a="$hex" '$2 == a && $4 == "0A" { print $10; exit }' /proc/net/tcp)"
    [ -n "$inode" ] || return 1
    find "/proc/$pid/fd" -lname "socket:\\[$inode\\]" 2>/dev/null | grep -q .
}

fail_start() {
    echo "$PROG: kinesalite did not become ready: $*" >&2
    echo "---- $DIR/kinesalite.log (last lines)" >&2
    tail -n 40 "$DIR/kinesalite.log" >&2 2>/dev/null || true
    exit 1
}

do_start() {
    [ -n "$PORT" ] || die "start needs --port PORT"
    installed || do_install
    do_stop
    write_launcher
    local data=()
    if [ -n "$PERSIST" ]; then
        data=("$DIR/data")
        mkdir -p "$DIR/data"
    fi
    echo "---- $(date -u +%Y-%m-%dT%H:%M:%SZ) start --port $PORT${PERSIST:+ --persist}" >>"$DIR/kinesalite.log"
    nohup node "$DIR/run-kinesalite.js" "$PREFIX" "$PORT" "${data[@]}" \
        >>"$DIR/kinesalite.log" 2>&1 </dev/null &
    local pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" >"$DIR/kinesalite.pid"

    local i
    for i in $(seq 1 150); do   # up to 30 s
        if ! alive "$pid"; then
            rm -f "$DIR/kinesalite.pid"
            fail_start "it exited"
        fi
        # Bound by this process first: another program already on PORT (this
        # one then exits with EADDRINUSE) must not pass for it.
        if port_bound "$pid" && answers; then
            echo ready
            return 0
        fi
        sleep 0.2
    done
    do_stop
    fail_start "no answer on 127.0.0.1:$PORT after 30 s"
}

[ $# -ge 1 ] || usage
CMD="$1"
shift
DIR=""
PORT=""
PERSIST=""
case "$CMD" in
    install)
        [ $# -eq 0 ] || usage
        do_install
        exit 0
        ;;
    start|stop)
        [ $# -ge 1 ] || usage
        DIR="$1"
        shift
        ;;
    *) usage ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
        --port) [ "$CMD" = start ] && [ $# -ge 2 ] || usage; PORT="$2"; shift 2 ;;
        --persist) [ "$CMD" = start ] || usage; PERSIST=1; shift ;;
        *) usage ;;
    esac
done
if [ -n "$PORT" ]; then
    [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "bad port: $PORT"
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"

if [ "$CMD" = start ]; then do_start; else do_stop; fi
