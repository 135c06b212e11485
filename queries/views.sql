-- One view per event type over the `events` table (and `logs` for
-- application log lines). fnwatch registers these whenever it opens a lake;
-- every saved hunt and report query reads through them.
--
-- `events` is partitioned by `date` (UTC day of `time`) and sorted by
-- (function, time) within each write; filter on `date` or `time` and
-- `function` to read less.

CREATE VIEW invocations AS
SELECT time, function, request_id, account, region, version,
       duration_ms, billed_ms, cpu_ms, memory_mb, max_memory_mb, init_ms,
       timeout_ms, status, error_type, "trigger", event_bytes, event,
       log_group, log_stream, extra, date, ingested_at
FROM events WHERE type = 'invocation';

CREATE VIEW dns AS
SELECT time, function, request_id, account, region, version,
       query, qtype, rcode, answers,
       registrable_domain, label_count, query_length, max_label_length,
       extra, date, ingested_at
FROM events WHERE type = 'dns';

CREATE VIEW processes AS
SELECT time, function, request_id, account, region, version,
       exe, args, cmdline, parent_exe, extra, date, ingested_at
FROM events WHERE type = 'process';

CREATE VIEW network AS
SELECT time, function, request_id, account, region, version,
       direction, protocol, remote_ip, remote_port, remote_host,
       bytes_out, bytes_in, extra, date, ingested_at
FROM events WHERE type = 'network';

CREATE VIEW files AS
SELECT time, function, request_id, account, region, version,
       path, op, extra, date, ingested_at
FROM events WHERE type = 'file';

-- API calls from the in-function sensor (`source` = 'sensor', one per call,
-- with the invocation's request_id) and from CloudTrail (`source` =
-- 'cloudtrail', no request_id, with the caller's address and client).
-- CloudTrail delivers some records twice, and a trail's S3 files and its
-- stream may overlap: a CloudTrail `event_id` is one row here, the first
-- ingested (the `events` table keeps every delivery as it arrived).
CREATE VIEW api_calls AS
SELECT time, function, request_id, account, region, version,
       service, action, resource, error_code,
       coalesce(source, 'sensor') AS source, source_ip, user_agent, event_id,
       extra, date, ingested_at
FROM events WHERE type = 'api_call' AND event_id IS NULL
UNION ALL
SELECT time, function, request_id, account, region, version,
       service, action, resource, error_code,
       source, source_ip, user_agent, event_id,
       extra, date, ingested_at
FROM (
    SELECT time, function, request_id, account, region, version,
           service, action, resource, error_code,
           coalesce(source, 'sensor') AS source, source_ip, user_agent, event_id,
           extra, date, ingested_at,
           row_number() OVER (PARTITION BY event_id ORDER BY ingested_at, time) AS delivery
    FROM events WHERE type = 'api_call' AND event_id IS NOT NULL
) WHERE delivery = 1;

-- Every configuration report: from the sensor at deploy time, from another
-- producer, or from `fnwatch inventory` (`source` = 'inventory'), with the
-- role's policy statements as JSON text and the environment variable names.
CREATE VIEW function_configs AS
SELECT time, function, account, region, version,
       runtime, handler, memory_mb, timeout_ms, role_arn,
       permissions, triggers, layers, code_sha256,
       source, statements, env_keys, extra, date, ingested_at
FROM events WHERE type = 'function_config';

-- The latest configuration of each function (by account and region).
CREATE VIEW function_inventory AS
SELECT time AS observed_at, function, account, region, version,
       runtime, handler, memory_mb, timeout_ms, role_arn,
       permissions, triggers, layers, code_sha256,
       source, statements, env_keys, extra
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY function, coalesce(account, ''), coalesce(region, '')
        ORDER BY time DESC, ingested_at DESC) AS latest
    FROM function_configs
) WHERE latest = 1;

CREATE VIEW logs AS
SELECT time, function, request_id, account, region, version,
       message, log_group, log_stream, extra, date, ingested_at
FROM events WHERE type = 'log';
