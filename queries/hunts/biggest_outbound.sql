-- Biggest outbound transfers per invocation: exfiltration moves bytes out.
-- Read: compare with the function's usual `bytes_out` (the second query of
-- the behaviour report); a peer outside the usual set is worse.
-- (One pass over `network`: each invocation's peers are collected with a
-- plain array_agg next to its bytes, and only the top invocations' lists are
-- deduplicated and sorted. array_agg(DISTINCT) for every invocation costs
-- ten times more, and joining the top invocations back to `network` reads
-- it twice. A top row without a request_id is left out, as that join did.)
-- @param since = -7d  start of the window
-- @param top = 20  rows to show
SELECT function, request_id, first_time, bytes_out,
       array_sort(array_distinct(peers)) AS peers
FROM (
  SELECT function, request_id, min(time) AS first_time, sum(bytes_out) AS bytes_out,
         array_agg(coalesce(remote_host, remote_ip)) AS peers
  FROM network
  WHERE time >= CAST(${since} AS TIMESTAMP) AND bytes_out IS NOT NULL
  GROUP BY function, request_id
  ORDER BY bytes_out DESC, function, request_id
  LIMIT ${top}
) top_invocations
WHERE request_id IS NOT NULL
ORDER BY bytes_out DESC, function, request_id;
