-- Report: the functions with the most alerts of medium severity or worse.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
-- @param limit = 15  functions shown
SELECT function,
       sum(CASE WHEN severity <> 'low' THEN 1 ELSE 0 END) AS medium_or_worse,
       count(*) AS alerts,
       count(DISTINCT kind) AS kinds,
       max(score) AS max_score
FROM alerts
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
GROUP BY function
ORDER BY medium_or_worse DESC, alerts DESC, function
LIMIT ${limit};
