-- Report: least-privilege findings: roles granting more than the function
-- uses (the `over_permissive` alerts raised in the window).
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT function, severity, summary
FROM alerts
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
  AND kind = 'over_permissive'
ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END,
         function;
