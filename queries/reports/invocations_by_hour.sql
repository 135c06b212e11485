-- Report: invocations, errors and timeouts per hour (the time-series chart).
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT date_trunc('hour', time) AS hour,
       count(*) AS invocations,
       sum(CASE WHEN status = 'error' OR status = 'crash' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END) AS timeouts
FROM invocations
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
GROUP BY date_trunc('hour', time)
ORDER BY hour;
