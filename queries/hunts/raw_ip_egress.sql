-- Raw-IP egress: outbound connections to an address the invocation never
-- resolved with DNS. Malware and exfiltration scripts often dial IPs
-- directly; well-behaved SDKs resolve names first.
-- Read: `bytes_out` large = data left; many rows for one IP = a beacon.
-- @param since = -7d  start of the window
SELECT n.time, n.function, n.request_id, n.remote_ip, n.remote_port, n.protocol, n.bytes_out
FROM network n
WHERE n.time >= CAST(${since} AS TIMESTAMP)
  AND coalesce(n.direction, 'outbound') = 'outbound'
  AND n.remote_host IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM dns d
      WHERE d.request_id = n.request_id AND array_has(d.answers, n.remote_ip))
ORDER BY n.time, n.function, n.request_id, n.remote_ip;
