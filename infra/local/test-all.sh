#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs what the tests
# need (Python tools for the independent lake reader), then formats, lints and
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== tools"
bash infra/local/install-python-tools.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --all-targets --locked
