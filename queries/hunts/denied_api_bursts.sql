-- Bursts of denied cloud API calls: stolen credentials probing what the role
-- may do produce many AccessDenied errors in a short time.
-- Read: `distinct_actions` high = enumeration; one action repeated = a bug.
-- @param since = -7d  start of the window
-- @param min_denied = 3  at least this many denied calls in one minute
SELECT date_trunc('minute', time) AS minute, function,
       count(*) AS denied,
       count(DISTINCT service || ':' || action) AS distinct_actions,
       array_sort(array_agg(DISTINCT service || ':' || action)) AS actions
FROM api_calls
WHERE time >= CAST(${since} AS TIMESTAMP)
  AND error_code IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'UnrecognizedClientException')
GROUP BY date_trunc('minute', time), function
HAVING count(*) >= ${min_denied}
ORDER BY minute, denied DESC, function;
