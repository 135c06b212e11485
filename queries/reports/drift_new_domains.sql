-- Report: behaviour drift, DNS: registrable domains a function resolved in
-- the window that it never resolved in the baseline before it.
-- Read: a new domain right after a deploy is usually the new code; one no
-- other function resolves either deserves a look.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
-- @param baseline_from = -8d  start of the baseline (it ends at `from`)
WITH base AS (
  SELECT DISTINCT function, registrable_domain FROM dns
  WHERE time >= CAST(${baseline_from} AS TIMESTAMP) AND time < CAST(${from} AS TIMESTAMP)
), win AS (
  SELECT function, registrable_domain, count(*) AS lookups, min(time) AS first_seen
  FROM dns
  WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
    AND registrable_domain IS NOT NULL
  GROUP BY function, registrable_domain
)
SELECT w.function, w.registrable_domain AS domain, w.lookups, w.first_seen
FROM win w LEFT JOIN base b
  ON b.function = w.function AND b.registrable_domain = w.registrable_domain
WHERE b.function IS NULL
ORDER BY w.first_seen, w.function, domain
LIMIT 50;
