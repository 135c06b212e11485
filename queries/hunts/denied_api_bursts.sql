-- Bursts of denied cloud API calls: stolen credentials probing what the role
-- may do produce many AccessDenied errors in a short time.
-- Read: `distinct_actions` high = enumeration; one action repeated = a bug.
-- (The selective error-code filter is the one pushed into the Parquet scan;
-- the event type is a group key, kept with HAVING min(type) = 'api_call'
-- after grouping: a type filter in the scan is evaluated on every row and
-- costs more than the few denied calls it would drop.)
-- @param since = -7d  start of the window
-- @param min_denied = 3  at least this many denied calls in one minute
SELECT date_trunc('minute', time) AS minute, function,
       count(*) AS denied,
       count(DISTINCT service || ':' || action) AS distinct_actions,
       array_sort(array_agg(DISTINCT service || ':' || action)) AS actions
FROM events
WHERE time >= CAST(${since} AS TIMESTAMP)
  AND error_code IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'UnrecognizedClientException')
GROUP BY type, date_trunc('minute', time), function
HAVING min(type) = 'api_call' AND count(*) >= ${min_denied}
ORDER BY minute, denied DESC, function;
