#!/usr/bin/env bash
# Renders an fnwatch report page to PNG with headless Chromium (Debian's
# package, installed when missing), to look at it and to keep the README's
# screenshot current.
#
# Usage: bash infra/local/report-screenshot.sh REPORT.html OUT.png [WIDTHxHEIGHT]
#   e.g. after `fnwatch demo`:
#   fnwatch report --lake fnwatch-demo/lake --window -1d --out /tmp/r   # (or --from/--to)
#   bash infra/local/report-screenshot.sh /tmp/r/fnwatch-report-*.html docs/report.png
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2; exit 2; }
html="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
out="$2"
size="${3:-1200x2000}"
if ! command -v chromium >/dev/null 2>&1; then
    echo "report-screenshot: installing chromium (apt-get install chromium)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2 ||
        { echo "report-screenshot: run as root: apt-get update && apt-get install -y chromium" >&2; exit 1; }
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# The flags keep Chromium off the network (this machine's is closed) and
# away from a desktop session.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="${size/x/,}" \
    --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
