-- Access to sensitive paths: credentials and secrets of the sandbox
-- (/proc/self/environ holds the role's keys), system files an application
-- has no reason to read, and executables written to /tmp.
-- Read: `op` = exec or chmod under /tmp is a dropped payload.
-- @param since = -7d  start of the window
SELECT time, function, request_id, op, path
FROM files
WHERE time >= CAST(${since} AS TIMESTAMP)
  AND (path IN ('/proc/self/environ', '/etc/passwd', '/etc/shadow', '/root/.aws/credentials')
       OR starts_with(path, '/proc/self/')
       OR starts_with(path, '/root/')
       OR (starts_with(path, '/tmp/') AND op IN ('exec', 'chmod')))
ORDER BY time, function, request_id, path;
