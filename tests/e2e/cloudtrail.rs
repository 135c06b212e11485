//! CloudTrail as a source (contract v1.1, section 6), end to end: an S3
//! export folder of CloudTrail log files (gzip, as CloudTrail writes them,
//! with a digest file and a redelivered file), the function's configuration
//! with its role's policy statements, then `train` on the quiet days and
//! `detect` on the last: the function's credentials used from a laptop are
//! `credential_exfiltration`, its `s3:*` grant is `over_permissive` with the
//! unused and broader-than-used grants in the evidence, and a layer added
//! without a deploy is `config_drift`. Also: a native event in one
//! function's log group that claims another function is a dead letter.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{count, fnwatch, gzip, query};

const ACCOUNT: &str = "123456789012";
const FUNCTION: &str = "thumbnailer";
const LAMBDA_UA: &str = "Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#5.10.209-220.804.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.1 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.34";
const CLI_UA: &str = "aws-cli/2.15.10 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3api.list-objects";

/// One CloudTrail record of the function's role session, as CloudTrail
/// writes it for an S3 data event.
#[allow(clippy::too_many_arguments)] // one CloudTrail record's varying fields
fn record(
    time: &str,
    id: &str,
    action: &str,
    bucket: &str,
    key: Option<&str>,
    ip: &str,
    ua: &str,
    denied: bool,
) -> Value {
    let mut params = json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com")});
    let mut resources = vec![
        json!({"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}),
    ];
    if let Some(k) = key {
        params["key"] = json!(k);
        resources.insert(
            0,
            json!({"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{k}")}),
        );
    }
    let mut r = json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLEID:{FUNCTION}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{FUNCTION}-role-a1b2c3/{FUNCTION}"),
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLEKEY",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/{FUNCTION}-role-a1b2c3")}}
        },
        "eventTime": time,
        "eventSource": "s3.amazonaws.com",
        "eventName": action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": ua,
        "requestParameters": params,
        "responseElements": null,
        "eventID": id,
        "readOnly": true,
        "resources": resources,
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data"
    });
    if denied {
        r["errorCode"] = json!("AccessDenied");
        r["errorMessage"] = json!("Access Denied");
    }
    r
}

fn console_login(time: &str) -> Value {
    json!({"eventVersion": "1.08", "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"), "accountId": ACCOUNT, "userName": "alice"},
        "eventTime": time, "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.5", "userAgent": "Mozilla/5.0", "requestParameters": null,
        "responseElements": {"ConsoleLogin": "Success"}, "eventID": format!("login-{time}"), "eventType": "AwsConsoleSignIn", "recipientAccountId": ACCOUNT})
}

/// Writes a CloudTrail log file where CloudTrail puts it in an S3 export.
fn write_log_file(root: &Path, day: &str, n: u32, records: &[Value]) {
    let (y, rest) = day.split_at(4);
    let (m, d) = (&rest[1..3], &rest[4..6]);
    let dir = root.join(format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{y}/{m}/{d}"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{ACCOUNT}_CloudTrail_us-east-1_{y}{m}{d}T{n:04}Z_x{n}.json.gz");
    let body = json!({"Records": records}).to_string();
    std::fs::write(dir.join(name), gzip(body.as_bytes())).unwrap();
}

/// The function's configuration as `fnwatch inventory` reports it.
fn config_line(time: &str, layers: &[&str]) -> String {
    json!({
        "type": "function_config", "time": time, "function": FUNCTION, "account": ACCOUNT, "region": "us-east-1",
        "runtime": "python3.12", "handler": "app.handler", "memory_mb": 512, "timeout_ms": 30000,
        "role_arn": format!("arn:aws:iam::{ACCOUNT}:role/{FUNCTION}-role-a1b2c3"),
        "permissions": ["s3:*", "logs:CreateLogStream", "logs:PutLogEvents", "dynamodb:GetItem"],
        "statements": [
            {"effect": "Allow", "actions": ["s3:*"], "resources": ["*"]},
            {"effect": "Allow", "actions": ["logs:CreateLogStream", "logs:PutLogEvents"], "resources": ["*"]},
            {"effect": "Allow", "actions": ["dynamodb:GetItem"], "resources": [format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/thumbs")]}
        ],
        "triggers": ["s3"], "layers": layers, "code_sha256": "c0de", "env_keys": ["BUCKET", "LOG_LEVEL"],
        "source": "inventory"
    })
    .to_string()
}

#[test]
fn cloudtrail_alone_finds_stolen_credentials_wide_roles_and_drift() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("s3-export");
    let pillow = "arn:aws:lambda:us-east-1:123456789012:layer:pillow:3";
    // Three quiet days: the function reads thumbnails from inside Lambda.
    for (d, day) in ["2026-11-20", "2026-11-21", "2026-11-22"]
        .iter()
        .enumerate()
    {
        let records: Vec<Value> = (0..30)
            .map(|i| {
                record(
                    &format!("{day}T{:02}:{:02}:00Z", 8 + i / 6, (i % 6) * 10),
                    &format!("train-{d}-{i}"),
                    "GetObject",
                    "uploads",
                    Some(&format!("images/{i}.jpg")),
                    &format!("3.91.{}.{}", i % 3, 10 + i),
                    LAMBDA_UA,
                    false,
                )
            })
            .chain(std::iter::once(console_login(&format!("{day}T07:00:00Z"))))
            .collect();
        write_log_file(&export, day, 1, &records);
    }
    // The last day: the same work, then its credentials from a laptop.
    let day = "2026-11-23";
    let mut last: Vec<Value> = (0..10)
        .map(|i| {
            record(
                &format!("{day}T08:{:02}:00Z", i * 5),
                &format!("d-{i}"),
                "GetObject",
                "uploads",
                Some(&format!("images/n{i}.jpg")),
                "3.91.1.20",
                LAMBDA_UA,
                false,
            )
        })
        .collect();
    let stolen = [
        record(
            &format!("{day}T09:00:00Z"),
            "steal-1",
            "ListObjects",
            "payroll-exports",
            None,
            "198.51.100.23",
            CLI_UA,
            true,
        ),
        record(
            &format!("{day}T09:00:05Z"),
            "steal-2",
            "GetObject",
            "uploads",
            Some("images/1.jpg"),
            "198.51.100.23",
            CLI_UA,
            false,
        ),
    ];
    last.extend(stolen.iter().cloned());
    write_log_file(&export, day, 1, &last);
    // CloudTrail delivers some records twice: a second file repeats one.
    write_log_file(&export, day, 2, &stolen[..1]);
    // The digest files beside the logs are skipped.
    let digest_dir = export.join(format!(
        "AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/23"
    ));
    std::fs::create_dir_all(&digest_dir).unwrap();
    std::fs::write(
        digest_dir.join(format!("{ACCOUNT}_CloudTrail-Digest_us-east-1_x_20261123T100000Z.json.gz")),
        gzip(json!({"awsAccountId": ACCOUNT, "digestStartTime": "2026-11-23T09:00:00Z", "digestEndTime": "2026-11-23T10:00:00Z", "logFiles": []}).to_string().as_bytes()),
    )
    .unwrap();
    // The configuration: at the start, and on the last day with a layer
    // added and the code unchanged.
    let configs = dir.path().join("configs.jsonl");
    std::fs::write(
        &configs,
        format!(
            "{}\n{}\n",
            config_line("2026-11-20T00:00:00Z", &[pillow]),
            config_line(
                "2026-11-23T06:00:00Z",
                &[
                    pillow,
                    "arn:aws:lambda:us-east-1:999999999999:layer:helper:1"
                ]
            )
        ),
    )
    .unwrap();

    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let out = fnwatch(&[
        "ingest",
        "--lake",
        l,
        "--no-progress",
        export.join(format!("AWSLogs/{ACCOUNT}/")).to_str().unwrap(),
    ])
    .ok();
    assert!(
        out.stdout
            .contains("skipped: 3 CloudTrail records of other identities"),
        "{}",
        out.stdout
    );
    fnwatch(&[
        "ingest",
        "--lake",
        l,
        "--no-progress",
        configs.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(count(&lake, "SELECT count(*) FROM dead_letters"), 0);
    // Every call once (the redelivered one too), with its source.
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM api_calls WHERE source = 'cloudtrail'"
        ),
        90 + 10 + 2
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM events WHERE type = 'api_call'"),
        103,
        "the events table keeps each delivery"
    );
    let rows = query(
        &lake,
        "SELECT function, action, resource, source_ip, user_agent, error_code, request_id FROM api_calls WHERE event_id = 'steal-1'",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["function"], FUNCTION);
    assert_eq!(rows[0]["resource"], "arn:aws:s3:::payroll-exports");
    assert_eq!(rows[0]["source_ip"], "198.51.100.23");
    assert_eq!(rows[0]["error_code"], "AccessDenied");
    // Nulls are left out of the JSON rows.
    assert!(
        rows[0].get("request_id").is_none_or(Value::is_null),
        "{rows:?}"
    );
    let inv = query(
        &lake,
        "SELECT function, layers, env_keys, source FROM function_inventory",
    );
    assert_eq!(inv.len(), 1);
    assert_eq!(
        inv[0]["layers"].as_array().map(Vec::len),
        Some(2),
        "{inv:?}"
    );
    assert_eq!(inv[0]["source"], "inventory");
    let grouped = query(
        &lake,
        "SELECT function, action, count(*) AS n FROM api_calls WHERE source = 'cloudtrail' GROUP BY 1, 2 ORDER BY 2",
    );
    assert_eq!(grouped.len(), 2, "{grouped:?}");

    fnwatch(&[
        "train",
        "--lake",
        l,
        "--from",
        "2026-11-20T00:00:00Z",
        "--to",
        "2026-11-23T00:00:00Z",
    ])
    .ok();
    let alerts = crate::common::detect_alerts(
        Path::new(l),
        "2026-11-23T00:00:00Z",
        "2026-11-24T00:00:00Z",
        &["--min-severity", "low"],
        &dir.path().join("alerts.jsonl"),
    );
    let of = |kind: &str| -> Vec<&Value> { alerts.iter().filter(|a| a["kind"] == kind).collect() };
    let exfil = of("credential_exfiltration");
    assert_eq!(exfil.len(), 1, "{alerts:#?}");
    assert_eq!(exfil[0]["severity"], "high");
    assert_eq!(exfil[0]["function"], FUNCTION);
    assert!(exfil[0].get("request_id").is_none_or(Value::is_null));
    assert_eq!(exfil[0]["evidence"]["source_ip"], "198.51.100.23");
    assert_eq!(
        exfil[0]["evidence"]["calls"], 2,
        "the redelivered record counts once"
    );
    let wide = of("over_permissive");
    assert_eq!(wide.len(), 1, "{alerts:#?}");
    let ev = &wide[0]["evidence"];
    assert_eq!(
        ev["unused_grants"],
        json!([format!(
            "dynamodb:GetItem on arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/thumbs"
        )])
    );
    assert_eq!(ev["broader_than_use"][0]["grant"], "s3:*");
    assert_eq!(
        ev["broader_than_use"][0]["used_actions"],
        json!(["s3:GetObject"])
    );
    let drift = of("config_drift");
    assert_eq!(drift.len(), 1, "{alerts:#?}");
    assert_eq!(drift[0]["severity"], "low");
    assert_eq!(
        drift[0]["evidence"]["added_layers"],
        json!(["arn:aws:lambda:us-east-1:999999999999:layer:helper:1"])
    );
    // Nothing medium or above on the function's own work.
    let others: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            !["credential_exfiltration", "over_permissive", "config_drift"]
                .contains(&a["kind"].as_str().unwrap_or(""))
        })
        .filter(|a| a["severity"] != "low")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
}

#[test]
fn an_event_in_another_functions_name_is_a_dead_letter_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let own = r#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"orders-api","request_id":"r-1","query":"a.example.com"}"#;
    let forged = r#"{"type":"api_call","time":"2026-11-23T10:00:01Z","function":"payments-api","request_id":"r-2","service":"kms","action":"Decrypt"}"#;
    let payload = json!({
        "messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": "/aws/lambda/orders-api",
        "logStream": "2026/11/23/[$LATEST]0f1e", "subscriptionFilters": ["fnwatch"],
        "logEvents": [
            {"id": "1", "timestamp": 1_795_428_000_000i64, "message": own},
            {"id": "2", "timestamp": 1_795_428_001_000i64, "message": forged}
        ]
    });
    let file = dir.path().join("cw.jsonl");
    std::fs::write(&file, format!("{payload}\n")).unwrap();
    let lake = dir.path().join("lake");
    fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        "--no-progress",
        file.to_str().unwrap(),
    ])
    .ok();
    let rows = query(&lake, "SELECT function, account FROM events");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["function"], "orders-api");
    assert_eq!(rows[0]["account"], ACCOUNT, "the log group's owner");
    let dead = query(
        &lake,
        "SELECT reason, field, inner_position FROM dead_letters",
    );
    assert_eq!(dead.len(), 1);
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("`payments-api`") && reason.contains("`orders-api`"),
        "{reason}"
    );
    assert_eq!(dead[0]["field"], "function");
    assert_eq!(dead[0]["inner_position"], "log event 1");
}

/// CloudTrail writes a log file as one line of JSON, often over the 4 MiB
/// record limit: such a file is read whole up to the 64 MiB decompressed
/// limit; beyond it the file is one dead letter that says so, and the files
/// beside it land.
#[test]
fn large_cloudtrail_files_are_read_and_an_oversized_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let lake = dir.path().join("lake");
    let one = |i: u32| {
        record(
            "2026-11-23T10:00:00Z",
            &format!("big-{i}"),
            "GetObject",
            "orders-bucket",
            Some("in/x.json"),
            "lambda.amazonaws.com",
            "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10 lang/python#3.12.3 exec-env/AWS_Lambda_python3.12",
            false,
        )
    };
    // About 10 MB: over the record limit, under the file limit.
    let big: Vec<Value> = (0..16_000).map(one).collect();
    write_log_file(&export, "2026-11-23", 1, &big);
    // About 70 MB of records: over the 64 MiB limit.
    let huge: Vec<Value> = (0..110_000).map(|i| one(100_000 + i)).collect();
    write_log_file(&export, "2026-11-23", 2, &huge);
    let run = fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        export.to_str().unwrap(),
    ]);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM api_calls WHERE source = 'cloudtrail'"
        ),
        16_000,
        "{}",
        run.stderr
    );
    let dead = query(&lake, "SELECT reason, source FROM dead_letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("CloudTrail log file too large")
            && reason.contains("limit 67108864 bytes for a CloudTrail file"),
        "{reason}"
    );
    assert!(
        dead[0]["source"]
            .as_str()
            .unwrap()
            .contains("T0002Z_x2.json.gz"),
        "{dead:?}"
    );
}
