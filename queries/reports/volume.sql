-- Report: volume and cost-relevant figures of the window.
-- Read: `billed_gb_s` is what Lambda bills (billed duration × configured
-- memory); cold starts and errors put the other numbers in context.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT count(*) AS invocations,
       count(DISTINCT function) AS functions,
       sum(CASE WHEN status = 'error' OR status = 'crash' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END) AS timeouts,
       sum(CASE WHEN init_ms IS NOT NULL THEN 1 ELSE 0 END) AS cold_starts,
       round(sum(coalesce(billed_ms, duration_ms) / 1000.0 * coalesce(memory_mb, 128) / 1024.0), 1) AS billed_gb_s,
       round(avg(duration_ms), 1) AS avg_duration_ms
FROM invocations
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP);
