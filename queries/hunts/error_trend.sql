-- Errors and crashes per function and day, with the most common error type.
-- A new error type, or a rate change without a deploy, is worth a look:
-- injection attempts often surface as handler errors first.
-- (Grouped by the `date` partition column, the UTC day of `time`, and the
-- day truncated once per group: cheaper than date_trunc on every row.)
-- @param since = -7d  start of the window
SELECT date_trunc('day', min(time)) AS day, function,
       count(*) AS invocations,
       sum(CASE WHEN status IN ('error', 'crash') THEN 1 ELSE 0 END) AS errors,
       round(100.0 * sum(CASE WHEN status IN ('error', 'crash') THEN 1 ELSE 0 END) / count(*), 2) AS error_pct,
       array_sort(array_agg(DISTINCT error_type) FILTER (WHERE error_type IS NOT NULL)) AS error_types
FROM invocations
WHERE time >= CAST(${since} AS TIMESTAMP)
GROUP BY date, function
ORDER BY day, function;
