-- Report: the top findings, worst first, each explained by its summary.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
-- @param limit = 12  findings shown
SELECT time, severity, kind, function, summary, id
FROM alerts
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
  AND severity <> 'low'
ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 ELSE 2 END,
         score DESC, time, id
LIMIT ${limit};
