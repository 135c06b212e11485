-- DNS tunnelling candidates: many distinct, long, subdomains under one
-- registrable domain from one function, or TXT lookups in bulk. Data leaves
-- encoded in the query names.
-- Read: `distinct_names` high with `max_label` near 63 is typical of tunnels;
-- CDNs have long names too but few distinct ones per invocation.
-- @param since = -7d  start of the window
-- @param min_names = 20  at least this many distinct names under the domain
SELECT function, registrable_domain,
       count(DISTINCT query) AS distinct_names,
       max(max_label_length) AS max_label,
       round(avg(query_length), 1) AS avg_length,
       sum(CASE WHEN qtype = 'TXT' THEN 1 ELSE 0 END) AS txt_lookups
FROM dns
WHERE time >= CAST(${since} AS TIMESTAMP)
GROUP BY function, registrable_domain
HAVING count(DISTINCT query) >= ${min_names}
ORDER BY distinct_names DESC, function, registrable_domain;
