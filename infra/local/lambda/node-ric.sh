#!/usr/bin/env bash
# aws-lambda-ric, AWS's Lambda runtime interface client for Node.js (the
# runtime loop of AWS's Node.js images, with its native Runtime API client),
# as the real Node.js runtime of the sensor tests (tests/e2e/sensor.rs, under
# infra/local/lambda/standin.py --runtime node).
#
# Usage:
#   bash infra/local/lambda/node-ric.sh install
#   bash infra/local/lambda/node-ric.sh path
#
# install  installs aws-lambda-ric $VERSION with npm into
#          ${FNWATCH_TOOLS:-$HOME/.cache/fnwatch/tools}/aws-lambda-ric (outside
#          the repository) unless it is there and its native client loads.
#          npm builds that client from source (curl and aws-lambda-cpp, which
#          the package carries): cmake, autoconf, automake, libtool, make and
#          g++ come from Debian's packages first when missing (about 2 min on
#          2 cores). Safe to run again, and from several processes (flock).
# path     prints the runtime's entry point (bin/index.mjs), installing first
#          when needed; run it as `node ENTRY module.handler` in the task dir.
set -euo pipefail

PROG="node-ric.sh"
VERSION="3.3.0"
TOOLS="${FNWATCH_TOOLS:-$HOME/.cache/fnwatch/tools}"
PREFIX="$TOOLS/aws-lambda-ric"
ENTRY="$PREFIX/node_modules/aws-lambda-ric/bin/index.mjs"

die() { echo "$PROG: $*" >&2; exit 1; }

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

# Is $VERSION there, with a native client that loads?
installed() {
    [ -f "$ENTRY" ] || return 1
    command -v node >/dev/null 2>&1 || return 1
    # (Loading the native client reads AWS_LAMBDA_RUNTIME_API; it connects
    # only on next().)
    (cd "$PREFIX/node_modules/aws-lambda-ric" && AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 node -e '
        const v = require("./package.json").version;
        if (v !== process.argv[1]) process.exit(1);
        const c = require("./dist/rapid-client.node");
        if (typeof c.next !== "function") process.exit(1);
    ' "$VERSION") >/dev/null 2>&1
}

do_install() {
    if installed; then
        echo "$PROG: aws-lambda-ric $VERSION already installed in $PREFIX" >&2
        return 0
    fi
    local need=()
    command -v node >/dev/null 2>&1 || need+=(nodejs)
    command -v npm >/dev/null 2>&1 || need+=(npm)
    command -v cmake >/dev/null 2>&1 || need+=(cmake)
    command -v autoconf >/dev/null 2>&1 || need+=(autoconf)
    command -v automake >/dev/null 2>&1 || need+=(automake)
    command -v libtoolize >/dev/null 2>&1 || need+=(libtool)
    command -v make >/dev/null 2>&1 || need+=(make)
    command -v g++ >/dev/null 2>&1 || need+=(g++)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    if [ "${#need[@]}" -gt 0 ]; then
        apt_install "${need[@]}"
    fi
    mkdir -p "$PREFIX"
    [ -f "$PREFIX/package.json" ] || echo '{"name":"fnwatch-test-tools-aws-lambda-ric","private":true}' >"$PREFIX/package.json"
    echo "$PROG: installing aws-lambda-ric $VERSION into $PREFIX (builds its native client)" >&2
    (cd "$PREFIX" && npm install --no-audit --no-fund --loglevel=error "aws-lambda-ric@$VERSION" >&2) ||
        die "npm install aws-lambda-ric@$VERSION failed in $PREFIX (see above)"
    installed || die "aws-lambda-ric $VERSION installed in $PREFIX but its native client does not load"
    echo "$PROG: aws-lambda-ric $VERSION installed" >&2
}

locked() {
    mkdir -p "$TOOLS"
    exec 9>"$TOOLS/.aws-lambda-ric.lock"
    flock 9
    do_install
}

case "${1:-}" in
    install) locked ;;
    path) installed || locked; echo "$ENTRY" ;;
    *) echo "usage: bash infra/local/lambda/node-ric.sh install|path" >&2; exit 2 ;;
esac
