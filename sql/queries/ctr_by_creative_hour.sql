-- CTR per creative and impression hour (UTC), from the Parquet reward table.
SET 'execution.runtime-mode' = 'batch';
SELECT campaign_id, action AS creative_id,
       DATE_FORMAT(TO_TIMESTAMP_LTZ(event_ts, 3), 'yyyy-MM-dd HH') AS impression_hour,
       COUNT(*) AS impressions, SUM(click) AS clicks, SUM(click) / COUNT(*) AS ctr
FROM rewards_table
WHERE agent = 'creative' AND kind = 'initial'
GROUP BY campaign_id, action, DATE_FORMAT(TO_TIMESTAMP_LTZ(event_ts, 3), 'yyyy-MM-dd HH')
ORDER BY campaign_id, creative_id, impression_hour;
