-- Rare domains fleet-wide: registrable domains that few functions resolve,
-- and rarely. A domain only one function ever looked up, a handful of times,
-- is where exfiltration and C2 (pastebin.com, ngrok.io, a fresh domain)
-- show up first.
-- Read: `functions` = how many functions resolved it; `first_seen` tells
-- whether it is new in the window.
-- (Lookups are counted per domain and function first, so the distinct
-- functions of a domain are the rows of that small result: cheaper than
-- count(DISTINCT) and array_agg(DISTINCT) over every lookup. The scan keeps
-- only rows with a registrable domain; the event type is a group key, kept
-- with HAVING min(type) = 'dns' after grouping: a type filter in the Parquet
-- scan is evaluated on every row and costs more.)
-- @param since = -7d  start of the window
-- @param max_lookups = 5  at most this many lookups in the window
WITH per_function AS (
  SELECT registrable_domain, function,
         count(*) AS n, min(time) AS first_seen, max(time) AS last_seen
  FROM events
  WHERE time >= CAST(${since} AS TIMESTAMP) AND registrable_domain IS NOT NULL
  GROUP BY type, registrable_domain, function
  HAVING min(type) = 'dns'
)
SELECT registrable_domain,
       count(*) AS functions,
       sum(n) AS lookups,
       min(first_seen) AS first_seen,
       max(last_seen) AS last_seen,
       array_sort(array_agg(function)) AS by_functions
FROM per_function
GROUP BY registrable_domain
HAVING sum(n) <= ${max_lookups}
ORDER BY functions, lookups, registrable_domain;
