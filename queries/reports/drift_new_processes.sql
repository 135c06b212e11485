-- Report: behaviour drift, processes: executables a function started in the
-- window that it never started in the baseline.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
-- @param baseline_from = -8d  start of the baseline (it ends at `from`)
WITH base AS (
  SELECT DISTINCT function, exe FROM processes
  WHERE time >= CAST(${baseline_from} AS TIMESTAMP) AND time < CAST(${from} AS TIMESTAMP)
), win AS (
  SELECT function, exe, count(*) AS starts, min(time) AS first_seen
  FROM processes
  WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
  GROUP BY function, exe
)
SELECT w.function, w.exe, w.starts, w.first_seen
FROM win w LEFT JOIN base b ON b.function = w.function AND b.exe = w.exe
WHERE b.function IS NULL
ORDER BY w.first_seen, w.function, w.exe
LIMIT 50;
