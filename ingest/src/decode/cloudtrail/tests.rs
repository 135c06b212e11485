//! CloudTrail records shaped as AWS documents them (the record contents of
//! the CloudTrail User Guide's examples for assumed-role sessions, S3 data
//! events, denied calls and console sign-ins), in all three envelopes.

use std::io::Write;
use std::sync::Arc;

use crate::decode::{DecodeState, decode_record};
use crate::event::{EventType, Position, Step, VecSink};

fn pos() -> Position {
    Position::file(Arc::from("AWSLogs/123456789012/CloudTrail/x.json.gz"), 1)
}

fn decode(bytes: &[u8]) -> VecSink {
    let mut sink = VecSink::default();
    let mut state = DecodeState::default();
    decode_record(bytes, &pos(), &mut state, &mut sink);
    sink
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// A call made by the function `orders-api` with its execution role, from
/// inside Lambda (Boto3 with the Lambda exec-env user agent).
pub(crate) const PUT_ITEM: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLEID:orders-api","arn":"arn:aws:sts::123456789012:assumed-role/orders-api-role-x1y2z3/orders-api","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEKEY","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLEID","arn":"arn:aws:iam::123456789012:role/service-role/orders-api-role-x1y2z3","accountId":"123456789012","userName":"orders-api-role-x1y2z3"},"attributes":{"creationDate":"2026-11-23T09:58:11Z","mfaAuthenticated":"false"}}},"eventTime":"2026-11-23T10:00:00Z","eventSource":"dynamodb.amazonaws.com","eventName":"PutItem","awsRegion":"us-east-1","sourceIPAddress":"3.91.12.44","userAgent":"Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#5.10.209-220.804.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.1 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.34","requestParameters":{"tableName":"orders","key":{"id":{"S":"o-1"}}},"responseElements":null,"requestID":"Q5J1JEXAMPLE","eventID":"c9f1f4b4-1c2d-4e5f-8a9b-0c1d2e3f4a5b","readOnly":false,"resources":[{"accountId":"123456789012","type":"AWS::DynamoDB::Table","ARN":"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}],"eventType":"AwsApiCall","apiVersion":"2012-08-10","managementEvent":false,"recipientAccountId":"123456789012","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"dynamodb.us-east-1.amazonaws.com"}}"#;

/// The same role's credentials used from a laptop with the AWS CLI, on a
/// bucket the function never reads, denied.
pub(crate) const STOLEN_LIST: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLEID:orders-api","arn":"arn:aws:sts::123456789012:assumed-role/orders-api-role-x1y2z3/orders-api","accountId":"123456789012","accessKeyId":"ASIAEXAMPLEKEY"},"eventTime":"2026-11-23T10:05:00Z","eventSource":"s3.amazonaws.com","eventName":"ListObjects","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","userAgent":"aws-cli/2.15.10 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3api.list-objects","errorCode":"AccessDenied","errorMessage":"User: arn:aws:sts::123456789012:assumed-role/orders-api-role-x1y2z3/orders-api is not authorized to perform: s3:ListBucket on resource: \"arn:aws:s3:::payroll-exports\"","requestParameters":{"bucketName":"payroll-exports","Host":"payroll-exports.s3.amazonaws.com","prefix":""},"responseElements":null,"eventID":"0b7e6c1e-2f3a-4b5c-9d8e-7f6a5b4c3d2e","readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"123456789012","eventCategory":"Data"}"#;

/// An S3 data event whose `resources` name the object and the bucket.
pub(crate) const GET_OBJECT: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE2:thumbnailer","arn":"arn:aws:sts::123456789012:assumed-role/thumbnailer-role/thumbnailer","accountId":"123456789012"},"eventTime":"2026-11-23T10:01:02.123Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"34.240.1.2","userAgent":"[aws-sdk-nodejs/3.490.0 ua/2.0 os/linux#5.10 lang/js md/nodejs#20.10.0 api/s3#3.490.0 exec-env/AWS_Lambda_nodejs20.x]","requestParameters":{"bucketName":"uploads-prod","key":"images/cat.jpg","Host":"uploads-prod.s3.eu-west-1.amazonaws.com"},"responseElements":null,"eventID":"5d1b6e7c-8a9b-4c0d-1e2f-3a4b5c6d7e8f","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::uploads-prod/images/cat.jpg"},{"accountId":"123456789012","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::uploads-prod"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"123456789012","eventCategory":"Data"}"#;

/// A console sign-in of an IAM user: not a function's call.
pub(crate) const CONSOLE_LOGIN: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/alice","accountId":"123456789012","userName":"alice"},"eventTime":"2026-11-23T10:02:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.5","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"Yes"},"eventID":"1a2b3c4d-0000-4000-8000-000000000001","readOnly":false,"eventType":"AwsConsoleSignIn","managementEvent":true,"recipientAccountId":"123456789012","eventCategory":"Management"}"#;

/// A role session that an SDK named by default: not a function.
const BOTOCORE_SESSION: &str = r#"{"eventVersion":"1.09","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/deploy/botocore-session-1700000000","accountId":"123456789012"},"eventTime":"2026-11-23T10:03:00Z","eventSource":"lambda.amazonaws.com","eventName":"UpdateFunctionCode20150331v2","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userAgent":"Boto3/1.34.0","requestParameters":{"functionName":"orders-api"},"eventID":"1a2b3c4d-0000-4000-8000-000000000002","recipientAccountId":"123456789012"}"#;

fn log_file(records: &[&str]) -> String {
    format!("{{\"Records\":[{}]}}", records.join(","))
}

#[test]
fn a_log_file_maps_calls_of_function_roles_and_skips_the_rest() {
    let file = gzip(
        log_file(&[
            PUT_ITEM,
            CONSOLE_LOGIN,
            STOLEN_LIST,
            GET_OBJECT,
            BOTOCORE_SESSION,
        ])
        .as_bytes(),
    );
    let sink = decode(&file);
    assert!(sink.dead.is_empty(), "{:?}", sink.dead);
    assert_eq!(sink.skipped.len(), 2, "{:?}", sink.skipped);
    assert_eq!(sink.events.len(), 3);
    let put = &sink.events[0];
    assert_eq!(put.event_type, EventType::ApiCall);
    assert_eq!(put.function, "orders-api");
    assert_eq!(put.request_id, None);
    assert_eq!(put.time_us, 1_795_428_000_000_000);
    assert_eq!(put.account.as_deref(), Some("123456789012"));
    assert_eq!(put.region.as_deref(), Some("us-east-1"));
    assert_eq!(put.service.as_deref(), Some("dynamodb"));
    assert_eq!(put.action.as_deref(), Some("PutItem"));
    assert_eq!(
        put.resource.as_deref(),
        Some("arn:aws:dynamodb:us-east-1:123456789012:table/orders")
    );
    assert_eq!(put.source.as_deref(), Some("cloudtrail"));
    assert_eq!(put.source_ip.as_deref(), Some("3.91.12.44"));
    assert!(
        put.user_agent
            .as_deref()
            .is_some_and(|u| u.contains("exec-env/AWS_Lambda_python3.12"))
    );
    assert_eq!(
        put.event_id.as_deref(),
        Some("c9f1f4b4-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    );
    let extra: serde_json::Value = serde_json::from_str(put.extra.as_deref().unwrap()).unwrap();
    assert_eq!(extra["role"], "orders-api-role-x1y2z3");
    assert_eq!(extra["eventCategory"], "Data");
    assert_eq!(extra["tlsDetails"]["tlsVersion"], "TLSv1.3");
    assert!(
        extra.get("eventTime").is_none(),
        "mapped fields are not repeated in extra"
    );
    let stolen = &sink.events[1];
    assert_eq!(stolen.error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(
        stolen.resource.as_deref(),
        Some("arn:aws:s3:::payroll-exports"),
        "built from requestParameters"
    );
    assert!(
        stolen
            .user_agent
            .as_deref()
            .is_some_and(|u| u.starts_with("aws-cli/"))
    );
    let get = &sink.events[2];
    assert_eq!(get.function, "thumbnailer");
    assert_eq!(
        get.resource.as_deref(),
        Some("arn:aws:s3:::uploads-prod/images/cat.jpg"),
        "the first of `resources`"
    );
    assert_eq!(get.time_us % 1_000_000, 123_000);
}

#[test]
fn resources_are_built_from_request_parameters() {
    let call = |source: &str, params: &str| {
        format!(
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::123456789012:assumed-role/r/fn-1"}},"eventTime":"2026-11-23T10:00:00Z","eventSource":"{source}.amazonaws.com","eventName":"X","awsRegion":"eu-west-1","requestParameters":{params},"recipientAccountId":"123456789012"}}"#
        )
    };
    let cases = [
        ("s3", r#"{"bucketName":"b"}"#, Some("arn:aws:s3:::b")),
        (
            "s3",
            r#"{"bucketName":"b","key":"a/b.txt"}"#,
            Some("arn:aws:s3:::b/a/b.txt"),
        ),
        (
            "dynamodb",
            r#"{"tableName":"t"}"#,
            Some("arn:aws:dynamodb:eu-west-1:123456789012:table/t"),
        ),
        (
            "secretsmanager",
            r#"{"secretId":"prod/db"}"#,
            Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db"),
        ),
        (
            "secretsmanager",
            r#"{"secretId":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"}"#,
            Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"),
        ),
        (
            "sqs",
            r#"{"queueUrl":"https://sqs.us-east-2.amazonaws.com/210987654321/jobs"}"#,
            Some("arn:aws:sqs:us-east-2:210987654321:jobs"),
        ),
        (
            "sns",
            r#"{"topicArn":"arn:aws:sns:eu-west-1:123456789012:alerts"}"#,
            Some("arn:aws:sns:eu-west-1:123456789012:alerts"),
        ),
        (
            "kms",
            r#"{"keyId":"1234abcd-12ab-34cd-56ef-1234567890ab"}"#,
            Some("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "kms",
            r#"{"keyId":"alias/app"}"#,
            Some("arn:aws:kms:eu-west-1:123456789012:alias/app"),
        ),
        (
            "ssm",
            r#"{"name":"/prod/db/password","withDecryption":true}"#,
            Some("arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db/password"),
        ),
        (
            "lambda",
            r#"{"functionName":"other"}"#,
            Some("arn:aws:lambda:eu-west-1:123456789012:function:other"),
        ),
        ("sts", r#"{"roleArn":"arn:aws:iam::1:role/x"}"#, None),
        ("s3", r#"null"#, None),
    ];
    for (source, params, want) in cases {
        let sink = decode(call(source, params).as_bytes());
        assert_eq!(sink.events.len(), 1, "{source} {params}: {:?}", sink.dead);
        assert_eq!(
            sink.events[0].resource.as_deref(),
            want,
            "{source} {params}"
        );
    }
}

#[test]
fn bad_records_are_dead_letters_beside_good_ones() {
    let no_name = PUT_ITEM.replace(r#""eventName":"PutItem","#, "");
    let bad_arn = PUT_ITEM.replace(
        "arn:aws:sts::123456789012:assumed-role/orders-api-role-x1y2z3/orders-api",
        "not-an-arn",
    );
    let bad_time = PUT_ITEM.replace("2026-11-23T10:00:00Z", "yesterday");
    let sink = decode(log_file(&[&no_name, GET_OBJECT, &bad_arn, &bad_time, "7"]).as_bytes());
    assert_eq!(sink.events.len(), 1, "the good record is kept");
    assert_eq!(sink.dead.len(), 4, "{:?}", sink.dead);
    assert_eq!(sink.dead[0].field.as_deref(), Some("eventName"));
    assert!(
        sink.dead[0].reason.contains("no `eventName`"),
        "{}",
        sink.dead[0].reason
    );
    assert_eq!(sink.dead[0].position.steps, vec![Step::Element(0)]);
    assert_eq!(sink.dead[1].field.as_deref(), Some("userIdentity.arn"));
    assert!(
        sink.dead[1].reason.contains("not-an-arn"),
        "{}",
        sink.dead[1].reason
    );
    assert_eq!(sink.dead[2].field.as_deref(), Some("eventTime"));
    assert!(
        sink.dead[3].reason.contains("not a valid JSON object"),
        "{}",
        sink.dead[3].reason
    );
    // A whole file that is not what CloudTrail writes.
    for (text, why) in [
        (r#"{"Records":{"a":1}}"#, "expected an array"),
        (r#"{"Records":[1,2"#, "JSON"),
    ] {
        let sink = decode(text.as_bytes());
        assert_eq!(sink.dead.len(), 1, "{text}");
        assert!(sink.dead[0].reason.contains(why), "{}", sink.dead[0].reason);
    }
}

#[test]
fn eventbridge_events_carry_the_record_in_detail() {
    let ev = |detail_type: &str, detail: &str| {
        format!(
            r#"{{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"{detail_type}","source":"aws.dynamodb","account":"123456789012","time":"2026-11-23T10:00:00Z","region":"us-east-1","resources":[],"detail":{detail}}}"#
        )
    };
    let sink = decode(ev("AWS API Call via CloudTrail", PUT_ITEM).as_bytes());
    assert_eq!(sink.events.len(), 1, "{:?}", sink.dead);
    assert_eq!(
        sink.events[0].event_id.as_deref(),
        Some("c9f1f4b4-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    );
    let sink = decode(ev("AWS Console Sign In via CloudTrail", CONSOLE_LOGIN).as_bytes());
    assert_eq!(
        (sink.events.len(), sink.dead.len(), sink.skipped.len()),
        (0, 0, 1)
    );
    let sink = decode(ev("EC2 Instance State-change Notification", "{}").as_bytes());
    assert_eq!(sink.dead.len(), 1);
    assert_eq!(sink.dead[0].field.as_deref(), Some("detail-type"));
}

#[test]
fn a_trails_cloudwatch_log_group_carries_one_record_per_message() {
    let payload = serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "aws-cloudtrail-logs-123456789012-1a2b3c4d",
        "logStream": "123456789012_CloudTrail_us-east-1",
        "subscriptionFilters": ["fnwatch"],
        "logEvents": [
            {"id": "1", "timestamp": 1_795_428_000_000i64, "message": PUT_ITEM},
            {"id": "2", "timestamp": 1_795_428_000_000i64, "message": CONSOLE_LOGIN},
            {"id": "3", "timestamp": 1_795_428_000_000i64, "message": "not a record"},
            {"id": "4", "timestamp": 1_795_428_000_000i64, "message": PUT_ITEM},
        ]
    });
    let sink = decode(&gzip(payload.to_string().as_bytes()));
    assert_eq!(sink.events.len(), 2, "{:?}", sink.dead);
    assert_eq!(sink.skipped, vec!["cloudtrail record of another identity"]);
    assert_eq!(sink.dead.len(), 1);
    assert_eq!(sink.dead[0].position.steps, vec![Step::LogEvent(2)]);
    assert_eq!(
        sink.events[0].event_id, sink.events[1].event_id,
        "a duplicate delivery keeps its event id"
    );
}

#[test]
fn digest_files_are_skipped_and_native_events_with_the_keys_stay_native() {
    let digest = r#"{"awsAccountId":"123456789012","digestStartTime":"2026-11-23T09:00:00Z","digestEndTime":"2026-11-23T10:00:00Z","logFiles":[]}"#;
    let sink = decode(digest.as_bytes());
    assert_eq!(
        (sink.events.len(), sink.dead.len(), sink.skipped.len()),
        (0, 0, 1)
    );
    let native = r#"{"type":"api_call","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","service":"s3","action":"GetObject","Records":1}"#;
    let sink = decode(native.as_bytes());
    assert_eq!(sink.events.len(), 1, "{:?}", sink.dead);
}

#[test]
fn cloudtrail_log_files_may_be_larger_than_one_record() {
    let many: Vec<&str> = std::iter::repeat_n(PUT_ITEM, 4_000).collect();
    let file = log_file(&many);
    assert!(file.len() > crate::decode::Limits::default().max_record_bytes);
    let sink = decode(file.as_bytes());
    assert_eq!(sink.events.len(), 4_000);
    // Anything else that large is refused with its size.
    let other = format!("{{\"other\":\"{}\"}}", "x".repeat(5 << 20));
    let sink = decode(other.as_bytes());
    assert!(
        sink.dead[0].reason.starts_with("record too large"),
        "{}",
        sink.dead[0].reason
    );
}

#[test]
fn a_log_file_over_the_size_limit_is_one_dead_letter_and_the_next_file_decodes() {
    // The limit scaled down (64 MiB by default) so that the test stays small:
    // a file of 4,000 records (about 1.3 MB) against a 256 KiB limit.
    let mut state = DecodeState::default();
    state.limits.max_decompressed_bytes = 256 * 1024;
    let big: Vec<&str> = std::iter::repeat_n(PUT_ITEM, 4000).collect();
    let mut sink = VecSink::default();
    decode_record(
        &gzip(log_file(&big).as_bytes()),
        &pos(),
        &mut state,
        &mut sink,
    );
    assert!(sink.events.is_empty());
    assert_eq!(sink.dead.len(), 1, "{:?}", sink.dead);
    assert!(
        sink.dead[0].reason.contains("262144"),
        "the reason names the limit: {}",
        sink.dead[0].reason
    );
    assert!(sink.dead[0].raw.len() <= crate::event::MAX_DEAD_LETTER_RAW);
    // The same decoder goes on with the next file.
    let mut sink = VecSink::default();
    decode_record(
        &gzip(log_file(&[PUT_ITEM, GET_OBJECT]).as_bytes()),
        &pos(),
        &mut state,
        &mut sink,
    );
    assert_eq!(sink.events.len(), 2, "{:?}", sink.dead);
}
