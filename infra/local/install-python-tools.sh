#!/usr/bin/env bash
# Installs the Python packages that fnwatch's tests and benchmarks use, each
# only when `python3` cannot already import it. Safe to run again and again.
#
#   deltalake        tests/e2e/read_lake.py, the independent reader of our lake
#   pyarrow          the tables deltalake hands back
#   duckdb           the peer the benchmarks compare against
#   aws-kinesis-agg  the independent KPL encoder of ingest/tests/fixtures/kpl/
#                    (it imports `six` without declaring it, so six comes too)
#   ocsf-json-schema tests/e2e/validate_ocsf.py: the published OCSF schema
#                    (1.0.0 to 1.8.0, bundled: no network) as JSON Schema;
#                    pinned, as the bundled OCSF versions come with it
#   jsonschema       validates our Detection Findings against that JSON Schema
#   boto3            tests/e2e/kinesis_tool.py: an independent Kinesis producer
#                    and admin client
#   moto[server]     infra/local/s3/moto-s3.sh: the S3 stand-in of the
#                    `s3://` lake tests (an HTTP server speaking the S3 API,
#                    with conditional writes: If-None-Match on PUT and on
#                    CompleteMultipartUpload)
#   awslambdaric     AWS's Lambda runtime interface client for Python: the
#                    real runtime of the sensor tests (tests/e2e/sensor.rs,
#                    under infra/local/lambda/standin.py); a binary wheel,
#                    no compiler needed
#
# Usage: bash infra/local/install-python-tools.sh
# Environment: PYTHON (default python3) picks the interpreter.
set -euo pipefail

PY="${PYTHON:-python3}"

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "install-python-tools: $PY not found; install Python 3 first (e.g. apt-get install python3 python3-pip)" >&2
    exit 1
fi

# "import name|pip requirement(s)", one package per line.
PACKAGES=(
    "deltalake|deltalake"
    "pyarrow|pyarrow"
    "duckdb|duckdb"
    "six|six"
    "aws_kinesis_agg.aggregator|aws-kinesis-agg"
    "ocsf_json_schema|ocsf-json-schema==1.2.0"
    "jsonschema|jsonschema>=4.18,<5"
    "boto3|boto3"
    "moto.server|moto[server]>=5.1,<6"
    "awslambdaric.bootstrap|awslambdaric>=3,<5"
)

missing=()
for entry in "${PACKAGES[@]}"; do
    module="${entry%%|*}"
    req="${entry#*|}"
    if "$PY" -c "import ${module}" >/dev/null 2>&1; then
        name="${req%%[<>=!~;]*}"
        version="$("$PY" -c "import importlib.metadata as m; print(m.version('${name}'))" 2>/dev/null || echo "?")"
        echo "install-python-tools: ${req} ${version} already installed"
    else
        missing+=("${req}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-python-tools: nothing to install"
    exit 0
fi

if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "install-python-tools: pip is missing for $PY; trying ensurepip"
    if ! "$PY" -m ensurepip --upgrade >/dev/null 2>&1; then
        echo "install-python-tools: cannot install pip; run: apt-get install python3-pip" >&2
        exit 1
    fi
fi

echo "install-python-tools: installing ${missing[*]} with $PY -m pip"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$PY" -m pip install --quiet "${missing[@]}" >"$log" 2>&1; then
    if grep -q "externally-managed-environment" "$log"; then
        # A distribution's own Python (PEP 668): these are test tools of this
        # machine, so install them beside the distribution's packages.
        echo "install-python-tools: $PY is externally managed; retrying with --break-system-packages"
        "$PY" -m pip install --quiet --break-system-packages "${missing[@]}"
    else
        cat "$log" >&2
        echo "install-python-tools: pip install ${missing[*]} failed" >&2
        exit 1
    fi
fi

for entry in "${PACKAGES[@]}"; do
    module="${entry%%|*}"
    req="${entry#*|}"
    if ! "$PY" -c "import ${module}" >/dev/null 2>&1; then
        echo "install-python-tools: ${req} installed but \`import ${module}\` still fails:" >&2
        "$PY" -c "import ${module}" >&2 || true
        exit 1
    fi
done
echo "install-python-tools: done"
