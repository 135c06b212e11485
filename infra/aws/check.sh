#!/usr/bin/env bash
# Lints the AWS deployment in infra/aws/ without an AWS account or Docker:
#
#   fnwatch.yaml            cfn-lint (errors and warnings fail; informational
#                           findings are shown), in two regions
#   producer-policy.json    python3 -m json.tool, plus: an IAM policy that
#                           grants exactly kinesis:PutRecord and PutRecords,
#                           the same actions as the template's ProducerPolicy
#   Dockerfile              every path the build stage COPYs is let through
#                           by Dockerfile.dockerignore, and every workspace
#                           member of Cargo.toml is copied; hadolint, only when
#                           it is already on PATH (otherwise skipped, see below)
#
# cfn-lint is installed with pip when missing (PEP 668 handled as in
# infra/local/install-python-tools.sh). hadolint is not installed here:
# Debian (bookworm) does not package it and PyPI has only unofficial
# repackagings of its binary; put a `hadolint` on PATH to have it run.
#
# Usage: bash infra/aws/check.sh        (test-all.sh runs it)
# Environment: PYTHON (default python3) picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PYTHON:-python3}"
DIR=infra/aws
TEMPLATE="$DIR/fnwatch.yaml"
POLICY="$DIR/producer-policy.json"
CFN_LINT_REQ="cfn-lint>=1.20,<2"
REGIONS=(us-east-1 eu-west-1)

die() { echo "check.sh: $*" >&2; exit 1; }

command -v "$PY" >/dev/null 2>&1 || die "$PY not found; install Python 3 (apt-get install python3 python3-pip)"

pip_install() {
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        echo "check.sh: pip is missing for $PY; trying ensurepip"
        "$PY" -m ensurepip --upgrade >/dev/null 2>&1 ||
            die "cannot install pip; run: apt-get install python3-pip"
    fi
    local log
    log="$(mktemp)"
    if ! "$PY" -m pip install --quiet "$@" >"$log" 2>&1; then
        if grep -q "externally-managed-environment" "$log"; then
            # A distribution's own Python (PEP 668): a lint tool of this
            # machine, installed beside the distribution's packages.
            echo "check.sh: $PY is externally managed; retrying with --break-system-packages"
            "$PY" -m pip install --quiet --break-system-packages "$@" ||
                { rm -f "$log"; die "pip install $* failed"; }
        else
            cat "$log" >&2
            rm -f "$log"
            die "pip install $* failed"
        fi
    fi
    rm -f "$log"
}

# ------------------------------------------------------------ cfn-lint
if command -v cfn-lint >/dev/null 2>&1; then
    CFN_LINT=(cfn-lint)
else
    if ! "$PY" -c "import cfnlint" >/dev/null 2>&1; then
        echo "check.sh: installing $CFN_LINT_REQ with $PY -m pip"
        pip_install "$CFN_LINT_REQ"
    fi
    # The console script may not be on PATH (user installs, pyenv shims).
    CFN_LINT=("$PY" -c 'import sys; sys.argv[0] = "cfn-lint"; from cfnlint.runner import main; sys.exit(main())')
fi
echo "check.sh: $("${CFN_LINT[@]}" --version) on $TEMPLATE (regions ${REGIONS[*]})"
if ! "${CFN_LINT[@]}" --include-checks I --non-zero-exit-code warning \
        --regions "${REGIONS[@]}" -- "$TEMPLATE"; then
    die "cfn-lint found errors or warnings in $TEMPLATE"
fi
echo "check.sh: cfn-lint: no errors, no warnings"

# ------------------------------------------------------------ the IAM policy
"$PY" -m json.tool "$POLICY" >/dev/null || die "$POLICY is not valid JSON"
"$PY" - "$POLICY" "$TEMPLATE" <<'PYEOF' || die "consistency checks failed"
import json, re, sys

policy_path, template_path = sys.argv[1], sys.argv[2]
doc = json.load(open(policy_path))
problems = []
if doc.get("Version") != "2012-10-17":
    problems.append(f"{policy_path}: Version must be 2012-10-17")
stmts = doc.get("Statement")
if not isinstance(stmts, list) or not stmts:
    problems.append(f"{policy_path}: Statement must be a non-empty list")
    stmts = []
actions = set()
for s in stmts:
    if s.get("Effect") != "Allow":
        problems.append(f"{policy_path}: unexpected Effect {s.get('Effect')!r}")
    a = s.get("Action", [])
    actions.update([a] if isinstance(a, str) else a)
    r = s.get("Resource", "")
    if not (isinstance(r, str) and re.fullmatch(r"arn:aws:kinesis:[^:]+:[^:]+:stream/[^*]+", r)):
        problems.append(f"{policy_path}: Resource must be one stream's ARN, not {r!r}")
want = {"kinesis:PutRecord", "kinesis:PutRecords"}
if actions != want:
    problems.append(f"{policy_path}: actions {sorted(actions)} != {sorted(want)}")

# The template's ProducerPolicy grants the same actions (read as text: the
# template's short-form tags need no YAML loader here).
text = open(template_path).read()
m = re.search(r"\n  ProducerPolicy:\n(.*?)\n  \S", text, re.S)
if not m:
    problems.append(f"{template_path}: no ProducerPolicy resource")
else:
    tpl = set(re.findall(r"- (kinesis:\w+)", m.group(1)))
    if tpl != want:
        problems.append(f"{template_path}: ProducerPolicy actions {sorted(tpl)} != {sorted(want)}")
for p in problems:
    print("check.sh:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PYEOF
echo "check.sh: $POLICY: valid JSON, PutRecord/PutRecords on one stream, same as the template"

# ------------------------------------------------------------ the Dockerfile
"$PY" - "$DIR/Dockerfile" "$DIR/Dockerfile.dockerignore" Cargo.toml <<'PYEOF' || die "Dockerfile checks failed"
import re, sys

dockerfile, ignore, cargo = sys.argv[1:4]
problems = []
copied = []
for line in open(dockerfile):
    line = line.strip()
    if line.startswith("COPY ") and "--from=" not in line:
        parts = line.split()[1:]
        copied += [p.rstrip("/") for p in parts[:-1]]
allowed = [l.strip()[1:].rstrip("/") for l in open(ignore) if l.strip().startswith("!")]
for c in copied:
    if not any(c == a or c.startswith(a + "/") for a in allowed):
        problems.append(f"{dockerfile} copies {c}, which {ignore} excludes")
try:
    import tomllib
    members = tomllib.load(open(cargo, "rb")).get("workspace", {}).get("members", [])
    for mem in members:
        if mem.rstrip("/") not in copied:
            problems.append(f"{dockerfile} does not copy workspace member {mem}")
except ImportError:
    pass  # Python < 3.11: skip the member check
for p in problems:
    print("check.sh:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PYEOF
if command -v hadolint >/dev/null 2>&1; then
    hadolint "$DIR/Dockerfile" || die "hadolint found problems in $DIR/Dockerfile"
    echo "check.sh: hadolint: $DIR/Dockerfile is clean"
else
    echo "check.sh: hadolint not on PATH; Dockerfile lint skipped (COPY/ignore checks passed)"
fi

echo "check.sh: infra/aws OK"
