-- Report: alerts per hour of the offending event, all and medium or worse.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT date_trunc('hour', time) AS hour,
       count(*) AS alerts,
       sum(CASE WHEN severity <> 'low' THEN 1 ELSE 0 END) AS medium_or_worse
FROM alerts
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
GROUP BY date_trunc('hour', time)
ORDER BY hour;
