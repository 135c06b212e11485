-- Biggest outbound transfers per invocation: exfiltration moves bytes out.
-- Read: compare with the function's usual `bytes_out` (the second query of
-- the behaviour report); a peer outside the usual set is worse.
-- (The top invocations are found first and only their peers are gathered:
-- collecting distinct peers for every invocation costs ten times more.)
-- @param since = -7d  start of the window
-- @param top = 20  rows to show
WITH top_invocations AS (
  SELECT function, request_id, min(time) AS first_time, sum(bytes_out) AS bytes_out
  FROM network
  WHERE time >= CAST(${since} AS TIMESTAMP) AND bytes_out IS NOT NULL
  GROUP BY function, request_id
  ORDER BY bytes_out DESC, function, request_id
  LIMIT ${top}
)
SELECT t.function, t.request_id, t.first_time, t.bytes_out,
       array_sort(array_agg(DISTINCT coalesce(n.remote_host, n.remote_ip))) AS peers
FROM top_invocations t
JOIN network n ON n.function = t.function AND n.request_id = t.request_id
WHERE n.time >= CAST(${since} AS TIMESTAMP) AND n.bytes_out IS NOT NULL
GROUP BY t.function, t.request_id, t.first_time, t.bytes_out
ORDER BY t.bytes_out DESC, t.function, t.request_id;
