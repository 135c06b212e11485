-- Report: the registrable domains resolved most, and by how many functions.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
-- @param limit = 15  domains shown
SELECT registrable_domain AS domain, count(*) AS lookups, count(DISTINCT function) AS functions
FROM dns
WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)
  AND registrable_domain IS NOT NULL
GROUP BY registrable_domain
ORDER BY lookups DESC, domain
LIMIT ${limit};
