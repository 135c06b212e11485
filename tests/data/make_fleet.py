#!/usr/bin/env python3
"""Deterministic generator of a fleet-shaped telemetry file (../../../shared/spec/telemetry.md).

    python3 make_fleet.py --events N --seed S --out PATH [--functions 2000] [--accounts 25]

make_sample.py writes the traffic of 8 functions in one account, a third of it
`api_call` events. A real fleet looks different, and a tool tuned to one shape
can be slow on the other. This one writes exactly N native events of:

- `--functions` functions (default 2,000) spread over `--accounts` accounts
  (default 25) and five regions, each a variant of one of make_sample.py's eight
  kinds (an API, a queue worker, an image job, ...) with its own name, version,
  memory, hosts, tables and buckets; invocation rates follow a long tail (a few
  busy functions, many quiet ones);
- one `function_config` per function first, then invocations of all of them
  interleaved in time, the events of one invocation together, the `invocation`
  event last;
- a type mix of about dns 35%, network 30%, invocation 20%, file 8%,
  api_call 5%, process 2%: lookups with one to four answers (CNAMEs sometimes),
  connections with ports and byte counts, /tmp and /var/task files, a few child
  processes, and sampled trigger events;
- about 330 bytes per line, like make_sample.py;
- `--hours` of traffic (default 4): at 2 million events, about 28 invocations a
  second, so the invocations of a busy function overlap and its events
  interleave with other request ids.

The same arguments always give the same bytes. A summary goes to stderr.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_sample as ms  # noqa: E402  (the shared helpers: times, ids, the eight kinds of function)

REGIONS = ["us-east-1", "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
TEAMS = ["payments", "checkout", "catalog", "identity", "growth", "media", "search", "ledger", "notify",
         "partner", "fraud", "shipping", "support", "data", "platform", "mobile", "pricing", "loyalty"]
SAAS = ["api.stripe.com", "hooks.slack.com", "api.github.com", "api.sendgrid.com", "api.twilio.com",
        "api.segment.io", "api.datadoghq.com", "sentry.io", "api.pagerduty.com", "graph.microsoft.com",
        "oauth2.googleapis.com", "www.googleapis.com", "api.openai.com", "api.zendesk.com", "api.hubapi.com",
        "login.salesforce.com", "api.mailgun.net", "api.shopify.com", "api.paypal.com", "api.intercom.io"]
SERVICES = ["dynamodb", "s3", "sqs", "sns", "secretsmanager", "kms", "events", "states", "ssm", "sts"]
ACTIONS = {
    "dynamodb": ["GetItem", "PutItem", "Query", "UpdateItem", "BatchWriteItem"],
    "s3": ["GetObject", "PutObject", "HeadObject", "ListObjectsV2"],
    "sqs": ["SendMessage", "DeleteMessage", "ReceiveMessage"],
    "sns": ["Publish"],
    "secretsmanager": ["GetSecretValue"],
    "kms": ["Decrypt", "GenerateDataKey"],
    "events": ["PutEvents"],
    "states": ["StartExecution", "SendTaskSuccess"],
    "ssm": ["GetParameter", "GetParametersByPath"],
    "sts": ["AssumeRole", "GetCallerIdentity"],
}
EXES = {
    "python": ("/var/lang/bin/python3.12", [["/usr/bin/convert", "-resize", "512x512>"],
                                           ["/opt/bin/ffmpeg", "-i", "-f", "mp4"], ["/usr/bin/gs", "-q", "-dBATCH"]]),
    "nodejs": ("/var/lang/bin/node", [["/opt/bin/pandoc", "-f", "markdown"], ["/usr/bin/git", "ls-remote"]]),
    "java": ("/var/lang/bin/java", [["/usr/bin/unzip", "-o", "-q"]]),
}


@dataclass
class FleetFn:
    base: ms.Fn
    account: str
    hosts: list[tuple[str, str | None]]  # (host, cname)
    apis: list[tuple[str, str, str]]  # (service, action, resource)
    files: list[tuple[str, str]]  # (path, op)
    p_proc: float
    exe_family: str


def make_function(rng: random.Random, i: int, account: str) -> FleetFn:
    region = rng.choice(REGIONS)
    kind = ms.fleet(account)[i % 8]
    team = TEAMS[rng.randrange(len(TEAMS))]
    name = f"{team}-{kind.name}-{i:04d}"
    memory = rng.choice([128, 256, 512, 1024, 1536, 2048, 3008])
    base = ms.Fn(
        name, region, kind.runtime, kind.handler, memory, kind.timeout_ms, str(rng.randint(1, 140)),
        rng.paretovariate(1.2), kind.trigger, kind.dur_median * rng.uniform(0.4, 2.5), kind.dur_sigma,
        kind.cpu_share * rng.uniform(0.6, 1.4), (min(kind.mem_used[0], memory - 20), min(kind.mem_used[1], memory)),
        kind.cold_p, kind.init_median, kind.error_p, kind.timeout_p, kind.error_types, kind.event_bytes,
        kind.event_p, kind.permissions, kind.layers, kind.triggers)
    hosts: list[tuple[str, str | None]] = []
    for svc in rng.sample(SERVICES, rng.randint(1, 3)):
        hosts.append((f"{svc}.{region}.amazonaws.com", None))
    for h in rng.sample(SAAS, rng.randint(0, 3)):
        hosts.append((h, None))
    if rng.random() < 0.4:
        bucket = f"{team}-{ms.rand_token(rng, 6, 'abcdefghijklmnopqrstuvwxyz')}-{account[-4:]}"
        hosts.append((f"{bucket}.s3.{region}.amazonaws.com", f"s3-r-w.{region}.amazonaws.com"))
    if rng.random() < 0.3:
        hosts.append((f"{team}-db-{i % 7}.cluster-{ms.rand_token(rng, 12, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
                      f".{region}.rds.amazonaws.com", None))
    if rng.random() < 0.5:
        hosts.append((f"{team}-{ms.rand_token(rng, 5, 'abcdefghijklmnopqrstuvwxyz')}.internal.example.net", None))
    apis = []
    for svc in rng.sample(SERVICES, rng.randint(1, 3)):
        res = {"dynamodb": f"arn:aws:dynamodb:{region}:{account}:table/{team}-{kind.name}",
               "s3": f"arn:aws:s3:::{team}-{kind.name}-{account[-4:]}/objects",
               "sqs": f"arn:aws:sqs:{region}:{account}:{team}-jobs",
               "sns": f"arn:aws:sns:{region}:{account}:{team}-events",
               "secretsmanager": f"arn:aws:secretsmanager:{region}:{account}:secret:{team}/api-key",
               "kms": f"arn:aws:kms:{region}:{account}:key/{ms.rid(rng)}",
               "events": f"arn:aws:events:{region}:{account}:event-bus/{team}",
               "states": f"arn:aws:states:{region}:{account}:stateMachine:{team}-flow",
               "ssm": f"arn:aws:ssm:{region}:{account}:parameter/{team}/config",
               "sts": f"arn:aws:iam::{account}:role/{team}-reader"}[svc]
        for act in rng.sample(ACTIONS[svc], min(2, len(ACTIONS[svc]))):
            apis.append((svc, act, res))
    files = [("/tmp/" + ms.rand_token(rng, 10), "write"), ("/var/task/config.json", "read"),
             ("/etc/ssl/certs/ca-certificates.crt", "read"), ("/tmp/cache/" + ms.rand_token(rng, 8), "read")]
    family = "python" if kind.runtime.startswith("python") else "nodejs" if kind.runtime.startswith("node") else "java"
    p_proc = 0.45 if kind.name in ("thumbnailer", "report-export") else (0.06 if rng.random() < 0.3 else 0.0)
    return FleetFn(base, account, hosts, apis, files, p_proc, family)


def count(rng: random.Random, mean: float) -> int:
    """A small Poisson count."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def answers_of(rng: random.Random, host: str, cname: str | None) -> list[str]:
    """One to three addresses, as a resolver returns them: drawn afresh from the
    host's /16 each time (load balancers and CDNs rotate their answers)."""
    h = hashlib.sha256((cname or host).encode()).digest()
    prefix = ms.host_ips(cname or host, 1)[0].rsplit(".", 2)[0]
    ips = [f"{prefix}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(1 + h[0] % 3)]
    return ([cname] if cname else []) + ips


def invocation(rng: random.Random, f: FleetFn, t0: float) -> list[tuple[float, dict]]:
    """The events of one invocation, in time order, the invocation event last."""
    fn = f.base
    # The invocation event and its fields come from make_sample.py, with this function's sensor events.
    evs = ms.invocation(rng, fn, f.account, t0)
    inv_t, inv_ev = evs[-1]
    duration = float(inv_ev["duration_ms"])
    cold = inv_ev.get("init_ms") is not None
    inv = ms.Inv(rng, fn, f.account, t0, duration, inv_ev["request_id"])
    for _ in range(count(rng, 1.75 + (1.0 if cold else 0.0))):
        host, cname = f.hosts[rng.randrange(len(f.hosts))]
        at = rng.random() * 0.7
        answers = answers_of(rng, host, cname)
        rcode = "NXDOMAIN" if rng.random() < 0.01 else "NOERROR"
        inv._ev("dns", at, query=host, qtype="AAAA" if rng.random() < 0.08 else "A", rcode=rcode,
                answers=answers if rcode == "NOERROR" else [])
        if rcode == "NOERROR" and rng.random() < 0.7:
            inv.connect(host, (300, 4000), (200, 60_000), 5432 if ".rds." in host else 443,
                        min(at + 0.02, 0.99), answers[-1])
    for _ in range(count(rng, 0.3)):  # connections on a cached lookup
        host, cname = f.hosts[rng.randrange(len(f.hosts))]
        inv.connect(host, (300, 4000), (200, 60_000), 443, None, answers_of(rng, host, cname)[-1])
    scratch = f"/tmp/{ms.rand_token(rng, 12)}"  # a file of this invocation's own
    for _ in range(count(rng, 0.4)):
        path, op = f.files[rng.randrange(len(f.files))]
        inv.file(scratch if path.startswith("/tmp/") and rng.random() < 0.7 else path, op)
    for _ in range(count(rng, 0.25)):
        svc, act, res = f.apis[rng.randrange(len(f.apis))]
        if svc == "s3":  # one object of many
            res = f"{res}/{ms.rand_token(rng, 16, 'abcdef0123456789')}.json"
        inv.api(svc, act, res, "ThrottlingException" if rng.random() < 0.005 else None)
    if f.p_proc and rng.random() < f.p_proc:
        parent, cmds = EXES[f.exe_family]
        cmd = cmds[rng.randrange(len(cmds))]
        target = f"/tmp/{ms.rand_token(rng, 10)}"
        inv.proc(cmd[0], [cmd[0].rsplit("/", 1)[-1], *cmd[1:], target], parent)
    inv.events.sort(key=lambda te: te[0])
    return inv.events + [(inv_t, inv_ev)]


def fleet_events(rng: random.Random, n: int, functions: int, accounts: int, span_ms: float):
    """Yields exactly n native events as (time ms, event), in roughly time order."""
    accts = [ms.make_account(rng) for _ in range(max(1, min(accounts, functions)))]
    fns = [make_function(rng, i, accts[i % len(accts)]) for i in range(functions)]
    emitted = 0
    t = float(ms.START_MS)
    for f in fns:
        if emitted == n:
            return
        t += rng.uniform(0.5, 3)
        yield t, ms.function_config(f.base, f.account, t)
        emitted += 1
    cum, total = [], 0.0
    for f in fns:
        total += f.base.weight
        cum.append(total)
    expected = max(8.0, (n - emitted) * 0.2)
    mean_gap = span_ms / expected
    while emitted < n:
        hour = ((t - ms.START_MS) / 3_600_000) % 24
        rate = 1.0 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi)
        t += rng.expovariate(rate / mean_gap)
        f = fns[min(len(fns) - 1, _bisect(cum, rng.random() * total))]
        evs = invocation(rng, f, t)
        room = n - emitted
        if len(evs) > room:
            evs = evs[:room - 1] + [evs[-1]]
        yield from evs
        emitted += len(evs)


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum)
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, required=True, help="native events to write (exactly)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, help="output path; gzip when it ends in .gz")
    ap.add_argument("--functions", type=int, default=2000, help="functions in the fleet (default 2000)")
    ap.add_argument("--accounts", type=int, default=25, help="accounts they live in (default 25)")
    ap.add_argument("--hours", type=float, default=4.0,
                    help="the time the traffic spans (default 4: a busy fleet, where invocations of one "
                         "function overlap)")
    a = ap.parse_args()
    if a.events < 0:
        ap.error("--events must be >= 0")
    if a.hours <= 0:
        ap.error("--hours must be positive")
    if a.functions < 1 or a.accounts < 1:
        ap.error("--functions and --accounts must be at least 1")

    rng = random.Random(f"fnwatch-fleet-{a.seed}")
    raw = open(a.out, "wb")
    out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) \
        if a.out.endswith(".gz") else raw
    counts: Counter[str] = Counter()
    total = 0
    buf: list[str] = []
    for _, ev in fleet_events(rng, a.events, a.functions, a.accounts, a.hours * 3_600_000):
        line = ms.dumps(ev) + "\n"
        total += len(line.encode())
        counts[ev["type"]] += 1
        buf.append(line)
        if len(buf) >= 4096:
            out.write("".join(buf).encode())
            buf.clear()
    out.write("".join(buf).encode())
    if out is not raw:
        out.close()
    raw.close()
    n = sum(counts.values())
    err = sys.stderr
    print(f"wrote {a.out}: {n} lines, {total} bytes uncompressed", file=err)
    print(f"native events: {n} ({a.functions} functions in {min(a.accounts, a.functions)} accounts)", file=err)
    for k in ("function_config", "invocation", "dns", "network", "process", "file", "api_call"):
        print(f"  {k:<16}{counts[k]:>9}  ({counts[k] / max(1, n):.1%})", file=err)
    print(f"average line length: {total / max(1, n):.1f} bytes", file=err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
