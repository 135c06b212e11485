#!/usr/bin/env python3
"""CloudTrail fixtures for the saved hunts (tests/e2e/queries.rs).

Writes, deterministically (standard library only):
- tests/data/cloudtrail.json.gz: one CloudTrail log file as CloudTrail writes
  it to S3 ({"Records": [...]}, gzip with a zero timestamp) for the sample
  fleet's account: calls of the functions' role sessions from inside Lambda,
  the same credentials used from a laptop (the AWS CLI, a documentation-range
  address), a redelivered record and a console sign-in to skip;
- tests/data/inventory.jsonl: function_config events as `fnwatch inventory`
  writes them (contract v1.1: statements, env_keys, source = inventory).

Run from the repository root: python3 tests/data/make_cloudtrail.py
"""
import gzip
import io
import json

ACCOUNT = "526018159083"
LAMBDA_UA = ("Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#5.10.209-220.804.amzn2.x86_64 "
             "md/arch#x86_64 lang/python#3.12.1 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 "
             "cfg/retry-mode#legacy Botocore/1.34.34")
CLI_UA = ("aws-cli/2.15.10 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.6 "
          "md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off")


def call(n, time, function, source, action, params, ip=None, ua=LAMBDA_UA, error=None):
    r = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE{n:04d}:{function}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{function}-role/{function}",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLEKEY",
        },
        "eventTime": time,
        "eventSource": f"{source}.amazonaws.com",
        "eventName": action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip or f"3.91.{n % 4}.{10 + n}",
        "userAgent": ua,
        "requestParameters": params,
        "responseElements": None,
        "requestID": f"REQ{n:06d}",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": ACCOUNT,
    }
    if error:
        r["errorCode"] = error
        r["errorMessage"] = "Access Denied"
    return r


def records():
    out = []
    n = 0
    for i in range(12):
        n += 1
        out.append(call(n, f"2026-11-20T0{i % 10}:15:00Z", "thumbnailer", "s3", "GetObject",
                        {"bucketName": "uploads", "key": f"images/{i}.jpg"}))
    for i in range(6):
        n += 1
        out.append(call(n, f"2026-11-20T1{i}:30:00Z", "auth-token", "kms", "Decrypt",
                        {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}))
    # billing-worker's credentials from a laptop: the CLI, denied, then a read.
    n += 1
    out.append(call(n, "2026-11-20T21:00:00Z", "billing-worker", "secretsmanager", "ListSecrets",
                    {}, ip="198.51.100.23", ua=CLI_UA, error="AccessDenied"))
    n += 1
    stolen = call(n, "2026-11-20T21:00:07Z", "billing-worker", "secretsmanager", "GetSecretValue",
                  {"secretId": "prod/stripe"}, ip="198.51.100.23", ua=CLI_UA)
    out.append(stolen)
    out.append(stolen)  # CloudTrail delivered it twice
    out.append({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
                         "accountId": ACCOUNT, "userName": "alice"},
        "eventTime": "2026-11-20T08:00:00Z", "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.5",
        "userAgent": "Mozilla/5.0", "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Success"},
        "eventID": "00000000-0000-4000-8000-999999999999", "eventType": "AwsConsoleSignIn",
        "recipientAccountId": ACCOUNT,
    })
    return out


def inventory():
    def cfg(function, statements, permissions, env_keys, layers):
        return {
            "type": "function_config", "time": "2026-11-20T23:00:00Z", "function": function,
            "account": ACCOUNT, "region": "us-east-1", "runtime": "python3.12",
            "handler": "app.handler", "memory_mb": 512, "timeout_ms": 30000,
            "role_arn": f"arn:aws:iam::{ACCOUNT}:role/{function}-role",
            "permissions": permissions, "statements": statements, "triggers": [],
            "layers": layers, "code_sha256": f"{function}-code", "env_keys": env_keys,
            "source": "inventory",
        }
    return [
        cfg("thumbnailer",
            [{"effect": "Allow", "actions": ["s3:*"], "resources": ["*"]},
             {"effect": "Allow", "actions": ["logs:CreateLogStream", "logs:PutLogEvents"], "resources": ["*"]}],
            ["s3:*", "logs:CreateLogStream", "logs:PutLogEvents"], ["BUCKET"], []),
        cfg("auth-token",
            [{"effect": "Allow", "actions": ["kms:Decrypt"],
              "resources": [f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"]},
             {"effect": "Allow", "actions": ["cognito-idp:AdminGetUser", "cognito-idp:AdminDeleteUser"], "resources": ["*"]}],
            ["kms:Decrypt", "cognito-idp:AdminGetUser", "cognito-idp:AdminDeleteUser"], ["KEY_ID", "POOL_ID"], []),
        cfg("billing-worker",
            [{"effect": "Allow", "actions": ["*"], "resources": ["*"]}],
            ["*"], ["STRIPE_SECRET_ID"], [f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:stripe:4"]),
    ]


def main():
    body = json.dumps({"Records": records()}, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(body)
    with open("tests/data/cloudtrail.json.gz", "wb") as f:
        f.write(buf.getvalue())
    with open("tests/data/inventory.jsonl", "w") as f:
        for c in inventory():
            f.write(json.dumps(c, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
