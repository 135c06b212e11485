-- New network peers since a date: (function, host or IP, port) pairs first
-- seen after `since`, that the function never talked to before it.
-- Read: after a deploy some are expected; without one, each is a question.
-- @param since = -1d  peers first seen after this time are new
SELECT function, coalesce(remote_host, remote_ip) AS peer, remote_port,
       min(time) AS first_seen, count(*) AS connections, sum(bytes_out) AS bytes_out
FROM network
GROUP BY function, coalesce(remote_host, remote_ip), remote_port
HAVING min(time) >= CAST(${since} AS TIMESTAMP)
ORDER BY first_seen, function, peer, remote_port;
