-- Permissions granted but never used: each IAM action pattern of a
-- function's role (from its latest function_config) with the number of calls
-- in the window that it covers. Zero = a candidate to remove (least privilege).
-- Read: wildcards (`*`, `s3:*`) that matched only one action are worth
-- narrowing too.
-- @param since = -30d  calls counted from this time
WITH latest AS (
    SELECT function, permissions,
           row_number() OVER (PARTITION BY function ORDER BY time DESC) AS rn
    FROM function_configs
),
grants AS (
    SELECT function, unnest(permissions) AS pattern FROM latest WHERE rn = 1
),
calls AS (
    SELECT function, lower(service) || ':' || lower(action) AS used, count(*) AS n
    FROM api_calls
    WHERE time >= CAST(${since} AS TIMESTAMP) AND error_code IS NULL
    GROUP BY function, lower(service) || ':' || lower(action)
)
SELECT g.function, g.pattern,
       coalesce(sum(c.n), 0) AS calls_covered,
       count(c.used) AS actions_covered
FROM grants g
LEFT JOIN calls c
  ON c.function = g.function
 AND (lower(g.pattern) = '*'
      OR c.used = lower(g.pattern)
      OR (g.pattern LIKE '%*' AND starts_with(c.used, lower(rtrim(g.pattern, '*')))))
GROUP BY g.function, g.pattern
ORDER BY calls_covered, g.function, g.pattern;
