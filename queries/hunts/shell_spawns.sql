-- Functions that spawn shells or download tools: command injection leaves a
-- child shell (sh, bash, dash, busybox) or a fetcher (curl, wget, nc) behind.
-- Read: every row is an invocation worth opening; `cmdline` shows the payload.
-- @param since = -7d  start of the window
SELECT time, function, request_id, exe, cmdline, parent_exe
FROM processes
WHERE time >= CAST(${since} AS TIMESTAMP)
  AND regexp_like(exe, '/(sh|bash|dash|zsh|ash|busybox|curl|wget|nc|ncat|socat|python[0-9.]*|perl)$')
ORDER BY time, function, request_id;
