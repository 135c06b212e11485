-- Biggest outbound transfers per invocation: exfiltration moves bytes out.
-- Read: compare with the function's usual `bytes_out` (the second query of
-- the behaviour report); a peer outside the usual set is worse.
-- @param since = -7d  start of the window
-- @param top = 20  rows to show
SELECT function, request_id, min(time) AS first_time,
       sum(bytes_out) AS bytes_out,
       array_sort(array_agg(DISTINCT coalesce(remote_host, remote_ip))) AS peers
FROM network
WHERE time >= CAST(${since} AS TIMESTAMP) AND bytes_out IS NOT NULL
GROUP BY function, request_id
ORDER BY bytes_out DESC, function, request_id
LIMIT ${top};
