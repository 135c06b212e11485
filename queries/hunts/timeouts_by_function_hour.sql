-- Timeouts by function and hour: a wave across many functions at once is an
-- outage downstream; one function timing out alone, with little CPU, can be
-- a sleep-based attack holding the sandbox.
-- Read: `avg_cpu_ratio` near 0 = the function idled until its limit.
-- (The selective status filter is the one pushed into the Parquet scan; the
-- event type is a group key, kept with HAVING min(type) = 'invocation' after
-- grouping: a type filter in the scan is evaluated on every row and costs
-- more than the few timeouts it would drop.)
-- @param since = -7d  start of the window
SELECT date_trunc('hour', time) AS hour, function,
       count(*) AS timeouts,
       round(avg(duration_ms), 1) AS avg_duration_ms,
       round(avg(cpu_ms / nullif(duration_ms, 0)), 3) AS avg_cpu_ratio
FROM events
WHERE time >= CAST(${since} AS TIMESTAMP) AND status = 'timeout'
GROUP BY type, date_trunc('hour', time), function
HAVING min(type) = 'invocation'
ORDER BY hour, timeouts DESC, function;
