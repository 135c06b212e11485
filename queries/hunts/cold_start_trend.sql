-- Cold starts per function and day: how often invocations pay an init
-- phase, and how long it takes. A jump after a deploy (bigger bundle, new
-- layer) or a rise in concurrency shows here.
-- @param since = -7d  start of the window
SELECT date_trunc('day', time) AS day, function,
       count(*) AS invocations,
       sum(CASE WHEN init_ms IS NOT NULL THEN 1 ELSE 0 END) AS cold_starts,
       round(avg(init_ms), 1) AS avg_init_ms
FROM invocations
WHERE time >= CAST(${since} AS TIMESTAMP)
GROUP BY date_trunc('day', time), function
ORDER BY day, function;
