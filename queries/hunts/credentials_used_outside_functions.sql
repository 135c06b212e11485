-- A function's role credentials used from outside the function: CloudTrail
-- calls in a function's role session whose client does not say it runs in
-- Lambda (the AWS SDKs append `exec-env/AWS_Lambda_<runtime>` to their user
-- agent inside Lambda; the AWS CLI, a laptop's SDK or a script do not), by
-- source address and client. AWS services calling on the function's behalf
-- (`*.amazonaws.com`, `AWS Internal`) are left out.
-- Read: any row is worth a look; denied calls and reconnaissance actions
-- (List*, Describe*, iam:*, sts:*) from a public address are what stolen
-- credentials are first used for (GuardDuty: credential exfiltration).
-- @param since = -7d  calls from this time
SELECT function,
       source_ip,
       split_part(user_agent, ' ', 1) AS client,
       min(time) AS first_seen,
       max(time) AS last_seen,
       count(*) AS calls,
       count(error_code) AS failed,
       count(DISTINCT service || ':' || action) AS actions,
       min(service || ':' || action) AS an_action
FROM api_calls
WHERE source = 'cloudtrail'
  AND time >= CAST(${since} AS TIMESTAMP)
  AND coalesce(user_agent, '') NOT LIKE '%exec-env/AWS_Lambda%'
  AND coalesce(source_ip, '') NOT LIKE '%.amazonaws.com'
  AND coalesce(source_ip, '') <> 'AWS Internal'
GROUP BY function, source_ip, split_part(user_agent, ' ', 1)
ORDER BY failed DESC, calls DESC, function, source_ip;
