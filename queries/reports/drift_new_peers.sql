-- Report: behaviour drift, network: peers (host, or IP when no name was
-- known, and port) a function connected to in the window and never in the
-- baseline.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
-- @param baseline_from = -8d  start of the baseline (it ends at `from`)
WITH base AS (
  SELECT DISTINCT function, coalesce(remote_host, remote_ip) AS peer, remote_port
  FROM network
  WHERE time >= CAST(${baseline_from} AS TIMESTAMP) AND time < CAST(${from} AS TIMESTAMP)
), win AS (
  SELECT function, coalesce(remote_host, remote_ip) AS peer, remote_port,
         count(*) AS connections, sum(coalesce(bytes_out, 0)) AS bytes_out,
         min(time) AS first_seen
  FROM network
  WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
  GROUP BY function, coalesce(remote_host, remote_ip), remote_port
)
SELECT w.function, w.peer, w.remote_port AS port, w.connections, w.bytes_out, w.first_seen
FROM win w LEFT JOIN base b
  ON b.function = w.function AND b.peer = w.peer AND b.remote_port = w.remote_port
WHERE b.function IS NULL
ORDER BY w.first_seen, w.function, w.peer
LIMIT 50;
