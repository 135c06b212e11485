-- Permissions granted but never used: each IAM action pattern of a
-- function's role (from its latest function_config) with the number of calls
-- in the window that it covers. Zero = a candidate to remove (least privilege).
-- Read: wildcards (`*`, `s3:*`) that matched only one action are worth
-- narrowing too.
-- (Calls are counted per function, service, action and error code first, on
-- the raw columns, then lower-cased and joined on that small result. The
-- event type and failed calls are filtered after grouping (HAVING
-- min(type) = 'api_call' AND count(error_code) = 0, not pushed into the
-- Parquet scan): for a third of all events, filtering each row in the scan
-- costs more than grouping them all. `function || ''` in `calls` keeps
-- DataFusion from pushing the join's dynamic filter on `function` down into
-- that scan, where it is checked on every row and drops next to nothing:
-- nearly every function that calls APIs has a role.)
-- @param since = -30d  calls counted from this time
WITH latest AS (
    SELECT function, permissions,
           row_number() OVER (PARTITION BY function ORDER BY time DESC) AS rn
    FROM function_configs
),
grants AS (
    SELECT function, unnest(permissions) AS pattern FROM latest WHERE rn = 1
),
per_action AS (
    SELECT function, service, action, count(*) AS n
    FROM events
    WHERE time >= CAST(${since} AS TIMESTAMP)
    GROUP BY type, function, service, action, error_code
    HAVING min(type) = 'api_call' AND count(error_code) = 0
),
calls AS (
    SELECT function || '' AS function, lower(service) || ':' || lower(action) AS used, sum(n) AS n
    FROM per_action
    GROUP BY function || '', lower(service) || ':' || lower(action)
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
