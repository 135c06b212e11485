-- Rare domains fleet-wide: registrable domains that few functions resolve,
-- and rarely. A domain only one function ever looked up, a handful of times,
-- is where exfiltration and C2 (pastebin.com, ngrok.io, a fresh domain)
-- show up first.
-- Read: `functions` = how many functions resolved it; `first_seen` tells
-- whether it is new in the window.
-- @param since = -7d  start of the window
-- @param max_lookups = 5  at most this many lookups in the window
SELECT registrable_domain,
       count(DISTINCT function) AS functions,
       count(*) AS lookups,
       min(time) AS first_seen,
       max(time) AS last_seen,
       array_sort(array_agg(DISTINCT function)) AS by_functions
FROM dns
WHERE time >= CAST(${since} AS TIMESTAMP) AND registrable_domain IS NOT NULL
GROUP BY registrable_domain
HAVING count(*) <= ${max_lookups}
ORDER BY functions, lookups, registrable_domain;
