-- Cold starts per function and day: how often invocations pay an init
-- phase, and how long it takes. A jump after a deploy (bigger bundle, new
-- layer) or a rise in concurrency shows here.
-- (Grouped by the `date` partition column, the UTC day of `time`, and the
-- day truncated once per group: cheaper than date_trunc on every row.)
-- @param since = -7d  start of the window
SELECT date_trunc('day', min(time)) AS day, function,
       count(*) AS invocations,
       count(init_ms) AS cold_starts,
       round(avg(init_ms), 1) AS avg_init_ms
FROM invocations
WHERE time >= CAST(${since} AS TIMESTAMP)
GROUP BY date, function
ORDER BY day, function;
