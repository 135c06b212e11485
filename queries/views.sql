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

CREATE VIEW api_calls AS
SELECT time, function, request_id, account, region, version,
       service, action, resource, error_code, extra, date, ingested_at
FROM events WHERE type = 'api_call';

CREATE VIEW function_configs AS
SELECT time, function, account, region, version,
       runtime, handler, memory_mb, timeout_ms, role_arn,
       permissions, triggers, layers, code_sha256, extra, date, ingested_at
FROM events WHERE type = 'function_config';

CREATE VIEW logs AS
SELECT time, function, request_id, account, region, version,
       message, log_group, log_stream, extra, date, ingested_at
FROM events WHERE type = 'log';
