-- Report: alerts per kind and severity.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT kind,
       sum(CASE WHEN severity = 'critical' THEN 1 ELSE 0 END) AS critical,
       sum(CASE WHEN severity = 'high' THEN 1 ELSE 0 END) AS high,
       sum(CASE WHEN severity = 'medium' THEN 1 ELSE 0 END) AS medium,
       sum(CASE WHEN severity = 'low' THEN 1 ELSE 0 END) AS low,
       count(*) AS total
FROM alerts
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
GROUP BY kind
ORDER BY critical DESC, high DESC, medium DESC, total DESC, kind;
