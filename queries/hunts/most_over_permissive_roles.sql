-- The most over-permissive roles: for each function's latest configuration
-- (the `function_inventory` view), the grants of its role (the flat IAM
-- action patterns) and how many of them no call in the window used, from
-- either source (the sensor's calls and CloudTrail's).
-- Read: `unused` first; `wildcards` (`s3:*`, `*`) grant more than any use
-- shows even when used, and `admin` marks `*` (every action). Fewer unused
-- grants per role is least privilege; `fnwatch detect` judges the same per
-- action *and* resource from the role's policy statements.
-- @param since = -30d  calls counted from this time
WITH grants AS (
    SELECT function, role_arn, unnest(permissions) AS pattern
    FROM function_inventory
),
used AS (
    SELECT DISTINCT function, lower(service) || ':' || lower(action) AS used
    FROM api_calls
    WHERE time >= CAST(${since} AS TIMESTAMP) AND error_code IS NULL
),
judged AS (
    SELECT g.function, g.role_arn, g.pattern,
           count(u.used) AS actions_covered
    FROM grants g
    LEFT JOIN used u
      ON u.function = g.function
     AND (g.pattern = '*'
          OR u.used = lower(g.pattern)
          OR (g.pattern LIKE '%*' AND starts_with(u.used, lower(rtrim(g.pattern, '*')))))
    GROUP BY g.function, g.role_arn, g.pattern
)
SELECT function, role_arn,
       count(*) AS grants,
       sum(CASE WHEN actions_covered = 0 THEN 1 ELSE 0 END) AS unused,
       sum(CASE WHEN pattern LIKE '%*%' THEN 1 ELSE 0 END) AS wildcards,
       max(CASE WHEN pattern IN ('*', '*:*') THEN 1 ELSE 0 END) = 1 AS admin,
       array_to_string(array_agg(CASE WHEN actions_covered = 0 THEN pattern END ORDER BY pattern), ', ') AS unused_grants
FROM judged
GROUP BY function, role_arn
ORDER BY admin DESC, unused DESC, wildcards DESC, function;
