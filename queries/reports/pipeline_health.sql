-- Report: the health of the pipeline itself: events ingested for the
-- window, how late they arrived (ingest lag = ingested_at - time), and the
-- dead-lettered records of the same period.
-- @param from = -24h  start of the window
-- @param to = -0s  end of the window (exclusive)
SELECT (SELECT count(*) FROM events
        WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)) AS events,
       (SELECT round(avg(date_part('epoch', ingested_at) - date_part('epoch', time)), 1) FROM events
        WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)) AS avg_lag_s,
       (SELECT round(max(date_part('epoch', ingested_at) - date_part('epoch', time)), 1) FROM events
        WHERE time >= CAST(${from} AS TIMESTAMP) AND time < CAST(${to} AS TIMESTAMP)) AS max_lag_s,
       (SELECT count(*) FROM dead_letters
        WHERE ingested_at >= CAST(${from} AS TIMESTAMP) AND ingested_at < CAST(${to} AS TIMESTAMP)) AS dead_letters;
