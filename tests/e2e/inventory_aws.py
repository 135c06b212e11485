"""Creates an account's functions, roles and triggers in moto's server with
boto3, for the tests and the benchmark of `fnwatch inventory`; prints what
it created as JSON, so the test compares the lake with boto3's own account
of it (not with our Rust code's).

  python3 tests/e2e/inventory_aws.py setup ENDPOINT     # the test's account
  python3 tests/e2e/inventory_aws.py bulk ENDPOINT N    # N functions, for benches/
  python3 tests/e2e/inventory_aws.py add-layer ENDPOINT FUNCTION
"""

import io
import json
import sys
import zipfile

import boto3

REGION = "us-east-1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def clients(endpoint):
    kw = dict(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return boto3.client("iam", **kw), boto3.client("lambda", **kw), boto3.client("sqs", **kw)


def code(text):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", text)
    return buf.getvalue()


def role(iam, name, path="/"):
    return iam.create_role(
        RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]


def setup(endpoint):
    iam, lam, sqs = clients(endpoint)
    s3_all = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    tables = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Orders",
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
                "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}},
            },
            {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": "*"},
        ],
    }
    not_action = {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"},
    }
    managed = iam.create_policy(PolicyName="s3-everything", PolicyDocument=json.dumps(s3_all))["Policy"]["Arn"]
    orders_role = role(iam, "orders-role", "/service-role/")
    audit_role = role(iam, "audit-role")
    for r in ["orders-role", "audit-role"]:
        iam.attach_role_policy(RoleName=r, PolicyArn=managed)
    iam.put_role_policy(RoleName="orders-role", PolicyName="tables", PolicyDocument=json.dumps(tables))
    iam.put_role_policy(RoleName="audit-role", PolicyName="almost-admin", PolicyDocument=json.dumps(not_action))

    layer = lam.publish_layer_version(LayerName="deps", Content={"ZipFile": code("# deps")})["LayerVersionArn"]
    created = {}
    specs = [
        dict(
            FunctionName="orders-api",
            Runtime="python3.12",
            Role=orders_role,
            Handler="app.handler",
            MemorySize=256,
            Timeout=30,
            Environment={"Variables": {"DB_PASSWORD": "hunter2-do-not-log", "TABLE": "orders"}},
            Layers=[layer],
        ),
        dict(
            FunctionName="audit-job",
            Runtime="nodejs20.x",
            Role=audit_role,
            Handler="index.handler",
            MemorySize=1024,
            Timeout=300,
            Environment={"Variables": {"API_TOKEN": "tok-7f3a-secret-value"}},
        ),
    ]
    for s in specs:
        f = lam.create_function(Code={"ZipFile": code("def handler(e, c):\n    return 1\n")}, **s)
        created[f["FunctionName"]] = {
            "runtime": f["Runtime"],
            "handler": f["Handler"],
            "memory_mb": f["MemorySize"],
            "timeout_ms": f["Timeout"] * 1000,
            "role_arn": f["Role"],
            "layers": [l["Arn"] for l in f.get("Layers", [])],
            "code_sha256": f["CodeSha256"],
            "env": f.get("Environment", {}).get("Variables", {}),
        }
    queue = sqs.create_queue(QueueName="orders-in")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="orders-api")
    lam.add_permission(
        FunctionName="audit-job",
        StatementId="uploads",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::audit-uploads",
    )
    created["orders-api"]["triggers"] = [queue_arn]
    created["audit-job"]["triggers"] = ["arn:aws:s3:::audit-uploads"]
    # What IAM holds, read back by boto3.
    policies = {}
    for r in ["orders-role", "audit-role"]:
        docs = []
        for p in iam.list_attached_role_policies(RoleName=r)["AttachedPolicies"]:
            meta = iam.get_policy(PolicyArn=p["PolicyArn"])["Policy"]
            v = iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=meta["DefaultVersionId"])
            docs.append({"policy": p["PolicyArn"], "document": v["PolicyVersion"]["Document"]})
        for n in iam.list_role_policies(RoleName=r)["PolicyNames"]:
            d = iam.get_role_policy(RoleName=r, PolicyName=n)["PolicyDocument"]
            docs.append({"policy": f"inline:{r}/{n}", "document": d})
        policies[r] = docs
    json.dump({"functions": created, "policies": policies, "layer": layer}, sys.stdout)


def add_layer(endpoint, function):
    _, lam, _ = clients(endpoint)
    layer = lam.publish_layer_version(LayerName="extra", Content={"ZipFile": code("# more")})["LayerVersionArn"]
    cur = lam.get_function_configuration(FunctionName=function)
    layers = [l["Arn"] for l in cur.get("Layers", [])] + [layer]
    lam.update_function_configuration(FunctionName=function, Layers=layers)
    print(layer)


def bulk(endpoint, n):
    """N functions over N/10 roles; every role attaches the same two managed
    policies and has one inline policy of its own; every tenth function has
    an SQS trigger and every fifth a resource-policy permission."""
    iam, lam, sqs = clients(endpoint)
    shared = []
    for name, action in [("logs-write", "logs:PutLogEvents"), ("xray", "xray:PutTraceSegments")]:
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}
        shared.append(iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(doc))["Policy"]["Arn"])
    roles = []
    for r in range(max(1, n // 10)):
        name = f"bench-role-{r}"
        roles.append(role(iam, name))
        for p in shared:
            iam.attach_role_policy(RoleName=name, PolicyArn=p)
        doc = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/t{r}"}],
        }
        iam.put_role_policy(RoleName=name, PolicyName="table", PolicyDocument=json.dumps(doc))
    queue = sqs.create_queue(QueueName="bench-in")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    zipped = code("def handler(e, c):\n    return 1\n")
    for i in range(n):
        name = f"bench-fn-{i:05d}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=roles[i % len(roles)],
            Handler="app.handler",
            Code={"ZipFile": zipped},
            Environment={"Variables": {"STAGE": "bench", "SECRET": "x"}},
        )
        if i % 10 == 0:
            lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=name)
        if i % 5 == 0:
            lam.add_permission(
                FunctionName=name,
                StatementId="api",
                Action="lambda:InvokeFunction",
                Principal="apigateway.amazonaws.com",
            )
    print(json.dumps({"functions": n, "roles": len(roles), "managed_policies": len(shared)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(sys.argv[2])
    elif cmd == "bulk":
        bulk(sys.argv[2], int(sys.argv[3]))
    elif cmd == "add-layer":
        add_layer(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
