#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs what the tests
# need (Python tools for the independent lake reader and the OCSF schema
# check, rsyslog as a real syslog receiver), then formats, lints and
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== tools"
bash infra/local/install-python-tools.sh
# The real receivers the output tests start (rsyslog from Debian's packages;
# the HTTPS endpoint is Python's standard library and openssl).
bash infra/local/syslog/rsyslog.sh install
# The real client the SQL endpoint tests drive (tests/e2e/server.rs).
command -v psql >/dev/null || { apt-get update && apt-get install -y postgresql-client; }

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --all-targets --locked
