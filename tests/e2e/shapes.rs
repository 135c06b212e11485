//! Every record shape a file line can carry, through the binary into the lake.
//! (KPL aggregates arrive through Kinesis only; the ingest crate tests them.)

use crate::common::*;

const CW_PAYLOAD: &str = concat!(
    r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/orders-api","logStream":"2026/11/23/[$LATEST]abc","subscriptionFilters":["fnwatch"],"logEvents":["#,
    r#"{"id":"1","timestamp":1795428000000,"message":"START RequestId: 11111111-1111-1111-1111-111111111111 Version: $LATEST\n"},"#,
    r#"{"id":"2","timestamp":1795428000100,"message":"2026-11-23T10:00:00.100Z\t11111111-1111-1111-1111-111111111111\tINFO\tloading order 42\n"},"#,
    r#"{"id":"3","timestamp":1795428000200,"message":"END RequestId: 11111111-1111-1111-1111-111111111111\n"},"#,
    r#"{"id":"4","timestamp":1795428000200,"message":"REPORT RequestId: 11111111-1111-1111-1111-111111111111\tDuration: 102.50 ms\tBilled Duration: 103 ms\tMemory Size: 256 MB\tMax Memory Used: 91 MB\tInit Duration: 250.10 ms\t\n"},"#,
    r#"{"id":"5","timestamp":1795428006000,"message":"START RequestId: 22222222-2222-2222-2222-222222222222 Version: 7\n"},"#,
    r#"{"id":"6","timestamp":1795428012000,"message":"2026-11-23T10:00:12.000Z 22222222-2222-2222-2222-222222222222 Task timed out after 6.00 seconds\n"},"#,
    r#"{"id":"7","timestamp":1795428012001,"message":"END RequestId: 22222222-2222-2222-2222-222222222222\n"},"#,
    r#"{"id":"8","timestamp":1795428012001,"message":"REPORT RequestId: 22222222-2222-2222-2222-222222222222\tDuration: 6000.00 ms\tBilled Duration: 6000 ms\tMemory Size: 256 MB\tMax Memory Used: 60 MB\t\n"},"#,
    r#"{"id":"9","timestamp":1795428012002,"message":"{\"type\":\"dns\",\"time\":\"2026-11-23T10:00:12.002Z\",\"function\":\"orders-api\",\"request_id\":\"33\",\"query\":\"pastebin.com\"}"}"#,
    r#"]}"#
);

const TELEMETRY_BATCH: &str = concat!(
    r#"[{"time":"2026-11-23T10:01:00.000Z","type":"platform.start","function":"billing-worker","record":{"requestId":"aaaa","version":"$LATEST"}},"#,
    r#"{"time":"2026-11-23T10:01:00.010Z","type":"function","function":"billing-worker","record":"charging customer\n"},"#,
    r#"{"time":"2026-11-23T10:01:03.000Z","type":"platform.runtimeDone","function":"billing-worker","record":{"requestId":"aaaa","status":"timeout","metrics":{"durationMs":3000.0}}},"#,
    r#"{"time":"2026-11-23T10:01:03.001Z","type":"platform.report","function":"billing-worker","record":{"requestId":"aaaa","metrics":{"durationMs":3000.0,"billedDurationMs":3000,"memorySizeMB":128,"maxMemoryUsedMB":40}}}]"#
);

#[test]
fn every_file_shape_lands_in_the_lake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1795428000000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
    let array = format!(
        "[{}, {}]",
        dns_line("thumbnailer", "t1", "images.s3.amazonaws.com"),
        invocation_line("thumbnailer", "t1")
    );
    let text = format!("{CW_PAYLOAD}\n{control}\n{TELEMETRY_BATCH}\n{array}\n");
    let file = write(dir.path(), "shapes.jsonl", text.as_bytes());
    let lake = dir.path().join("lake");
    let run = ingest(&lake, &[&file]);
    assert!(run.stdout.contains("0 dead letters"), "{}", run.stdout);

    let rows = query(
        &lake,
        "SELECT function, request_id, status, duration_ms, billed_ms, memory_mb, max_memory_mb, init_ms, version \
         FROM invocations ORDER BY request_id",
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["function"], "orders-api");
    assert_eq!(r["status"], "success");
    assert_eq!(r["duration_ms"], 102.5);
    assert_eq!(r["billed_ms"], 103);
    assert_eq!(r["memory_mb"], 256);
    assert_eq!(r["max_memory_mb"], 91);
    assert_eq!(r["init_ms"], 250.1);
    assert_eq!(r["version"], "$LATEST");
    let r = &rows[1];
    assert_eq!(r["request_id"], "22222222-2222-2222-2222-222222222222");
    assert_eq!(
        r["status"], "timeout",
        "a timeout line makes the REPORT a timeout"
    );
    assert_eq!(r["version"], "7");
    let r = &rows[2];
    assert_eq!(
        (r["function"].as_str(), r["status"].as_str()),
        (Some("billing-worker"), Some("timeout"))
    );
    assert_eq!(r["billed_ms"], 3000);
    assert_eq!(rows[3]["function"], "thumbnailer");

    // Application log lines go to `logs`, native events inside log lines to their view.
    let logs = query(
        &lake,
        "SELECT function, request_id, message FROM logs ORDER BY time",
    );
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(
        logs[0]["request_id"],
        "11111111-1111-1111-1111-111111111111"
    );
    assert!(
        logs[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("loading order 42")
    );
    assert_eq!(logs[1]["function"], "billing-worker");
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM dns WHERE query = 'pastebin.com'"
        ),
        1
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM dns"), 2);
}

/// A top-level `messageType` makes a line a CloudWatch Logs payload, even when
/// it also looks like a native event; the same word anywhere else does not.
#[test]
fn message_type_decides_cloudwatch_only_at_the_top_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let native = dns_line("orders-api", "r1", "a.example.com");
    let top = native.replacen('{', r#"{"messageType":"DATA_MESSAGE","#, 1);
    let nested = invocation_line("orders-api", "r2").replacen(
        '{',
        r#"{"custom":{"messageType":"DATA_MESSAGE"},"#,
        1,
    );
    let text = format!("{native}\n{top}\n{nested}\n{CW_PAYLOAD}\n");
    let file = write(dir.path(), "mixed.jsonl", text.as_bytes());
    let lake = dir.path().join("lake");
    let run = ingest(&lake, &[&file]);
    assert!(run.stdout.contains("1 dead letters"), "{}", run.stdout);
    let dead = query(&lake, "SELECT position, reason FROM dead_letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["position"].as_str().unwrap_or("").ends_with(":2"),
        "{dead:?}"
    );
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("logGroup"),
        "{dead:?}"
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM dns"), 2);
    let extra = query(
        &lake,
        "SELECT extra FROM invocations WHERE request_id = 'r2'",
    );
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert!(
        extra[0]["extra"]
            .as_str()
            .unwrap_or("")
            .contains("messageType"),
        "{extra:?}"
    );
}
