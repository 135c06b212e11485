-- Report: timeouts and errors per function, worst rates first.
-- Read: `avg_timeout_cpu_ratio` near 0 = its timeouts idled (sleeping, or
-- waiting on a peer) rather than computing.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT function,
       count(*) AS invocations,
       sum(CASE WHEN status = 'error' OR status = 'crash' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END) AS timeouts,
       round(100.0 * sum(CASE WHEN status <> 'success' THEN 1 ELSE 0 END) / count(*), 2) AS failure_pct,
       round(avg(CASE WHEN status = 'timeout' THEN cpu_ms / nullif(duration_ms, 0) END), 3) AS avg_timeout_cpu_ratio
FROM invocations
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
GROUP BY function
HAVING sum(CASE WHEN status <> 'success' THEN 1 ELSE 0 END) > 0
ORDER BY failure_pct DESC, function
LIMIT 20;
