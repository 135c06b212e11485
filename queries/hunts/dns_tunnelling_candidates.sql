-- DNS tunnelling candidates: many distinct, long, subdomains under one
-- registrable domain from one function, or TXT lookups in bulk. Data leaves
-- encoded in the query names.
-- Read: `distinct_names` high with `max_label` near 63 is typical of tunnels;
-- CDNs have long names too but few distinct ones per invocation.
-- (Lookups are grouped per name first, so the distinct names of a domain are
-- the rows of that smaller result: cheaper than count(DISTINCT query) over
-- every lookup. The event type is a group key, kept with HAVING min(type) =
-- 'dns' after grouping: a type filter is pushed into the Parquet scan and
-- evaluated on every row, which costs more than grouping them all.)
-- @param since = -7d  start of the window
-- @param min_names = 20  at least this many distinct names under the domain
WITH per_name AS (
  SELECT function, registrable_domain, query,
         max(max_label_length) AS max_label,
         sum(query_length) AS length_sum, count(query_length) AS length_n,
         sum(CASE WHEN qtype = 'TXT' THEN 1 ELSE 0 END) AS txt_lookups
  FROM events
  WHERE time >= CAST(${since} AS TIMESTAMP)
  GROUP BY type, function, registrable_domain, query
  HAVING min(type) = 'dns'
)
SELECT function, registrable_domain,
       count(query) AS distinct_names,
       max(max_label) AS max_label,
       round(CAST(sum(length_sum) AS DOUBLE) / nullif(sum(length_n), 0), 1) AS avg_length,
       sum(txt_lookups) AS txt_lookups
FROM per_name
GROUP BY function, registrable_domain
HAVING count(query) >= ${min_names}
ORDER BY distinct_names DESC, function, registrable_domain;
