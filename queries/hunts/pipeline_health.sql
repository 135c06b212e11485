-- Health of the pipeline itself: dead letters per source and reason, and the
-- lag between an event's time and its arrival in the lake.
-- Read: a new reason means a producer changed its format.
-- @param since = -7d  ingested after this time
SELECT source_kind, source, reason, count(*) AS records, min(line) AS first_line
FROM dead_letters
WHERE ingested_at >= CAST(${since} AS TIMESTAMP)
GROUP BY source_kind, source, reason
ORDER BY records DESC, source, reason;
